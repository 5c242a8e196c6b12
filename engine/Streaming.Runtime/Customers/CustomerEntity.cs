using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Event;
using Akka.Persistence;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;
using Streaming.Runtime.Rules;
using Streaming.Runtime.Telemetry;

namespace Streaming.Runtime.Customers;

/// <summary>Settings of customer entities.</summary>
public sealed record CustomerEntityOptions
{
    /// <summary>Options of the customer core (recent event ids kept for de-duplication).</summary>
    public ActorOptions Actor { get; init; } = new();

    /// <summary>
    /// Each journal event holds the customer's whole state, so the journal before the last one is dead weight: every
    /// time the sequence number reaches a multiple of this, events before the latest are deleted. Recovery then reads at
    /// most this many events and no snapshot store; a customer never saved costs one query (its highest sequence number).
    /// </summary>
    public int CompactEvery { get; init; } = 16;

    /// <summary>
    /// The node's known customers: an entity started by its partition's shard (the shard id is the partition) whose
    /// customer is surely new skips recovery (<see cref="Recovery.None"/>; the runtime's journal answers that without a
    /// query for customer entities). Null: every entity recovers.
    /// </summary>
    public KnownCustomerRegistry? Known { get; init; }

    /// <summary>Told each save's latency, each recovery's duration and each failed save (null: not measured).</summary>
    public IPersistenceObserver? Persistence { get; init; }

    /// <summary>The clock the latencies told to <see cref="Persistence"/> are measured with.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>
    /// Told, on the entity's thread (it must not block), the projection of each save no checkpoint collects: when the
    /// shard hands the customer off to another node, or passivates it with changes. A mirror ordering writes by customer
    /// version takes these too, so the state a node saved last reaches it even if the next owner never changes the
    /// customer. Null: nobody is told.
    /// </summary>
    public Action<CustomerProjection>? SavedOutsideCheckpoint { get; init; }
}

/// <summary>
/// The journal event of a customer: its whole state at checkpoint <paramref name="Seq"/> (one event per changed
/// customer per checkpoint, so the journal batches writes across customers), the next input offset per topic it has
/// applied (a record below is a duplicate), and the effects it saved that no checkpoint has confirmed yet.
/// </summary>
/// <param name="State">The state encoded by <see cref="CustomerStateCodec"/>.</param>
/// <param name="ReportedRun">The coordinator run that last received <paramref name="Unconfirmed"/> (0: none).</param>
/// <param name="SequenceRun">The coordinator run of the last numbered message the state reflects (<see cref="ApplyRecord.Sequence"/>; 0: none).</param>
/// <param name="Sequence">That message's number: the next incarnation takes that run's messages from the one after it.</param>
/// <param name="Partition">
/// The Kafka partition whose checkpoint <paramref name="Seq"/> saved the customer (-1 in events written before it was
/// recorded): with <paramref name="Seq"/> it names that checkpoint, which the Redis mirror's catch-up maps to the node's
/// checkpoint number.
/// </param>
public sealed record CustomerCheckpointed(long Seq, byte[] State, IReadOnlyDictionary<string, long> NextOffsets, long ReportedRun, IReadOnlyList<EffectBundle> Unconfirmed, long SequenceRun = 0, int Sequence = 0, int Partition = -1);

/// <summary>The lifecycle of a customer entity (as akka.net's own shard keeps its entities' states explicit).</summary>
public enum EntityPhase
{
    /// <summary>Recovering from the journal; commands wait.</summary>
    Loading,

    /// <summary>Serving commands.</summary>
    Active,

    /// <summary>Asked its shard to stop it; still saves anything that arrives before the stop.</summary>
    Passivating,
}

