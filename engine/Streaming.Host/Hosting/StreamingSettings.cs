using System.Globalization;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Redis;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;
using Streaming.Host.Metrics;

namespace Streaming.Host.Hosting;

/// <summary>A bearer token and the scopes it grants.</summary>
public sealed record AccessToken(string Token, IReadOnlyList<string> Scopes)
{
    public const string Admin = "admin";
    public const string Dialer = "dialer";
    public static readonly IReadOnlyList<string> KnownScopes = [Admin, Dialer];

    /// <summary>Never print the secret.</summary>
    public override string ToString() => $"AccessToken {{ Scopes = {string.Join(",", Scopes)} }}";
}

/// <summary>
/// The engine's settings, read from appsettings.json (working directory), an optional --config file and environment
/// variables (<c>Streaming__Kafka__BootstrapServers</c>, …), in that order; command-line options win over all.
/// </summary>
public sealed record StreamingSettings
{
    public string? BootstrapServers { get; init; }
    public string GroupId { get; init; } = "streaming-engine";
    public int Partitions { get; init; } = 16;
    public string DataDir { get; init; } = ".streaming";
    public string Urls { get; init; } = "http://127.0.0.1:8080";
    public int CheckpointIntervalMs { get; init; } = 1000;
    public int CheckpointEveryEvents { get; init; } = 100_000;
    public int MaxCachedCustomers { get; init; } = 250_000;
    public int RecentEventIds { get; init; } = 32;
    public int AllowedLatenessSeconds { get; init; } = 300;
    public int MaxRecordBytes { get; init; } = 256 * 1024;
    public int PrefetchMaxKbytes { get; init; } = 256 * 1024;

    /// <summary>A directory of rule files (*.yaml), watched for changes; null = the stored or the default rule set.</summary>
    public string? RulesDirectory { get; init; }

    /// <summary>How often the rules directory is checked for changes.</summary>
    public int RulesPollIntervalMs { get; init; } = 2000;

    /// <summary><c>event</c> (default) or <c>hybrid</c> (quiet partitions follow the wall clock).</summary>
    public TimeMode TimeMode { get; init; } = TimeMode.Event;

    /// <summary>Hybrid mode: seconds without records after which a partition follows the wall clock.</summary>
    public int IdleAfterSeconds { get; init; } = 30;

    /// <summary>Bearer tokens and their scopes (<c>admin</c>, <c>dialer</c>); none = the guarded routes are closed.</summary>
    public IReadOnlyList<AccessToken> AuthTokens { get; init; } = [];

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

    public static StreamingSettings From(IConfiguration config)
    {
        var s = config.GetSection("Streaming");
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
            RecentEventIds = Int(s, "Engine:RecentEventIds", defaults.RecentEventIds, 0, 4096),
            AllowedLatenessSeconds = Int(s, "Engine:AllowedLatenessSeconds", defaults.AllowedLatenessSeconds, 0, 86_400 * 30),
            MaxRecordBytes = Int(s, "Engine:MaxRecordBytes", defaults.MaxRecordBytes, 1024, 64 * 1024 * 1024),
            PrefetchMaxKbytes = Int(s, "Kafka:PrefetchMaxKbytes", defaults.PrefetchMaxKbytes, 1024, 2_097_151),
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
            AuthTokens = Tokens(s.GetSection("Auth:Tokens")),
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

            tokens.Add(new AccessToken(token, scopes));
        }

        return tokens;
    }

    public EngineOptions ToEngineOptions(string bootstrapServers) => new()
    {
        BootstrapServers = bootstrapServers,
        GroupId = GroupId,
        CheckpointInterval = TimeSpan.FromMilliseconds(CheckpointIntervalMs),
        CheckpointEveryEvents = CheckpointEveryEvents,
        MaxCachedCustomers = MaxCachedCustomers,
        PrefetchMaxKbytes = PrefetchMaxKbytes,
        TimeMode = TimeMode,
        IdleAfter = TimeSpan.FromSeconds(IdleAfterSeconds),
        Host = new PartitionHostOptions
        {
            Actor = new ActorOptions { RecentIdCapacity = RecentEventIds },
            Decoder = new DecoderOptions { MaxRecordBytes = MaxRecordBytes },
            AllowedLateness = TimeSpan.FromSeconds(AllowedLatenessSeconds),
        },
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
