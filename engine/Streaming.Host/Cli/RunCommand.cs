using System.CommandLine;
using Streaming.Engine.Rules;
using Streaming.Host.Hosting;

namespace Streaming.Host.Cli;

/// <summary><c>streaming run</c>: the engine.</summary>
public static class RunCommand
{
    public static Command Create()
    {
        var bootstrap = new Option<string?>("--bootstrap") { Description = "Kafka bootstrap servers; none configured = embedded broker in-process" };
        var dataDir = new Option<string?>("--data-dir") { Description = "Directory of the embedded SQLite state (default ./.streaming)" };
        var urls = new Option<string?>("--urls") { Description = "HTTP listen URL (default http://127.0.0.1:8080)" };
        var config = new Option<string?>("--config") { Description = "A JSON configuration file (same keys as appsettings.json)" };
        var rules = new Option<string?>("--rules") { Description = "A directory of rule files (*.yaml), watched for changes (default: the stored or the built-in rule set)" };
        var storeProvider = new Option<string?>("--store-provider") { Description = "sqlite (default, in --data-dir) or postgresql: where customers, checkpoints and wake-ups are journaled (Streaming:Store:Provider)" };
        var storeConnection = new Option<string?>("--store-connection") { Description = "PostgreSQL connection string, Npgsql form (Streaming:Store:ConnectionString)" };
        var clusterHost = new Option<string?>("--cluster-host") { Description = "Address the other cluster nodes reach this node at (Streaming:Cluster:Hostname, default 127.0.0.1)" };
        var clusterPort = new Option<int?>("--cluster-port") { Description = "The node's cluster (remoting) port (Streaming:Cluster:Port, default 0 = any free port)" };
        var seedNodes = new Option<string[]>("--seed-node") { Description = "A node to join, host:port; repeatable (Streaming:Cluster:SeedNodes); none = a cluster of its own. A cluster needs --store-provider postgresql", AllowMultipleArgumentsPerToken = false };
        var command = new Command("run", "Run the engine: consume the input topics, keep customer state, serve the HTTP API") { bootstrap, dataDir, urls, config, rules, storeProvider, storeConnection, clusterHost, clusterPort, seedNodes };
        command.SetAction(async (parse, ct) =>
        {
            StreamingSettings settings;
            IConfiguration configuration;
            try
            {
                configuration = StreamingSettings.LoadConfiguration(parse.GetValue(config));
                // Command-line options override the configuration's keys.
                var overrides = new List<KeyValuePair<string, string?>>();
                if (parse.GetValue(storeProvider) is { } provider)
                {
                    overrides.Add(new("Streaming:Store:Provider", provider));
                }

                if (parse.GetValue(storeConnection) is { } connection)
                {
                    overrides.Add(new("Streaming:Store:ConnectionString", connection));
                }

                if (parse.GetValue(clusterHost) is { } hostname)
                {
                    overrides.Add(new("Streaming:Cluster:Hostname", hostname));
                }

                if (parse.GetValue(clusterPort) is { } port)
                {
                    overrides.Add(new("Streaming:Cluster:Port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                }

                if (parse.GetValue(seedNodes) is { Length: > 0 } seeds)
                {
                    // The command line's seeds replace the configuration's (an entry beyond them is blanked).
                    var configured = configuration.GetSection("Streaming:Cluster:SeedNodes").GetChildren().Count();
                    for (var i = 0; i < Math.Max(seeds.Length, configured); i++)
                    {
                        overrides.Add(new($"Streaming:Cluster:SeedNodes:{i}", i < seeds.Length ? seeds[i] : ""));
                    }
                }

                if (overrides.Count > 0)
                {
                    configuration = new ConfigurationBuilder().AddConfiguration(configuration).AddInMemoryCollection(overrides).Build();
                }

                settings = StreamingSettings.From(configuration);
            }
            catch (Exception ex) when (ex is InvalidOperationException or FileNotFoundException or InvalidDataException)
            {
                await Console.Error.WriteLineAsync("streaming run: " + ex.Message).ConfigureAwait(false);
                return 2;
            }

            settings = settings with
            {
                BootstrapServers = parse.GetValue(bootstrap) ?? settings.BootstrapServers,
                DataDir = parse.GetValue(dataDir) ?? settings.DataDir,
                Urls = parse.GetValue(urls) ?? settings.Urls,
                RulesDirectory = parse.GetValue(rules) ?? settings.RulesDirectory,
            };
            if (settings.SeedNodes.Count > 0 && settings.BootstrapServers is null)
            {
                // Each node would host a broker of its own: one consumer group needs one Kafka cluster.
                await Console.Error.WriteLineAsync("streaming run: a cluster (--seed-node) needs Kafka bootstrap servers shared by its nodes (--bootstrap or Streaming:Kafka:BootstrapServers); the embedded broker serves one node").ConfigureAwait(false);
                return 2;
            }

            EngineHost host;
            try
            {
                host = await EngineHost.StartAsync(settings, new EngineHttpApi(), LogLevel.Information, ct, configuration).ConfigureAwait(false);
            }
            catch (RuleSetException ex)
            {
                await Console.Error.WriteLineAsync("streaming run: the rule set is invalid:" + Environment.NewLine + ex.Message).ConfigureAwait(false);
                return 2;
            }
            catch (Exception ex) when (ex is DataDirectoryException or Connectors.Redis.MirrorPrefixException)
            {
                await Console.Error.WriteLineAsync("streaming run: " + ex.Message).ConfigureAwait(false);
                return 2;
            }
            catch (System.Data.Common.DbException ex)
            {
                await Console.Error.WriteLineAsync("streaming run: the store could not be read at start: " + ex.Message).ConfigureAwait(false);
                return 1;
            }

            await using (host.ConfigureAwait(false))
            {
                return await host.WaitAsync(ct).ConfigureAwait(false);
            }
        });
        return command;
    }
}
