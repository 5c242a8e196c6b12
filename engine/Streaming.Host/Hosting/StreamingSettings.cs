using System.Globalization;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Persistence;
using Streaming.Connectors.Redis;
using Streaming.Engine.Events;
using Streaming.Engine.Runtime;
using Streaming.Host.Metrics;

namespace Streaming.Host.Hosting;

/// <summary>
/// A bearer token, who holds it (<paramref name="Name"/>: shown in the audit trail and logs, never the secret) and
/// the scopes it grants (CONTRACTS.md §7.1): <c>admin</c> implies every other scope.
/// </summary>
public sealed record AccessToken(string Name, string Token, IReadOnlyList<string> Scopes)
{
    public const string Admin = "admin";
    public const string Dialer = "dialer";
    public const string Read = "read";
    public const string Metrics = "metrics";
    public static readonly IReadOnlyList<string> KnownScopes = [Admin, Dialer, Read, Metrics];

    /// <summary>Whether the token grants <paramref name="scope"/> (directly, or through <c>admin</c>).</summary>
    public bool Grants(string scope) => Scopes.Contains(scope) || Scopes.Contains(Admin);

    /// <summary>Never print the secret.</summary>
    public override string ToString() => $"AccessToken {{ Name = {Name}, Scopes = {string.Join(",", Scopes)} }}";
}

/// <summary>A fixed-window request limit: at most <paramref name="PermitLimit"/> requests per <paramref name="WindowSeconds"/> per caller.</summary>
public sealed record RateLimit(int PermitLimit, int WindowSeconds);

/// <summary>
/// The engine's settings, read from appsettings.json (working directory), an optional --config file and environment
/// variables (<c>Streaming__Kafka__BootstrapServers</c>, …), in that order; command-line options win over all.
/// </summary>
public sealed partial record StreamingSettings
{
    public string? BootstrapServers { get; init; }
    public string GroupId { get; init; } = "streaming-engine";
    public int Partitions { get; init; } = 16;
    public string DataDir { get; init; } = ".streaming";
    public string Urls { get; init; } = "http://127.0.0.1:8080";
    public int CheckpointIntervalMs { get; init; } = 1000;
    public int CheckpointEveryEvents { get; init; } = 100_000;
    public int MaxCachedCustomers { get; init; } = 250_000;
    public int MaxWakeUpsInMemory { get; init; } = 100_000;
    public int RecentEventIds { get; init; } = 32;
    public int AllowedLatenessSeconds { get; init; } = 300;

    /// <summary>How far (seconds) <c>occurredAt</c> may lie after the record's broker timestamp; beyond: <c>time-in-future</c>.</summary>
    public int MaxFutureSkewSeconds { get; init; } = 3600;
    public int MaxRecordBytes { get; init; } = 256 * 1024;

    /// <summary>Milliseconds the dead-letter producer tries one delivery before reporting a failure (the engine then produces it again).</summary>
    public int DeadLetterTimeoutMs { get; init; } = 30_000;
    public int PrefetchMaxKbytes { get; init; } = 64 * 1024;

    /// <summary>
    /// <c>Streaming:Kafka:SessionTimeoutMs</c>: the consumer group's session timeout (1,000 to 1,800,000 ms); null, 6,000
    /// on a single node and 10,000 in a cluster. See <see cref="EngineOptions.SessionTimeoutMs"/>.
    /// </summary>
    public int? SessionTimeoutMs { get; init; }

    /// <summary>A directory of rule files (*.yaml), watched for changes; null = the stored or the default rule set.</summary>
    public string? RulesDirectory { get; init; }

    /// <summary>How often the rules directory is checked for changes.</summary>
    public int RulesPollIntervalMs { get; init; } = 2000;

    /// <summary><c>event</c> (default) or <c>hybrid</c> (quiet partitions follow the wall clock).</summary>
    public TimeMode TimeMode { get; init; } = TimeMode.Event;

