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
        var command = new Command("run", "Run the engine: consume the input topics, keep customer state, serve the HTTP API") { bootstrap, dataDir, urls, config, rules, storeProvider, storeConnection };
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
            EngineHost host;
            try
            {
                host = await EngineHost.StartAsync(settings, LogLevel.Information, ct, configuration).ConfigureAwait(false);
            }
            catch (RuleSetException ex)
            {
                await Console.Error.WriteLineAsync("streaming run: the rule set is invalid:" + Environment.NewLine + ex.Message).ConfigureAwait(false);
                return 2;
            }
            catch (DataDirectoryException ex)
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
