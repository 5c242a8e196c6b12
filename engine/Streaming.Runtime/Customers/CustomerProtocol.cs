using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;

namespace Streaming.Runtime.Customers;

/// <summary>
/// A partition's time and checkpoint progress as its coordinator saw them when it sent a message.
/// </summary>
/// <param name="WatermarkTicks">The partition's watermark (UTC ticks; 0 before the first event): wake-ups due by then run first.</param>
/// <param name="LateBeforeTicks">Wake-ups due before this instant (UTC ticks) count as late.</param>
/// <param name="RuleVersion">The rule set in force (resolved through the node's <see cref="Rules.RuleBook"/>).</param>
/// <param name="CommittedSeq">The partition's last checkpoint known durable: effects saved with a sequence number up to it are confirmed.</param>
/// <param name="Run">Identifies the coordinator's incarnation: effects saved but not confirmed are reported again once to each new run.</param>
public readonly record struct PartitionClock(long WatermarkTicks, long LateBeforeTicks, string RuleVersion, long CommittedSeq, long Run)
{
    /// <summary>
    /// The last checkpoint each earlier run of the partition completed (run → checkpoint number; a run that completed
    /// none is absent): effects saved by an earlier run are confirmed only if that run completed their checkpoint. A
    /// crashed run's last number is reused by the next run, so the number alone does not tell.
    /// </summary>
    public IReadOnlyDictionary<long, long>? Completed { get; init; }
}

/// <summary>A message for one customer entity; the shard is the customer's Kafka partition.</summary>
public interface ICustomerCommand
{
    /// <summary>The customer (the entity id).</summary>
    string CustomerId { get; }

    /// <summary>The customer's Kafka partition (the shard id).</summary>
    int Partition { get; }
}

/// <summary>A decoded input record for the customer. Answered with <see cref="CustomerChanged"/>.</summary>
/// <param name="Topic">The input topic's name.</param>
/// <param name="Offset">The record's offset in (<paramref name="Topic"/>, <paramref name="Partition"/>): a record below the customer's next offset is a duplicate.</param>
public sealed record ApplyRecord(string CustomerId, int Partition, string Topic, long Offset, CustomerEvent Event, PartitionClock Clock) : ICustomerCommand
{
    /// <summary>
    /// This message's place among the records, wake-ups and re-evaluations the coordinator run
    /// (<see cref="PartitionClock.Run"/>) has sent this customer: 1 for the first (or the first since the coordinator
    /// passivated it), then 2, 3… An entity that has not handled the one before in this run answers
    /// <see cref="ChangeOutcome.Gap"/> and changes nothing. 0: not numbered (no check).
    /// </summary>
    public int Sequence { get; init; }
}

/// <summary>The watermark passed the customer's wake-up. Answered with <see cref="CustomerChanged"/>.</summary>
public sealed record WakeUp(string CustomerId, int Partition, PartitionClock Clock) : ICustomerCommand
{
    /// <summary>Numbered with the customer's records (<see cref="ApplyRecord.Sequence"/>); 0: not numbered.</summary>
    public int Sequence { get; init; }
}

/// <summary>
/// Re-derive the customer under the clock's rule version (a rule switch): triggers arm but do not fire. Answered with
/// <see cref="CustomerChanged"/>.
/// </summary>
public sealed record Reevaluate(string CustomerId, int Partition, PartitionClock Clock) : ICustomerCommand
{
    /// <summary>Numbered with the customer's records (<see cref="ApplyRecord.Sequence"/>); 0: not numbered.</summary>
    public int Sequence { get; init; }
}

/// <summary>
/// The checkpoint barrier: make every change so far durable under checkpoint <paramref name="Seq"/>. Answered with
/// <see cref="CustomerSaved"/> (nothing to save is answered at once) or <see cref="CustomerSaveFailed"/>.
/// </summary>
public sealed record SaveCustomer(string CustomerId, int Partition, long Seq) : ICustomerCommand
{
    /// <summary>Answer with the customer's <see cref="CustomerProjection"/> as saved (for the Redis mirror).</summary>
    public bool Project { get; init; }
}

