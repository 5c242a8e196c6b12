using Streaming.Engine.Events;
using Streaming.Engine.Model;

namespace Streaming.Engine.Rules.Expressions;

/// <summary>
/// The fields a rule can read: the customer's profile, the values derived earlier in the same evaluation, and the
/// event being applied. The README's rule-language section lists them; keep the two in step.
/// </summary>
public sealed class FieldCatalog
{
    private static readonly Dictionary<string, Func<int, Node>> Fixed = BuildFixed();

    private static readonly Dictionary<string, (DaySeries Series, Inputs Reads, bool Countable)> Series = new(StringComparer.Ordinal)
    {
        ["orders"] = (DaySeries.Orders, Inputs.Orders, true),
        ["orders.net"] = (DaySeries.Net, Inputs.Orders, false),
        ["points"] = (DaySeries.Points, Inputs.Orders, false),
        ["calls"] = (DaySeries.Calls, Inputs.Calls, true),
        ["calls.abandoned"] = (DaySeries.Abandoned, Inputs.Calls, true),
        ["cart_adds"] = (DaySeries.CartAdds, Inputs.Clicks, true),
    };

    private readonly HashSet<string> _ladders;

    /// <param name="ladders">Names of the rule set's stage ladders; each adds <c>{name}.stage</c> and <c>{name}.since</c>.</param>
    public FieldCatalog(IEnumerable<string> ladders)
    {
        _ladders = new HashSet<string>(ladders, StringComparer.Ordinal);
    }

    /// <summary>Every field name, for suggestions and documentation.</summary>
    public IEnumerable<string> Names =>
        Fixed.Keys.Concat(_ladders.SelectMany(l => new[] { l + ".stage", l + ".since" })).Append("now");

    /// <summary>Names usable as the first argument of count_in / sum_in.</summary>
    public static IEnumerable<string> SeriesNames => Series.Keys;

    internal static bool TryGetSeries(string name, out DaySeries series, out Inputs reads, out bool countable)
    {
        if (Series.TryGetValue(name, out var s))
        {
            (series, reads, countable) = s;
            return true;
        }

        (series, reads, countable) = (default, default, default);
        return false;
    }

    internal Node? Resolve(string path, int offset)
    {
        if (Fixed.TryGetValue(path, out var make))
        {
            return make(offset);
        }

        var dot = path.LastIndexOf('.');
        if (dot > 0 && _ladders.Contains(path[..dot]))
        {
            var ladder = path[..dot];
            switch (path[(dot + 1)..])
            {
                case "stage":
                    return new StringField(offset, Inputs.Stages, c => c.State.Stages.TryGetValue(ladder, out var v) ? v.Name : null);
                case "since":
                    return new InstantField(offset, Inputs.Stages, c => c.State.Stages.TryGetValue(ladder, out var v) ? v.SinceTicks : 0);
            }
        }

        return null;
    }

