using System.Text;
using Streaming.Engine.Events;

namespace Streaming.Engine.Tests;

/// <summary>Builders of decoded events and raw records shared by the engine tests.</summary>
internal static class TestEvents
{
    public const string Customer = "c1";

    /// <summary>A fixed, arbitrary base instant (UTC) that tests offset from.</summary>
    public static readonly DateTimeOffset T0 = new(2024, 3, 5, 10, 0, 0, TimeSpan.Zero);

    /// <summary>UTF-8 bytes of <paramref name="singleQuoted"/> with every ' replaced by ", so JSON can be written inline.</summary>
    public static byte[] Json(string singleQuoted) => Encoding.UTF8.GetBytes(singleQuoted.Replace('\'', '"'));

    public static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    public static OrderEvent Placed(string eventId, DateTimeOffset at, decimal amount, int items = 0, string? country = null, string customerId = Customer) => new()
    {
        EventId = eventId,
        CustomerId = customerId,
        OccurredAt = at,
        Type = EventType.OrderPlaced,
        OrderId = "o-" + eventId,
        Amount = amount,
        ItemCount = items,
        Country = country,
    };

    public static OrderEvent Cancelled(string eventId, DateTimeOffset at, decimal refund, string customerId = Customer) => new()
    {
        EventId = eventId,
        CustomerId = customerId,
        OccurredAt = at,
        Type = EventType.OrderCancelled,
        OrderId = "o-" + eventId,
        Amount = refund,
    };

    public static ClickEvent Click(string eventId, DateTimeOffset at, EventType type, string? sessionId, string customerId = Customer) => new()
    {
        EventId = eventId,
        CustomerId = customerId,
        OccurredAt = at,
        Type = type,
        SessionId = sessionId,
    };

    public static CallEvent Call(string eventId, DateTimeOffset at, bool completed, int waitSeconds, int talkSeconds, string customerId = Customer) => new()
    {
        EventId = eventId,
        CustomerId = customerId,
        OccurredAt = at,
        Type = completed ? EventType.CallCompleted : EventType.CallAbandoned,
        WaitSeconds = waitSeconds,
        TalkSeconds = talkSeconds,
    };

    public static UpdateEvent Attributes(string eventId, DateTimeOffset at, string? birthday, string? timeZone, string? country, string customerId = Customer) => new()
    {
        EventId = eventId,
        CustomerId = customerId,
        OccurredAt = at,
        Type = EventType.Attributes,
        Birthday = birthday,
        TimeZone = timeZone,
        Country = country,
    };

    public static UpdateEvent Consent(string eventId, DateTimeOffset at, bool? voice, bool? sms, bool? email, string customerId = Customer) => new()
    {
        EventId = eventId,
        CustomerId = customerId,
        OccurredAt = at,
        Type = EventType.Consent,
        ConsentVoice = voice,
        ConsentSms = sms,
        ConsentEmail = email,
    };

    public static OutcomeEvent Outcome(string eventId, DateTimeOffset at, string outcome, string customerId = Customer) => new()
    {
        EventId = eventId,
        CustomerId = customerId,
        OccurredAt = at,
        Type = EventType.OutreachOutcome,
        OutreachId = "r-" + eventId,
        Outcome = outcome,
    };

    /// <summary>A random event of any kind; ids are "{prefix}{index}" so callers control uniqueness.</summary>
    public static CustomerEvent Random(Random rng, string eventId, string customerId = Customer)
    {
        // Minutes within about a year of T0, so event times arrive out of order.
        var at = T0.AddMinutes(rng.Next(-260_000, 260_000)).ToOffset(TimeSpan.FromHours(rng.Next(-12, 13)));
        string? session = rng.Next(4) == 0 ? null : "s" + rng.Next(5);
        bool? RandomBool() => rng.Next(3) switch
        {
            0 => null,
            1 => false,
            _ => true,
        };

        return rng.Next(12) switch
        {
            0 or 1 or 2 => Placed(eventId, at, rng.Next(0, 1_000_000) / 100m, rng.Next(0, 6), rng.Next(3) == 0 ? "DE" : null, customerId),
            3 => Cancelled(eventId, at, rng.Next(0, 100_000) / 1000m, customerId),
            4 => Click(eventId, at, EventType.PageView, session, customerId),
            5 => Click(eventId, at, (EventType)rng.Next((int)EventType.ProductView, (int)EventType.Login + 1), session, customerId),
            6 or 7 => Call(eventId, at, rng.Next(2) == 0, rng.Next(0, 600), rng.Next(0, 3600), customerId),
            8 => Attributes(eventId, at, rng.Next(2) == 0 ? null : $"19{rng.Next(50, 99)}-0{rng.Next(1, 9)}-1{rng.Next(0, 9)}", rng.Next(2) == 0 ? null : "Europe/Berlin", rng.Next(2) == 0 ? null : "AT", customerId),
            9 => Consent(eventId, at, RandomBool(), RandomBool(), RandomBool(), customerId),
            _ => Outcome(eventId, at, rng.Next(2) == 0 ? "answered" : "converted", customerId),
        };
    }
}