    /// <summary>
    /// <c>Streaming:Store:Provider</c> (CONTRACTS.md §8; <c>run --store-provider</c>): where the actor runtime's journal
    /// and snapshots (customers, partition checkpoints, wake-ups) live: <c>sqlite</c> (default, <c>journal.db</c> in the
    /// data directory) or <c>postgresql</c> (<see cref="StoreConnectionString"/>).
    /// </summary>
    public StoreProvider StoreProvider { get; init; } = StoreProvider.Sqlite;

    /// <summary><c>Streaming:Store:ConnectionString</c> (<c>run --store-connection</c>): the Npgsql connection string for PostgreSQL.</summary>
    public string? StoreConnectionString { get; init; }

    /// <summary><c>Streaming:Cluster:Hostname</c> (<c>run --cluster-host</c>, CONTRACTS §8): the address the other nodes reach this one at.</summary>
    public string ClusterHostname { get; init; } = "127.0.0.1";

    /// <summary><c>Streaming:Cluster:Port</c> (<c>run --cluster-port</c>): the node's cluster (remoting) port; 0, any free port.</summary>
    public int ClusterPort { get; init; }

    /// <summary>
    /// <c>Streaming:Cluster:StableAfterMs</c>: how long the cluster's membership must stay unchanged, with a member
    /// unreachable, before Akka's split-brain resolver decides (the majority side downs the other). Default 20,000 ms;
    /// 1,000 to 600,000. Shorter serves a lost node's partitions sooner; too short downs nodes that were only slow
    /// (a long garbage collection, a saturated machine). Akka's split-brain resolver documentation recommends longer
    /// values for larger clusters.
    /// </summary>
    public int ClusterStableAfterMs { get; init; } = 20_000;

    /// <summary>
    /// <c>Streaming:Cluster:SeedNodes:0</c>, … (<c>run --seed-node</c>, repeatable): the nodes to join, <c>host:port</c>;
    /// none, the node forms a cluster of its own.
    /// </summary>
    public IReadOnlyList<string> SeedNodes { get; init; } = [];

    /// <summary>
    /// <c>Streaming:Cluster:Discovery:*</c> (<c>run --discovery</c>, …): the node finds the others through Akka.Management's
    /// Cluster Bootstrap instead of <see cref="SeedNodes"/>; <see cref="DiscoveryMethod.None"/> (default): it does not.
    /// </summary>
    public ClusterDiscoverySettings Discovery { get; init; } = new();

    /// <summary>
    /// Whether this node is meant to be part of a cluster of several: seed nodes given or a discovery method set. A node
    /// without either forms a cluster of its own (one node).
    /// </summary>
    public bool IsCluster => SeedNodes.Count > 0 || Discovery.Method != DiscoveryMethod.None;

    /// <summary>Hybrid mode: seconds without records after which a partition follows the wall clock.</summary>
    public int IdleAfterSeconds { get; init; } = 30;

    /// <summary>Bearer tokens and their scopes (<c>admin</c>, <c>dialer</c>, <c>read</c>, <c>metrics</c>); none = no token opens the guarded routes (they answer 401).</summary>
    public IReadOnlyList<AccessToken> AuthTokens { get; init; } = [];

    /// <summary><c>Streaming:Auth:RequireReadScope</c>: every <c>GET /v1/…</c> route (and the console) needs the <c>read</c> scope.</summary>
    public bool RequireReadScope { get; init; }

    /// <summary><c>Streaming:Auth:ProtectMetrics</c>: <c>GET /metrics</c> needs the <c>metrics</c> scope.</summary>
    public bool ProtectMetrics { get; init; }

    /// <summary><c>Streaming:RateLimits:RuleUploads</c>: <c>PUT /v1/rules</c> per caller (default 10 a minute).</summary>
    public RateLimit RuleUploadLimit { get; init; } = new(10, 60);

