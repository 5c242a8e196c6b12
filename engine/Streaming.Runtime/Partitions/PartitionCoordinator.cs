using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Telemetry;

namespace Streaming.Runtime.Partitions;

/// <summary>Settings of partition coordinators.</summary>
public sealed record PartitionCoordinatorOptions
{
    /// <summary>A partition's watermark is its latest event time minus this.</summary>
    public TimeSpan AllowedLateness { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>A wake-up running this long after its due time (after an outage, say) counts as late.</summary>
    public TimeSpan LateTimerAfter { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Most messages sent to customers and not yet answered (back-pressure on the ingestion stage).</summary>
    public int MaxInFlight { get; init; } = 512;

    /// <summary>A snapshot of the whole partition state (all timers) every this many checkpoints; deltas between.</summary>
    public int SnapshotEvery { get; init; } = 50;

    /// <summary>
    /// Customers of this partition kept in memory (the ingestion stage gives each coordinator its share of the node's
    /// <c>Streaming:Engine:MaxCachedCustomers</c>). Beyond it, after a checkpoint, the least recently used customers are
    /// passivated, down to nine tenths of it; they reload from the journal on their next record or wake-up.
    /// </summary>
    public int MaxCachedCustomers { get; init; } = 250_000;

    /// <summary>
    /// Wake-ups the coordinator holds in memory (<c>Streaming:Engine:MaxWakeUpsInMemory</c>): only those due by its page
    /// end. Beyond it the earliest nine tenths are kept (whole groups of equal due times) and the page end lowered; the
    /// others stay in their customers' states and are paged in again, from the customers, when the watermark passes the
    /// page end. Applies only with <see cref="StoredCustomers"/> (without it every wake-up is held).
    /// </summary>
    public int MaxWakeUpsInMemory { get; init; } = 100_000;

    /// <summary>
    /// Lists the stored customers of a partition (each at least once; ids of other partitions or unknown ids are
    /// harmless): a wake-up page-in asks each of them, and the customers in memory, for its next wake-up. Null: wake-ups
    /// are not paged (all held, as on the in-memory journal of <c>backtest</c> and <c>bench --core</c>).
    /// </summary>
    public Func<int, CancellationToken, IAsyncEnumerable<string>>? StoredCustomers { get; init; }

    /// <summary>
    /// Null (the default): the coordinator waits for its customers' answers as long as it takes. Set (in a cluster):
    /// when records or checkpoint saves sent to customers stay unanswered for two checks this far apart (no answer at all in between), the
    /// partition fails and restarts from its last checkpoint. Messages routed to a node that died before the cluster
    /// removed it are lost, and without this the partition would wait for their answers for ever.
    /// </summary>
    public TimeSpan? UnansweredTimeout { get; init; }

    /// <summary>A wake-up page-in whose listing failed starts again after this.</summary>
    public TimeSpan PageInRetryAfter { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The wall clock (processing latency only; event time comes from the records).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>
    /// Called with the seconds from a record's broker append to its customer's answer (the record is applied), for
    /// records whose append time is known. Null: not measured.
    /// </summary>
    public Action<double>? Applied { get; init; }

    /// <summary>
    /// Changes made without new records (wake-ups, re-derivations, effects recovered from customers) are checkpointed
    /// this long after they happen when no checkpoint is asked for meanwhile, so their firings reach the outbox.
    /// </summary>
    public TimeSpan QuietCheckpointAfter { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Where the coordinator registers its partition's <see cref="KnownCustomers"/> once recovered (null: nowhere).</summary>
    public KnownCustomerRegistry? Known { get; init; }

    /// <summary>Told each journal write's latency, the recovery's duration and each failed write (null: not measured).</summary>
    public IPersistenceObserver? Persistence { get; init; }

    /// <summary>
    /// Each checkpoint's <see cref="CheckpointCompleted.Projections"/> carries the saved customers' projections (for the
    /// Redis mirror); off, saves answer without them.
    /// </summary>
    public bool CollectProjections { get; init; }
}

/// <summary>
/// The journal event of a partition: checkpoint <paramref name="Seq"/> is durable, with the next offset per input
/// topic, the event-time clock, the population counters and the wake-ups that changed since the previous one
/// (0: none any more). A snapshot holds every wake-up.
/// </summary>
/// <param name="Firings">
/// The firings this checkpoint covers. Stored with it because, once it is durable, customers drop the copies they saved
/// unconfirmed: until the listener has handed them on (the outbox), this event is their only durable copy. A recovered
/// coordinator reports its last checkpoint's firings again, so a crash between the two loses none.
/// </param>
/// <param name="Run">The coordinator run that completed the checkpoint.</param>
/// <param name="Runs">
/// Snapshots only (empty in events): the last checkpoint each earlier run completed, as <see cref="Customers.PartitionClock.Completed"/>.
/// </param>
public sealed record PartitionCheckpointed(long Seq, IReadOnlyDictionary<string, long> NextOffsets, long MaxEventTicks, long WallFloorTicks, byte[] Population, IReadOnlyDictionary<string, long> Wakes, string RuleVersion, IReadOnlyList<TriggerFiring> Firings, long Run, IReadOnlyDictionary<long, long> Runs)
{
    /// <summary>Snapshots only (empty in events): the partition's <see cref="KnownCustomers"/>, every hash.</summary>
    public IReadOnlyList<ulong> Known { get; init; } = [];

    /// <summary>
    /// The page end (UTC ticks): the coordinator holds every wake-up due by then, and none later (those are paged in from
    /// the customers when the watermark passes it). <see cref="long.MaxValue"/>: all held (events written before paging).
    /// </summary>
    public long PageEnd { get; init; } = long.MaxValue;
}

/// <summary>A batch of a page-in's listing of stored customers (answered <see cref="PageBatchTaken"/> once all are asked).</summary>
internal sealed record PageCustomers(long Listing, IReadOnlyList<string> CustomerIds, bool Last);

/// <summary>The batch was asked: the listing may go on.</summary>
internal sealed record PageBatchTaken
{
    public static PageBatchTaken Instance { get; } = new();
}

/// <summary>Listing the stored customers failed.</summary>
internal sealed record PageListingFailed(long Listing, string Reason);

/// <summary>Check that customers answered since the last check (<see cref="PartitionCoordinatorOptions.UnansweredTimeout"/>).</summary>
internal sealed record CheckAnswers
{
    public static CheckAnswers Instance { get; } = new();
}

/// <summary>List the stored customers again (after a failed listing).</summary>
internal sealed record RetryPageIn
{
    public static RetryPageIn Instance { get; } = new();
}

/// <summary>
/// The journal event persisted before customers of a partition save for the first time (at checkpoint
/// <paramref name="Seq"/>, or when passivated): their <see cref="KnownCustomers"/> hashes. Persisted first, so the set
/// is always a superset of the customers saved.
/// </summary>
public sealed record CustomersKnown(long Seq, IReadOnlyList<ulong> Hashes);

/// <summary>
/// The coordinator of one Kafka partition: it sends each record to its customer entity through the shard region, keeps
/// the partition's event-time clock and the durable wake-ups of all its customers (passivated ones included: Akka.NET
/// has no durable reminders), counts the population, and runs the checkpoint barrier: no new record goes out, every
/// answer is in, dead letters are on the broker, every changed customer saves under the checkpoint's number, then the
/// partition's own state is persisted and only then the listener may commit the offsets.
/// </summary>
/// <remarks>
/// <para>Clock: records carry the watermark that the times of all earlier records give (deterministic whatever the
/// answers' timing); the partition's confirmed clock, which fires other customers' wake-ups and is persisted, moves
/// only with records the customer took: applied, or applied before (a duplicate, as after a restart that re-reads
/// records the customer already has). A record whose change failed moves no confirmed clock.</para>
/// <para>Effects this run has not counted (saved before a crash but unconfirmed, or counted only by the run before
/// this one under a customer that stayed alive) come back once, in the customer's first answer to this run
/// (<see cref="CustomerChanged.Recovered"/>), and are counted then.</para>
/// </remarks>
public sealed class PartitionCoordinator : ReceivePersistentActor, IWithTimers
{
    private const string QuietCheckpointTimer = "quiet-checkpoint";
    private const string PageInRetryTimer = "page-in-retry";
    private const string AnswersTimer = "answers";

    /// <summary>Answers from customers so far, and at the last <see cref="CheckAnswers"/>; checks in a row that found none while some were due.</summary>
    private long _answers;
    private long _answersAtCheck;
    private int _unansweredChecks;
    private const int PageBatch = 500;

    private readonly int _partition;
    private readonly IActorRef _customers;
    private readonly IActorRef _listener;
    private readonly Rules.RuleBook _rules;
    private readonly PartitionCoordinatorOptions _options;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private long _run;

    /// <summary>The last checkpoint each run completed (this one's included once it completes one).</summary>
    private readonly Dictionary<long, long> _runs = [];

    /// <summary>The earlier runs' entries, as recovered: sent with every clock (immutable for this run).</summary>
    private IReadOnlyDictionary<long, long> _earlierRuns = new Dictionary<long, long>();

    /// <summary>Runs kept in the table; an entity holding effects of an older run reports them again (counted twice, never lost).</summary>
    private const int MaxRuns = 256;

    private readonly Dictionary<string, long> _nextOffsets = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _wakes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _changedWakes = new(StringComparer.Ordinal);
    private readonly PriorityQueue<string, long> _due = new();

    /// <summary>
    /// Wake-ups due by this are all in <see cref="_wakes"/> (but those sent and not answered), later ones none
    /// (<see cref="long.MaxValue"/>: every one). While paging, the provisional end of the page being learned.
    /// </summary>
    private long _pageEnd = long.MaxValue;

    /// <summary>A page-in runs: the page end it started from (wake-ups after it wait until it completes).</summary>
    private bool _paging;
    private long _pagingFrom;

    /// <summary>Customers the page-in still has to ask, asks not yet answered, and whether the listing is complete.</summary>
    private readonly Queue<string> _pageAsks = new();
    private int _pageOutstanding;
    private bool _pageListed;
    private IActorRef? _pageLister;
    private CancellationTokenSource? _pageListing;
    private long _pageListingId;
    private long _pageIns;
    private long _pagedOut;
    private int _heldPeak;

    /// <summary>Customers sent a wake-up not yet answered (a page-in's answer sent before it is older than its answer).</summary>
    private readonly HashSet<string> _waking = new(StringComparer.Ordinal);
    private readonly HashSet<string> _dirty = new(StringComparer.Ordinal);
    private readonly KnownCustomers _known = new();
    private readonly List<TriggerFiring> _firings = [];

    /// <summary>Projections of the customers saved for the checkpoint in progress (<see cref="PartitionCoordinatorOptions.CollectProjections"/>).</summary>
    private readonly List<CustomerProjection> _projections = [];
    private readonly Dictionary<(string Topic, long Offset), PartitionRecord> _pending = [];
    private Dictionary<string, long> _committedOffsets = new(StringComparer.Ordinal);
    private IReadOnlyList<TriggerFiring> _lastFirings = [];

    /// <summary>Firings of completed checkpoints the listener has not confirmed stored, by checkpoint.</summary>
    private readonly SortedDictionary<long, int> _unstored = [];

    /// <summary>Customers this coordinator has sent to and not passivated, most recently used first.</summary>
    private readonly LinkedList<string> _recent = new();
    private readonly Dictionary<string, LinkedListNode<string>> _live = new(StringComparer.Ordinal);

    /// <summary>Records this run sent each customer in memory (<see cref="ApplyRecord.Sequence"/>); forgotten at passivation.</summary>
    private readonly Dictionary<string, int> _sentTo = new(StringComparer.Ordinal);
    private long _passivations;

    /// <summary>Customers of a rule sweep still to re-evaluate, and who asked (answered once they are all sent).</summary>
    private readonly Queue<string> _sweep = new();
    private IActorRef? _sweeper;
    private int _swept;

    /// <summary>Records that arrived while the barrier was up or the in-flight bound was reached, in arrival order.</summary>
    private readonly Queue<PartitionRecord> _waiting = new();
    private Population _population = new();
    private string _ruleVersion;
    private long _maxEventTicks;
    private long _sentMaxEventTicks;
    private long _wallFloorTicks;
    private long _committedSeq;
    private int _inFlight;

    /// <summary>Wake-ups and re-evaluations sent and not yet answered (they may fire).</summary>
    private int _advancing;
    private long _timersFired;
    private long _lateTimersFired;
    private long _applied;
    private long _duplicates;
    private long _failedWakeUps;
    private long _checkpoints;

    /// <summary>A rule set to switch to once the next checkpoint is durable.</summary>
    private string? _switchTo;
    private long _deadLetters;
    private int _checkpointsSinceSnapshot;

    // The barrier in progress: its number, and what it still waits for.
    private long _barrierSeq;
    private bool _awaitingFlush;
    private int _awaitingSaves;

    /// <summary>When this incarnation started (its recovery's duration is measured from here).</summary>
    private readonly long _startedAt;

    /// <summary>A coordinator for <paramref name="partition"/>, sending to <paramref name="customers"/> (the shard region) and reporting to <paramref name="listener"/>.</summary>
    public PartitionCoordinator(int partition, IActorRef customers, IActorRef listener, Rules.RuleBook rules, PartitionCoordinatorOptions options)
    {
        _partition = partition;
        _customers = customers;
        _listener = listener;
        _rules = rules;
        _options = options;
        _ruleVersion = rules.Latest.Version;
        _startedAt = options.Time.GetTimestamp();
        Recover<SnapshotOffer>(offer => Restore((PartitionCheckpointed)offer.Snapshot, full: true));
        Recover<PartitionCheckpointed>(e => Restore(e, full: false));
        Recover<CustomersKnown>(e => _known.Add(e.Hashes));
        Recover<RecoveryCompleted>(_ =>
        {
            _options.Persistence?.Recovered(PersistentActorKind.Partition, _options.Time.GetElapsedTime(_startedAt));
            _changedWakes.Clear();
            RebuildDue();
            if (Paged && _wakes.Count > _options.MaxWakeUpsInMemory)
            {
                PageOut();
                _changedWakes.Clear();
            }

            _heldPeak = _wakes.Count;
            if (!Paged && _pageEnd != long.MaxValue)
            {
                // Saved by a run that paged: later wake-ups are only in the customers' states, and this one cannot list them.
                _log.Warning("partition {0}: wake-ups after {1} were paged out and are not paged in here (no stored-customer listing)", _partition, new DateTime(_pageEnd, DateTimeKind.Utc).ToString("O"));
            }

            // A new run id, later than every recorded one (ids only need to differ; time keeps them readable).
            _run = Math.Max(DateTime.UtcNow.Ticks, _runs.Count == 0 ? 0 : _runs.Keys.Max() + 1);
            _earlierRuns = new Dictionary<long, long>(_runs);
            Become(Running);
            if (_options.UnansweredTimeout is { } unanswered)
            {
                Timers.StartPeriodicTimer(AnswersTimer, CheckAnswers.Instance, unanswered);
            }

            _options.Known?.Register(_partition, _known);
            if (!_rules.Contains(_ruleVersion))
            {
                // Saved under a rule set this node does not have (another node's, or one replaced while it was down):
                // the node's own set applies; customers re-derive under it when next reached.
                _log.Warning("partition {0}: rules {1} of the last checkpoint are not loaded here; running {2}", _partition, _ruleVersion, _rules.Latest.Version);
                _ruleVersion = _rules.Latest.Version;
            }

            // The last checkpoint's firings may not have reached the outbox before a crash (the listener handles a
            // checkpoint before the next one can complete, so only the last one is in doubt): reported again, with
            // its offsets; the outbox ignores ids it holds.
            if (_committedSeq > 0)
            {
                if (_lastFirings.Count > 0)
                {
                    _unstored[_committedSeq] = _lastFirings.Count;
                }

                _listener.Tell(new CheckpointCompleted(_partition, _committedSeq, _committedOffsets, _lastFirings, []) { Recovered = true, RuleVersion = _ruleVersion });
            }

            FireDue();
        });
    }

    /// <inheritdoc />
    public override string PersistenceId => "partition-" + _partition;

    /// <inheritdoc />
    /// <remarks>Akka stops the coordinator after this; the failure is counted first.</remarks>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _options.Persistence?.Failed(PersistentActorKind.Partition, PersistenceFailure.Failed);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    /// <inheritdoc />
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        _options.Persistence?.Failed(PersistentActorKind.Partition, PersistenceFailure.Rejected);
        base.OnPersistRejected(cause, @event, sequenceNr);
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        _options.Known?.Unregister(_partition, _known);
        _pageListing?.Cancel();
        _pageListing?.Dispose();
        base.PostStop();
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Props for the coordinator of <paramref name="partition"/>.</summary>
    public static Props Props(int partition, IActorRef customers, IActorRef listener, Rules.RuleBook rules, PartitionCoordinatorOptions options) =>
        Akka.Actor.Props.Create(() => new PartitionCoordinator(partition, customers, listener, rules, options));

    private long Watermark(long maxEventTicks) =>
        Math.Max(maxEventTicks == 0 ? 0 : Math.Max(1, maxEventTicks - _options.AllowedLateness.Ticks), _wallFloorTicks);

    private PartitionClock Clock(long maxEventTicks)
    {
        var watermark = Watermark(maxEventTicks);
        return new PartitionClock(watermark, watermark - _options.LateTimerAfter.Ticks, _ruleVersion, _committedSeq, _run) { Completed = _earlierRuns };
    }

    private void Restore(PartitionCheckpointed saved, bool full)
    {
        _committedSeq = saved.Seq;
        _committedOffsets = new Dictionary<string, long>(saved.NextOffsets, StringComparer.Ordinal);
        _nextOffsets.Clear();
        foreach (var (topic, next) in saved.NextOffsets)
        {
            _nextOffsets[topic] = next;
        }

        _maxEventTicks = _sentMaxEventTicks = saved.MaxEventTicks;
        _wallFloorTicks = saved.WallFloorTicks;
        _population = Population.Deserialize(saved.Population);
        _ruleVersion = saved.RuleVersion;
        _lastFirings = saved.Firings;
        if (full)
        {
            _runs.Clear();
            foreach (var (run, seq) in saved.Runs)
            {
                _runs[run] = seq;
            }
        }

        _runs[saved.Run] = Math.Max(_runs.GetValueOrDefault(saved.Run), saved.Seq);
        if (full)
        {
            _wakes.Clear();
            _known.Add(saved.Known);
        }

        // As saved (the queue of due times is built once recovered).
        foreach (var (customer, wake) in saved.Wakes)
        {
            if (wake == 0)
            {
                _wakes.Remove(customer);
            }
            else
            {
                _wakes[customer] = wake;
            }
        }

        _pageEnd = saved.PageEnd;
    }

    private void Running()
    {
        Command<PartitionRecord>(OnRecord);
        Command<CustomerChanged>(OnChanged);
        Command<AdvanceIdle>(OnIdle);
        Command<CheckpointNow>(now =>
        {
            if (now.Leaving)
            {
                _waiting.Clear();
            }

            BeginCheckpoint();
        });
        Command<SwitchRules>(OnSwitchRules);
        Command<SweepCustomers>(sweep =>
        {
            foreach (var customer in sweep.CustomerIds)
            {
                _sweep.Enqueue(customer);
            }

            _sweeper = Sender;
            _swept = 0;
            Drain();
        });
        Command<FiringsStored>(stored =>
        {
            foreach (var seq in _unstored.Keys.Where(s => s <= stored.Seq).ToList())
            {
                _unstored.Remove(seq);
            }
        });
        Command<DeadLettersFlushed>(OnFlushed);
        Command<CustomerSaved>(OnSaved);
        Command<CustomerSaveFailed>(f => AbortCheckpoint($"customer save failed: {f.Reason}"));
        Command<CustomerPassivated>(_ => { });
        Command<CustomerWakeUp>(OnPagedWakeUp);
        Command<PageCustomers>(OnPageCustomers);
        Command<PageListingFailed>(failed =>
        {
            if (failed.Listing == _pageListingId && _paging)
            {
                _log.Warning("partition {0}: listing the stored customers for a wake-up page-in failed ({1}); again in {2}", _partition, failed.Reason, _options.PageInRetryAfter);
                Timers.StartSingleTimer(PageInRetryTimer, RetryPageIn.Instance, _options.PageInRetryAfter);
            }
        });
        Command<CheckAnswers>(_ =>
        {
            // Records or checkpoint saves waiting for customers' answers, and none came since the last check.
            _unansweredChecks = (_inFlight > 0 || _awaitingSaves > 0) && _answers == _answersAtCheck ? _unansweredChecks + 1 : 0;
            _answersAtCheck = _answers;
            if (_unansweredChecks >= 2)
            {
                Fail($"{_inFlight} records and {_awaitingSaves} checkpoint saves sent to customers unanswered for {_options.UnansweredTimeout!.Value.TotalSeconds:0} s (lost on the way to a node that left the cluster?)");
            }
        });
        Command<RetryPageIn>(_ =>
        {
            if (_paging)
            {
                ListStoredCustomers();
            }
        });
        Command<GetPartitionStatus>(_ => Sender.Tell(new PartitionStatus(_partition, Watermark(_maxEventTicks), _maxEventTicks, _committedSeq, _wakes.Count, _inFlight + _pageOutstanding, _waiting.Count, _timersFired, _deadLetters, new Dictionary<(string, string), long>(_population.Counts))
        {
            Cached = _live.Count,
            Passivations = _passivations,
            CommittedOffsets = _committedOffsets,
            ProcessedOffsets = Processed(),
            PendingFirings = _firings.Count + _unstored.Values.Sum() + _advancing,
            Applied = _applied,
            Duplicates = _duplicates,
            FailedWakeUps = _failedWakeUps,
            Checkpoints = _checkpoints,
            LateTimersFired = _lateTimersFired,
            RuleVersion = _ruleVersion,
            WakeUpPageIns = _pageIns,
            WakeUpsHeldPeak = _heldPeak,
            WakeUpsPagedOut = _pagedOut,
            WakeUpPageEndTicks = _paging ? Math.Min(_pagingFrom, _pageEnd) : _pageEnd,
            PagingWakeUps = _paging,
            Transitions = new Dictionary<(string, string, string), long>(_population.Transitions),
            RuleCounters = new Dictionary<(string, string, string), long>(_population.RuleCounters),
        }));
        Command<SaveSnapshotSuccess>(s => DeleteMessages(s.Metadata.SequenceNr));
        Command<SaveSnapshotFailure>(f => _log.Warning("partition {0}: snapshot failed: {1}", _partition, f.Cause.Message));
        Command<DeleteMessagesSuccess>(_ => { });
        Command<DeleteMessagesFailure>(f => _log.Warning("partition {0}: journal clean-up failed: {1}", _partition, f.Cause.Message));
    }

    private void OnRecord(PartitionRecord record)
    {
        if (_barrierSeq != 0 || _inFlight >= _options.MaxInFlight || _waiting.Count > 0)
        {
            _waiting.Enqueue(record);
            return;
        }

        Send(record);
    }

    /// <summary>Sends waiting records, in order, while no barrier is up and the in-flight bound allows.</summary>
    private void Drain()
    {
        // Records and a page-in's asks take turns within the bound (neither starves the other).
        while (_barrierSeq == 0 && _inFlight + _pageOutstanding < _options.MaxInFlight && (_waiting.Count > 0 || _pageAsks.Count > 0))
        {
            if (_waiting.TryDequeue(out var record))
            {
                Send(record);
            }

            if (_inFlight + _pageOutstanding < _options.MaxInFlight && _pageAsks.TryDequeue(out var asked))
            {
                AskWakeUp(asked);
            }
        }

        if (_pageAsks.Count == 0 && _pageLister is { } lister)
        {
            lister.Tell(PageBatchTaken.Instance);
            _pageLister = null;
        }

        // Then the rule sweep, with what the bound leaves: customers in memory were re-derived at the switch.
        while (_barrierSeq == 0 && _inFlight + _pageOutstanding < _options.MaxInFlight && _waiting.Count == 0 && _sweep.TryDequeue(out var customer))
        {
            if (_live.ContainsKey(customer))
            {
                continue;
            }

            _inFlight++;
            _advancing++;
            _swept++;
            Touch(customer);
            _customers.Tell(new Reevaluate(customer, _partition, Clock(_maxEventTicks)) { Sequence = NextSequence(customer) });
        }

        if (_sweep.Count == 0 && _sweeper is { } sweeper)
        {
            sweeper.Tell(new SweepSent(_swept, _committedSeq + 1));
            _sweeper = null;
        }
    }

    private void Send(PartitionRecord record)
    {
        _nextOffsets[record.Topic] = record.Offset + 1;
        if (record.Event is not { } evt)
        {
            var rejected = record.Rejected ?? new("invalid", "no event");
            DeadLetter(record, rejected.Code, rejected.Detail);
            return;
        }

        // The record goes out under the clock that all earlier records' times give; its own time counts for later ones.
        var clock = Clock(_sentMaxEventTicks);
        _sentMaxEventTicks = Math.Max(_sentMaxEventTicks, evt.OccurredAt.UtcTicks);
        _pending[(record.Topic, record.Offset)] = record;
        _inFlight++;
        Touch(evt.CustomerId);
        _customers.Tell(new ApplyRecord(evt.CustomerId, _partition, record.Topic, record.Offset, evt, clock) { Sequence = NextSequence(evt.CustomerId) });
    }

    /// <summary>The number of the next message to <paramref name="customer"/> in this run (<see cref="ApplyRecord.Sequence"/>).</summary>
    private int NextSequence(string customer) => _sentTo[customer] = _sentTo.GetValueOrDefault(customer) + 1;

    private void OnChanged(CustomerChanged changed)
    {
        if (changed.Outcome == ChangeOutcome.Gap)
        {
            Fail($"customer {changed.CustomerId} refused record {changed.Topic}@{changed.Offset}: {changed.Failure}");
            return;
        }

        _inFlight--;
        _answers++;
        if (changed.Offset < 0)
        {
            _advancing--;
            _waking.Remove(changed.CustomerId);
        }

        foreach (var recovered in changed.Recovered)
        {
            Count(recovered);
        }

        Count(changed.Effects);
        _timersFired += changed.TimersFired;
        _lateTimersFired += changed.LateTimersFired;
        if (changed.Offset >= 0 && changed.Outcome == ChangeOutcome.Applied)
        {
            _applied++;
        }
        else if (changed.Outcome == ChangeOutcome.Duplicate)
        {
            _duplicates++;
        }
        else if (changed.Offset < 0 && changed.Outcome == ChangeOutcome.Failed)
        {
            // A wake-up whose evaluation failed: the customer kept its state and the wake-up is dropped.
            _failedWakeUps++;
        }

        if (changed.Dirty)
        {
            _dirty.Add(changed.CustomerId);
        }

        if (changed.Offset < 0 || !_waking.Contains(changed.CustomerId))
        {
            SetWake(changed.CustomerId, changed.Exists ? changed.WakeTicks : 0);
        }

        // Else a record sent before the customer's wake-up: its answer still shows the wake-up that is running, and the
        // wake-up's own answer, next, brings the one after it.
        if (changed.Offset >= 0)
        {
            var key = (Topic: changed.Topic ?? "", changed.Offset);
            _pending.Remove(key, out var record);
            var ticks = record?.Event?.OccurredAt.UtcTicks ?? 0;
            if (_options.Applied is { } applied && record is { AppendedTicks: > 0 } && changed.Outcome == ChangeOutcome.Applied)
            {
                applied(TimeSpan.FromTicks(Math.Max(0, _options.Time.GetUtcNow().UtcTicks - record.AppendedTicks)).TotalSeconds);
            }

            if (changed.Outcome == ChangeOutcome.Failed)
            {
                DeadLetter(record ?? new PartitionRecord(key.Topic, changed.Offset, null), "processing-error", changed.Failure ?? "");
            }
            else if (ticks > _maxEventTicks)
            {
                _maxEventTicks = ticks;
                FireDue();
            }
        }

        Drain();
        ContinueBarrier();
        if (_barrierSeq == 0 && (_dirty.Count > 0 || _firings.Count > 0) && !Timers.IsTimerActive(QuietCheckpointTimer))
        {
            Timers.StartSingleTimer(QuietCheckpointTimer, CheckpointNow.Instance, _options.QuietCheckpointAfter);
        }
    }

    private void OnIdle(AdvanceIdle idle)
    {
        var floor = idle.WallTicks - _options.AllowedLateness.Ticks;
        if (floor > _wallFloorTicks)
        {
            _wallFloorTicks = floor;
            FireDue();
        }
    }

    /// <summary>
    /// Wakes every customer whose wake-up the confirmed watermark has passed, earliest first; while a page-in runs, only
    /// up to the page end it started from. Once the watermark is past the page end, a page-in starts.
    /// </summary>
    private void FireDue()
    {
        var watermark = Watermark(_maxEventTicks);

        // Not while customers save for a checkpoint: a change made then would miss its save, yet its effects would
        // count in the checkpoint. The checkpoint fires what came due meanwhile.
        if (watermark == 0 || _awaitingSaves > 0)
        {
            return;
        }

        var limit = _paging ? Math.Min(watermark, Math.Min(_pagingFrom, _pageEnd)) : watermark;
        var clock = Clock(_maxEventTicks);
        while (_due.TryPeek(out var customer, out var due) && due <= limit)
        {
            _due.Dequeue();
            if (_wakes.TryGetValue(customer, out var current) && current == due)
            {
                // No longer held: the customer answers with its next wake-up, which is held (or not) in its place.
                _wakes.Remove(customer);
                _changedWakes[customer] = 0;
                _waking.Add(customer);
                _inFlight++;
                _advancing++;
                Touch(customer);
                _customers.Tell(new WakeUp(customer, _partition, clock) { Sequence = NextSequence(customer) });
            }
        }

        if (!_paging && watermark > _pageEnd && Paged)
        {
            BeginPageIn();
        }
    }

    /// <summary>Wake-ups are paged (bounded in memory): the customers can be listed.</summary>
    private bool Paged => _options.StoredCustomers is not null;

    /// <summary>
    /// The customer's next wake-up is <paramref name="wake"/> (0: none), as it reported it: held when due by the page end,
    /// else not (any older one held is dropped). Every change is recorded for the next checkpoint.
    /// </summary>
    private void SetWake(string customer, long wake)
    {
        if (wake > _pageEnd)
        {
            // Kept in the customer's state; the page-in that reaches it learns it from there.
            wake = 0;
        }

        var previous = _wakes.GetValueOrDefault(customer);
        if (previous == wake)
        {
            return;
        }

        if (wake == 0)
        {
            _wakes.Remove(customer);
        }
        else
        {
            _wakes[customer] = wake;
            _due.Enqueue(customer, wake);
        }

        _changedWakes[customer] = wake;
        if (Paged && _wakes.Count > _options.MaxWakeUpsInMemory)
        {
            PageOut();
        }
        else if (_due.Count > (2 * _wakes.Count) + 1024)
        {
            // Superseded entries of the due queue (it keeps the old one when a wake-up moves).
            RebuildDue();
        }

        _heldPeak = Math.Max(_heldPeak, _wakes.Count);

        if (wake != 0 && wake <= _pageEnd && wake <= Watermark(_maxEventTicks))
        {
            FireDue();
        }
    }

    /// <summary>
    /// Over the bound: keeps the earliest nine tenths of the held wake-ups (and every one due at the same time as the
    /// last of them), drops the rest from memory as a recorded change, and lowers the page end to the last kept.
    /// </summary>
    private void PageOut()
    {
        var dues = _wakes.Values.ToArray();
        Array.Sort(dues);
        var keep = Math.Max(1, (int)(_options.MaxWakeUpsInMemory * 0.9));
        var end = dues[Math.Min(keep, dues.Length) - 1];
        if (end >= _pageEnd)
        {
            return;
        }

        foreach (var (customer, _) in _wakes.Where(w => w.Value > end).ToList())
        {
            _wakes.Remove(customer);
            _changedWakes[customer] = 0;
            _pagedOut++;
        }

        _pageEnd = end;
        RebuildDue();
    }

    private void RebuildDue()
    {
        _due.Clear();
        foreach (var (customer, due) in _wakes)
        {
            _due.Enqueue(customer, due);
        }
    }

    /// <summary>
    /// The watermark passed the page end: every customer in memory and every stored one is asked for its wake-up (read
    /// only), within the in-flight bound, and the answers are held as any reported wake-up is, from a page end of
    /// <see cref="long.MaxValue"/> lowered by the bound as they come. Answers arrive in the order the customer handled
    /// its messages, so a change reported after an answer wins over it, and an answer after a change is newer still.
    /// Until the last answer, wake-ups after the old page end wait (so customers wake in due order), and checkpoints
    /// store the old page end: a crash meanwhile recovers the old page, and the page-in runs again.
    /// </summary>
    private void BeginPageIn()
    {
        _paging = true;
        _pagingFrom = _pageEnd;
        _pageEnd = long.MaxValue;
        foreach (var customer in _live.Keys)
        {
            _pageAsks.Enqueue(customer);
        }

        _log.Debug("partition {0}: wake-up page-in from {1}", _partition, new DateTime(_pagingFrom, DateTimeKind.Utc).ToString("O"));
        ListStoredCustomers();
        Drain();
    }

    /// <summary>Lists the stored customers in the background, a batch at a time, each batch once the one before is sent.</summary>
    private void ListStoredCustomers()
    {
        _pageListed = false;
        _pageListing?.Cancel();
        _pageListing?.Dispose();
        _pageListing = new CancellationTokenSource();
        var listing = ++_pageListingId;
        var ct = _pageListing.Token;
        var self = Self;
        var partition = _partition;
        var list = _options.StoredCustomers!;
        _ = Task.Run(async () =>
        {
            try
            {
                var batch = new List<string>(PageBatch);
                await foreach (var id in list(partition, ct).WithCancellation(ct).ConfigureAwait(false))
                {
                    batch.Add(id);
                    if (batch.Count == PageBatch)
                    {
                        await self.Ask<PageBatchTaken>(new PageCustomers(listing, batch, Last: false), null, ct).ConfigureAwait(false);
                        batch = new List<string>(PageBatch);
                    }
                }

                self.Tell(new PageCustomers(listing, batch, Last: true));
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // A newer listing, or the coordinator stopped.
            }
#pragma warning disable CA1031 // Reported to the coordinator, which lists again later.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                self.Tell(new PageListingFailed(listing, ex.Message));
            }
        });
    }

    private void OnPageCustomers(PageCustomers page)
    {
        if (page.Listing != _pageListingId || !_paging)
        {
            Sender.Tell(PageBatchTaken.Instance);
            return;
        }

        foreach (var customer in page.CustomerIds)
        {
            _pageAsks.Enqueue(customer);
        }

        if (page.Last)
        {
            _pageListed = true;
        }
        else
        {
            _pageLister = Sender;
        }

        Drain();
        CompletePageIn();
    }

    /// <summary>Asks one customer for its wake-up; a stored one not in memory is passivated again after answering.</summary>
    private void AskWakeUp(string customer)
    {
        _pageOutstanding++;
        _customers.Tell(new GetWakeUp(customer, _partition));
        if (!_live.ContainsKey(customer) && _known.Contains(KnownCustomers.Hash(customer)))
        {
            // Saved, so it saves nothing (a record sent to it later is saved before it stops: it is known).
            _customers.Tell(new PassivateCustomer(customer, _partition, _committedSeq + 1));
        }
    }

    private void OnPagedWakeUp(CustomerWakeUp answer)
    {
        _pageOutstanding--;
        if (!_waking.Contains(answer.CustomerId))
        {
            // Else the customer handled the ask before its wake-up, whose answer brings the newer one.
            SetWake(answer.CustomerId, answer.WakeTicks);
        }

        Drain();
        CompletePageIn();
    }

    /// <summary>Every customer answered: the page is complete, and what it holds may fire.</summary>
    private void CompletePageIn()
    {
        if (!_paging || !_pageListed || _pageAsks.Count > 0 || _pageOutstanding > 0)
        {
            return;
        }

        _paging = false;
        _pageIns++;
        _log.Debug("partition {0}: wake-up page-in done: {1} held, up to {2}", _partition, _wakes.Count, _pageEnd == long.MaxValue ? "all" : new DateTime(_pageEnd, DateTimeKind.Utc).ToString("O"));
        FireDue();
    }

    private void Count(EffectBundle effects)
    {
        foreach (var move in effects.Moves)
        {
            _population.Recounting = move.Recount;
            _population.Moved(move.Dimension, move.From, move.To);
        }

        _population.Recounting = false;
        foreach (var firing in effects.Fired)
        {
            _firings.Add(firing with { Partition = _partition });
            _population.CountRule(firing.Rule, "fired", TriggerNames.Of(firing.Delivery));
            if (firing.SuppressedBy is { } check)
            {
                _population.CountRule(firing.Rule, "suppressed", check);
            }
        }

        foreach (var conversion in effects.Converted)
        {
            _population.CountRule(conversion.Rule, "converted", TriggerNames.Of(conversion.Delivery));
        }
    }

    private void DeadLetter(PartitionRecord record, string code, string detail)
    {
        _deadLetters++;
        _listener.Tell(new DeadLettered(_partition, record.Topic, record.Offset, code, detail) { Key = record.Key, Value = record.Value });
    }

    private void BeginCheckpoint()
    {
        if (_barrierSeq != 0)
        {
            return;
        }

        Timers.Cancel(QuietCheckpointTimer);
        _barrierSeq = _committedSeq + 1;
        _awaitingFlush = true;
        _listener.Tell(new FlushDeadLetters(_partition, _barrierSeq));
    }

    private void OnFlushed(DeadLettersFlushed flushed)
    {
        if (flushed.Seq != _barrierSeq)
        {
            return;
        }

        _awaitingFlush = false;
        ContinueBarrier();
    }

    /// <summary>Once every answer is in and the dead letters are out: the changed customers save, then the partition.</summary>
    private void ContinueBarrier()
    {
        if (_barrierSeq == 0 || _awaitingFlush || _inFlight > 0 || _awaitingSaves > 0)
        {
            return;
        }

        if (_awaitingSaves == 0 && _dirty.Count > 0)
        {
            _awaitingSaves = _dirty.Count;
            var seq = _barrierSeq;
            MakeKnown(seq, _dirty, () =>
            {
                foreach (var customer in _dirty)
                {
                    _customers.Tell(new SaveCustomer(customer, _partition, seq) { Project = _options.CollectProjections });
                }
            });
            return;
        }

        PersistCheckpoint();
    }

    private void OnSaved(CustomerSaved saved)
    {
        _answers++;
        if (saved.Seq != _barrierSeq || _awaitingSaves == 0)
        {
            return;
        }

        if (saved.Projection is { } projection)
        {
            _projections.Add(projection);
        }

        if (--_awaitingSaves == 0)
        {
            PersistCheckpoint();
        }
    }

    private void PersistCheckpoint()
    {
        var seq = _barrierSeq;
        var changed = _dirty.ToList();
        var firings = _firings.ToList();
        var projections = _projections.ToList();
        _projections.Clear();
        var saved = new PartitionCheckpointed(seq, new Dictionary<string, long>(_nextOffsets, StringComparer.Ordinal), _maxEventTicks, _wallFloorTicks, _population.Serialize(), new Dictionary<string, long>(_changedWakes, StringComparer.Ordinal), _ruleVersion, firings, _run, new Dictionary<long, long>())
        {
            // While a page-in runs, the page it started from: a crash before it completes pages in again.
            PageEnd = _paging ? Math.Min(_pagingFrom, _pageEnd) : _pageEnd,
        };
        var asked = _options.Time.GetTimestamp();
        Persist(saved, e =>
        {
            _options.Persistence?.Persisted(PersistentActorKind.Partition, _options.Time.GetElapsedTime(asked));
            _committedSeq = e.Seq;
            _committedOffsets = new Dictionary<string, long>(e.NextOffsets, StringComparer.Ordinal);
            _lastFirings = firings;
            _runs[_run] = e.Seq;
            _dirty.Clear();
            _firings.Clear();
            _changedWakes.Clear();
            _barrierSeq = 0;
            _checkpoints++;
            if (firings.Count > 0)
            {
                _unstored[e.Seq] = firings.Count;
            }

            _listener.Tell(new CheckpointCompleted(_partition, e.Seq, e.NextOffsets, firings, changed) { RuleVersion = e.RuleVersion, NextRuleVersion = _switchTo ?? _ruleVersion, Projections = projections });
            SwitchAtBoundary();
            if (++_checkpointsSinceSnapshot >= _options.SnapshotEvery)
            {
                _checkpointsSinceSnapshot = 0;
                foreach (var old in _runs.Keys.Order().Take(Math.Max(0, _runs.Count - MaxRuns)).ToList())
                {
                    _runs.Remove(old);
                }

                SaveSnapshot(e with { Wakes = new Dictionary<string, long>(_wakes, StringComparer.Ordinal), Runs = new Dictionary<long, long>(_runs), Known = _known.ToArray() });
            }

            PassivateLeastRecent();
            FireDue();
            Drain();
        });
    }

    /// <summary>Per topic, the lowest offset still waiting for its customer's answer, or the next to send.</summary>
    private Dictionary<string, long> Processed()
    {
        var processed = new Dictionary<string, long>(_nextOffsets, StringComparer.Ordinal);
        foreach (var (topic, offset) in _pending.Keys)
        {
            if (offset < processed.GetValueOrDefault(topic, long.MaxValue))
            {
                processed[topic] = offset;
            }
        }

        return processed;
    }

    private void OnSwitchRules(SwitchRules switchTo)
    {
        _switchTo = switchTo.Version == _ruleVersion ? null : switchTo.Version;
        if (_switchTo is not null)
        {
            // A boundary now: an idle partition switches too.
            BeginCheckpoint();
        }
    }

    /// <summary>
    /// Right after a checkpoint: the partition takes the waiting rule set, and its customers in memory are re-derived
    /// under it (their re-counts are saved with the next checkpoint, which stores the new version). Customers not in
    /// memory are re-derived when a record or wake-up next reaches them.
    /// </summary>
    private void SwitchAtBoundary()
    {
        if (_switchTo is not { } version)
        {
            return;
        }

        _switchTo = null;
        _log.Info("partition {0}: rules {1} -> {2} at checkpoint {3}", _partition, _ruleVersion, version, _committedSeq);
        _ruleVersion = version;
        var clock = Clock(_maxEventTicks);
        foreach (var customer in _live.Keys)
        {
            _inFlight++;
            _advancing++;
            _customers.Tell(new Reevaluate(customer, _partition, clock) { Sequence = NextSequence(customer) });
        }
    }

    private void Touch(string customer)
    {
        if (_live.TryGetValue(customer, out var node))
        {
            if (node != _recent.First)
            {
                _recent.Remove(node);
                _recent.AddFirst(node);
            }

            return;
        }

        _live[customer] = _recent.AddFirst(customer);
    }

    /// <summary>
    /// Right after a checkpoint every customer is saved, so the least recently used beyond the bound can stop without a
    /// write; one that changes again before it stops saves under the next checkpoint's number, which its effects belong
    /// to. A message sent to it later starts it again (the shard buffers it meanwhile).
    /// </summary>
    private void PassivateLeastRecent()
    {
        if (_live.Count <= _options.MaxCachedCustomers)
        {
            return;
        }

        var keep = (int)(_options.MaxCachedCustomers * 0.9);
        var leaving = new List<string>();
        while (_live.Count > keep && _recent.Last is { } last)
        {
            _recent.RemoveLast();
            _live.Remove(last.Value);
            _sentTo.Remove(last.Value);
            _passivations++;
            leaving.Add(last.Value);
        }

        // A passivating customer saves if a record reaches it before it stops: known first, like any first save.
        var seq = _committedSeq + 1;
        MakeKnown(seq, leaving, () =>
        {
            foreach (var customer in leaving)
            {
                _customers.Tell(new PassivateCustomer(customer, _partition, seq));
            }
        });
    }

    /// <summary>
    /// Runs <paramref name="then"/> once every one of <paramref name="customers"/> is in the partition's durable
    /// <see cref="KnownCustomers"/>: at once when all are, else after persisting the new ones (commands wait meanwhile).
    /// </summary>
    private void MakeKnown(long seq, IEnumerable<string> customers, Action then)
    {
        var fresh = customers.Select(KnownCustomers.Hash).Where(h => !_known.Contains(h)).ToArray();
        if (fresh.Length == 0)
        {
            then();
            return;
        }

        var asked = _options.Time.GetTimestamp();
        Persist(new CustomersKnown(seq, fresh), e =>
        {
            _options.Persistence?.Persisted(PersistentActorKind.Partition, _options.Time.GetElapsedTime(asked));
            _known.Add(e.Hashes);
            then();
        });
    }

    private void AbortCheckpoint(string reason)
    {
        var seq = _barrierSeq;
        _log.Error("partition {0}: checkpoint {1} failed: {2}", _partition, seq, reason);
        _listener.Tell(new CheckpointFailed(_partition, seq, reason));

        // A customer whose save failed stopped and lost its unsaved changes: the partition must be re-read from its
        // committed offsets. Stopped, not restarted: a restart would keep the mailbox, whose records follow the lost ones.
        // The ingestion stage starts a new coordinator, which recovers the committed state, and seeks.
        Context.Stop(Self);
    }

    /// <summary>The partition cannot go on from here: reported to the listener, then this coordinator stops (see <see cref="AbortCheckpoint"/>).</summary>
    private void Fail(string reason)
    {
        _log.Error("partition {0}: {1}; it restarts from its last checkpoint", _partition, reason);
        _listener.Tell(new PartitionFailed(_partition, reason));
        Context.Stop(Self);
    }
}
