using Streaming.Engine.Rules.Expressions;

namespace Streaming.Engine.Rules;

/// <summary>How a firing reaches a person. Persisted values: never renumber.</summary>
public enum ContactChannel : byte
{
    Voice = 1,
    Sms = 2,
    Email = 3,

    /// <summary>Marketing automation: published on the trigger topic only, no outreach item.</summary>
    Notify = 4,
}

/// <summary>Why a trigger fired for a person, for suppression: marketing waits after a service contact.</summary>
public enum TriggerPurpose : byte
{
    Marketing = 1,
    Service = 2,
}

/// <summary>
/// A trigger: a condition on the customer that fires when it becomes true (a state trigger), or on every event for
/// which it holds when it reads the event (an event trigger); with channels in order of preference, priority, a
/// cool-down, expiry, retries, a holdout share and an attribution window.
/// </summary>
public sealed class TriggerRule
{
    public required string Id { get; init; }

    public required BoolExpression When { get; init; }

    public required IReadOnlyList<ContactChannel> Channels { get; init; }

    public int Priority { get; init; } = 50;

    public TriggerPurpose Purpose { get; init; } = TriggerPurpose.Marketing;

    /// <summary>At most one firing per this period (zero: none beyond the condition's own edge).</summary>
    public TimeSpan Cooldown { get; init; }

    /// <summary>An outreach item not done this long after it fell due is dropped as expired.</summary>
    public TimeSpan Expires { get; init; } = TimeSpan.FromDays(3);

    /// <summary>More attempts after <c>no_answer</c> or <c>failed</c>, each <see cref="RetryAfter"/> later.</summary>
    public int RetryAttempts { get; init; }

    public TimeSpan RetryAfter { get; init; } = TimeSpan.FromDays(1);

    /// <summary>Share of customers (0–1), chosen by a hash of customer and rule, who are recorded but not contacted.</summary>
    public decimal Holdout { get; init; }

    /// <summary>An order within this period after a firing counts as a conversion of the rule.</summary>
    public TimeSpan Attribution { get; init; } = TimeSpan.FromDays(30);

    /// <summary>True when the condition reads the event: it fires at each event for which it holds.</summary>
    public bool IsEventTrigger => (When.Reads & Inputs.Event) != 0;
}

/// <summary>Contact pressure, as rule-file policy: the checks every firing for a person passes.</summary>
public sealed class ContactPolicy
{
    public static readonly ContactPolicy Default = new();

    /// <summary>The zone of customers without one (local-time rules, quiet hours).</summary>
    public TimeZoneInfo DefaultTimeZone { get; init; } = TimeZoneInfo.Utc;

    /// <summary>Quiet hours, local time: contact is deferred to <see cref="QuietTo"/>. Equal bounds: none.</summary>
    public TimeSpan QuietFrom { get; init; } = TimeSpan.FromHours(21);

    public TimeSpan QuietTo { get; init; } = TimeSpan.FromHours(9);

    /// <summary>Per channel: at most Max contacts per Per.</summary>
    public IReadOnlyDictionary<ContactChannel, (int Max, TimeSpan Per)> Caps { get; init; } = new Dictionary<ContactChannel, (int, TimeSpan)>
    {
        [ContactChannel.Voice] = (1, TimeSpan.FromDays(7)),
        [ContactChannel.Sms] = (2, TimeSpan.FromDays(7)),
    };

    /// <summary>All channels together: at most PressureMax contacts per PressurePer.</summary>
    public int PressureMax { get; init; } = 3;

    public TimeSpan PressurePer { get; init; } = TimeSpan.FromDays(14);

    /// <summary>Marketing triggers are held this long after a call-centre contact.</summary>
    public TimeSpan ServiceHold { get; init; } = TimeSpan.FromHours(48);

    /// <summary>The longest period a contact is remembered for (caps, pressure).</summary>
    public TimeSpan LongestWindow
    {
        get
        {
            var longest = PressurePer;
            foreach (var (_, cap) in Caps)
            {
                longest = cap.Per > longest ? cap.Per : longest;
            }

            return longest;
        }
    }
}
