using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;

namespace Streaming.Engine.Runtime;

/// <summary>What applying one event did.</summary>
public enum ApplyResult
{
    Applied,
    Duplicate,
}

/// <summary>Parameters of the actor that come from configuration, not from events.</summary>
public sealed record ActorOptions
{
    /// <summary>How many recent event ids each customer remembers to ignore redeliveries.</summary>
    public int RecentIdCapacity { get; init; } = 32;
}

/// <summary>
/// The customer actor's behaviour: a pure function of (state, event or elapsed time, rule set) that updates the state
/// in place. It does no I/O and reads no clock; everything it needs arrives as arguments, so replays are
/// deterministic.
/// </summary>
public static class CustomerActor
{
    /// <summary>Days of per-day activity kept at least, whatever the rule set reads.</summary>
    public const int MinRetentionDays = 400;

    /// <summary>Applies an event with the default rule set (tests and tools).</summary>
    public static ApplyResult Apply(CustomerState state, CustomerEvent evt, ActorOptions options) =>
        Apply(state, evt, options, RuleSetLoader.Default, new EvalContext(), sink: null);

    /// <summary>
    /// Applies one event: first lets time run to the event (timers due before it fire, in order), then records the
    /// event, then re-derives what the event may have changed at the event's time.
    /// </summary>
    public static ApplyResult Apply(CustomerState state, CustomerEvent evt, ActorOptions options, RuleSet rules, EvalContext ctx, IPopulationSink? sink) =>
        Apply(state, evt, options, rules, ctx, sink, firings: null);

    /// <summary>As above; triggers fire into <paramref name="firings"/>.</summary>
    /// <remarks>
    /// Duplicates change nothing: an <c>eventId</c> among the customer's last <see cref="ActorOptions.RecentIdCapacity"/>
    /// events, or an <c>order_placed</c> whose <c>orderId</c> the customer has placed before (at any distance).
    /// Arithmetic is checked: an event whose sums would overflow throws <see cref="OverflowException"/> (the caller
    /// refuses the record and restores the state it had before).
    /// </remarks>
    public static ApplyResult Apply(CustomerState state, CustomerEvent evt, ActorOptions options, RuleSet rules, EvalContext ctx, IPopulationSink? sink, IFiringSink? firings)
    {
        var idHash = IdHash.Fnv1a64(evt.EventId);
        if (state.RecentEventIds.Contains(idHash))
        {
            return ApplyResult.Duplicate;
        }

        var orderHash = 0UL;
        if (evt is OrderEvent { Type: EventType.OrderPlaced } placed)
        {
            orderHash = IdHash.Fnv1a64(placed.OrderId);
            if (state.PlacedOrderIds.Contains(orderHash))
            {
                return ApplyResult.Duplicate;
            }
        }

        var now = Math.Max(evt.OccurredAt.UtcTicks, state.EvaluatedAtTicks);
        AdvanceTo(state, now, rules, ctx, sink, firings, lateBefore: long.MinValue, out _);
        state.RecentEventIds.Add(idHash, options.RecentIdCapacity);
        if (orderHash != 0)
        {
            state.PlacedOrderIds.Add(orderHash);
        }

        state.EventsApplied++;
        var ticks = evt.OccurredAt.UtcTicks;
        if (state.FirstSeenTicks == 0 || ticks < state.FirstSeenTicks)
        {
            state.FirstSeenTicks = ticks;
        }

        if (ticks > state.LastSeenTicks)
        {
            state.LastSeenTicks = ticks;
        }

        switch (evt)
        {
            case OrderEvent order:
                ApplyOrder(state, order, ticks, rules.Tiers.PointsPerUnit);
                break;
            case ClickEvent click:
                ApplyClick(state, click, ticks);
                break;
            case CallEvent call:
                ApplyCall(state, call, ticks);
                break;
            case UpdateEvent update:
                ApplyUpdate(state, update, ticks);
                break;
            case OutcomeEvent outcome:
                state.OutcomesReceived++;
                state.ChannelsUsed |= ChannelOf(outcome.Channel);
                TriggerEvaluator.RecordOutcome(state, outcome, rules.Contact.DefaultTimeZone);
                break;
        }

        ctx.Reset(state, evt, now);
        ctx.Late = false;
        state.Days.DropBefore(ctx.Today - Math.Max(rules.RetentionDays, MinRetentionDays));
        RuleEvaluator.Evaluate(rules, ctx, Changes(evt.Type), sink, firings);
        return ApplyResult.Applied;
    }

