using System.Diagnostics.Metrics;
using Akka.Actor;
using Akka.Hosting;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Persistence;
using Streaming.Connectors.Redis;
using Streaming.Connectors.Sql;
using Streaming.Connectors.Telemetry;
using Streaming.Connectors.Triggers;
using Streaming.Engine.Events;
using Streaming.Engine.Runtime;
using Streaming.Host.Metrics;

namespace Streaming.Host.Hosting;

/// <summary>
/// One running engine: the (optional) embedded broker, the state store, the Kafka runtime and the HTTP API. Used by the
/// <c>run</c> and <c>demo</c> verbs.
/// </summary>
public sealed partial class EngineHost : IAsyncDisposable
{
    private readonly ILogger _logger;

    private EngineHost(WebApplication web, MockCluster? broker, string bootstrap, EngineStore store, IStreamingEngine engine, RulesManager rules, StreamingSettings settings, TriggerRelay relay, OutreachService outreach, ILogger logger, RedisMirror? mirror)
    {
        Relay = relay;
        Outreach = outreach;
        Mirror = mirror;
        Rules = rules;
        Settings = settings;
        Web = web;
        Broker = broker;
        BootstrapServers = bootstrap;
        Store = store;
        Engine = engine;
        _logger = logger;
    }

    public WebApplication Web { get; }
    public MockCluster? Broker { get; }
    public string BootstrapServers { get; }
    public bool Embedded => Broker is not null;
    /// <summary>The engine's own tables (outbox, outreach queue, audit, settings), where the journal is.</summary>
    public EngineStore Store { get; }
    /// <summary>The running engine (the Kafka ingestion and the customers' runtime).</summary>
    public IStreamingEngine Engine { get; }
    public RulesManager Rules { get; }
    public TriggerRelay Relay { get; }
    public OutreachService Outreach { get; }
    public StreamingSettings Settings { get; }

    /// <summary>The Redis mirror, or null when <c>Streaming:Redis:Connection</c> is not set.</summary>
    public RedisMirror? Mirror { get; }

    /// <summary>The cluster's mirror catch-up for partitions taken over; null on a single node or without a mirror.</summary>
    public MirrorTakeover? MirrorTakeover { get; private init; }

    /// <summary>Who changed what: rule sets, outreach acks and releases, mirror resyncs.</summary>
    public AuditTrail Audit { get; private set; } = null!;

    /// <summary>Backtests started over HTTP (<c>/v1/backtests</c>), one at a time, apart from the live state.</summary>
    public BacktestRunner Backtests { get; private set; } = null!;

