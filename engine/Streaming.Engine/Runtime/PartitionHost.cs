using System.Buffers;
using Streaming.Engine.Events;
using Streaming.Engine.Model;

namespace Streaming.Engine.Runtime;

/// <summary>What happened to one input record.</summary>
public enum RecordOutcome
{
    Applied,
    Duplicate,
    DeadLetter,
}

/// <summary>Runtime settings of partition hosts.</summary>
public sealed record PartitionHostOptions
{
    public ActorOptions Actor { get; init; } = new();

    public DecoderOptions Decoder { get; init; } = new();

    /// <summary>Allowed lateness: a partition's watermark is its latest event time minus this.</summary>
    public TimeSpan AllowedLateness { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>
/// Owns the customers of one partition number (the same number across all co-partitioned input topics). Used by one
/// thread at a time; it holds no locks.
/// </summary>
public sealed class PartitionHost
{
    private readonly Dictionary<string, Entry> _customers = new(StringComparer.Ordinal);
    private readonly List<Entry> _dirty = [];
    private readonly List<Entry> _inFlight = [];
    private readonly Dictionary<string, long> _nextOffsets = new(StringComparer.Ordinal);
    private readonly IStateStore _store;
    private readonly PartitionHostOptions _options;
    private readonly EventDecoder _decoder;
    private readonly ArrayBufferWriter<byte> _encodeBuffer = new(256);
    private long _touch;
    private bool _partitionDirty;

    public PartitionHost(int partition, IStateStore store, PartitionHostOptions options)
    {
        Partition = partition;
        _store = store;
        _options = options;
        _decoder = new EventDecoder(options.Decoder);
        MaxEventTicks = store.LoadMaxEventTicks(partition);
    }

    public int Partition { get; }

    /// <summary>Latest event time seen on this partition (UTC ticks, 0 if none).</summary>
    public long MaxEventTicks { get; private set; }

    /// <summary>The partition's event-time watermark: latest event time minus the allowed lateness (0 if none).</summary>
    public long WatermarkTicks => MaxEventTicks == 0 ? 0 : Math.Max(1, MaxEventTicks - _options.AllowedLateness.Ticks);

    public int CachedCustomers => _customers.Count;

    public int DirtyCustomers => _dirty.Count;

    /// <summary>Customers in the batch collected last and not yet marked durable.</summary>
    public int InFlightCustomers => _inFlight.Count;

    public long CustomerLoads { get; private set; }

    /// <summary>The next offset to read of each input topic, as far as this host has processed.</summary>
    public IReadOnlyDictionary<string, long> NextOffsets => _nextOffsets;

    public void SetNextOffset(string topic, long nextOffset) => _nextOffsets[topic] = nextOffset;

    public void ForgetTopic(string topic) => _nextOffsets.Remove(topic);

    /// <summary>Decodes, validates and applies one record; reports a dead letter through <paramref name="error"/>.</summary>
    public RecordOutcome Process(InputTopic topic, long offset, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, out DecodeError error)
    {
        _nextOffsets[topic.Name()] = offset + 1;
        _partitionDirty = true;
        if (!_decoder.TryDecode(topic, key, value, out var evt, out error))
        {
            return RecordOutcome.DeadLetter;
        }

        return Apply(evt!);
    }

    /// <summary>Applies an already decoded event (used by the core benchmark and tests).</summary>
    public RecordOutcome Apply(CustomerEvent evt)
    {
        var entry = GetOrLoad(evt.CustomerId, create: true)!;
        if (CustomerActor.Apply(entry.State, evt, _options.Actor) == ApplyResult.Duplicate)
        {
            return RecordOutcome.Duplicate;
        }

        var ticks = evt.OccurredAt.UtcTicks;
        if (ticks > MaxEventTicks)
        {
            MaxEventTicks = ticks;
            _partitionDirty = true;
        }

        if (!entry.Dirty)
        {
            entry.Dirty = true;
            _dirty.Add(entry);
        }

        return RecordOutcome.Applied;
    }

    /// <summary>The customer's live state if this host owns it (loading it from the store if passivated).</summary>
    public CustomerState? Find(string customerId) => GetOrLoad(customerId, create: false)?.State;

    /// <summary>The customer's state if it is in memory; never touches the store.</summary>
    public CustomerState? TryGetCached(string customerId) =>
        _customers.TryGetValue(customerId, out var entry) ? entry.State : null;

    /// <summary>
    /// Snapshots this host's changes into <paramref name="batch"/> (encoded now, so processing may go on while the batch
    /// is written). The snapshotted customers stay in memory until <see cref="MarkClean"/> says the batch is durable;
    /// one changed again meanwhile is simply part of the next batch. At most one batch may be in flight.
    /// </summary>
    public void CollectCheckpoint(CheckpointBatch batch)
    {
        foreach (var entry in _dirty)
        {
            _encodeBuffer.Clear();
            CustomerStateCodec.Encode(entry.State, _encodeBuffer);
            batch.States.Add(new StateRow(entry.State.CustomerId, Partition, _encodeBuffer.WrittenSpan.ToArray(), !entry.Stored));
            entry.Dirty = false;
            entry.InFlight = true;
            _inFlight.Add(entry);
        }

        _dirty.Clear();
        if (_partitionDirty)
        {
            foreach (var (topic, next) in _nextOffsets)
            {
                batch.Offsets.Add(new OffsetRow(topic, Partition, next));
            }

            batch.Partitions.Add(new PartitionRow(Partition, MaxEventTicks));
            _partitionDirty = false;
        }
    }

    /// <summary>The batch collected last is durable: its customers may be passivated.</summary>
    public void MarkClean()
    {
        foreach (var entry in _inFlight)
        {
            entry.InFlight = false;
            entry.Stored = true;
        }

        _inFlight.Clear();
    }

    /// <summary>Drops clean customers not touched since <paramref name="touchedBefore"/>; returns how many.</summary>
    public int Passivate(long touchedBefore)
    {
        List<string>? victims = null;
        foreach (var (id, entry) in _customers)
        {
            if (!entry.Dirty && !entry.InFlight && entry.LastTouch < touchedBefore)
            {
                (victims ??= []).Add(id);
            }
        }

        if (victims is null)
        {
            return 0;
        }

        foreach (var id in victims)
        {
            _customers.Remove(id);
        }

        return victims.Count;
    }

    /// <summary>The touch counter values of cached, clean customers (to choose a passivation cut-off).</summary>
    public void CollectCleanTouches(List<long> sink)
    {
        foreach (var entry in _customers.Values)
        {
            if (!entry.Dirty && !entry.InFlight)
            {
                sink.Add(entry.LastTouch);
            }
        }
    }

    /// <summary>Monotonic counter of customer accesses on this host.</summary>
    public long TouchClock => _touch;

    private Entry? GetOrLoad(string customerId, bool create)
    {
        if (!_customers.TryGetValue(customerId, out var entry))
        {
            var state = _store.LoadCustomer(customerId);
            if (state is not null)
            {
                CustomerLoads++;
            }
            else if (!create)
            {
                return null;
            }

            entry = new Entry(state ?? new CustomerState(customerId)) { Stored = state is not null };
            _customers.Add(customerId, entry);
        }

        entry.LastTouch = ++_touch;
        return entry;
    }

    private sealed class Entry(CustomerState state)
    {
        public CustomerState State { get; } = state;
        public bool Dirty { get; set; }

        /// <summary>Part of a checkpoint batch not yet durable: must not be passivated.</summary>
        public bool InFlight { get; set; }

        /// <summary>The store holds a version of this customer.</summary>
        public bool Stored { get; set; }
        public long LastTouch { get; set; }
    }
}