    /// <summary>
    /// Lets time run to <paramref name="now"/>: each wake-up due by then is evaluated at its own instant, in order.
    /// Returns how many fired.
    /// </summary>
    public static int AdvanceTo(CustomerState state, long now, RuleSet rules, EvalContext ctx, IPopulationSink? sink) =>
        AdvanceTo(state, now, rules, ctx, sink, firings: null, lateBefore: long.MinValue, out _);

    /// <summary>
    /// As above, with triggers firing into <paramref name="firings"/>; <paramref name="late"/> counts the wake-ups that
    /// were due before <paramref name="lateBefore"/> (their firings are marked late).
    /// </summary>
    public static int AdvanceTo(CustomerState state, long now, RuleSet rules, EvalContext ctx, IPopulationSink? sink, IFiringSink? firings, long lateBefore, out int late)
    {
        var fired = 0;
        late = 0;
        while (state.WakeTicks != 0 && state.WakeTicks <= now)
        {
            var isLate = state.WakeTicks < lateBefore;
            if (isLate)
            {
                late++;
            }

            var at = Math.Max(state.WakeTicks, state.EvaluatedAtTicks);
            ctx.Reset(state, null, at);
            ctx.Late = isLate;
            RuleEvaluator.Evaluate(rules, ctx, Inputs.Time, sink, firings);
            fired++;
            if (state.WakeTicks != 0 && state.WakeTicks <= at)
            {
                // Cannot happen (wake-ups lie strictly after "now"); guards against a loop all the same.
                state.WakeTicks = 0;
            }
        }

        return fired;
    }

    /// <summary>Re-derives everything (a new rule set, or a customer never evaluated).</summary>
    /// <remarks>Triggers learn whether their conditions hold but do not fire: a new rule set does not contact everyone who already qualifies.</remarks>
    public static void Reevaluate(CustomerState state, long now, RuleSet rules, EvalContext ctx, IPopulationSink? sink)
    {
        ctx.Reset(state, null, Math.Max(now, state.EvaluatedAtTicks));
        ctx.ArmOnly = true;
        try
        {
            RuleEvaluator.Evaluate(rules, ctx, Inputs.All, sink);
        }
        finally
        {
            ctx.ArmOnly = false;
        }
    }

    private static Inputs Changes(EventType type) => Inputs.Event | type switch
    {
        EventType.OrderPlaced or EventType.OrderCancelled => Inputs.Orders,
        EventType.CallCompleted or EventType.CallAbandoned => Inputs.Calls,
        EventType.Attributes => Inputs.Attributes,
        EventType.Consent => Inputs.Consent,
        EventType.OutreachOutcome => Inputs.Outcomes,
        _ => Inputs.Clicks,
    };

    private static Channels ChannelOf(string? channel) => channel switch
    {
        "online" => Channels.Online,
        "store" => Channels.Store,
        "web" => Channels.Web,
        "app" => Channels.App,
        "voice" => Channels.Voice,
        "sms" => Channels.Sms,
        "email" => Channels.Email,
        _ => Channels.None,
    };

    /// <remarks>
    /// Sums are checked (<see cref="OverflowException"/> when a total would leave <c>decimal</c> or <c>int</c>/<c>long</c>
    /// range): such an order is refused whole rather than saturated, so no total is ever silently wrong.
    /// </remarks>
    private static void ApplyOrder(CustomerState state, OrderEvent order, long ticks, decimal pointsPerUnit)
    {
        if (order.Country is not null && ProfileFields.Claim(state, ProfileField.Country, ticks))
        {
            state.Country = order.Country;
        }

        state.ChannelsUsed |= ChannelOf(order.Channel);
        ref var day = ref state.Days.At(DayOf(ticks));
        var points = (long)Math.Min(Math.Floor(order.Amount * pointsPerUnit), long.MaxValue / 4);
        if (order.Type == EventType.OrderCancelled)
        {
            // Computed first, assigned after: an overflow leaves nothing half-done.
            var refunds = state.RefundAmount + order.Amount;
            var net = day.Net - order.Amount;
            var dayPoints = checked(day.Points - points);
            state.CancelledCount = checked(state.CancelledCount + 1);
            state.RefundAmount = refunds;
            day.Net = net;
            day.Points = dayPoints;
            return;
        }

        var gross = state.GrossAmount + order.Amount;
        var dayNet = day.Net + order.Amount;
        var pointsTotal = checked(day.Points + points);
        var orders = checked(state.OrderCount + 1);
        var items = checked(state.ItemsBought + order.ItemCount);
        var dayOrders = checked(day.Orders + 1);
        day.Orders = dayOrders;
        day.Net = dayNet;
        day.Points = pointsTotal;
        state.OrderCount = orders;
        state.GrossAmount = gross;
        state.ItemsBought = items;

        // Cart adds after this order stay "without purchase"; an older order that arrives late does not clear them.
        if (ticks >= state.LastCartAddTicks)
        {
            state.CartAddsSinceOrder = 0;
        }

        if (state.FirstOrderTicks == 0 || ticks < state.FirstOrderTicks)
        {
            if (state.FirstOrderTicks != 0)
            {
                // An earlier first order arrived late: the yearly review follows the earliest order in event time.
                state.TierReviewTicks = 0;
            }

            state.FirstOrderTicks = ticks;
        }

        if (ticks > state.LastOrderTicks)
        {
            state.LastOrderTicks = ticks;
        }
    }

