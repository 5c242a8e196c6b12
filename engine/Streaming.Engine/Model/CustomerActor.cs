using Streaming.Engine.Events;
using Streaming.Engine.Rules;

namespace Streaming.Engine.Model;

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
    public static ApplyResult Apply(CustomerState state, CustomerEvent evt, ActorOptions options, RuleSet rules, EvalContext ctx, IPopulationSink? sink, IFiringSink? firings)
    {
        var idHash = IdHash.Fnv1a64(evt.EventId);
        if (state.RecentEventIds.Contains(idHash))
        {
            return ApplyResult.Duplicate;
        }

        var now = Math.Max(evt.OccurredAt.UtcTicks, state.EvaluatedAtTicks);
        AdvanceTo(state, now, rules, ctx, sink, firings, lateBefore: long.MinValue, out _);
        state.RecentEventIds.Add(idHash, options.RecentIdCapacity);
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
                ApplyUpdate(state, update);
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

    private static void ApplyOrder(CustomerState state, OrderEvent order, long ticks, decimal pointsPerUnit)
    {
        if (order.Country is not null)
        {
            state.Country = order.Country;
        }

        state.ChannelsUsed |= ChannelOf(order.Channel);
        ref var day = ref state.Days.At(DayOf(ticks));
        var points = (long)Math.Min(Math.Floor(order.Amount * pointsPerUnit), long.MaxValue / 4);
        if (order.Type == EventType.OrderCancelled)
        {
            state.CancelledCount++;
            state.RefundAmount += order.Amount;
            day.Net -= order.Amount;
            day.Points -= points;
            return;
        }

        day.Orders++;
        state.CartAddsSinceOrder = 0;
        day.Net += order.Amount;
        day.Points += points;
        state.OrderCount++;
        state.GrossAmount += order.Amount;
        state.ItemsBought += order.ItemCount;
        if (state.FirstOrderTicks == 0 || ticks < state.FirstOrderTicks)
        {
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
                state.CartAddsSinceOrder++;
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

    private static void ApplyUpdate(CustomerState state, UpdateEvent update)
    {
        if (update.Type == EventType.Attributes)
        {
            state.Birthday = update.Birthday ?? state.Birthday;
            state.TimeZone = update.TimeZone ?? state.TimeZone;
            state.Country = update.Country ?? state.Country;
            return;
        }

        state.DoNotContact = update.DoNotContact ?? state.DoNotContact;
        state.ConsentVoice = update.ConsentVoice ?? state.ConsentVoice;
        state.ConsentSms = update.ConsentSms ?? state.ConsentSms;
        state.ConsentEmail = update.ConsentEmail ?? state.ConsentEmail;
    }
}