    /// <summary>
    /// <c>Streaming:RateLimits:Leases</c>: <c>POST /v1/outreach/lease</c> per caller (default 200 a second: a call
    /// centre's dialers often share one token, and an idle dialer polls).
    /// </summary>
    public RateLimit LeaseLimit { get; init; } = new(200, 1);

    /// <summary><c>Streaming:RateLimits:Backtests</c>: <c>POST /v1/backtests</c> per caller (default 10 a minute).</summary>
    public RateLimit BacktestLimit { get; init; } = new(10, 60);

    /// <summary>
    /// <c>Streaming:Backtest:DataDir</c>: where <c>POST /v1/backtests</c> finds the datasets (their usual file names);
    /// default as <c>streaming backtest</c>: <c>STREAMING_DATA_DIR</c>, else <c>../shared/data</c>.
    /// </summary>
    public string? BacktestDataDir { get; init; }

    /// <summary>The Redis mirror's server (a StackExchange.Redis connection string); null = no mirror.</summary>
    public string? RedisConnection { get; init; }

    /// <summary>The prefix of every key the mirror writes.</summary>
    public string RedisPrefix { get; init; } = RedisKeySchema.DefaultPrefix;

    /// <summary>An OTLP/HTTP collector endpoint (e.g. <c>http://127.0.0.1:4318</c>); null = no OTLP export.</summary>
    public Uri? OtlpEndpoint { get; init; }

    /// <summary>How often metrics are pushed over OTLP.</summary>
    public int OtlpIntervalMs { get; init; } = 10_000;

    /// <summary>Meters exported on <c>/metrics</c>: those whose names start with one of these.</summary>
    public IReadOnlyList<string> MetricsMeterPrefixes { get; init; } = MeterBridgeOptions.DefaultMeterPrefixes;

    public static IConfiguration LoadConfiguration(string? configFile)
    {
        var builder = new ConfigurationBuilder()
            .SetBasePath(Directory.GetCurrentDirectory())
            .AddJsonFile("appsettings.json", optional: true);
        if (configFile is not null)
        {
            if (!File.Exists(configFile))
            {
                throw new FileNotFoundException($"configuration file not found: {configFile}", configFile);
            }

            builder.AddJsonFile(Path.GetFullPath(configFile), optional: false);
        }

        return builder.AddEnvironmentVariables().Build();
    }

    /// <exception cref="InvalidOperationException">A value is out of range or malformed, or the store settings are incomplete.</exception>
    public static StreamingSettings From(IConfiguration config)
    {
        var s = config.GetSection("Streaming");
        if (s["Engine:Runtime"] is { } runtime && !runtime.Equals("akka", StringComparison.OrdinalIgnoreCase))
        {
            // Earlier versions chose between their own partition host and the actor runtime here.
            throw new InvalidOperationException($"configuration Streaming:Engine:Runtime = '{runtime}': the actor runtime ('akka') is the only one since the partition host was removed; drop the key");
        }

        var settings = Read(s);
        if (settings.StoreProvider == StoreProvider.PostgreSql)
        {
            if (settings.StoreConnectionString is null)
            {
                throw new InvalidOperationException("configuration Streaming:Store:Provider = 'postgresql' needs Streaming:Store:ConnectionString (an Npgsql connection string, e.g. Host=db;Username=streaming;Database=streaming)");
            }
        }

        settings.CheckCluster();
        return settings;
    }

