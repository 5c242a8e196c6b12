namespace Streaming.Engine.Events;

/// <summary>The <c>type</c> of an input event. Persisted values: never renumber.</summary>
public enum EventType : byte
{
    OrderPlaced = 1,
    OrderCancelled = 2,
    PageView = 3,
    ProductView = 4,
    AddToCart = 5,
    Favorite = 6,
    Search = 7,
    Login = 8,
    CallCompleted = 9,
    CallAbandoned = 10,
    Attributes = 11,
    Consent = 12,
    OutreachOutcome = 13,
}

/// <summary>An input event after decoding and validation. The marker of the customer actor's protocol.</summary>
public abstract record CustomerEvent
{
    public required string EventId { get; init; }
    public required string CustomerId { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
    public required EventType Type { get; init; }
}

/// <summary>An event of the <c>orders</c> topic.</summary>
public sealed record OrderEvent : CustomerEvent
{
    public required string OrderId { get; init; }

    /// <summary>Order value, or the amount refunded for <c>order_cancelled</c>. Never negative.</summary>
    public required decimal Amount { get; init; }
    public string? Currency { get; init; }
    public string? Channel { get; init; }
    public string? Country { get; init; }
    public int ItemCount { get; init; }
}

/// <summary>An event of the <c>clickstream</c> topic.</summary>
public sealed record ClickEvent : CustomerEvent
{
    public string? SessionId { get; init; }
    public string? ProductId { get; init; }
    public string? CategoryId { get; init; }
    public string? Channel { get; init; }
}

/// <summary>An event of the <c>callcenter</c> topic.</summary>
public sealed record CallEvent : CustomerEvent
{
    public string? CallId { get; init; }
    public string? Queue { get; init; }
    public int WaitSeconds { get; init; }
    public int TalkSeconds { get; init; }
}

/// <summary>An event of the <c>customer-updates</c> topic.</summary>
public sealed record UpdateEvent : CustomerEvent
{
    public string? Birthday { get; init; }
    public string? TimeZone { get; init; }
    public string? Country { get; init; }
    public bool? ConsentVoice { get; init; }
    public bool? ConsentSms { get; init; }
    public bool? ConsentEmail { get; init; }

    /// <summary><c>consent.doNotContact</c>: when true, no outreach on any channel.</summary>
    public bool? DoNotContact { get; init; }
}

/// <summary>An event of the <c>outreach-outcomes</c> topic.</summary>
public sealed record OutcomeEvent : CustomerEvent
{
    public required string OutreachId { get; init; }
    public string? Channel { get; init; }
    public required string Outcome { get; init; }
}

/// <summary>Wire names of <see cref="EventType"/> (CONTRACTS.md §2).</summary>
public static class EventTypes
{
    private static readonly string[] Names =
    [
        "", "order_placed", "order_cancelled", "page_view", "product_view", "add_to_cart", "favorite", "search", "login",
        "call_completed", "call_abandoned", "attributes", "consent", "outreach_outcome",
    ];

    public static string Name(EventType type) => Names[(int)type];
}