/// <summary>
/// One customer, an Akka.Cluster.Sharding entity (entity id: the customer id; shard id: its Kafka partition). It runs
/// the pure customer core on each record and wake-up, all or nothing, and persists through Akka.Persistence only at
/// checkpoint barriers, one event for all its changes since the last one.
/// </summary>
/// <remarks>
/// <para>Effectively once: the state carries the next offset it has applied per input topic, so a record redelivered
/// after a crash (offsets are committed only after a checkpoint) is a duplicate.</para>
/// <para>Effects (stage moves, firings, conversions) are saved with the state that caused them. Until a message shows
/// that a checkpoint at or after theirs completed (<see cref="PartitionClock.CommittedSeq"/>), they are reported again,
/// once, to each new coordinator run: a crash between this save and the partition's checkpoint loses no count and no
/// firing, and the coordinator never receives them twice in one run.</para>
/// <para>Time: each message carries the partition's watermark; wake-ups due by then run before the message's own change,
/// each at its own instant, so the result does not depend on when the coordinator's wake-up arrives.</para>
/// </remarks>
public sealed class CustomerEntity : PersistentActor
{
    /// <summary>The persistence id of every customer entity starts with this (then the customer id).</summary>
    public const string PersistencePrefix = "customer-";

    private readonly string _customerId;
    private string? _persistenceId;
    private readonly CustomerEntityOptions _options;
    private readonly RuleBook _rules;

    /// <summary>
    /// The next input offset applied per topic: a record below it is a duplicate. A customer reads a few input topics, so
    /// a short array searched in order (a dictionary held about 270 bytes per cached customer for one or two topics).
    /// </summary>
    private (string Topic, long Next)[] _nextOffsets = [];

    /// <summary>The partition has never saved this customer: nothing to recover.</summary>
    private readonly bool _new;

    /// <summary>The partition the parent shard stands for (its name), or -1 outside a shard (tests).</summary>
    private readonly int _shard;

    /// <summary>
    /// The core's change runner of this thread: a message is handled start to end on one thread, so entities share one
    /// per thread instead of each keeping its own undo copy of a customer.
    /// </summary>
    [ThreadStatic]
    private static CustomerChange? t_change;
    private ILoggingAdapter? _log;
    private CustomerState? _state;

    /// <summary>Effects since the last save.</summary>
    private EffectBundle _unsaved = EffectBundle.Empty;

    /// <summary>Saved effects that no completed checkpoint covers yet, oldest first.</summary>
    private List<EffectBundle> _unconfirmed = [];
    /// <summary>The coordinator run that has counted every effect this entity holds (0: none yet).</summary>
    private long _reportedRun;

    /// <summary>Effects for the next answer: collected on the first message of a new run.</summary>
    private EffectBundle[] _toReport = [];
    private bool _dirty;

    /// <summary>The partition's last completed checkpoint, as the last clock said.</summary>
    private long _lastCommitted;

    /// <summary>The shard (Kafka partition) of the customer, from the last command.</summary>
    private int _partition = -1;

    /// <summary>When this incarnation started (its recovery's duration is measured from here).</summary>
    private readonly long _startedAt;

    /// <summary>
    /// The coordinator run whose numbered messages this incarnation handled, and the last number it handled; recovered
    /// from the last save, so an incarnation after a clean stop (which saves first) goes on where the last one was.
    /// </summary>
    private long _sequenceRun;
    private int _sequence;

    /// <summary>The progress (<see cref="_sequenceRun"/>, <see cref="_sequence"/>) the journal holds.</summary>
    private (long Run, int Sequence) _savedSequence;

    /// <summary>An entity for <paramref name="customerId"/>; state is recovered from the journal.</summary>
    public CustomerEntity(string customerId, CustomerEntityOptions options, RuleBook rules)
    {
        _customerId = customerId;
        _options = options;
        _rules = rules;
        _startedAt = options.Persistence is null ? 0 : options.Time.GetTimestamp();

        // Akka.Cluster.Sharding names an entity's parent after its shard, which is the customer's partition.
        _shard = int.TryParse(Context.Parent.Path.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var partition) ? partition : -1;
        _new = options.Known is { } known && _shard >= 0 && known.IsNew(_shard, customerId);
    }

