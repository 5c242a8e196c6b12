using Streaming.Engine.Model;

namespace Streaming.Engine.Runtime;

/// <summary>
/// The hot-state summary of a customer that services read outside the engine (the Redis mirror): small, flat, taken
/// from the state at the checkpoint that made it durable.
/// </summary>
public sealed record CustomerProjection(
    string CustomerId,
    int Partition,
    int OrdersCount,
    decimal NetAmount,
    string? LifecycleStage,
    string? Tier,
    string? RfmSegment,
    int ChurnRisk,
    IReadOnlyList<string> Tags,
    string? RuleVersion,
    long UpdatedAtTicks)
{
    /// <summary>
    /// The customer's durable version: the sequence number, in the customer's own journal, of the save that stored this
    /// state (1, 2, …; it only grows, whichever node saved it). 0 when not known (a projection not taken from a save).
    /// </summary>
    public long Version { get; init; }

    public static CustomerProjection From(CustomerState s, int partition) => new(
        s.CustomerId,
        partition,
        s.OrderCount,
        s.NetAmount,
        s.Stages.TryGetValue("lifecycle", out var stage) ? stage.Name : null,
        s.TierName,
        s.RfmSegment,
        s.ChurnRisk,
        s.Tags,
        s.RuleVersion,
        Math.Max(s.LastSeenTicks, s.EvaluatedAtTicks));
}

/// <summary>
/// Receives the projections of the customers a checkpoint made durable, with that checkpoint's sequence number.
/// Called on the engine thread: it must not block (queue and return).
/// </summary>
public interface IStateMirror
{
    /// <summary>
    /// What orders a customer's writes in the mirror: the checkpoint numbers handed to <see cref="Publish"/> (a single
    /// node's numbering, see <see cref="MirrorSeqSource"/>) or each projection's <see cref="CustomerProjection.Version"/>.
    /// </summary>
    MirrorSeqSource SeqSource => MirrorSeqSource.Checkpoint;

    void Publish(long checkpointSeq, IReadOnlyList<CustomerProjection> customers);

    /// <summary>Every checkpoint up to this number is written to the mirror (0: none yet).</summary>
    long MirroredSeq { get; }
}

/// <summary>Where a mirror's per-customer <c>seq</c> (the number that keeps its writes from going backwards) comes from.</summary>
public enum MirrorSeqSource
{
    /// <summary>
    /// The node's checkpoint numbers, in completion order: one numbering for the whole mirror, so a range of numbers
    /// never mixes two rule versions. Only one node may write a prefix this way.
    /// </summary>
    Checkpoint,

    /// <summary>
    /// The customer's durable version (<see cref="CustomerProjection.Version"/>): it moves on with the customer whichever
    /// node saves it, so several nodes (a cluster) can write one prefix. Numbers of different customers are not comparable.
    /// </summary>
    CustomerVersion,
}
