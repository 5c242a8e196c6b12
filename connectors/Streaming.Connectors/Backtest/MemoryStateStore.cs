using Streaming.Engine.Model;
using Streaming.Engine.Runtime;

namespace Streaming.Connectors.Backtest;

/// <summary>
/// An <see cref="IStateStore"/> held in process memory and gone with it: what a backtest checkpoints into, so a run
/// leaves nothing behind. Same contract as the SQLite store (atomic commits, timers by due time, ids in ordinal
/// order); firings in a batch are not stored, the caller takes them from the batch. Not thread-safe: one caller.
/// </summary>
public sealed class MemoryStateStore : IStateStore
{
    private readonly Dictionary<string, Row> _customers = new(StringComparer.Ordinal);
    private readonly Dictionary<int, SortedSet<(long Wake, string CustomerId)>> _timers = [];
    private readonly Dictionary<TopicPartitionKey, long> _offsets = [];
    private readonly Dictionary<int, long> _maxEventTicks = [];
    private readonly Dictionary<int, byte[]> _population = [];
    private readonly Dictionary<string, string> _settings = new(StringComparer.Ordinal);

    public long LastCheckpointSeq { get; private set; }

    public CustomerState? LoadCustomer(string customerId) =>
        _customers.TryGetValue(customerId, out var row) ? CustomerStateCodec.Decode(customerId, row.State) : null;

    public int? FindPartition(string customerId) => _customers.TryGetValue(customerId, out var row) ? row.Partition : null;

    public IReadOnlyDictionary<TopicPartitionKey, long> LoadOffsets() => new Dictionary<TopicPartitionKey, long>(_offsets);

    public long LoadMaxEventTicks(int partition) => _maxEventTicks.GetValueOrDefault(partition);

    public byte[]? LoadPopulation(int partition) => _population.GetValueOrDefault(partition);

    public IReadOnlyList<(string CustomerId, long WakeTicks)> LoadTimers(int partition, long after, long until, int limit)
    {
        var result = new List<(string, long)>();
        if (limit <= 0 || until <= after || !_timers.TryGetValue(partition, out var timers) || timers.Count == 0 || timers.Max.Wake <= after)
        {
            return result;
        }

        // (after + 1, "") sorts before every entry due after `after`.
        foreach (var (wake, id) in timers.GetViewBetween((after + 1, ""), timers.Max))
        {
            if (wake > until)
            {
                break;
            }

            result.Add((id, wake));
            if (result.Count == limit)
            {
                break;
            }
        }

        return result;
    }

    public IReadOnlyList<string> ListCustomerIds(int partition, string afterId, int limit)
    {
        var ids = new List<string>();
        foreach (var (id, row) in _customers)
        {
            if (row.Partition == partition && string.CompareOrdinal(id, afterId) > 0)
            {
                ids.Add(id);
            }
        }

        ids.Sort(StringComparer.Ordinal);
        return ids.Count > limit ? ids.GetRange(0, limit) : ids;
    }

    public string? LoadSetting(string key) => _settings.GetValueOrDefault(key);

    public long CountCustomers() => _customers.Count;

    public void Commit(CheckpointBatch batch)
    {
        foreach (var row in batch.States)
        {
            if (_customers.TryGetValue(row.CustomerId, out var old) && old.Wake > 0)
            {
                _timers[old.Partition].Remove((old.Wake, row.CustomerId));
            }

            _customers[row.CustomerId] = new Row(row.Partition, row.State, row.WakeTicks);
            if (row.WakeTicks > 0)
            {
                if (!_timers.TryGetValue(row.Partition, out var timers))
                {
                    timers = new SortedSet<(long, string)>(TimerOrder.Instance);
                    _timers.Add(row.Partition, timers);
                }

                timers.Add((row.WakeTicks, row.CustomerId));
            }
        }

        foreach (var row in batch.Offsets)
        {
            _offsets[new TopicPartitionKey(row.Topic, row.Partition)] = row.NextOffset;
        }

        foreach (var row in batch.Partitions)
        {
            _maxEventTicks[row.Partition] = row.MaxEventTicks;
            if (row.Population is not null)
            {
                _population[row.Partition] = row.Population;
            }
        }

        foreach (var (key, value) in batch.Settings)
        {
            _settings[key] = value;
        }

        LastCheckpointSeq++;
    }

    public void Dispose()
    {
    }

    private readonly record struct Row(int Partition, byte[] State, long Wake);

    /// <summary>By due time, then customer id (ordinal), as the SQLite store pages them.</summary>
    private sealed class TimerOrder : IComparer<(long Wake, string CustomerId)>
    {
        public static readonly TimerOrder Instance = new();

        public int Compare((long Wake, string CustomerId) x, (long Wake, string CustomerId) y)
        {
            var byWake = x.Wake.CompareTo(y.Wake);
            return byWake != 0 ? byWake : string.CompareOrdinal(x.CustomerId, y.CustomerId);
        }
    }
}
