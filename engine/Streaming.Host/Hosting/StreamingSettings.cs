using System.Globalization;
using Streaming.Connectors.Kafka;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;
using Streaming.Host.Metrics;

namespace Streaming.Host.Hosting;

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

    /// <summary>Meters exported on <c>/metrics</c>: those whose names start with one of these.</summary>
    public IReadOnlyList<string> MetricsMeterPrefixes { get; init; } = PrometheusCollectorOptions.DefaultMeterPrefixes;

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
        };
    }

    public EngineOptions ToEngineOptions(string bootstrapServers) => new()
    {
        BootstrapServers = bootstrapServers,
        GroupId = GroupId,
        CheckpointInterval = TimeSpan.FromMilliseconds(CheckpointIntervalMs),
        CheckpointEveryEvents = CheckpointEveryEvents,
        MaxCachedCustomers = MaxCachedCustomers,
        PrefetchMaxKbytes = PrefetchMaxKbytes,
        Host = new PartitionHostOptions
        {
            Actor = new ActorOptions { RecentIdCapacity = RecentEventIds },
            Decoder = new DecoderOptions { MaxRecordBytes = MaxRecordBytes },
            AllowedLateness = TimeSpan.FromSeconds(AllowedLatenessSeconds),
        },
    };

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