    /// <summary>
    /// Refuses cluster settings this build cannot honour: a cluster (seed nodes or discovery) on SQLite, whose files only
    /// one node can read (CONTRACTS §8); seed nodes and discovery together; discovery
    /// settings that cannot form a cluster (<see cref="CheckDiscovery"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The reason, naming the keys.</exception>
    public void CheckCluster()
    {
        foreach (var seed in SeedNodes)
        {
            try
            {
                _ = ShardedEngine.SeedAddress(seed);
            }
            catch (FormatException ex)
            {
                throw new InvalidOperationException("configuration Streaming:Cluster:SeedNodes: " + ex.Message, ex);
            }
        }

        CheckDiscovery();
        if (!IsCluster)
        {
            return;
        }

        // Named as the user chose it: seed nodes or a discovery method.
        var cluster = SeedNodes.Count > 0
            ? "a cluster (Streaming:Cluster:SeedNodes, --seed-node)"
            : $"a cluster (Streaming:Cluster:Discovery:Method = '{Discovery.MethodName}', --discovery)";
        if (StoreProvider != StoreProvider.PostgreSql)
        {
            throw new InvalidOperationException(cluster + " needs Streaming:Store:Provider = 'postgresql': every node reads the state another node wrote, and SQLite in --data-dir serves one node");
        }
    }

    /// <summary>
    /// What the Redis mirror's <c>seq</c> is under these settings: each customer's durable version in a cluster (every
    /// node writes the prefix), the node's checkpoint number on a single node.
    /// </summary>
    public MirrorSeqSource MirrorSeqSource => IsCluster ? MirrorSeqSource.CustomerVersion : MirrorSeqSource.Checkpoint;

