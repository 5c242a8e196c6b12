using Streaming.Engine.Events;

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
/// The customer actor's behaviour: a pure function of (state, event) that updates the state in place. It does no I/O
/// and reads no clock; everything it needs arrives as arguments, so replays are deterministic.
/// </summary>
public static class CustomerActor
{
    public static ApplyResult Apply(CustomerState state, CustomerEvent evt, ActorOptions options)
    {
        var idHash = IdHash.Fnv1a64(evt.EventId);
        if (state.RecentEventIds.Contains(idHash))
        {
            return ApplyResult.Duplicate;
        }

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
                ApplyOrder(state, order, ticks);
                break;
            case ClickEvent click:
                ApplyClick(state, click);
                break;
            case CallEvent call:
                ApplyCall(state, call);
                break;
            case UpdateEvent update:
                ApplyUpdate(state, update);
                break;
            case OutcomeEvent:
                state.OutcomesReceived++;
                break;
        }

        return ApplyResult.Applied;
    }

    private static void ApplyOrder(CustomerState state, OrderEvent order, long ticks)
    {
        if (order.Country is not null)
        {
            state.Country = order.Country;
        }

        if (order.Type == EventType.OrderCancelled)
        {
            state.CancelledCount++;
            state.RefundAmount += order.Amount;
            return;
        }

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

    private static void ApplyClick(CustomerState state, ClickEvent click)
    {
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

    private static void ApplyCall(CustomerState state, CallEvent call)
    {
        if (call.Type == EventType.CallCompleted)
        {
            state.CallsCompleted++;
        }
        else
        {
            state.CallsAbandoned++;
        }

        state.WaitSecondsTotal += call.WaitSeconds;
        state.TalkSecondsTotal += call.TalkSeconds;
    }

    private static void ApplyUpdate(CustomerState state, UpdateEvent update)
    {
        if (update.Type == EventType.Attributes)
        {
            state.Birthday = update.Birthday ?? state.Birthday;
            state.TimeZone = update.TimeZone ?? state.TimeZone;
            state.Country = update.Country ?? state.Country;
            return;
        }

        state.ConsentVoice = update.ConsentVoice ?? state.ConsentVoice;
        state.ConsentSms = update.ConsentSms ?? state.ConsentSms;
        state.ConsentEmail = update.ConsentEmail ?? state.ConsentEmail;
    }
}