    private static void ApplyClick(CustomerState state, ClickEvent click, long ticks)
    {
        state.ChannelsUsed |= ChannelOf(click.Channel);
        if (click.CategoryId is not null)
        {
            state.TopCategories.Add(click.CategoryId);
        }

        if (click.ProductId is not null && click.Type is EventType.ProductView or EventType.AddToCart)
        {
            state.TopProducts.Add(click.ProductId);
        }

        switch (click.Type)
        {
            case EventType.PageView:
                state.PageViews++;
                break;
            case EventType.ProductView:
                state.ProductViews++;
                break;
            case EventType.AddToCart:
                state.CartAdds++;
                state.Days.At(DayOf(ticks)).CartAdds++;
                state.LastCartAddTicks = Math.Max(state.LastCartAddTicks, ticks);
                if (ticks >= state.LastOrderTicks)
                {
                    // A cart add older than the last order (arriving late) was followed by a purchase.
                    state.CartAddsSinceOrder++;
                }

                break;
            case EventType.Favorite:
                state.Favorites++;
                break;
            case EventType.Search:
                state.Searches++;
                break;
            case EventType.Login:
                state.Logins++;
                break;
        }

        if (click.SessionId is not null && !string.Equals(click.SessionId, state.LastSessionId, StringComparison.Ordinal))
        {
            state.Sessions++;
            state.LastSessionId = click.SessionId;
        }
    }

    private static void ApplyCall(CustomerState state, CallEvent call, long ticks)
    {
        ref var day = ref state.Days.At(DayOf(ticks));
        day.Calls++;
        state.LastCallTicks = Math.Max(state.LastCallTicks, ticks);
        if (call.Type == EventType.CallCompleted)
        {
            state.CallsCompleted++;
        }
        else
        {
            state.CallsAbandoned++;
            day.Abandoned++;
        }

        state.WaitSecondsTotal += call.WaitSeconds;
        state.TalkSecondsTotal += call.TalkSeconds;
    }

    private static int DayOf(long ticks) => (int)(ticks / TimeSpan.TicksPerDay);

    /// <summary>
    /// Attributes and consent: latest <c>occurredAt</c> wins, field by field (an older update that arrives later
    /// changes no field a newer update set; ties go to the later record). Absent fields change nothing.
    /// </summary>
    private static void ApplyUpdate(CustomerState state, UpdateEvent update, long ticks)
    {
        if (update.Type == EventType.Attributes)
        {
            state.Birthday = Latest(state, ProfileField.Birthday, ticks, update.Birthday, state.Birthday);
            state.TimeZone = Latest(state, ProfileField.TimeZone, ticks, update.TimeZone, state.TimeZone);
            state.Country = Latest(state, ProfileField.Country, ticks, update.Country, state.Country);
            return;
        }

        state.DoNotContact = Latest(state, ProfileField.DoNotContact, ticks, update.DoNotContact, state.DoNotContact);
        state.ConsentVoice = Latest(state, ProfileField.ConsentVoice, ticks, update.ConsentVoice, state.ConsentVoice);
        state.ConsentSms = Latest(state, ProfileField.ConsentSms, ticks, update.ConsentSms, state.ConsentSms);
        state.ConsentEmail = Latest(state, ProfileField.ConsentEmail, ticks, update.ConsentEmail, state.ConsentEmail);
    }

    private static T? Latest<T>(CustomerState state, ProfileField field, long ticks, T? update, T? current) =>
        update is not null && ProfileFields.Claim(state, field, ticks) ? update : current;
}
