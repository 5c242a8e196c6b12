using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;

namespace Streaming.Runtime.Partitions;

/// <summary>
/// One input record of the coordinator's partition, decoded by the ingestion stage: either an event or the reason it
/// could not be decoded (then it is only dead-lettered and its offset counted).
/// </summary>
/// <param name="Topic">The input topic's name.</param>
/// <param name="Offset">The record's offset in its topic partition.</param>
/// <param name="Event">The decoded event, or null when <paramref name="Rejected"/> says why not.</param>
/// <param name="Rejected">The decoder's verdict for a record that is dead-lettered without reaching a customer.</param>
public sealed record PartitionRecord(string Topic, long Offset, CustomerEvent? Event, DecodeError? Rejected = null)
{
    /// <summary>The record's key as read (kept so a dead letter carries it); null when not kept.</summary>
    public byte[]? Key { get; init; }

    /// <summary>The record's value as read (kept so a dead letter carries it); null when not kept.</summary>
    public byte[]? Value { get; init; }

    /// <summary>When the broker appended the record (UTC ticks; 0: unknown), for the processing latency.</summary>
    public long AppendedTicks { get; init; }
}

/// <summary>Start a checkpoint now (the ingestion stage sends it every N records or every interval).</summary>
public sealed record CheckpointNow
{
    /// <summary>The one instance.</summary>
    public static CheckpointNow Instance { get; } = new();

    /// <summary>
    /// The last checkpoint before the partition leaves this node: records received but not yet sent to their customers
    /// are dropped (the checkpoint's offsets end before them, so the next owner reads them), so the hand-off does not
    /// wait for a backlog.
    /// </summary>
    public static CheckpointNow Final { get; } = new() { Leaving = true };

    /// <summary>See <see cref="Final"/>.</summary>
    public bool Leaving { get; private init; }
}

/// <summary>
/// Hybrid time: the partition has been quiet, so its watermark may follow the wall clock (UTC ticks, minus the
/// allowed lateness) and timers still fire. Never moves the watermark back.
/// </summary>
public sealed record AdvanceIdle(long WallTicks);

/// <summary>A record the partition dead-letters, with the reason (code as in CONTRACTS.md dead letters).</summary>
public sealed record DeadLettered(int Partition, string Topic, long Offset, string Code, string Detail)
{
    /// <summary>The source record's key, when the ingestion stage kept it.</summary>
    public byte[]? Key { get; init; }

    /// <summary>The source record's value, when the ingestion stage kept it.</summary>
    public byte[]? Value { get; init; }
}

/// <summary>
/// Asked of the listener at the checkpoint barrier: answer <see cref="DeadLettersFlushed"/> once every dead letter
/// reported so far is on the broker. A checkpoint never covers a dead letter the broker has not acknowledged.
/// </summary>
public sealed record FlushDeadLetters(int Partition, long Seq);

/// <summary>The listener's answer to <see cref="FlushDeadLetters"/>.</summary>
public sealed record DeadLettersFlushed(int Partition, long Seq);

/// <summary>
/// Checkpoint <paramref name="Seq"/> of the partition is durable: every customer changed before it is saved and the
/// partition's own state (offsets, clock, timers, population) is persisted. The listener now commits
/// <paramref name="NextOffsets"/> to Kafka and publishes <paramref name="Firings"/> (at least once; ids are stable).
/// </summary>
public sealed record CheckpointCompleted(int Partition, long Seq, IReadOnlyDictionary<string, long> NextOffsets, IReadOnlyList<TriggerFiring> Firings, IReadOnlyList<string> ChangedCustomers)
{
    /// <summary>
    /// Sent by a coordinator that just recovered: its last checkpoint again, whose firings may not have been handed on
    /// before the crash (they must be handed on again, and are duplicates where they were).
    /// </summary>
    public bool Recovered { get; init; }

    /// <summary>The rule version the checkpoint's customers were derived under.</summary>
    public string RuleVersion { get; init; } = "";

    /// <summary>
    /// The rule version the partition's later checkpoints carry: a switch waiting for this boundary is taken right after
    /// it (empty: <see cref="RuleVersion"/>).
    /// </summary>
    public string NextRuleVersion { get; init; } = "";

    /// <summary>
    /// The projections of the customers the checkpoint saved, as saved (only when the coordinator collects them,
    /// <see cref="PartitionCoordinatorOptions.CollectProjections"/>; empty otherwise).
    /// </summary>
    public IReadOnlyList<CustomerProjection> Projections { get; init; } = [];
}

/// <summary>
/// A rule sweep's next customers of this partition (stored ones, in memory or not): each not in memory is sent a
/// <see cref="Customers.Reevaluate"/> under the partition's rule set, after the records waiting and within the in-flight
/// bound. Answered with <see cref="SweepSent"/> once all are sent (the sweep's back-pressure).
/// </summary>
public sealed record SweepCustomers(IReadOnlyList<string> CustomerIds);

/// <summary>The answer to <see cref="SweepCustomers"/>: every customer of it was sent its re-evaluation (or is in memory).</summary>
/// <param name="Sent">Re-evaluations sent for the sweep's customers.</param>
/// <param name="CoveredBy">
/// The partition checkpoint that saves every re-evaluation sent so far: once this coordinator's committed checkpoint
/// reaches it, they are durable (the one running, or the next: a checkpoint waits for the answers sent before it).
/// </param>
public sealed record SweepSent(int Sent, long CoveredBy = 0);