    private static Dictionary<string, Func<int, Node>> BuildFixed()
    {
        var f = new Dictionary<string, Func<int, Node>>(StringComparer.Ordinal);

        void Number(string name, Inputs reads, Func<EvalContext, decimal?> read) => f[name] = o => new NumberField(o, reads, read);
        void Text(string name, Inputs reads, Func<EvalContext, string?> read) => f[name] = o => new StringField(o, reads, read);
        void Instant(string name, Inputs reads, Func<CustomerState, long> read) => f[name] = o => new InstantField(o, reads, c => read(c.State));
        void Flag(string name, Inputs reads, Func<EvalContext, bool> read) => f[name] = o => new BoolField(o, reads, read);

        Number("orders.count", Inputs.Orders, c => c.State.OrderCount);
        Number("orders.cancelled", Inputs.Orders, c => c.State.CancelledCount);
        Number("orders.gross", Inputs.Orders, c => c.State.GrossAmount);
        Number("orders.refunds", Inputs.Orders, c => c.State.RefundAmount);
        Number("orders.net", Inputs.Orders, c => c.State.NetAmount);
        Number("orders.items", Inputs.Orders, c => c.State.ItemsBought);
        Instant("orders.firstAt", Inputs.Orders, s => s.FirstOrderTicks);
        Instant("orders.lastAt", Inputs.Orders, s => s.LastOrderTicks);

        Number("clicks.total", Inputs.Clicks, c => c.State.ClickCount);
        Number("clicks.pageViews", Inputs.Clicks, c => c.State.PageViews);
        Number("clicks.productViews", Inputs.Clicks, c => c.State.ProductViews);
        Number("clicks.cartAdds", Inputs.Clicks, c => c.State.CartAdds);
        Number("clicks.favorites", Inputs.Clicks, c => c.State.Favorites);
        Number("clicks.searches", Inputs.Clicks, c => c.State.Searches);
        Number("clicks.logins", Inputs.Clicks, c => c.State.Logins);
        Number("clicks.sessions", Inputs.Clicks, c => c.State.Sessions);
        Instant("clicks.lastCartAddAt", Inputs.Clicks, s => s.LastCartAddTicks);
        Number("clicks.cartAddsSinceOrder", Inputs.Clicks | Inputs.Orders, c => c.State.CartAddsSinceOrder);

        Number("calls.total", Inputs.Calls, c => c.State.CallCount);
        Number("calls.completed", Inputs.Calls, c => c.State.CallsCompleted);
        Number("calls.abandoned", Inputs.Calls, c => c.State.CallsAbandoned);
        Number("calls.waitSeconds", Inputs.Calls, c => c.State.WaitSecondsTotal);
        Instant("calls.lastAt", Inputs.Calls, s => s.LastCallTicks);

        Number("outcomes.received", Inputs.Outcomes, c => c.State.OutcomesReceived);
        Instant("firstSeen", Inputs.Orders | Inputs.Clicks | Inputs.Calls, s => s.FirstSeenTicks);
        Instant("lastSeen", Inputs.Orders | Inputs.Clicks | Inputs.Calls, s => s.LastSeenTicks);

        Text("customer.country", Inputs.Attributes | Inputs.Orders, c => c.State.Country);
        Text("customer.timeZone", Inputs.Attributes, c => c.State.TimeZone);
        Flag("consent.voice", Inputs.Consent, c => c.State.ConsentVoice == true);
        Flag("consent.sms", Inputs.Consent, c => c.State.ConsentSms == true);
        Flag("consent.email", Inputs.Consent, c => c.State.ConsentEmail == true);

        // rfm.recencyDays is days_since(orders.lastAt), never negative: exact timers for thresholds on it.
        f["rfm.recencyDays"] = o => new UnitsSinceNode(o, new InstantField(o, Inputs.Orders, c => c.State.LastOrderTicks), TimeSpan.TicksPerDay, clampAtZero: true);
        Number("rfm.frequency", Inputs.Rfm, c => c.State.Frequency);
        Number("rfm.monetary", Inputs.Rfm, c => c.State.Monetary);
        Number("rfm.r", Inputs.Rfm, c => c.State.RScore == 0 ? null : c.State.RScore);
        Number("rfm.f", Inputs.Rfm, c => c.State.FScore == 0 ? null : c.State.FScore);
        Number("rfm.m", Inputs.Rfm, c => c.State.MScore == 0 ? null : c.State.MScore);
        Text("rfm.segment", Inputs.Rfm, c => c.State.RfmSegment);
        Number("churnRisk", Inputs.Churn, c => c.State.ChurnRisk);
        Text("tier.name", Inputs.Tier, c => c.State.TierName);
        Text("tier.projected", Inputs.Tier, c => c.State.TierProjected);
        Number("tier.points", Inputs.Tier, c => c.State.TierPoints);
        Instant("tier.reviewAt", Inputs.Tier, s => s.TierReviewTicks);
        Number("tier.rank", Inputs.Tier, c => c.Rules?.Tiers.Rank(c.State.TierName) is { } r and >= 0 ? r : null);
        Number("tier.projectedRank", Inputs.Tier, c => c.Rules?.Tiers.Rank(c.State.TierProjected) is { } r and >= 0 ? r : null);
        f["tags"] = o => new SetField(o, Inputs.Tags, c => c.State.Tags);

        Text("event.type", Inputs.Event, c => c.Event is null ? "timer" : EventTypes.Name(c.Event.Type));
        f["event.at"] = o => new InstantField(o, Inputs.Event, c => c.Event?.OccurredAt.UtcTicks ?? 0);
        Number("event.amount", Inputs.Event, c => (c.Event as OrderEvent)?.Amount);
        Text("event.channel", Inputs.Event, c => c.Event switch
        {
            OrderEvent o => o.Channel,
            ClickEvent k => k.Channel,
            OutcomeEvent x => x.Channel,
            _ => null,
        });
        Text("event.category", Inputs.Event, c => (c.Event as ClickEvent)?.CategoryId);
        Text("event.queue", Inputs.Event, c => (c.Event as CallEvent)?.Queue);
        Number("event.waitSeconds", Inputs.Event, c => (c.Event as CallEvent)?.WaitSeconds);
        Number("event.talkSeconds", Inputs.Event, c => (c.Event as CallEvent)?.TalkSeconds);
        Text("event.outcome", Inputs.Event, c => (c.Event as OutcomeEvent)?.Outcome);
        return f;
    }
}
