namespace Streaming.Engine.Rules;

/// <summary>What became of a firing (CONTRACTS.md §3 <c>delivery</c>). Persisted values: never renumber.</summary>
public enum Delivery : byte
{
    /// <summary>An outreach item was queued for the dialers.</summary>
    Queued = 1,

    /// <summary>A check stopped it (<see cref="TriggerFiring.SuppressedBy"/>).</summary>
    Suppressed = 2,

    /// <summary>The customer is in the rule's control group: recorded, not contacted.</summary>
    Holdout = 3,

    /// <summary>For marketing automation: published only.</summary>
    Notify = 4,
}

/// <summary>Wire names of <see cref="Delivery"/> and <see cref="ContactChannel"/>.</summary>
public static class TriggerNames
{
    public static string Of(Delivery delivery) => delivery switch
    {
        Delivery.Queued => "queued",
        Delivery.Suppressed => "suppressed",
        Delivery.Holdout => "holdout",
        _ => "notify",
    };

    public static string Of(ContactChannel channel) => channel switch
    {
        ContactChannel.Voice => "voice",
        ContactChannel.Sms => "sms",
        ContactChannel.Email => "email",
        _ => "notify",
    };

    public static ContactChannel? Channel(string? name) => name switch
    {
        "voice" => ContactChannel.Voice,
        "sms" => ContactChannel.Sms,
        "email" => ContactChannel.Email,
        "notify" => ContactChannel.Notify,
        _ => null,
    };
}

/// <summary>
/// One firing of a trigger for one customer: published on <c>customer-triggers</c> whatever its delivery, and, when
/// queued, an outreach item for the dialers. Its id is derived from customer, rule and instant, so the same history
/// gives the same id.
/// </summary>
public sealed record TriggerFiring
{
    public required string Id { get; init; }
    public required string CustomerId { get; init; }
    public required string Rule { get; init; }
    public required string RuleVersion { get; init; }
    public required ContactChannel Channel { get; init; }
    public required int Priority { get; init; }

    /// <summary>The event-time instant at which it fired.</summary>
    public required long AtTicks { get; init; }

    /// <summary>When the outreach may happen (after quiet hours).</summary>
    public required long DueTicks { get; init; }

    public required long ExpiresTicks { get; init; }
    public required Delivery Delivery { get; init; }
    public string? SuppressedBy { get; init; }

    /// <summary>The rule's inputs and their values.</summary>
    public required IReadOnlyList<KeyValuePair<string, string>> Reason { get; init; }

    /// <summary>Fired by a wake-up that was overdue (after an outage).</summary>
    public bool Late { get; init; }

    public int Attempt { get; init; } = 1;

    /// <summary>The partition that owns the customer (set by the partition host).</summary>
    public int Partition { get; init; }

    /// <summary>A short snapshot of the profile: lifecycle stage, tier, churn risk, orders, net, tags.</summary>
    public required IReadOnlyDictionary<string, object?> Profile { get; init; }
}

/// <summary>Receives firings and conversions from rule evaluation.</summary>
public interface IFiringSink
{
    void Fired(TriggerFiring firing);

    /// <summary>An order converted an earlier firing of <paramref name="rule"/> delivered as <paramref name="delivery"/>.</summary>
    void Converted(string rule, Delivery delivery);
}