    private static StreamingSettings Read(IConfigurationSection s)
    {
        var defaults = new StreamingSettings();
        return new StreamingSettings
        {
            BootstrapServers = Blank(s["Kafka:BootstrapServers"]),
            GroupId = s["Kafka:GroupId"] ?? defaults.GroupId,
            Partitions = Int(s, "Kafka:Partitions", defaults.Partitions, 1, 1024),
            DataDir = s["DataDir"] ?? defaults.DataDir,
            Urls = s["Urls"] ?? defaults.Urls,
            CheckpointIntervalMs = Int(s, "Engine:CheckpointIntervalMs", defaults.CheckpointIntervalMs, 10, 600_000),
            CheckpointEveryEvents = Int(s, "Engine:CheckpointEveryEvents", defaults.CheckpointEveryEvents, 1, int.MaxValue),
            MaxCachedCustomers = Int(s, "Engine:MaxCachedCustomers", defaults.MaxCachedCustomers, 1, int.MaxValue),
            MaxWakeUpsInMemory = Int(s, "Engine:MaxWakeUpsInMemory", defaults.MaxWakeUpsInMemory, 10, int.MaxValue),
            RecentEventIds = Int(s, "Engine:RecentEventIds", defaults.RecentEventIds, 0, 4096),
            AllowedLatenessSeconds = Int(s, "Engine:AllowedLatenessSeconds", defaults.AllowedLatenessSeconds, 0, 86_400 * 30),
            MaxFutureSkewSeconds = Int(s, "Engine:MaxFutureSkewSeconds", defaults.MaxFutureSkewSeconds, 0, int.MaxValue),
            MaxRecordBytes = Int(s, "Engine:MaxRecordBytes", defaults.MaxRecordBytes, 1024, 64 * 1024 * 1024),
            DeadLetterTimeoutMs = Int(s, "Engine:DeadLetterTimeoutMs", defaults.DeadLetterTimeoutMs, 100, 3_600_000),
            PrefetchMaxKbytes = Int(s, "Kafka:PrefetchMaxKbytes", defaults.PrefetchMaxKbytes, 1024, 2_097_151),
            SessionTimeoutMs = s["Kafka:SessionTimeoutMs"] is null ? null : Int(s, "Kafka:SessionTimeoutMs", 0, 1_000, 1_800_000),
            MetricsMeterPrefixes = List(s["Metrics:MeterPrefixes"]) ?? defaults.MetricsMeterPrefixes,
            OtlpEndpoint = Blank(s["Metrics:OtlpEndpoint"]) is { } otlp
                ? Uri.TryCreate(otlp, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
                    ? uri
                    : throw new InvalidOperationException($"configuration Streaming:Metrics:OtlpEndpoint = '{otlp}' must be an http(s) URL such as http://127.0.0.1:4318")
                : null,
            OtlpIntervalMs = Int(s, "Metrics:OtlpIntervalMs", defaults.OtlpIntervalMs, 100, 3_600_000),
            RulesDirectory = Blank(s["Rules:Directory"]),
            RulesPollIntervalMs = Int(s, "Rules:PollIntervalMs", defaults.RulesPollIntervalMs, 100, 3_600_000),
            TimeMode = (s["Engine:TimeMode"] ?? "event").ToLowerInvariant() switch
            {
                "event" => TimeMode.Event,
                "hybrid" => TimeMode.Hybrid,
                var other => throw new InvalidOperationException($"configuration Streaming:Engine:TimeMode = '{other}' must be 'event' or 'hybrid'"),
            },
            IdleAfterSeconds = Int(s, "Engine:IdleAfterSeconds", defaults.IdleAfterSeconds, 1, 86_400),
            StoreProvider = (s["Store:Provider"] ?? "sqlite").ToLowerInvariant() switch
            {
                "sqlite" => StoreProvider.Sqlite,
                "postgresql" => StoreProvider.PostgreSql,
                var other => throw new InvalidOperationException($"configuration Streaming:Store:Provider = '{other}' must be 'sqlite' or 'postgresql'"),
            },
            StoreConnectionString = Blank(s["Store:ConnectionString"]),
            ClusterHostname = Blank(s["Cluster:Hostname"]) ?? defaults.ClusterHostname,
            ClusterPort = Int(s, "Cluster:Port", defaults.ClusterPort, 0, 65535),
            ClusterStableAfterMs = Int(s, "Cluster:StableAfterMs", defaults.ClusterStableAfterMs, 1_000, 600_000),
            SeedNodes = s.GetSection("Cluster:SeedNodes").GetChildren().Select(c => Blank(c.Value)).OfType<string>().ToList(),
            Discovery = ReadDiscovery(s),
            AuthTokens = Tokens(s.GetSection("Auth:Tokens")),
            RequireReadScope = Bool(s, "Auth:RequireReadScope"),
            ProtectMetrics = Bool(s, "Auth:ProtectMetrics"),
            RuleUploadLimit = Limit(s, "RateLimits:RuleUploads", defaults.RuleUploadLimit),
            LeaseLimit = Limit(s, "RateLimits:Leases", defaults.LeaseLimit),
            BacktestLimit = Limit(s, "RateLimits:Backtests", defaults.BacktestLimit),
            BacktestDataDir = Blank(s["Backtest:DataDir"]),
            RedisConnection = RedisConnectionSetting(s["Redis:Connection"]),
            RedisPrefix = RedisPrefixSetting(s["Redis:Prefix"]) ?? defaults.RedisPrefix,
        };
    }

    /// <summary>A usable Redis connection string or null (blank = no mirror).</summary>
    public static string? RedisConnectionSetting(string? raw)
    {
        if (Blank(raw) is not { } connection)
        {
            return null;
        }

        try
        {
            Streaming.Connectors.Redis.RedisConnection.Parse(connection);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidOperationException("configuration Streaming:Redis:Connection: " + ex.Message, ex);
        }

        return connection;
    }

    /// <summary>The prefix if valid, null if absent.</summary>
    public static string? RedisPrefixSetting(string? raw) => raw is null
        ? null
        : RedisKeySchema.Validate(raw) is { } error
            ? throw new InvalidOperationException("configuration Streaming:Redis:Prefix: " + error)
            : raw;

    private static List<AccessToken> Tokens(IConfigurationSection section)
    {
        var tokens = new List<AccessToken>();
        foreach (var entry in section.GetChildren())
        {
            var token = entry["Token"];
            if (string.IsNullOrWhiteSpace(token))
            {
                throw new InvalidOperationException($"configuration Streaming:Auth:Tokens:{entry.Key}:Token is missing");
            }

            if (token.Length < 16)
            {
                throw new InvalidOperationException($"configuration Streaming:Auth:Tokens:{entry.Key}:Token is too short: use at least 16 random characters");
            }

            var scopes = entry.GetSection("Scopes").GetChildren().Select(c => c.Value ?? "").Where(v => v.Length > 0).ToList();
            foreach (var scope in scopes)
            {
                if (!AccessToken.KnownScopes.Contains(scope))
                {
                    throw new InvalidOperationException($"configuration Streaming:Auth:Tokens:{entry.Key}: unknown scope '{scope}' (known: {string.Join(", ", AccessToken.KnownScopes)})");
                }
            }

            var name = entry["Name"] is { Length: > 0 } given ? given : "token-" + entry.Key;
            if (name.Length > 64 || name.Any(char.IsControl))
            {
                throw new InvalidOperationException($"configuration Streaming:Auth:Tokens:{entry.Key}:Name must be at most 64 characters without control characters");
            }

            if (tokens.Any(t => t.Name == name))
            {
                throw new InvalidOperationException($"configuration Streaming:Auth:Tokens:{entry.Key}:Name '{name}' is used by another token");
            }

            tokens.Add(new AccessToken(name, token, scopes));
        }

        return tokens;
    }

    private static bool Bool(IConfiguration s, string key) => s[key] switch
    {
        null or "" => false,
        var raw when bool.TryParse(raw, out var value) => value,
        var raw => throw new InvalidOperationException($"configuration Streaming:{key} = '{raw}' must be true or false"),
    };

    private static RateLimit Limit(IConfiguration s, string key, RateLimit fallback) => new(
        Int(s, key + ":PermitLimit", fallback.PermitLimit, 1, 1_000_000),
        Int(s, key + ":WindowSeconds", fallback.WindowSeconds, 1, 86_400));

    public EngineOptions ToEngineOptions(string bootstrapServers) => new()
    {
        BootstrapServers = bootstrapServers,
        GroupId = GroupId,
        CheckpointInterval = TimeSpan.FromMilliseconds(CheckpointIntervalMs),
        CheckpointEveryEvents = CheckpointEveryEvents,
        MaxCachedCustomers = MaxCachedCustomers,
        MaxWakeUpsInMemory = MaxWakeUpsInMemory,
        PrefetchMaxKbytes = PrefetchMaxKbytes,
        SessionTimeoutMs = SessionTimeoutMs,
        TimeMode = TimeMode,
        IdleAfter = TimeSpan.FromSeconds(IdleAfterSeconds),
        DeadLetterTimeout = TimeSpan.FromMilliseconds(DeadLetterTimeoutMs),
        Actor = new ActorOptions { RecentIdCapacity = RecentEventIds },
        Decoder = new DecoderOptions { MaxRecordBytes = MaxRecordBytes, MaxFutureSkew = TimeSpan.FromSeconds(MaxFutureSkewSeconds) },
        AllowedLateness = TimeSpan.FromSeconds(AllowedLatenessSeconds),
        SeedNodes = SeedNodes,
        ClusterBootstrap = Discovery.Method != DiscoveryMethod.None,
    };

    /// <summary>Settings as the log shows them at start: tokens by count only.</summary>
    public override string ToString() => $"StreamingSettings {{ DataDir = {DataDir}, Urls = {Urls}, Tokens = {AuthTokens.Count}, Redis = {(RedisConnection is null ? "none" : "configured")} }}";

    private static string? Blank(string? v) => string.IsNullOrWhiteSpace(v) ? null : v;

    /// <summary>A comma-separated list; null when the key is absent.</summary>
    private static string[]? List(string? v) => v?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static int Int(IConfiguration s, string key, int fallback, int min, int max)
    {
        var raw = s[key];
        if (raw is null)
        {
            return fallback;
        }

        if (!int.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
        {
            throw new InvalidOperationException($"configuration Streaming:{key} = '{raw}' must be an integer in [{min}, {max}]");
        }

        return v;
    }
}

