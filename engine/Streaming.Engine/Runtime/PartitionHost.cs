using System.Buffers;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;

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

    /// <summary>A timer firing this long after its due time (after an outage, say) is counted as late.</summary>
    public TimeSpan LateTimerAfter { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How far beyond the watermark timers are paged into memory from the store.</summary>
    public TimeSpan TimerPageSpan { get; init; } = TimeSpan.FromDays(1);

    /// <summary>Most timers paged in at once.</summary>
    public int TimerPageLimit { get; init; } = 20_000;

    /// <summary>Add each changed customer's <see cref="CustomerProjection"/> to checkpoints (for a state mirror).</summary>
    public bool CollectProjections { get; init; }
}

/// <summary>
/// Owns the customers of one partition number (the same number across all co-partitioned input topics): their state,
/// their timers and the partition's population counts. Used by one thread at a time; it holds no locks.
/// </summary>
/// <remarks>
/// Timers: each customer has one next wake-up (<see cref="CustomerState.WakeTicks"/>), stored with its state. Only
/// wake-ups up to a horizon a little beyond the watermark are held in memory, in a priority queue; the rest are paged
/// in from the store as the watermark advances, so memory does not grow with far-future timers. Queue entries can be
/// stale (the customer's wake-up moved); a popped entry only fires if it still matches.
/// </remarks>
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
    private readonly PriorityQueue<string, long> _timers = new();

    /// <summary>
    /// Wake-ups beyond the horizon of customers whose newest state is not in the store (so a page from the store misses
    /// them), earliest first; entries may be stale. Spares a scan of every unsaved customer at each page.
    /// </summary>
    private readonly PriorityQueue<Entry, long> _unsavedLater = new();
    private readonly FiringCollector _firings;

    /// <summary>Runs each change of a customer all or nothing.</summary>
    private readonly CustomerChange _change = new();
    private long _touch;
    private bool _partitionDirty;
    private long _timerHorizon;
    private long _wallFloorTicks;
    private string? _sweepAfter;

    public PartitionHost(int partition, IStateStore store, PartitionHostOptions options, RuleSet? rules = null)
    {
        Partition = partition;
        _store = store;
        _options = options;
        _decoder = new EventDecoder(options.Decoder);
        Rules = rules ?? RuleSetLoader.Default;
        MaxEventTicks = store.LoadMaxEventTicks(partition);
        Population = Population.Deserialize(store.LoadPopulation(partition));
        _firings = new FiringCollector(Population, partition);
    }

    /// <summary>Firings since the last collected checkpoint (written with it, exactly once).</summary>
    public IReadOnlyList<TriggerFiring> PendingFirings => _firings.Pending;

    public int Partition { get; }

    /// <summary>The rule set customers are evaluated with.</summary>
    public RuleSet Rules { get; private set; }

    /// <summary>Customers per stage, tier and segment, and transitions, for this partition.</summary>
    public Population Population { get; }

    /// <summary>Latest event time seen on this partition (UTC ticks, 0 if none).</summary>
    public long MaxEventTicks { get; private set; }

    /// <summary>
    /// The partition's event-time watermark: latest event time minus the allowed lateness (0 if none), or the wall-clock
    /// floor set by <see cref="AdvanceIdle"/> in hybrid mode, whichever is later.
    /// </summary>
    public long WatermarkTicks => Math.Max(MaxEventTicks == 0 ? 0 : Math.Max(1, MaxEventTicks - _options.AllowedLateness.Ticks), _wallFloorTicks);

    /// <summary>Timer wake-ups evaluated (customers moved by time alone).</summary>
    public long TimersFired { get; private set; }

    /// <summary>Of those, fired more than <see cref="PartitionHostOptions.LateTimerAfter"/> after they were due.</summary>
    public long LateTimersFired { get; private set; }

    /// <summary>Timer entries held in memory.</summary>
    public int TimersInMemory => _timers.Count;

    /// <summary>Customers still to re-evaluate after a rule-set switch (true while a sweep is under way).</summary>
    public bool Sweeping => _sweepAfter is not null;

    public int CachedCustomers => _customers.Count;

    public int DirtyCustomers => _dirty.Count;

    /// <summary>Customers in the batch collected last and not yet marked durable.</summary>
    public int InFlightCustomers => _inFlight.Count;

    public long CustomerLoads { get; private set; }

    /// <summary>The next offset to read of each input topic, as far as this host has processed.</summary>
    public IReadOnlyDictionary<string, long> NextOffsets => _nextOffsets;

    public void SetNextOffset(string topic, long nextOffset) => _nextOffsets[topic] = nextOffset;

    public void ForgetTopic(string topic) => _nextOffsets.Remove(topic);

    /// <summary>The type of the event Process decoded last.</summary>
    public EventType LastEventType { get; private set; }

    /// <summary>The customer and error of the latest failed wake-up or re-evaluation (for the log), or null.</summary>
    public string? LastWakeUpFailure { get; private set; }

    /// <summary>Wake-ups and rule-switch re-evaluations that failed (a rule that throws, an overflow): the customer kept its state; a failed wake-up is dropped.</summary>
    public long FailedWakeUps { get; private set; }

    /// <summary>Decodes, validates and applies one record; reports a dead letter through <paramref name="error"/>.</summary>
    public RecordOutcome Process(InputTopic topic, long offset, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, out DecodeError error) =>
        Process(topic, offset, key, value, brokerTime: null, out error);

    /// <summary>
    /// As above; <paramref name="brokerTime"/> is the record's broker timestamp (null when the record has none), which
    /// bounds how far in the future <c>occurredAt</c> may lie (<see cref="DecoderOptions.MaxFutureSkew"/>).
    /// </summary>
    /// <remarks>
    /// No record can throw out of here: a failure while decoding that the decoder did not foresee is a dead letter
    /// (<c>processing-error</c>) like a failure while applying. Only the store's own failures (reading a customer)
    /// propagate: they are no fault of the record.
    /// </remarks>
    public RecordOutcome Process(InputTopic topic, long offset, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, DateTimeOffset? brokerTime, out DecodeError error)
    {
        _nextOffsets[topic.Name()] = offset + 1;
        _partitionDirty = true;
        CustomerEvent? evt;
        try
        {
            if (!_decoder.TryDecode(topic, key, value, brokerTime, out evt, out error))
            {
                return RecordOutcome.DeadLetter;
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            error = new DecodeError("processing-error", $"{ex.GetType().Name} while decoding: {CustomerChange.Truncate(ex.Message, 200)}");
            return RecordOutcome.DeadLetter;
        }

        LastEventType = evt!.Type;
        return Apply(evt, out error);
    }

    /// <summary>
    /// Counts a record the caller refused before decoding it (a broker timestamp no date can hold, say): its offset is
    /// consumed like any other record's; the caller dead-letters it. Returns <see cref="RecordOutcome.DeadLetter"/>.
    /// </summary>
    public RecordOutcome Refuse(InputTopic topic, long offset)
    {
        _nextOffsets[topic.Name()] = offset + 1;
        _partitionDirty = true;
        return RecordOutcome.DeadLetter;
    }

    /// <summary>Applies an already decoded event (used by the core benchmark and tests), then fires due timers.</summary>
    public RecordOutcome Apply(CustomerEvent evt) => Apply(evt, out _);

    /// <summary>
    /// Applies an already decoded event, then fires due timers. All or nothing: if anything fails while the event is
    /// applied (an arithmetic overflow, a rule that throws), the customer keeps exactly the state it had, no firing or
    /// population move of the event counts, the partition's clock does not move, and the outcome is
    /// <see cref="RecordOutcome.DeadLetter"/> with code <c>processing-error</c>.
    /// </summary>
    public RecordOutcome Apply(CustomerEvent evt, out DecodeError error)
    {
        error = default;
        var entry = GetOrLoad(evt.CustomerId, create: true)!;
        var wake = entry.State.WakeTicks;
        var fresh = !entry.Stored && entry.State.EventsApplied == 0;
        if (!_change.TryApply(entry.State, evt, fresh, _options.Actor, Rules, out var result, out var failure))
        {
            if (fresh)
            {
                _customers.Remove(entry.State.CustomerId);
            }

            error = new DecodeError("processing-error", failure!);
            return RecordOutcome.DeadLetter;
        }

        _change.Effects.CommitTo(Population, _firings);
        if (result == ApplyResult.Duplicate)
        {
            return RecordOutcome.Duplicate;
        }

        MarkDirty(entry);
        Schedule(entry, wake);
        var ticks = evt.OccurredAt.UtcTicks;
        if (ticks > MaxEventTicks)
        {
            MaxEventTicks = ticks;
            _partitionDirty = true;
            FireDueTimers();
        }

        return RecordOutcome.Applied;
    }

    /// <summary>
    /// Hybrid time: when the partition has been quiet, its watermark follows the wall clock (minus the allowed
    /// lateness) so timers still fire. Never moves the watermark back.
    /// </summary>
    public void AdvanceIdle(long wallTicks)
    {
        var floor = wallTicks - _options.AllowedLateness.Ticks;
        if (floor > _wallFloorTicks)
        {
            _wallFloorTicks = floor;
            FireDueTimers();
        }
    }

    /// <summary>Fires every timer due at or before the watermark, earliest first; returns how many fired.</summary>
    public int FireDueTimers()
    {
        var watermark = WatermarkTicks;
        if (watermark == 0)
        {
            return 0;
        }

        var fired = 0;
        var lateBefore = watermark - _options.LateTimerAfter.Ticks;
        do
        {
            // A full page may end before the watermark: fire it, then page again until the horizon passes it.
            if (watermark >= _timerHorizon)
            {
                PageTimers(watermark);
            }

            while (_timers.TryPeek(out var customerId, out var due) && due <= watermark)
            {
                _timers.Dequeue();
                var entry = GetOrLoad(customerId, create: false);
                if (entry is null || entry.State.WakeTicks != due)
                {
                    continue; // Stale: the customer's wake-up moved since this entry was queued.
                }

                if (!_change.TryAdvance(entry.State, watermark, lateBefore, Rules, out var count, out var late, out var failure))
                {
                    // The customer keeps its state; this wake-up is dropped (its next event derives a new one), so a
                    // failing rule cannot hold the partition in a loop.
                    LastWakeUpFailure = Describe(customerId, failure!);
                    entry.State.WakeTicks = 0;
                    FailedWakeUps++;
                    MarkDirty(entry);
                    continue;
                }

                _change.Effects.CommitTo(Population, _firings);
                TimersFired += count;
                LateTimersFired += late;
                fired += count;
                MarkDirty(entry);
                Schedule(entry, due);
            }
        }
        while (watermark >= _timerHorizon);

        return fired;
    }

    /// <summary>
    /// Switches to another rule set at a checkpoint boundary. Cached customers are re-derived at once; stored ones by
    /// <see cref="SweepStep"/>, a slice at a time, or when next touched, whichever comes first.
    /// </summary>
    public void SwitchRules(RuleSet rules)
    {
        if (ReferenceEquals(rules, Rules) || rules.Version == Rules.Version)
        {
            Rules = rules;
            return;
        }

        Rules = rules;
        foreach (var entry in _customers.Values)
        {
            Reevaluate(entry);
        }

        _sweepAfter = "";
    }

    /// <summary>Re-derives up to <paramref name="max"/> stored customers under the current rules; false when done.</summary>
    public bool SweepStep(int max)
    {
        if (_sweepAfter is null)
        {
            return false;
        }

        var ids = _store.ListCustomerIds(Partition, _sweepAfter, max);
        foreach (var id in ids)
        {
            if (GetOrLoad(id, create: false) is { } entry && entry.State.RuleVersion != Rules.Version)
            {
                Reevaluate(entry);
            }
        }

        _sweepAfter = ids.Count < max ? null : ids[^1];
        return _sweepAfter is not null;
    }

    /// <summary>The customer's live state if this host owns it (loading it from the store if passivated).</summary>
    public CustomerState? Find(string customerId)
    {
        var entry = GetOrLoad(customerId, create: false);
        if (entry is not null && entry.State.RuleVersion != Rules.Version)
        {
            Reevaluate(entry);
        }

        return entry?.State;
    }

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
            batch.States.Add(new StateRow(entry.State.CustomerId, Partition, _encodeBuffer.WrittenSpan.ToArray(), !entry.Stored, entry.State.WakeTicks));
            if (_options.CollectProjections)
            {
                batch.Projections.Add(CustomerProjection.From(entry.State, Partition));
            }

            entry.Dirty = false;
            entry.InFlight = true;
            _inFlight.Add(entry);
        }

        _dirty.Clear();
        if (_partitionDirty || Population.Dirty)
        {
            foreach (var (topic, next) in _nextOffsets)
            {
                batch.Offsets.Add(new OffsetRow(topic, Partition, next));
            }

            batch.Partitions.Add(new PartitionRow(Partition, MaxEventTicks, Population.Dirty ? Population.Serialize() : null));
            _partitionDirty = false;
        }

        batch.Firings.AddRange(_firings.Pending);
        _firings.Pending.Clear();
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

    private void Reevaluate(Entry entry)
    {
        var wake = entry.State.WakeTicks;
        if (!_change.TryReevaluate(entry.State, WatermarkTicks, Rules, out var failure))
        {
            // The rule set fails on this customer: it keeps its values (and old rule version) until an event or wake-up.
            LastWakeUpFailure = Describe(entry.State.CustomerId, failure!);
            FailedWakeUps++;
            return;
        }

        Population.Recounting = true;
        try
        {
            _change.Effects.CommitTo(Population, _firings);
        }
        finally
        {
            Population.Recounting = false;
        }

        MarkDirty(entry);
        Schedule(entry, wake);
    }

    private static string Describe(string customerId, string failure) => $"customer '{CustomerChange.Truncate(customerId, 64)}': {failure}";

    private void MarkDirty(Entry entry)
    {
        if (!entry.Dirty)
        {
            entry.Dirty = true;
            _dirty.Add(entry);
        }
    }

    /// <summary>
    /// Queues the customer's wake-up if it moved and falls within the paged-in horizon; one beyond it is remembered for
    /// the page that reaches it (the customer was just marked dirty).
    /// </summary>
    private void Schedule(Entry entry, long previousWake)
    {
        var wake = entry.State.WakeTicks;
        if (wake != 0 && wake != previousWake && wake <= _timerHorizon)
        {
            _timers.Enqueue(entry.State.CustomerId, wake);
        }
        else if (wake > _timerHorizon && entry.LaterWake != wake)
        {
            entry.LaterWake = wake;
            _unsavedLater.Enqueue(entry, wake);
        }
    }

    /// <summary>
    /// Moves the in-memory horizon past <paramref name="watermark"/>: loads stored wake-ups up to the new horizon, and
    /// those of customers whose newest state is not yet in the store (changed, or in a checkpoint being written).
    /// </summary>
    private void PageTimers(long watermark)
    {
        var from = _timerHorizon;
        var until = Math.Max(watermark, watermark + _options.TimerPageSpan.Ticks);
        var rows = _store.LoadTimers(Partition, from, until, _options.TimerPageLimit);
        if (rows.Count == _options.TimerPageLimit)
        {
            // Page full: stop just before the last due time, then take every timer at exactly that time.
            until = rows[^1].WakeTicks;
            var boundary = _store.LoadTimers(Partition, until - 1, until, int.MaxValue);
            foreach (var (id, wake) in rows)
            {
                if (wake < until)
                {
                    _timers.Enqueue(id, wake);
                }
            }

            foreach (var (id, wake) in boundary)
            {
                _timers.Enqueue(id, wake);
            }
        }
        else
        {
            foreach (var (id, wake) in rows)
            {
                _timers.Enqueue(id, wake);
            }
        }

        while (_unsavedLater.TryPeek(out var entry, out var later) && later <= until)
        {
            _unsavedLater.Dequeue();
            if (entry.LaterWake == later)
            {
                entry.LaterWake = 0;
            }

            // Still the customer's wake-up, and still unsaved (a saved one came with the page above).
            if ((entry.Dirty || entry.InFlight) && entry.State.WakeTicks == later && later > from)
            {
                _timers.Enqueue(entry.State.CustomerId, later);
            }
        }

        _timerHorizon = until;
    }

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

    /// <summary>Collects firings for the next checkpoint and counts them (and conversions) per rule.</summary>
    private sealed class FiringCollector(Population population, int partition) : IFiringSink
    {
        public List<TriggerFiring> Pending { get; } = [];

        public void Fired(TriggerFiring firing)
        {
            Pending.Add(firing with { Partition = partition });
            population.CountRule(firing.Rule, "fired", TriggerNames.Of(firing.Delivery));
            if (firing.SuppressedBy is { } check)
            {
                population.CountRule(firing.Rule, "suppressed", check);
            }
        }

        public void Converted(string rule, Delivery delivery) => population.CountRule(rule, "converted", TriggerNames.Of(delivery));
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

        /// <summary>The wake-up last put in the queue of unsaved wake-ups beyond the horizon (0: none).</summary>
        public long LaterWake { get; set; }
    }
}
