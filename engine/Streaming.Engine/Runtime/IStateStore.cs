using Streaming.Engine.Model;

namespace Streaming.Engine.Runtime;

/// <summary>
/// Durable home of customer state and input offsets. <see cref="Commit"/> writes a whole checkpoint atomically: a
/// crash leaves either all of it or none of it.
/// </summary>
public interface IStateStore : IDisposable
{
    /// <summary>The customer's last checkpointed state, or null if the store has never seen it.</summary>
    CustomerState? LoadCustomer(string customerId);

    /// <summary>The partition a stored customer belongs to, or null if the store has never seen it.</summary>
    int? FindPartition(string customerId);

    /// <summary>The next offset to read for each input (topic, partition) the store has checkpointed.</summary>
    IReadOnlyDictionary<TopicPartitionKey, long> LoadOffsets();

    /// <summary>The highest event time (UTC ticks) checkpointed for a partition, 0 if none.</summary>
    long LoadMaxEventTicks(int partition);

    /// <summary>The population counters checkpointed for a partition (see <see cref="Population"/>), null if none.</summary>
    byte[]? LoadPopulation(int partition);

    /// <summary>
    /// Stored customers of a partition whose next wake-up lies in (<paramref name="after"/>, <paramref name="until"/>],
    /// earliest first, at most <paramref name="limit"/>.
    /// </summary>
    IReadOnlyList<(string CustomerId, long WakeTicks)> LoadTimers(int partition, long after, long until, int limit);

    /// <summary>Stored customer ids of a partition after <paramref name="afterId"/> in ordinal order, at most <paramref name="limit"/>.</summary>
    IReadOnlyList<string> ListCustomerIds(int partition, string afterId, int limit);

    /// <summary>A setting written by a checkpoint (such as the active rule set), null if never written.</summary>
    string? LoadSetting(string key);

    /// <summary>Number of customers stored.</summary>
    long CountCustomers();

    /// <summary>The sequence number of the last committed checkpoint (0 when none).</summary>
    long LastCheckpointSeq { get; }

    void Commit(CheckpointBatch batch);
}

/// <summary>An input topic partition.</summary>
public readonly record struct TopicPartitionKey(string Topic, int Partition);

/// <summary>One checkpoint: changed customers, the offsets they reflect, and per-partition event-time progress.</summary>
public sealed class CheckpointBatch
{
    public List<StateRow> States { get; } = [];
    public List<OffsetRow> Offsets { get; } = [];
    public List<PartitionRow> Partitions { get; } = [];

    /// <summary>Trigger firings caused by the changes in this checkpoint: outbox rows and outreach items.</summary>
    public List<Rules.TriggerFiring> Firings { get; } = [];

    /// <summary>Projections of the changed customers, for a state mirror (filled only when one is configured).</summary>
    public List<CustomerProjection> Projections { get; } = [];

    /// <summary>Settings to store with this checkpoint (key → value).</summary>
    public Dictionary<string, string> Settings { get; } = new(StringComparer.Ordinal);

    public void Clear()
    {
        States.Clear();
        Offsets.Clear();
        Partitions.Clear();
        Settings.Clear();
        Projections.Clear();
        Firings.Clear();
    }
}

/// <summary>
/// A customer's encoded state; <paramref name="IsNew"/> is false when the store is known to hold an older version;
/// <paramref name="WakeTicks"/> is its next timer (0: none), indexed so timers can be paged in by due time.
/// </summary>
public readonly record struct StateRow(string CustomerId, int Partition, byte[] State, bool IsNew = true, long WakeTicks = 0);

public readonly record struct OffsetRow(string Topic, int Partition, long NextOffset);

/// <summary>Per-partition progress: event time, and the population counters (null: unchanged).</summary>
public readonly record struct PartitionRow(int Partition, long MaxEventTicks, byte[]? Population = null);