    /// <summary>
    /// Starts everything; with no bootstrap servers configured an embedded broker is hosted in-process.
    /// <paramref name="configuration"/> (the <c>--config</c> file and the environment) also configures Kestrel, e.g.
    /// HTTPS endpoints under <c>Kestrel:Endpoints</c>. <paramref name="api"/> is the HTTP surface to serve (the
    /// composition root passes <c>Http.EngineHttpApi</c>).
    /// </summary>
    public static async Task<EngineHost> StartAsync(StreamingSettings settings, IHttpApi api, LogLevel minimumLevel, CancellationToken cancellationToken, IConfiguration? configuration = null)
    {
        ArgumentNullException.ThrowIfNull(api);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        if (configuration is not null)
        {
            builder.Configuration.AddConfiguration(configuration);
        }

        // HTTPS endpoints and certificates from configuration (the slim builder leaves this out).
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        builder.Logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(minimumLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        builder.WebHost.UseUrls(settings.Urls);
        api.AddServices(builder.Services, settings);
        builder.Services.AddSingleton(settings);
        builder.Services.AddClusterDiscovery(settings);
        Otlp.AddTo(builder.Services, settings.OtlpEndpoint, settings.OtlpIntervalMs, settings.MetricsMeterPrefixes);
        var storeOptions = new ActorStoreOptions { Provider = settings.StoreProvider, DataDir = settings.DataDir, ConnectionString = settings.StoreConnectionString };
        {
            // The actor system lives in the Generic Host: created when the engine first asks for it, shut down by the
            // host's stop (CoordinatedShutdown: the node leaves its cluster), its log routed to the host's loggers.
            builder.Services.AddAkka(ShardedEngine.SystemName, akka => akka
                .AddHocon(ShardedEngine.NodeConfigFor(settings.ClusterHostname, settings.ClusterPort, TimeSpan.FromMilliseconds(settings.ClusterStableAfterMs)), HoconAddMode.Prepend)
                .WithActorStore(storeOptions)
                .WithClusterDiscovery(settings)
                .ConfigureLoggers(log =>
                {
                    log.LogLevel = Akka.Event.LogLevel.WarningLevel;
                    log.ClearLoggers();
                    log.AddLoggerFactory();
                }));
        }

        var web = builder.Build();
        var logger = web.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Streaming.Engine");

        MockCluster? broker = null;
        var bootstrap = settings.BootstrapServers;
        if (bootstrap is null)
        {
            broker = MockCluster.Start();

            // This engine is the group's only member: the first join waits for nobody (Kafka's default waits 3 s).
            broker.SetGroupInitialRebalanceDelay(TimeSpan.Zero);
            broker.CreateTopics(Topics.All, settings.Partitions);
            bootstrap = broker.BootstrapServers;
            LogEmbeddedBroker(logger, bootstrap, settings.Partitions);
        }

        EngineStore store;
        try
        {
            store = EngineStore.Open(storeOptions);
        }
        catch (Exception ex) when (ex is LegacyStateException or InvalidOperationException or System.Data.Common.DbException)
        {
            // A legacy store (starting there would silently begin from nothing), one from a newer build, or a database
            // that cannot be reached: nothing starts.
            broker?.Dispose();
            await web.DisposeAsync().ConfigureAwait(false);
            if (ex is System.Data.Common.DbException)
            {
                throw;
            }

            throw new DataDirectoryException(ex.Message);
        }

        if (broker is not null && store.Reserved > 0)
        {
            LogEmbeddedWithOldState(logger, store.Location);
        }

        // Before the rule set is chosen: a directory edited while the engine was down, or broken, is audited too.
        var audit = new AuditTrail(store, TimeProvider.System, web.Services.GetRequiredService<ILoggerFactory>().CreateLogger<AuditTrail>());
        RulesManager rules;
        try
        {
            rules = RulesManager.Create(settings, store, TimeProvider.System, logger, audit);
        }
        catch
        {
            store.Dispose();
            broker?.Dispose();
            await web.DisposeAsync().ConfigureAwait(false); // flushes the log (the rejection's audit line)
            throw;
        }

        // The meter bridge listens from now on: instruments created below are seen from their first measurement.
        _ = web.Services.GetRequiredService<MeterBridge>();
        var instruments = new EngineInstruments(web.Services.GetRequiredService<IMeterFactory>());
        RedisMirror? mirror = null;
        MirrorTakeover? takeover = null;
        if (settings.RedisConnection is { } redis)
        {
            mirror = new RedisMirror(
                new RedisMirrorOptions { Connection = redis, Prefix = settings.RedisPrefix, SeqSource = settings.MirrorSeqSource },
                web.Services.GetRequiredService<ILoggerFactory>().CreateLogger<RedisMirror>(),
                web.Services.GetRequiredService<IMeterFactory>());
            LogMirror(logger, mirror.Endpoint, settings.RedisPrefix);
            if (settings.MirrorSeqSource == MirrorSeqSource.CustomerVersion)
            {
                takeover = new MirrorTakeover(storeOptions, mirror, web.Services.GetRequiredService<ILoggerFactory>().CreateLogger<MirrorTakeover>());
            }
        }

        var engine = new ShardedEngine(
                settings.ToEngineOptions(bootstrap),
                storeOptions,
                TimeProvider.System,
                web.Services.GetRequiredService<ILoggerFactory>().CreateLogger<ShardedEngine>(),
                rules.Initial,
                store,
                instruments)
            {
                System = web.Services.GetRequiredService<ActorSystem>(),
                Mirror = mirror,
                Counter = store,
                PartitionTakenOver = takeover is null ? null : takeover.Add,
                SweptVersion = store.LoadSetting(ShardedEngine.SweptSettingKey),
                Swept = version => store.SaveSetting(ShardedEngine.SweptSettingKey, version),

                // The set every partition runs is the one a restart starts from. (In a cluster the rules manager stores
                // each accepted set as a revision the other nodes follow; a node writing back what it runs could undo a
                // newer set accepted elsewhere.)
                RulesInForce = settings.IsCluster ? null : running =>
                {
                    if (RuleSetStorage.StoredVersion(store) != running.Version)
                    {
                        store.SaveSetting(RuleSetStorage.SettingKey, RuleSetStorage.Serialize(running));
                    }
                },
            };
        // In a cluster the outbox is shared: one node (the relay singleton's) publishes it.
        var clustered = settings.IsCluster;
        var relay = new TriggerRelay(bootstrap, store, TimeProvider.System, web.Services.GetRequiredService<ILoggerFactory>().CreateLogger<TriggerRelay>(), instruments, leading: !clustered);
        engine.FiringsCommitted = relay.Signal;
        if (clustered)
        {
            engine.RelayLeadership = relay.Lead;
        }

        engine.OutreachStats = () => store.OutreachStats(TimeProvider.System.GetUtcNow().UtcTicks);
        var outreach = new OutreachService(store, engine, relay, TimeProvider.System, instruments);
        var host = new EngineHost(web, broker, bootstrap, store, engine, rules, settings, relay, outreach, logger, mirror)
        {
            MirrorTakeover = takeover,
            Audit = audit,
            Backtests = new BacktestRunner(settings, TimeProvider.System, web.Services.GetRequiredService<ILoggerFactory>().CreateLogger<BacktestRunner>()),
        };
        if (settings.OtlpEndpoint is { } endpoint)
        {
            LogOtlp(logger, endpoint, settings.OtlpIntervalMs);
        }
        api.Map(web, host);
        if (settings.AuthTokens.Count == 0)
        {
            LogNoTokens(logger);
        }

        try
        {
            if (mirror is not null && await mirror.CheckSeqSourceAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false) is { } refusal)
            {
                throw new MirrorPrefixException(refusal);
            }

            if (mirror is not null && takeover is null)
            {
                // Before the first new checkpoint: customers a crash kept out of Redis are queued again. (In a cluster the
                // takeover catch-up does it for each partition the node takes.)
                var (queued, marker) = await MirrorCatchUp.RunFromJournalAsync(storeOptions, mirror, store, rules.Initial.Version, TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
                if (queued > 0)
                {
                    LogMirrorCatchUp(logger, queued, marker?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none", store.Reserved);
                }
            }

            engine.Start();
            relay.Start();
            rules.Start(engine, instruments);
            await web.StartAsync(cancellationToken).ConfigureAwait(false);
            LogStarted(logger, settings.Urls, bootstrap, store.Location);
        }
        catch
        {
            // Everything started so far stops again (the actor system included, with the host's services).
            await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return host;
    }

    /// <summary>Waits for a stop request (SIGTERM/SIGINT or <paramref name="cancellationToken"/>) or an engine failure.</summary>
    public async Task<int> WaitAsync(CancellationToken cancellationToken)
    {
        var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var a = Web.Lifetime.ApplicationStopping.Register(() => stopping.TrySetResult());
        using var b = cancellationToken.Register(() => stopping.TrySetResult());
        await Task.WhenAny(stopping.Task, Engine.Stopped).ConfigureAwait(false);
        return Engine.Stopped.IsFaulted ? 1 : 0;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Engine.StopAsync(TimeSpan.FromSeconds(8)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or Confluent.Kafka.KafkaException)
        {
            LogStopFailed(_logger, ex);
        }

        if (MirrorTakeover is not null)
        {
            await MirrorTakeover.DisposeAsync().ConfigureAwait(false);
        }

        // After the engine's final checkpoint, so its changes get a chance to reach Redis (bounded: Redis may be down).
        if (Mirror is not null)
        {
            await Mirror.StopAsync(RedisMirror.DefaultDrainTimeout).ConfigureAwait(false);
        }

        Backtests.Dispose();
        await Rules.DisposeAsync().ConfigureAwait(false);

        // The final checkpoint may have added firings: give the relay a moment to publish them (the rest waits in the
        // outbox for the next start).
        Relay.Signal();
        var deadline = TimeProvider.System.GetTimestamp();
        while (Relay.Leading && Store.OutboxBacklog() > 0 && TimeProvider.System.GetElapsedTime(deadline) < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(50).ConfigureAwait(false);
        }

        await Relay.DisposeAsync().ConfigureAwait(false);
        await Web.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await Web.DisposeAsync().ConfigureAwait(false);
        Engine.Dispose();
        Store.Dispose();
        Broker?.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Embedded broker at {Bootstrap} with {Partitions} partitions per topic (in memory, not durable)")]
    private static partial void LogEmbeddedBroker(ILogger logger, string bootstrap, int partitions);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The state store {Path} holds checkpoints from an earlier run, but the embedded broker starts empty: its offsets refer to a log that no longer exists. Use a fresh --data-dir with the embedded broker.")]
    private static partial void LogEmbeddedWithOldState(ILogger logger, string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "Engine listening on {Urls}; Kafka {Bootstrap}; state {Path}")]
    private static partial void LogStarted(ILogger logger, string urls, string bootstrap, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "No access tokens configured (Streaming:Auth:Tokens): routes that need a token (rule upload, outreach, audit, backtests) answer 401")]
    private static partial void LogNoTokens(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Mirroring checkpoints to Redis at {Endpoint} under the prefix '{Prefix}'")]
    private static partial void LogMirror(ILogger logger, string endpoint, string prefix);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis mirror behind the store (marker {Marker}, store at checkpoint {Seq}): {Customers} customers queued again")]
    private static partial void LogMirrorCatchUp(ILogger logger, int customers, string marker, long seq);

    [LoggerMessage(Level = LogLevel.Information, Message = "Metrics pushed over OTLP/HTTP to {Endpoint} every {IntervalMs} ms")]
    private static partial void LogOtlp(ILogger logger, Uri endpoint, int intervalMs);

    [LoggerMessage(Level = LogLevel.Error, Message = "The engine did not stop cleanly")]
    private static partial void LogStopFailed(ILogger logger, Exception ex);
}