/// <summary>The listener's answer to <see cref="CheckpointCompleted"/>: its firings are in the outbox.</summary>
public sealed record FiringsStored(int Partition, long Seq);

/// <summary>A checkpoint could not complete (a customer's save failed); nothing of it is committed.</summary>
public sealed record CheckpointFailed(int Partition, long Seq, string Reason);

/// <summary>
/// The partition's coordinator stopped because its state can no longer be trusted past its last checkpoint (a customer
/// refused a record: <see cref="Customers.ChangeOutcome.Gap"/>); the ingestion stage restarts the partition from it.
/// </summary>
public sealed record PartitionFailed(int Partition, string Reason);

/// <summary>Asks the coordinator for its counters. Answered with <see cref="PartitionStatus"/>.</summary>
public sealed record GetPartitionStatus
{
    /// <summary>The one instance.</summary>
    public static GetPartitionStatus Instance { get; } = new();
}

/// <summary>What a coordinator knows of its partition.</summary>
/// <param name="WatermarkTicks">The confirmed watermark (UTC ticks; 0 before the first event).</param>
/// <param name="CommittedSeq">The last durable checkpoint.</param>
/// <param name="Timers">Wake-ups held in memory: every pending one due by the page end (<see cref="PartitionStatus.WakeUpPageEndTicks"/>; all while nothing is paged out).</param>
/// <param name="InFlight">Messages sent to customers and not yet answered (a wake-up page-in's asks included).</param>
/// <param name="Waiting">Records received and not yet sent (barrier up or in-flight bound reached).</param>
public sealed record PartitionStatus(int Partition, long WatermarkTicks, long MaxEventTicks, long CommittedSeq, int Timers, int InFlight, int Waiting, long TimersFired, long DeadLetters, IReadOnlyDictionary<(string Dimension, string Value), long> Counts)
{
    /// <summary>Customers of the partition the coordinator keeps in memory (sent to and not passivated).</summary>
    public int Cached { get; init; }

    /// <summary>Customers passivated by the coordinator's bound since it started.</summary>
    public long Passivations { get; init; }

    /// <summary>The next offset per input topic that the last completed checkpoint covers (where consumption resumes).</summary>
    public IReadOnlyDictionary<string, long> CommittedOffsets { get; init; } = new Dictionary<string, long>();

    /// <summary>
    /// The next offset per input topic below which every record has been applied (answered by its customer or
    /// dead-lettered): what the partition's state reflects now, saved or not.
    /// </summary>
    public IReadOnlyDictionary<string, long> ProcessedOffsets { get; init; } = new Dictionary<string, long>();

    /// <summary>
    /// Firings evaluated and not yet in the outbox (unsaved, or saved and not yet handed on), plus wake-ups running
    /// (each may fire): 0 means every firing of the records processed so far is in the outbox.
    /// </summary>
    public int PendingFirings { get; init; }

    /// <summary>Records this coordinator run sent that changed their customer.</summary>
    public long Applied { get; init; }

    /// <summary>Records this coordinator run sent that their customer already had.</summary>
    public long Duplicates { get; init; }

    /// <summary>Checkpoints this coordinator run completed.</summary>
    public long Checkpoints { get; init; }

    /// <summary>Wake-ups this run ran late (after <see cref="PartitionCoordinatorOptions.LateTimerAfter"/>).</summary>
    public long LateTimersFired { get; init; }

    /// <summary>Wake-ups this run whose evaluation failed (a rule that throws, an overflow): dropped, the customer kept its state.</summary>
    public long FailedWakeUps { get; init; }

    /// <summary>The rule set the partition evaluates with.</summary>
    public string RuleVersion { get; init; } = "";

    /// <summary>Wake-up page-ins this coordinator run completed (each asked the partition's customers for their wake-ups).</summary>
    public long WakeUpPageIns { get; init; }

    /// <summary>Wake-ups this run dropped from memory to stay within the bound (they wait in their customers' states).</summary>
    public long WakeUpsPagedOut { get; init; }

    /// <summary>The page end (UTC ticks): every wake-up due by then is held; <see cref="long.MaxValue"/>: all are.</summary>
    public long WakeUpPageEndTicks { get; init; } = long.MaxValue;

    /// <summary>The most wake-ups this run held at once (the bound, unless more than a tenth of it fall due at one instant).</summary>
    public int WakeUpsHeldPeak { get; init; }

    /// <summary>A page-in is running.</summary>
    public bool PagingWakeUps { get; init; }

    /// <summary>Stage transitions counted (dimension, from, to).</summary>
    public IReadOnlyDictionary<(string Dimension, string From, string To), long> Transitions { get; init; } = new Dictionary<(string, string, string), long>();

    /// <summary>Per-rule counters (rule, fired/suppressed/converted, group).</summary>
    public IReadOnlyDictionary<(string Rule, string Counter, string Group), long> RuleCounters { get; init; } = new Dictionary<(string, string, string), long>();
}

/// <summary>
/// Switch to rule set <paramref name="Version"/> (already in the node's <see cref="Rules.RuleBook"/>) at the next
/// checkpoint boundary: what was sent before is saved under the old set, the customers in memory are re-derived under
/// the new one, others when next reached.
/// </summary>
public sealed record SwitchRules(string Version);
