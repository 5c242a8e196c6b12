using System.Globalization;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Streaming.Engine.Events;

namespace Streaming.Engine.Tests.Properties;

/// <summary>One step of a generated history.</summary>
internal abstract record Step;

/// <summary>
/// An input event. <paramref name="Redelivery"/> marks the same record delivered again (same id and payload), as a
/// consumer restarting from an older offset does.
/// </summary>
internal sealed record Deliver(CustomerEvent Event, bool Redelivery) : Step;

/// <summary>Time passes to <paramref name="To"/> with no event of these customers (a watermark move).</summary>
internal sealed record Advance(DateTimeOffset To) : Step;

/// <summary>A sequence of steps for a few customers of one partition.</summary>
internal sealed record History(IReadOnlyList<Step> Steps)
{
    public IEnumerable<CustomerEvent> Events
    {
        get
        {
            foreach (var step in Steps)
            {
                if (step is Deliver d)
                {
                    yield return d.Event;
                }
            }
        }
    }

    public IReadOnlyList<string> CustomerIds => Events.Select(e => e.CustomerId).Distinct().Order(StringComparer.Ordinal).ToList();

    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"History of {Steps.Count} steps:");
        for (var i = 0; i < Steps.Count; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n  [{i}] {Describe(Steps[i])}");
        }

        return text.ToString();
    }

    public static string Describe(Step step) => step switch
    {
        Advance a => "advance to " + Time(a.To),
        Deliver { Redelivery: true } d => Describe(d.Event) + "   (redelivery)",
        Deliver d => Describe(d.Event),
        _ => step.ToString(),
    };

    public static string Describe(CustomerEvent evt)
    {
        var head = $"{evt.EventId} {evt.CustomerId} {Time(evt.OccurredAt)} {EventTypes.Name(evt.Type)}";
        return evt switch
        {
            OrderEvent o => head + Fields(("amount", o.Amount.ToString(CultureInfo.InvariantCulture)), ("items", o.ItemCount.ToString(CultureInfo.InvariantCulture)), ("channel", o.Channel), ("country", o.Country)),
            ClickEvent c => head + Fields(("session", c.SessionId), ("product", c.ProductId), ("category", c.CategoryId), ("channel", c.Channel)),
            CallEvent k => head + Fields(("wait", k.WaitSeconds.ToString(CultureInfo.InvariantCulture)), ("talk", k.TalkSeconds.ToString(CultureInfo.InvariantCulture)), ("queue", k.Queue)),
            UpdateEvent { Type: EventType.Attributes } u => head + Fields(("birthday", u.Birthday), ("timeZone", u.TimeZone), ("country", u.Country)),
            UpdateEvent u => head + Fields(("voice", Bool(u.ConsentVoice)), ("sms", Bool(u.ConsentSms)), ("email", Bool(u.ConsentEmail))),
            OutcomeEvent r => head + Fields(("outcome", r.Outcome), ("channel", r.Channel)),
            _ => head,
        };
    }

    private static string Time(DateTimeOffset at) => at.ToString("yyyy-MM-dd'T'HH:mm:ssK", CultureInfo.InvariantCulture);

    private static string? Bool(bool? b) => b is null ? null : b.Value ? "true" : "false";

    private static string Fields(params (string Name, string? Value)[] fields)
    {
        var text = new StringBuilder();
        foreach (var (name, value) in fields)
        {
            if (value is not null)
            {
                text.Append(' ').Append(name).Append('=').Append(value);
            }
        }

        return text.ToString();
    }
}

/// <summary>
/// FsCheck generators of realistic customer histories: every event type with plausible payloads, times spread over up
/// to about three years (mostly increasing, some late), redeliveries of earlier events, and time advances.
/// </summary>
internal static class Histories
{
    /// <summary>Longest span of a history's main timeline.</summary>
    public static readonly TimeSpan MaxSpan = TimeSpan.FromDays(3 * 365);

