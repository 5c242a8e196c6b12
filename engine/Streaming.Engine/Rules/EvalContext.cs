using Streaming.Engine.Events;
using Streaming.Engine.Model;

namespace Streaming.Engine.Rules;

/// <summary>
/// What a rule sees while it is evaluated: the customer, the event being applied (null when a timer fires) and the
/// instant taken as "now". Rules also report here the earliest later instant at which their result could change by
/// time alone, which becomes the customer's next timer. One instance per partition host, reused.
/// </summary>
public sealed class EvalContext
{
    public CustomerState State { get; private set; } = null!;

    public CustomerEvent? Event { get; private set; }

    /// <summary>Now, in UTC ticks.</summary>
    public long Now { get; private set; }

    /// <summary>Whole UTC days of <see cref="Now"/>.</summary>
    public int Today { get; private set; }

    /// <summary>The earliest instant after <see cref="Now"/> at which a rule evaluated so far may change (MaxValue: never).</summary>
    public long Wake { get; private set; }

    public void Reset(CustomerState state, CustomerEvent? evt, long now)
    {
        State = state;
        Event = evt;
        Now = now;
        Today = (int)(now / TimeSpan.TicksPerDay);
        Wake = long.MaxValue;
    }

    /// <summary>Asks to be evaluated again at <paramref name="ticks"/>; ignored unless it lies in the future.</summary>
    public void WakeAt(long ticks)
    {
        if (ticks > Now && ticks < Wake)
        {
            Wake = ticks;
        }
    }
}

/// <summary>Which inputs a rule reads; an evaluation skips rules none of whose inputs changed.</summary>
[Flags]
public enum Inputs : uint
{
    None = 0,
    Orders = 1 << 0,
    Clicks = 1 << 1,
    Calls = 1 << 2,
    Attributes = 1 << 3,
    Consent = 1 << 4,
    Outcomes = 1 << 5,

    /// <summary>Fields of the event being applied.</summary>
    Event = 1 << 6,

    /// <summary>The passage of time (now, days_since, windows).</summary>
    Time = 1 << 7,
    Rfm = 1 << 8,
    Churn = 1 << 9,
    Stages = 1 << 10,
    Tier = 1 << 11,
    Tags = 1 << 12,
    All = uint.MaxValue,
}
