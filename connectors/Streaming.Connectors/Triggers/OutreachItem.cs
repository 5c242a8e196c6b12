namespace Streaming.Connectors.Triggers;

/// <summary>An item of the dialers' outreach queue (CONTRACTS.md §7). Times are UTC ticks.</summary>
public sealed record OutreachItem
{
    public required string OutreachId { get; init; }
    public required string CustomerId { get; init; }
    public required int Partition { get; init; }
    public required string Rule { get; init; }
    public required string RuleVersion { get; init; }
    public required string Channel { get; init; }
    public required int Priority { get; init; }
    public required long DueTicks { get; init; }
    public required long ExpiresTicks { get; init; }

    /// <summary><c>due</c>, <c>leased</c>, <c>done</c>, <c>dropped</c> or <c>expired</c>.</summary>
    public required string State { get; init; }
    public long LeaseUntilTicks { get; init; }
    public string? Dialer { get; init; }
    public required int Attempt { get; init; }

    /// <summary>JSON: why it fired (the rule's inputs) and a profile snapshot.</summary>
    public required string Context { get; init; }

    /// <summary>Why it was dropped, expired or deferred last.</summary>
    public string? Reason { get; init; }
    public string? Outcome { get; init; }
}

/// <summary>Item states.</summary>
public static class OutreachStates
{
    public const string Due = "due";
    public const string Leased = "leased";
    public const string Done = "done";
    public const string Dropped = "dropped";
    public const string Expired = "expired";

    public static readonly IReadOnlyList<string> All = [Due, Leased, Done, Dropped, Expired];
}

/// <summary>What a re-check at lease time decided about one item.</summary>
public readonly record struct LeaseDecision(LeaseVerdict Verdict, string? Reason = null, long DeferTo = 0)
{
    public static readonly LeaseDecision Lease = new(LeaseVerdict.Lease);
}

public enum LeaseVerdict
{
    Lease,
    Drop,
    Defer,
    Expire,
}

/// <summary>An outbox row: a firing's CloudEvent waiting to be published.</summary>
public readonly record struct OutboxRow(long Seq, string CustomerId, byte[] Payload, long CreatedTicks);
