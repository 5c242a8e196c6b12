using System.CommandLine;
using System.Globalization;
using StackExchange.Redis;
using Streaming.Connectors.Redis;
using Streaming.Host.Hosting;

namespace Streaming.Host.Cli;

/// <summary><c>streaming mirror</c>: work on the Redis mirror.</summary>
public static class MirrorCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "Directory of the engine's SQLite state (default: Streaming:DataDir, else ./.streaming)" };
        var redis = new Option<string?>("--redis") { Description = "Redis connection string, e.g. 127.0.0.1:6379 (default: Streaming:Redis:Connection)" };
        var prefix = new Option<string?>("--prefix") { Description = $"Key prefix (default: Streaming:Redis:Prefix, else '{RedisKeySchema.DefaultPrefix}')" };
        var config = new Option<string?>("--config") { Description = "A JSON configuration file (same keys as appsettings.json)" };
        var resync = new Command(
            "resync",
            "Rebuild the prefix's Redis keys from the state store: delete them (SCAN + DEL), write every stored customer with the store's checkpoint seq (a cluster's configuration: each customer's version), prune stray set members. Safe while the engine runs (its newer writes win).")
        {
            dataDir, redis, prefix, config,
        };
        resync.SetAction(async (parse, ct) =>
        {
            string directory, connection, keyPrefix;
            Connectors.Persistence.ActorStoreOptions store;
            Engine.Runtime.MirrorSeqSource seqSource;
            try
            {
                var settings = StreamingSettings.From(StreamingSettings.LoadConfiguration(parse.GetValue(config)));
                directory = parse.GetValue(dataDir) ?? settings.DataDir;
                connection = StreamingSettings.RedisConnectionSetting(parse.GetValue(redis)) ?? settings.RedisConnection
                    ?? throw new InvalidOperationException("no Redis to resync: pass --redis HOST:PORT or set Streaming:Redis:Connection");
                keyPrefix = StreamingSettings.RedisPrefixSetting(parse.GetValue(prefix)) ?? settings.RedisPrefix;
                store = new Connectors.Persistence.ActorStoreOptions { Provider = settings.StoreProvider, DataDir = directory, ConnectionString = settings.StoreConnectionString };
                seqSource = settings.MirrorSeqSource;
            }
            catch (Exception ex) when (ex is InvalidOperationException or FileNotFoundException or InvalidDataException)
            {
                await Console.Error.WriteLineAsync("streaming mirror resync: " + ex.Message).ConfigureAwait(false);
                return 2;
            }

            if (store.Provider == Connectors.Persistence.StoreProvider.Sqlite && !File.Exists(Path.Combine(directory, "state.db")))
            {
                await Console.Error.WriteLineAsync($"streaming mirror resync: no state store in {Path.GetFullPath(directory)} (state.db); pass --data-dir").ConfigureAwait(false);
                return 2;
            }

            var options = RedisConnection.Parse(connection);
            options.AbortOnConnectFail = true;
            ConnectionMultiplexer multiplexer;
            try
            {
                multiplexer = await RedisConnection.ConnectAsync(options).ConfigureAwait(false);
            }
            catch (RedisConnectionException ex)
            {
                await Console.Error.WriteLineAsync($"streaming mirror resync: cannot connect to Redis at {RedisConnection.Describe(options)}: {ex.Message}").ConfigureAwait(false);
                return 1;
            }

            using (multiplexer)
            {
                try
                {
                    var result = await new RedisResync(multiplexer, new RedisKeySchema(keyPrefix), line => Console.Error.WriteLine("resync: " + line)) { SeqSource = seqSource }
                        .RunAsync(store, ct).ConfigureAwait(false);
                    var summary = string.Create(
                        CultureInfo.InvariantCulture,
                        $"resynced customers={result.Customers} seq={result.Seq} written={result.Written} newerKept={result.NewerKept} keysDeleted={result.KeysDeleted} membersPruned={result.MembersPruned} seconds={result.Elapsed.TotalSeconds:0.0}");
                    await Console.Out.WriteLineAsync(summary).ConfigureAwait(false);
                    // Recorded and logged as the engine records its entries: one structured "Audit …" line (stderr).
                    using var logging = LoggerFactory.Create(b =>
                    {
                        b.AddSimpleConsole(o =>
                        {
                            o.SingleLine = true;
                            o.TimestampFormat = "HH:mm:ss.fff ";
                        });
                        b.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
                    });
                    try
                    {
                        AuditTrail.RecordTo(store, TimeProvider.System, logging.CreateLogger<AuditTrail>(), AuditTrail.Cli, "mirror.resync", $"prefix {keyPrefix}: customers={result.Customers} seq={result.Seq}");
                    }
                    catch (Exception ex) when (ex is InvalidOperationException or System.Data.Common.DbException)
                    {
                        await Console.Error.WriteLineAsync("streaming mirror resync: not recorded in the audit trail: " + ex.Message).ConfigureAwait(false);
                    }

                    return 0;
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException or InvalidOperationException or IOException or System.Data.Common.DbException)
                {
                    await Console.Error.WriteLineAsync("streaming mirror resync: failed: " + ex.Message).ConfigureAwait(false);
                    return 1;
                }
            }
        });

        return new Command("mirror", "Work with the Redis mirror") { resync };
    }
}
