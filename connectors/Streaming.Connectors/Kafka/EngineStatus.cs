namespace Streaming.Connectors.Kafka;

/// <summary>A query reached an engine that has stopped (stopping, or failed).</summary>
public sealed class EngineStoppedException() : InvalidOperationException("the engine is not running");

/// <summary>Population counts summed over the owned partitions.</summary>
public sealed record PopulationView(
    IReadOnlyDictionary<(string Dimension, string Value), long> Counts,
    IReadOnlyDictionary<(string Dimension, string From, string To), long> Transitions,
    string RuleVersion,
    long TimersFired,
    long LateTimersFired);

/// <summary>A point-in-time view of the engine for /v1/status.</summary>
/// <param name="FiringsPending">Trigger firings evaluated but not yet written with a checkpoint (not yet in the outbox).</param>
/// <param name="ConsumerLag">Records behind the log end, summed over the assigned input partitions; null while none is assigned (not "caught up").</param>
public sealed record EngineStatus(IReadOnlyList<PartitionStatus> Partitions, long? ConsumerLag, long CachedCustomers, long CheckpointSeq, long FiringsPending = 0)
{
    public static readonly EngineStatus Empty = new([], null, 0, 0);
}

/// <summary>One assigned input partition: next offset to process, lag behind the log end, event-time watermark.</summary>
public sealed record PartitionStatus(string Topic, int Partition, long Offset, long Lag, DateTimeOffset? Watermark);