    private static CustomerChange Change => t_change ??= new CustomerChange();

    private ILoggingAdapter Logger => _log ??= Context.GetLogger();

    /// <inheritdoc />
    /// <remarks>Built once: Akka.Persistence reads it for every event, every journal request and every log line.</remarks>
    public override string PersistenceId => _persistenceId ??= PersistencePrefix + _customerId;

    /// <inheritdoc />
    /// <remarks>
    /// No snapshot store: the latest journal event is the whole state (see <see cref="CustomerEntityOptions.CompactEvery"/>).
    /// None at all for a customer its partition has never saved (<see cref="CustomerEntityOptions.Known"/>).
    /// </remarks>
    public override Recovery Recovery => _new ? Recovery.None : NoSnapshot;

    private static readonly Recovery NoSnapshot = new(SnapshotSelectionCriteria.None);

    /// <summary>Where the entity is in its lifecycle.</summary>
    public EntityPhase Phase { get; private set; } = EntityPhase.Loading;

    /// <summary>Props for <paramref name="customerId"/> (the sharding entity factory).</summary>
    /// <remarks>
    /// Through a producer, not <c>Props.Create(() =&gt; new …)</c>: that form reads the expression's arguments by
    /// reflection and builds the actor through the activator, which for one entity per customer cost about a tenth of
    /// the runtime's CPU (measured with dotnet-trace over 30,000 new customers). In <see cref="CustomerMailbox"/>, which
    /// the actor system must define (<see cref="CustomerMailbox.Hocon"/>).
    /// </remarks>
    public static Props Props(string customerId, CustomerEntityOptions options, RuleBook rules) =>
        Akka.Actor.Props.CreateBy(new Producer(customerId, options, rules)).WithMailbox(CustomerMailbox.Id);

    /// <summary>The next offset of <paramref name="topic"/> this customer has applied (0: none of it).</summary>
    private long NextOffset(string topic)
    {
        foreach (var (t, next) in _nextOffsets)
        {
            if (string.Equals(t, topic, StringComparison.Ordinal))
            {
                return next;
            }
        }

        return 0;
    }

    private void SetNextOffset(string topic, long next)
    {
        for (var i = 0; i < _nextOffsets.Length; i++)
        {
            if (string.Equals(_nextOffsets[i].Topic, topic, StringComparison.Ordinal))
            {
                _nextOffsets[i].Next = next;
                return;
            }
        }

        _nextOffsets = [.. _nextOffsets, (topic, next)];
    }

    private void Restore(CustomerCheckpointed saved)
    {
        _state = CustomerStateCodec.Decode(_customerId, saved.State);
        _nextOffsets = [.. saved.NextOffsets.Select(o => (o.Key, o.Value))];

        _reportedRun = saved.ReportedRun;
        _unconfirmed = [.. saved.Unconfirmed];
        _sequenceRun = saved.SequenceRun;
        _sequence = saved.Sequence;
        _savedSequence = (saved.SequenceRun, saved.Sequence);
    }

