using Streaming.Engine.Events;
using Streaming.Engine.Runtime;

namespace Streaming.Connectors.Kafka;

/// <summary>Settings of the engine's Kafka ingestion and actor runtime (configuration section <c>Streaming:Engine</c> and <c>Streaming:Kafka</c>).</summary>
public sealed record EngineOptions
{
    public required string BootstrapServers { get; init; }

    public string GroupId { get; init; } = "streaming-engine";

    /// <summary>Checkpoint at least this often while there are changes.</summary>
    public TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Checkpoint early once this many records were processed since the last one.</summary>
    public int CheckpointEveryEvents { get; init; } = 100_000;

    /// <summary>Customers kept in memory across all partitions; idle ones beyond this are passivated.</summary>
    public int MaxCachedCustomers { get; init; } = 250_000;

    /// <summary>
    /// Wake-ups each partition's coordinator holds in memory (the earliest; the rest stay in their customers' saved states
    /// and are paged in from them when the watermark reaches them).
    /// </summary>
    public int MaxWakeUpsInMemory { get; init; } = 100_000;

    /// <summary>
    /// The Kafka consumer's session timeout (librdkafka's <c>session.timeout.ms</c>), in milliseconds: how long the group
    /// waits to hear from a member before it gives that member's partitions to the others. Null (the default): 6,000 on a
    /// single node, 10,000 in a cluster, where rebalances happen while nodes are busy. A broker refuses values outside its
    /// <c>group.min.session.timeout.ms</c> and <c>group.max.session.timeout.ms</c> (6 s and 30 min by default in Apache
    /// Kafka). The embedded broker waits one session timeout less a second in each rebalance round.
    /// </summary>
    public int? SessionTimeoutMs { get; init; }

    /// <summary>
    /// The cluster's seed nodes as <c>host:port</c> (CONTRACTS §8 <c>Streaming:Cluster:SeedNodes</c>): the node joins the
    /// first that answers; empty, or only this node itself, forms a cluster of its own.
    /// </summary>
    public IReadOnlyList<string> SeedNodes { get; init; } = [];

    /// <summary>
    /// Whether the actor system's host joins this node to its cluster through Akka.Management's Cluster Bootstrap
    /// (discovery, <c>Streaming:Cluster:Discovery</c>): the engine then waits for the node to be up instead of joining
    /// <see cref="SeedNodes"/> (which must be empty) or itself.
    /// </summary>
    public bool ClusterBootstrap { get; init; }

    /// <summary>
    /// Whether this node is meant to share its cluster with others (<see cref="SeedNodes"/> given or
    /// <see cref="ClusterBootstrap"/>): the shared outbox relay, rule revisions, longer Kafka sessions and shard hand-off
    /// grace apply. False: a cluster of one.
    /// </summary>
    public bool IsCluster => SeedNodes.Count > 0 || ClusterBootstrap;

    /// <summary>
    /// How long the dead-letter producer tries to deliver one dead letter (librdkafka <c>message.timeout.ms</c>) before
    /// reporting a failure; the engine then produces it again, so this only sets how often failures are reported.
    /// </summary>
    public TimeSpan DeadLetterTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Upper bound of records prefetched from the brokers and not yet processed, in KiB (librdkafka
    /// <c>queued.max.messages.kbytes</c>; 65,536 is its own default).
    /// </summary>
    public int PrefetchMaxKbytes { get; init; } = 64 * 1024;

    /// <summary>Each customer's settings (how many recent event ids it remembers to drop duplicates).</summary>
    public ActorOptions Actor { get; init; } = new();

    /// <summary>Limits of the record decoder (record size, how far in the future an event may lie).</summary>
    public DecoderOptions Decoder { get; init; } = new();

    /// <summary>Each partition's watermark trails its latest event time by this; later records are applied, wake-ups wait.</summary>
    public TimeSpan AllowedLateness { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Event time only (default, exact replays), or hybrid: quiet partitions follow the wall clock.</summary>
    public TimeMode TimeMode { get; init; } = TimeMode.Event;

    /// <summary>In hybrid mode, a partition without records for this long follows the wall clock.</summary>
    public TimeSpan IdleAfter { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>How partition watermarks advance.</summary>
public enum TimeMode
{
    /// <summary>Only with event times: a replay gives exactly the states of the live run.</summary>
    Event,

    /// <summary>Also with the wall clock when a partition is quiet, so timers fire in live operation.</summary>
    Hybrid,
}