    /// <summary>Customers the generated events belong to.</summary>
    public static readonly string[] Customers = ["c1", "c2", "c3", "c4"];

    private static readonly DateTimeOffset Epoch = new(2021, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private enum Kind
    {
        Event,
        Redelivery,
        Advance,
    }

    /// <summary>What a step is before times and ids are assigned (a template event has placeholder id and time).</summary>
    private sealed record Spec(Kind Kind, long GapTicks, long LateTicks, int OffsetHours, int Customer, int Pick, CustomerEvent Template);

    /// <summary>Histories of up to 2 × size + 10 steps for 1 to 4 customers, starting some time in 2021 or 2022.</summary>
    public static Gen<History> Generator() =>
        from start in Gen.Choose(0, 2 * 365 * 24).Select(h => Epoch.AddHours(h))
        from customers in Gen.Choose(1, Customers.Length)
        from specs in Gen.Sized(size => Gen.Choose(0, (2 * size) + 10).SelectMany(n => Gen.ArrayOf(SpecGen(customers), n)))
        select Build(start, specs);

    /// <summary>
    /// Shrinks by removing runs of steps, longest first: every sub-history is still a valid history. Each comes with
    /// a function that maps a step index of the original onto the shorter history (to keep a split point in place).
    /// </summary>
    public static IEnumerable<(History History, Func<int, int> MapIndex)> Shrink(History history)
    {
        var steps = history.Steps;
        for (var chunk = steps.Count / 2; chunk >= 1; chunk /= 2)
        {
            for (var at = 0; at + chunk <= steps.Count; at += chunk)
            {
                var shorter = new List<Step>(steps.Count - chunk);
                shorter.AddRange(steps.Take(at));
                shorter.AddRange(steps.Skip(at + chunk));
                var (from, removed) = (at, chunk);
                yield return (new History(shorter), index => index <= from ? index : index - Math.Min(removed, index - from));
            }
        }
    }

    private static Gen<Spec> SpecGen(int customers) =>
        from kind in Gen.Frequency((80, Gen.Constant(Kind.Event)), (8, Gen.Constant(Kind.Redelivery)), (12, Gen.Constant(Kind.Advance)))
        from gap in Gap()
        from late in Late()
        from offset in Gen.Frequency((3, Gen.Constant(0)), (1, Gen.Choose(-8, 9)))
        from customer in Gen.Choose(0, customers - 1)
        from pick in Gen.Choose(0, 1 << 20)
        from template in Template()
        select new Spec(kind, gap, late, offset, customer, pick, template);

    /// <summary>Time from one step to the next: mostly minutes to days, sometimes long enough to cross a lifecycle threshold.</summary>
    private static Gen<long> Gap() => Gen.Frequency(
        (40, Gen.Choose(0, 120 * 60).Select(s => TimeSpan.FromSeconds(s).Ticks)),
        (25, Gen.Choose(3600, 48 * 3600).Select(s => TimeSpan.FromSeconds(s).Ticks)),
        (20, Gen.Choose(1, 20 * 24).Select(h => TimeSpan.FromHours(h).Ticks)),
        (10, Gen.Choose(20 * 24, 100 * 24).Select(h => TimeSpan.FromHours(h).Ticks)),
        (5, Gen.Choose(100 * 24, 400 * 24).Select(h => TimeSpan.FromHours(h).Ticks)));

    /// <summary>How late an event is behind the timeline: mostly on time, sometimes minutes or weeks late.</summary>
    private static Gen<long> Late() => Gen.Frequency(
        (88, Gen.Constant(0L)),
        (9, Gen.Choose(1, 24 * 60).Select(m => TimeSpan.FromMinutes(m).Ticks)),
        (3, Gen.Choose(1, 45 * 24).Select(h => TimeSpan.FromHours(h).Ticks)));

    private static Gen<string?> OneOf(params string?[] values) => Gen.Elements(values);

    private static Gen<bool?> MaybeBool() => Gen.Elements<bool?>(null, false, true);

    /// <summary>Amounts with realistic scales: whole units, cents, and trailing zeros (12.340) that decimals keep.</summary>
    private static Gen<decimal> Amount() =>
        from units in Gen.Frequency((12, Gen.Choose(0, 300)), (6, Gen.Choose(300, 3000)), (1, Gen.Choose(3000, 20000)))
        from cents in Gen.Choose(0, 99)
        from scale in Gen.Frequency((2, Gen.Constant(0)), (1, Gen.Constant(1)), (8, Gen.Constant(2)), (1, Gen.Constant(3)), (1, Gen.Constant(4)))
        select scale switch
        {
            0 => new decimal(units),
            1 => new decimal((units * 10) + (cents / 10), 0, 0, false, 1),
            _ => new decimal(((units * 100) + cents) * (int)Math.Pow(10, scale - 2), 0, 0, false, (byte)scale),
        };

    private static Gen<CustomerEvent> Template() => Gen.Frequency(
        (25, Placed()),
        (5, Cancelled()),
        (30, Click()),
        (12, Call()),
        (6, Attributes()),
        (6, Consent()),
        (6, Outcome()));

    private static Gen<CustomerEvent> Placed() =>
        from amount in Amount()
        from items in Gen.Choose(0, 6)
        from currency in OneOf(null, "EUR", "EUR", "USD")
        from channel in OneOf(null, "online", "store", "app", "web")
        from country in OneOf(null, null, "DE", "AT", "FR")
        select (CustomerEvent)new OrderEvent
        {
            EventId = "",
            CustomerId = "",
            OccurredAt = default,
            Type = EventType.OrderPlaced,
            OrderId = "",
            Amount = amount,
            ItemCount = items,
            Currency = currency,
            Channel = channel,
            Country = country,
        };

    private static Gen<CustomerEvent> Cancelled() =>
        from amount in Amount()
        from channel in OneOf(null, "online", "store")
        select (CustomerEvent)new OrderEvent
        {
            EventId = "",
            CustomerId = "",
            OccurredAt = default,
            Type = EventType.OrderCancelled,
            OrderId = "",
            Amount = amount / 2,
            Channel = channel,
        };

    private static Gen<CustomerEvent> Click() =>
        from type in Gen.Frequency(
            (8, Gen.Constant(EventType.PageView)), (6, Gen.Constant(EventType.ProductView)), (3, Gen.Constant(EventType.AddToCart)),
            (1, Gen.Constant(EventType.Favorite)), (2, Gen.Constant(EventType.Search)), (2, Gen.Constant(EventType.Login)))
        from session in OneOf(null, "s1", "s2", "s3", "s4", "s5", "s6")
        from product in Gen.Frequency((1, Gen.Constant<string?>(null)), (2, Gen.Choose(1, 12).Select(p => (string?)("p" + p.ToString(CultureInfo.InvariantCulture)))))
        from category in Gen.Frequency((1, Gen.Constant<string?>(null)), (2, Gen.Choose(1, 8).Select(c => (string?)("cat" + c.ToString(CultureInfo.InvariantCulture)))))
        from channel in OneOf(null, "web", "app")
        select (CustomerEvent)new ClickEvent
        {
            EventId = "",
            CustomerId = "",
            OccurredAt = default,
            Type = type,
            SessionId = session,
            ProductId = product,
            CategoryId = category,
            Channel = channel,
        };

    private static Gen<CustomerEvent> Call() =>
        from completed in Gen.Frequency((3, Gen.Constant(true)), (2, Gen.Constant(false)))
        from wait in Gen.Frequency((3, Gen.Choose(0, 120)), (1, Gen.Choose(120, 1800)))
        from talk in Gen.Choose(0, 3600)
        from queue in OneOf(null, "billing", "support", "sales")
        select (CustomerEvent)new CallEvent
        {
            EventId = "",
            CustomerId = "",
            OccurredAt = default,
            Type = completed ? EventType.CallCompleted : EventType.CallAbandoned,
            WaitSeconds = wait,
            TalkSeconds = completed ? talk : 0,
            Queue = queue,
        };

    private static Gen<CustomerEvent> Attributes() =>
        from birthday in OneOf(null, "1970-02-28", "1984-02-29", "1991-07-14", "2001-12-31")
        from timeZone in OneOf(null, "Europe/Berlin", "America/New_York", "Asia/Tokyo")
        from country in OneOf(null, "DE", "US", "JP")
        select (CustomerEvent)new UpdateEvent
        {
            EventId = "",
            CustomerId = "",
            OccurredAt = default,
            Type = EventType.Attributes,
            Birthday = birthday,
            TimeZone = timeZone,
            Country = country,
        };

    private static Gen<CustomerEvent> Consent() =>
        from voice in MaybeBool()
        from sms in MaybeBool()
        from email in MaybeBool()
        select (CustomerEvent)new UpdateEvent
        {
            EventId = "",
            CustomerId = "",
            OccurredAt = default,
            Type = EventType.Consent,
            ConsentVoice = voice,
            ConsentSms = sms,
            ConsentEmail = email,
        };

    private static Gen<CustomerEvent> Outcome() =>
        from outcome in Gen.Elements("answered", "no_answer", "converted", "declined")
        from channel in OneOf(null, "voice", "sms", "email")
        select (CustomerEvent)new OutcomeEvent
        {
            EventId = "",
            CustomerId = "",
            OccurredAt = default,
            Type = EventType.OutreachOutcome,
            OutreachId = "",
            Outcome = outcome,
            Channel = channel,
        };

    /// <summary>Lays the specs on a timeline from <paramref name="start"/>, squeezed into <see cref="MaxSpan"/>, and assigns ids.</summary>
    private static History Build(DateTimeOffset start, Spec[] specs)
    {
        var total = specs.Sum(s => (double)s.GapTicks);
        var squeeze = total > MaxSpan.Ticks ? MaxSpan.Ticks / total : 1.0;
        var steps = new List<Step>(specs.Length);
        var delivered = new List<CustomerEvent>();
        var cursor = start.UtcTicks;
        foreach (var spec in specs)
        {
            cursor += (long)(spec.GapTicks * squeeze);
            switch (spec.Kind)
            {
                case Kind.Advance:
                    steps.Add(new Advance(new DateTimeOffset(cursor, TimeSpan.Zero)));
                    break;
                case Kind.Redelivery when delivered.Count > 0:
                    // Mostly a recent event (within the recent-id memory), sometimes an old one.
                    var back = spec.Pick % 4 == 0 ? spec.Pick % delivered.Count : spec.Pick % Math.Min(delivered.Count, 24);
                    steps.Add(new Deliver(delivered[delivered.Count - 1 - back], Redelivery: true));
                    break;
                default:
                    var n = delivered.Count + 1;
                    var id = "e" + n.ToString(CultureInfo.InvariantCulture);
                    var at = new DateTimeOffset(cursor - spec.LateTicks, TimeSpan.Zero).ToOffset(TimeSpan.FromHours(spec.OffsetHours));
                    var evt = spec.Template with { EventId = id, CustomerId = Customers[spec.Customer], OccurredAt = at };
                    evt = evt switch
                    {
                        OrderEvent o => o with { OrderId = "o" + n.ToString(CultureInfo.InvariantCulture) },
                        OutcomeEvent r => r with { OutreachId = "r" + n.ToString(CultureInfo.InvariantCulture) },
                        CallEvent k => k with { CallId = "k" + n.ToString(CultureInfo.InvariantCulture) },
                        _ => evt,
                    };
                    delivered.Add(evt);
                    steps.Add(new Deliver(evt, Redelivery: false));
                    break;
            }
        }

        return new History(steps);
    }
}
