using Confluent.Kafka;

namespace Streaming.Connectors.Kafka;

/// <summary>
/// Keeps a producer from outrunning a consumer group by more than a byte budget per partition. The embedded broker keeps
/// only ~5 MiB of batches per partition and silently drops older ones, so a producer that runs ahead of the engine would
/// lose data. The pacer counts the (uncompressed) bytes acknowledged per partition and reads the group's committed
/// offsets; while any partition holds more unconsumed bytes than the budget, <see cref="WaitForRoom"/> blocks.
/// Uncompressed bytes over-estimate what the broker stores (lz4), so the budget is a safe bound.
/// </summary>
public sealed class ReplayPacer : IDisposable
{
    private readonly Dictionary<TopicPartition, PartitionLedger> _ledgers = [];
    private readonly IConsumer<Ignore, Ignore> _offsets;
    private readonly long _budgetBytes;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();

    public ReplayPacer(string bootstrapServers, string groupId, long budgetBytes, TimeProvider time)
    {
        GroupId = groupId;
        _budgetBytes = budgetBytes;
        _time = time;
        // Only used for OffsetFetch (Committed): never subscribes, so it does not join the group.
        _offsets = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = groupId,
            EnableAutoCommit = false,
            ClientId = "streaming-replay-pacer",
        }).SetLogHandler((_, _) => { }).Build();
    }

    public string GroupId { get; }

    /// <summary>Records that <paramref name="bytes"/> were stored at <paramref name="offset"/> of a partition.</summary>
    public void Acknowledged(TopicPartition partition, long offset, int bytes)
    {
        lock (_gate)
        {
            if (!_ledgers.TryGetValue(partition, out var ledger))
            {
                ledger = new PartitionLedger();
                _ledgers.Add(partition, ledger);
            }

            ledger.Add(offset, bytes);
        }
    }

    /// <summary>The largest number of acknowledged but unconsumed bytes on any partition, as last known.</summary>
    public long MaxBacklogBytes()
    {
        lock (_gate)
        {
            long max = 0;
            foreach (var ledger in _ledgers.Values)
            {
                max = Math.Max(max, ledger.Backlog);
            }

            return max;
        }
    }

    /// <summary>
    /// Returns at once while every partition is under budget; otherwise refreshes the group's committed offsets until
    /// it is, calling <paramref name="waiting"/> now and then with the current backlog.
    /// </summary>
    public void WaitForRoom(long inFlightBytes, Action<long> waiting, CancellationToken cancellationToken)
    {
        if (MaxBacklogBytes() + inFlightBytes <= _budgetBytes)
        {
            return;
        }

        var lastNotice = _time.GetTimestamp();
        while (true)
        {
            Refresh();
            var backlog = MaxBacklogBytes();
            if (backlog + inFlightBytes <= _budgetBytes)
            {
                return;
            }

            if (_time.GetElapsedTime(lastNotice) > TimeSpan.FromSeconds(5))
            {
                waiting(backlog);
                lastNotice = _time.GetTimestamp();
            }

            // Committed offsets advance once per engine checkpoint; polling faster gains nothing.
            cancellationToken.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(100));
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>Reads the group's committed offsets and forgets what it has consumed.</summary>
    public void Refresh()
    {
        List<TopicPartition> partitions;
        lock (_gate)
        {
            partitions = [.. _ledgers.Keys];
        }

        if (partitions.Count == 0)
        {
            return;
        }

        List<TopicPartitionOffset> committed;
        try
        {
            committed = _offsets.Committed(partitions, TimeSpan.FromSeconds(5));
        }
        catch (KafkaException)
        {
            return;
        }

        lock (_gate)
        {
            foreach (var c in committed)
            {
                if (c.Offset.Value >= 0 && _ledgers.TryGetValue(c.TopicPartition, out var ledger))
                {
                    ledger.ConsumedUpTo(c.Offset.Value);
                }
            }
        }
    }

    public void Dispose() => _offsets.Dispose();

    /// <summary>Bytes per offset not yet consumed, in offset order.</summary>
    private sealed class PartitionLedger
    {
        private readonly Queue<(long Offset, int Bytes)> _pending = new();

        public long Backlog { get; private set; }

        public void Add(long offset, int bytes)
        {
            _pending.Enqueue((offset, bytes));
            Backlog += bytes;
        }

        public void ConsumedUpTo(long nextOffset)
        {
            while (_pending.Count > 0 && _pending.Peek().Offset < nextOffset)
            {
                Backlog -= _pending.Dequeue().Bytes;
            }
        }
    }
}
