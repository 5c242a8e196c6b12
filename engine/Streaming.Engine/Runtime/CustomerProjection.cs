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
    void Publish(long checkpointSeq, IReadOnlyList<CustomerProjection> customers);

    /// <summary>Every checkpoint up to this number is written to the mirror (0: none yet).</summary>
    long MirroredSeq { get; }
}