    /// <inheritdoc />
    protected override bool ReceiveRecover(object message)
    {
        switch (message)
        {
            case CustomerCheckpointed saved:
                Restore(saved);
                return true;
            case RecoveryCompleted:
                Phase = EntityPhase.Active;
                _options.Persistence?.Recovered(PersistentActorKind.Customer, _options.Time.GetElapsedTime(_startedAt));
                return true;
            default:
                return false;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// A passivating entity serves the same commands: messages sent before the shard saw the request still arrive, and
    /// what they change is saved before the stop (the shard buffers anything later and starts the entity again).
    /// Pattern matching rather than typed <c>Command&lt;T&gt;</c> handlers: those are compiled per actor instance, which
    /// for a short-lived entity per customer cost more than its whole first record.
    /// </remarks>
    protected override bool ReceiveCommand(object message)
    {
        switch (message)
        {
            case ApplyRecord m:
                OnRecord(m);
                return true;
            case WakeUp m:
                OnAdvance(m.Sequence, m.Clock, m.Partition);
                return true;
            case Reevaluate m:
                OnAdvance(m.Sequence, m.Clock, m.Partition);
                return true;
            case SaveCustomer m:
                var asker = Sender;
                Save(m.Seq, saved => asker.Tell(m.Project && _state is { } state ? saved with { Projection = CustomerProjection.From(state, _partition) with { Version = LastSequenceNr } } : saved));
                return true;
            case GetCustomer m:
                Sender.Tell(new CustomerFound(_customerId, m.Partition, Copy()));
                if (_state is null && !_dirty && _sequence == 0 && Phase == EntityPhase.Active)
                {
                    // A read of an unknown customer leaves nothing in memory (reads of made-up ids cannot fill it). Not
                    // one its coordinator has numbered messages to (a first record that failed): a new incarnation would
                    // refuse the coordinator's next message as a gap; the coordinator's bound passivates it instead.
                    Phase = EntityPhase.Passivating;
                    Context.Parent.Tell(new Passivate(StopEntity.Instance));
                }

                return true;
            case GetWakeUp m:
                Sender.Tell(new CustomerWakeUp(_customerId, m.Partition, _state?.WakeTicks ?? 0));
                if (_state is null && !_dirty && _sequence == 0 && Phase == EntityPhase.Active)
                {
                    // As for a read: an unknown customer leaves nothing in memory.
                    Phase = EntityPhase.Passivating;
                    Context.Parent.Tell(new Passivate(StopEntity.Instance));
                }

                return true;
            case PassivateCustomer m:
                OnPassivate(m);
                return true;

            // The shard hands the customer off (its partition moved to another node): what changed since the last
            // checkpoint is saved under the next checkpoint's number, so the new owner reports it once as recovered.
            case StopEntity:
                Save(
                    _lastCommitted + 1,
                    saved =>
                    {
                        SavedOutsideCheckpoint(saved);
                        Context.Stop(Self);
                    },
                    outsideCheckpoint: true);
                return true;
            case DeleteMessagesSuccess:
                return true;
            case DeleteMessagesFailure f:
                Logger.Warning("customer {0}: journal clean-up failed: {1}", _customerId, f.Cause.Message);
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// Checks a numbered message (<see cref="ApplyRecord.Sequence"/>) before anything else, so a refused one changes
    /// nothing, not even which coordinator run the entity reports to: true, answered <see cref="ChangeOutcome.Gap"/>,
    /// when this incarnation has not handled the message before it in the same run (it restarted and lost what that one
    /// changed).
    /// </summary>
    private bool Refused(int sequence, PartitionClock clock, int partition, string? topic, long offset)
    {
        if (sequence <= 0)
        {
            return false;
        }

        if (sequence != 1 && (clock.Run != _sequenceRun || sequence != _sequence + 1))
        {
            var refusal = $"message {sequence} of coordinator run {clock.Run} ({(topic is null ? "a wake-up" : $"record {topic}@{offset}")}), but this entity handled {_sequence} of run {_sequenceRun}";
            Logger.Warning("customer {0}: {1}: refused", _customerId, refusal);

            // Not through Changed: effects waiting to be reported stay for the coordinator run that will count them.
            Reply(new CustomerChanged(_customerId, partition, offset, ChangeOutcome.Gap, refusal, _state?.WakeTicks ?? 0, 0, 0, EffectBundle.Empty, [], _state is not null, false) { Topic = topic });
            return true;
        }

        _sequenceRun = clock.Run;
        _sequence = sequence;
        return false;
    }

    /// <summary>A wake-up or re-evaluation: both re-derive under the clock's rule set and run the wake-ups it has passed.</summary>
    private void OnAdvance(int sequence, PartitionClock clock, int partition)
    {
        if (!Refused(sequence, clock, partition, null, -1))
        {
            var advanced = RunAdvance(clock);
            Reply(Changed(-1, advanced.Failure is null ? ChangeOutcome.Advanced : ChangeOutcome.Failed, advanced.Failure, advanced.Effects, advanced.Fired, advanced.Late));
        }
    }

    private void OnRecord(ApplyRecord m)
    {
        if (Refused(m.Sequence, m.Clock, m.Partition, m.Topic, m.Offset))
        {
            return;
        }

        Confirm(m.Clock);
        if (m.Offset < NextOffset(m.Topic))
        {
            Reply(Changed(m.Offset, ChangeOutcome.Duplicate, null, EffectBundle.Empty, 0, 0, m.Topic));
            return;
        }

        // Time first: wake-ups due by the watermark this record was sent under run before it, as they would have had
        // the coordinator's wake-up arrived first.
        var advanced = RunAdvance(m.Clock);
        var rules = _rules.Get(m.Clock.RuleVersion);
        var fresh = _state is null;
        var state = _state ?? new CustomerState(_customerId);
        if (!Change.TryApply(state, m.Event, fresh, _options.Actor, rules, out var result, out var failure))
        {
            Reply(Changed(m.Offset, ChangeOutcome.Failed, failure, advanced.Effects, advanced.Fired, advanced.Late, m.Topic));
            return;
        }

        _state = state;
        SetNextOffset(m.Topic, m.Offset + 1);
        _dirty = true;
        var effects = EffectBundle.From(Change.Effects);
        _unsaved = _unsaved.Then(effects);
        var outcome = result == ApplyResult.Duplicate ? ChangeOutcome.Duplicate : ChangeOutcome.Applied;
        Reply(Changed(m.Offset, outcome, null, advanced.Effects.Then(effects), advanced.Fired, advanced.Late, m.Topic));
    }

    /// <summary>
    /// Re-derives the customer under the clock's rule set when it was last derived under another (the partition switched
    /// while it was not in memory, or a <see cref="Reevaluate"/>), then runs the wake-ups due by the clock's watermark;
    /// the result describes what both did (the answer is built from it once, with the message's own change).
    /// </summary>
    private Advanced RunAdvance(PartitionClock clock)
    {
        Confirm(clock);
        var rederived = Rederive(clock);
        if (_state is not { WakeTicks: > 0 } state || state.WakeTicks > clock.WatermarkTicks)
        {
            return new Advanced(rederived, 0, 0, null);
        }

        if (!Change.TryAdvance(state, clock.WatermarkTicks, clock.LateBeforeTicks, _rules.Get(clock.RuleVersion), out var fired, out var late, out var failure))
        {
            // The customer keeps its state and this wake-up is dropped (its next event derives a new one), so a failing
            // rule cannot hold the partition in a loop.
            Logger.Warning("customer {0}: wake-up failed: {1}", _customerId, failure);
            state.WakeTicks = 0;
            _dirty = true;
            return new Advanced(rederived, 0, 0, failure ?? "wake-up failed");
        }

        _dirty = true;
        var effects = EffectBundle.From(Change.Effects);
        _unsaved = _unsaved.Then(effects);
        return new Advanced(rederived.Then(effects), fired, late, null);
    }

    /// <summary>What a re-derivation and the wake-ups due ran: their effects, wake-ups run and late ones, and why they failed (null: they did not).</summary>
    private readonly record struct Advanced(EffectBundle Effects, int Fired, int Late, string? Failure);

    /// <summary>Re-derives the customer under the clock's rule set if it differs; its stage moves are re-counts.</summary>
    private EffectBundle Rederive(PartitionClock clock)
    {
        if (_state is not { } state || state.RuleVersion == clock.RuleVersion)
        {
            return EffectBundle.Empty;
        }

        if (!Change.TryReevaluate(state, clock.WatermarkTicks, _rules.Get(clock.RuleVersion), out var failure))
        {
            Logger.Warning("customer {0}: re-evaluation under rules {1} failed: {2}", _customerId, clock.RuleVersion, failure);
            return EffectBundle.Empty;
        }

        _dirty = true;
        var effects = EffectBundle.From(Change.Effects).AsRecount();
        _unsaved = _unsaved.Then(effects);
        return effects;
    }

    private void OnPassivate(PassivateCustomer m)
    {
        Save(m.Seq, saved =>
        {
            SavedOutsideCheckpoint(saved);
            Phase = EntityPhase.Passivating;
            Sender.Tell(new CustomerPassivated(_customerId, m.Partition));
            Context.Parent.Tell(new Passivate(StopEntity.Instance));
        });
    }

    /// <summary>Hands a save no checkpoint collects to <see cref="CustomerEntityOptions.SavedOutsideCheckpoint"/>, if it wrote.</summary>
    private void SavedOutsideCheckpoint(CustomerSaved saved)
    {
        if (saved.Written && _state is { } state && _options.SavedOutsideCheckpoint is { } tell)
        {
            tell(CustomerProjection.From(state, _partition) with { Version = LastSequenceNr });
        }
    }

    /// <summary>Persists the changes since the last save under checkpoint <paramref name="seq"/>, then calls <paramref name="done"/>.</summary>
    /// <param name="outsideCheckpoint">
    /// A save that neither a checkpoint nor the coordinator's passivation asked for (the shard stops the entity), so the
    /// customer may be missing from the partition's known customers: it is recorded on the node first, so that the next
    /// incarnation here reads the journal instead of starting empty.
    /// </param>
    private void Save(long seq, Action<CustomerSaved> done, bool outsideCheckpoint = false)
    {
        // Messages that changed nothing (duplicates, wake-ups with nothing due) still move the numbering: saved too, else
        // the next incarnation would take the coordinator's next message for a gap.
        if ((!_dirty && _savedSequence == (_sequenceRun, _sequence)) || _state is null)
        {
            done(new CustomerSaved(_customerId, _partition, seq, Written: false));
            return;
        }

        // Unsaved effects were counted live by the run that last messaged the customer: that run's checkpoint confirms them.
        var unconfirmed = _unsaved.IsEmpty ? _unconfirmed : [.. _unconfirmed, _unsaved with { Seq = seq, Run = _reportedRun }];
        var saved = new CustomerCheckpointed(seq, CustomerStateCodec.Encode(_state), _nextOffsets.ToDictionary(o => o.Topic, o => o.Next, StringComparer.Ordinal), _reportedRun, unconfirmed, _sequenceRun, _sequence, _partition);
        if (outsideCheckpoint && _shard >= 0)
        {
            _options.Known?.SavedOutsideCheckpoint(_shard, _customerId);
        }

        var asked = _options.Persistence is null ? 0 : _options.Time.GetTimestamp();
        Persist(saved, e =>
        {
            _options.Persistence?.Persisted(PersistentActorKind.Customer, _options.Time.GetElapsedTime(asked));
            _savedSequence = (e.SequenceRun, e.Sequence);
            _dirty = false;
            _unsaved = EffectBundle.Empty;
            _unconfirmed = [.. e.Unconfirmed];
            done(new CustomerSaved(_customerId, _partition, seq, Written: true));
            if (LastSequenceNr % _options.CompactEvery == 0)
            {
                // By sequence number, not saves since start: a customer passivated after every few saves is compacted too.
                DeleteMessages(LastSequenceNr - 1);
            }
        });
    }

    /// <inheritdoc />
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        // Akka stops an entity whose write failed; its changes since the last save are redone from the uncommitted
        // Kafka offsets, and the checkpoint that asked for the save never completes.
        SaveFailed(cause, @event, sequenceNr, PersistenceFailure.Failed);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    /// <inheritdoc />
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        SaveFailed(cause, @event, sequenceNr, PersistenceFailure.Rejected);
        base.OnPersistRejected(cause, @event, sequenceNr);
    }

    /// <summary>Logs and counts a failed or rejected save, and tells whoever asked for it (the checkpoint fails).</summary>
    private void SaveFailed(Exception cause, object @event, long sequenceNr, PersistenceFailure failure)
    {
        Logger.Error(cause, "customer {0}: save {1} {2}", _customerId, sequenceNr, failure == PersistenceFailure.Failed ? "failed" : "rejected");
        _options.Persistence?.Failed(PersistentActorKind.Customer, failure);
        if (@event is CustomerCheckpointed saved)
        {
            Sender.Tell(new CustomerSaveFailed(_customerId, _partition, saved.Seq, cause.Message));
        }
    }

    /// <summary>
    /// Drops saved effects a completed checkpoint covers, and on the first message of a new coordinator run collects
    /// every effect that run has not counted: the saved ones no completed checkpoint covers, and the unsaved ones an
    /// earlier run counted live (the new run restarted from its last checkpoint, and the records that caused them now
    /// arrive as duplicates). Effects handed to a new run belong to it from then on: they are relabelled with its run and
    /// its next checkpoint.
    /// </summary>
    private void Confirm(PartitionClock clock)
    {
        _lastCommitted = Math.Max(_lastCommitted, clock.CommittedSeq);
        if (_unconfirmed.Count > 0)
        {
            _unconfirmed.RemoveAll(b => b.ConfirmedBy(clock.Run, clock.CommittedSeq, clock.Completed));
        }

        if (_reportedRun == clock.Run)
        {
            return;
        }

        _reportedRun = clock.Run;
        if (_unconfirmed.Count > 0 || !_unsaved.IsEmpty)
        {
            _toReport = _unsaved.IsEmpty ? [.. _unconfirmed] : [.. _unconfirmed, _unsaved];
            _unconfirmed = [.. _unconfirmed.Select(b => b.TakenBy(clock.Run, clock.CommittedSeq + 1))];
            _dirty = true; // The run that took them must be saved, or a reload in this run would report them again.
        }
    }

    /// <summary>An answer; effects the coordinator's run has not counted go with its first one (see <see cref="Confirm"/>).</summary>
    private CustomerChanged Changed(long offset, ChangeOutcome outcome, string? failure, EffectBundle effects, int fired, int late, string? topic = null)
    {
        var recovered = _toReport;
        _toReport = [];
        return new CustomerChanged(_customerId, _partition, offset, outcome, failure, _state?.WakeTicks ?? 0, fired, late, effects, recovered, _state is not null, _dirty) { Topic = topic };
    }

    private void Reply(CustomerChanged changed) => Sender.Tell(changed);

    /// <inheritdoc />
    protected override bool AroundReceive(Receive receive, object message)
    {
        if (message is ICustomerCommand command)
        {
            _partition = command.Partition;
        }

        return base.AroundReceive(receive, message);
    }

    private CustomerState? Copy()
    {
        if (_state is null)
        {
            return null;
        }

        var copy = new CustomerState(_customerId);
        copy.CopyFrom(_state);
        return copy;
    }

    private sealed class Producer(string customerId, CustomerEntityOptions options, RuleBook rules) : IIndirectActorProducer
    {
        public Type ActorType => typeof(CustomerEntity);

        public ActorBase Produce() => new CustomerEntity(customerId, options, rules);

        public void Release(ActorBase actor)
        {
        }
    }

    /// <summary>The message the shard sends to stop the entity: after a passivation request, or at a hand-off.</summary>
    public sealed class StopEntity
    {
        /// <summary>The one instance.</summary>
        public static StopEntity Instance { get; } = new();

        private StopEntity()
        {
        }
    }
}