/// <summary>
/// Asks for the customer's next wake-up, read only (a wake-up page-in of its coordinator). Answered with
/// <see cref="CustomerWakeUp"/>. An entity started by it for an unknown customer stops again.
/// </summary>
public sealed record GetWakeUp(string CustomerId, int Partition) : ICustomerCommand;

/// <summary>The answer to <see cref="GetWakeUp"/>: the customer's next wake-up (UTC ticks; 0: none, or no such customer).</summary>
public sealed record CustomerWakeUp(string CustomerId, int Partition, long WakeTicks);

/// <summary>Asks for a copy of the customer's state. Answered with <see cref="CustomerFound"/>.</summary>
public sealed record GetCustomer(string CustomerId, int Partition) : ICustomerCommand;

/// <summary>
/// Leave memory (the bound on cached customers): a customer with unsaved changes is saved under
/// <paramref name="Seq"/> first. Answered with <see cref="CustomerPassivated"/> once the changes are durable.
/// </summary>
public sealed record PassivateCustomer(string CustomerId, int Partition, long Seq) : ICustomerCommand;

/// <summary>What became of a message that may change a customer.</summary>
public enum ChangeOutcome
{
    /// <summary>The record changed the customer.</summary>
    Applied,

    /// <summary>The record was applied before (its offset, or its event id): nothing changed.</summary>
    Duplicate,

    /// <summary>The change failed and was undone (<see cref="CustomerChanged.Failure"/> says why): the record is dead-lettered.</summary>
    Failed,

    /// <summary>A wake-up or re-evaluation ran (or had nothing to do).</summary>
    Advanced,

    /// <summary>
    /// Not applied: the entity has not handled the customer's previous record of this coordinator run (it restarted and
    /// lost unsaved changes, e.g. after a failed journal write). Applying it would leave a hole that its offsets would
    /// then hide; the partition must restart from its last checkpoint.
    /// </summary>
    Gap,
}

/// <summary>
/// The answer to <see cref="ApplyRecord"/>, <see cref="WakeUp"/> and <see cref="Reevaluate"/>: what changed, and the
/// customer's next wake-up, so the coordinator can count, index timers and checkpoint.
/// </summary>
/// <param name="Offset">The record's offset (-1 for a wake-up or re-evaluation).</param>
/// <param name="WakeTicks">The customer's next wake-up (UTC ticks; 0: none).</param>
/// <param name="Effects">Moves, firings and conversions of this change (a wake-up run first included).</param>
/// <param name="Recovered">Effects saved before a restart and not yet confirmed, reported once to this coordinator run.</param>
/// <param name="Exists">False when the customer does not exist (a first record that failed, or a wake-up for nobody).</param>
/// <param name="Dirty">The customer has changes a checkpoint must save.</param>
public sealed record CustomerChanged(
    string CustomerId,
    int Partition,
    long Offset,
    ChangeOutcome Outcome,
    string? Failure,
    long WakeTicks,
    int TimersFired,
    int LateTimersFired,
    EffectBundle Effects,
    IReadOnlyList<EffectBundle> Recovered,
    bool Exists,
    bool Dirty)
{
    /// <summary>The record's input topic (null for a wake-up or re-evaluation).</summary>
    public string? Topic { get; init; }
}

/// <summary>The customer's changes up to the barrier are durable (<paramref name="Written"/>: false when there were none).</summary>
public sealed record CustomerSaved(string CustomerId, int Partition, long Seq, bool Written)
{
    /// <summary>The customer's projection after the save, when <see cref="SaveCustomer.Project"/> asked for it and it exists.</summary>
    public CustomerProjection? Projection { get; init; }
}

/// <summary>The journal refused the save: the checkpoint must not complete; the customer keeps its changes in memory.</summary>
public sealed record CustomerSaveFailed(string CustomerId, int Partition, long Seq, string Reason);

/// <summary>A copy of the customer's state (null: unknown customer), under the rule version it was last derived with.</summary>
public sealed record CustomerFound(string CustomerId, int Partition, CustomerState? State);

/// <summary>The customer left memory; its state is durable.</summary>
public sealed record CustomerPassivated(string CustomerId, int Partition);
