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
        var discovery = new Option<string?>("--discovery") { Description = "How the node finds the other cluster nodes instead of --seed-node: none (default), kubernetes (the pods the Kubernetes API lists) or config (--discovery-endpoint) (Streaming:Cluster:Discovery:Method)" };
        var discoveryEndpoints = new Option<string[]>("--discovery-endpoint") { Description = "With --discovery config: a node's management endpoint, host:port; repeatable, this node's own included (Streaming:Cluster:Discovery:Endpoints)", AllowMultipleArgumentsPerToken = false };
        var managementPort = new Option<int?>("--management-port") { Description = "With --discovery: the port of this node's Akka.Management HTTP endpoint, on --cluster-host (Streaming:Cluster:Discovery:ManagementPort, default 8558)" };
        var command = new Command("run", "Run the engine: consume the input topics, keep customer state, serve the HTTP API") { bootstrap, dataDir, urls, config, rules, storeProvider, storeConnection, clusterHost, clusterPort, seedNodes, discovery, discoveryEndpoints, managementPort };
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

                ReplaceList(configuration, overrides, "Streaming:Cluster:SeedNodes", parse.GetValue(seedNodes));
                if (parse.GetValue(discovery) is { } method)
                {
                    overrides.Add(new("Streaming:Cluster:Discovery:Method", method));
                }

                ReplaceList(configuration, overrides, "Streaming:Cluster:Discovery:Endpoints", parse.GetValue(discoveryEndpoints));
                if (parse.GetValue(managementPort) is { } management)
                {
                    overrides.Add(new("Streaming:Cluster:Discovery:ManagementPort", management.ToString(System.Globalization.CultureInfo.InvariantCulture)));
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
            if (settings.IsCluster && settings.BootstrapServers is null)
            {
                // Each node would host a broker of its own: one consumer group needs one Kafka cluster.
                await Console.Error.WriteLineAsync($"streaming run: a cluster ({(settings.SeedNodes.Count > 0 ? "--seed-node" : "--discovery")}) needs Kafka bootstrap servers shared by its nodes (--bootstrap or Streaming:Kafka:BootstrapServers); the embedded broker serves one node").ConfigureAwait(false);
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

    /// <summary>
    /// A repeatable option's values replace the configuration's list under <paramref name="key"/> (<c>key:0</c>, …; an
    /// entry beyond them is blanked); none given: the configuration's list stands.
    /// </summary>
    private static void ReplaceList(IConfiguration configuration, List<KeyValuePair<string, string?>> overrides, string key, string[]? values)
    {
        if (values is not { Length: > 0 })
        {
            return;
        }

        var configured = configuration.GetSection(key).GetChildren().Count();
        for (var i = 0; i < Math.Max(values.Length, configured); i++)
        {
            overrides.Add(new($"{key}:{i.ToString(System.Globalization.CultureInfo.InvariantCulture)}", i < values.Length ? values[i] : ""));
        }
    }
}
