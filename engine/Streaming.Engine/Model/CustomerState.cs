namespace Streaming.Engine.Model;

/// <summary>
/// Everything the engine keeps about one customer. Owned by exactly one partition host; mutated only by
/// <see cref="CustomerActor"/>. Times are UTC ticks (0 = never).
/// </summary>
public sealed class CustomerState
{
    public CustomerState(string customerId)
    {
        CustomerId = customerId;
    }

    public string CustomerId { get; }

    public long FirstSeenTicks { get; set; }
    public long LastSeenTicks { get; set; }
    public long EventsApplied { get; set; }

    // Orders (CONTRACTS.md §5 "orders" block). firstAt/lastAt are those of order_placed events.
    public int OrderCount { get; set; }
    public int CancelledCount { get; set; }
    public decimal GrossAmount { get; set; }
    public decimal RefundAmount { get; set; }
    public long FirstOrderTicks { get; set; }
    public long LastOrderTicks { get; set; }
    public int ItemsBought { get; set; }

    // Clickstream counters.
    public int PageViews { get; set; }
    public int ProductViews { get; set; }
    public int CartAdds { get; set; }
    public int Favorites { get; set; }
    public int Searches { get; set; }
    public int Logins { get; set; }

    /// <summary>Sessions started: a click whose sessionId differs from the previous click's.</summary>
    public int Sessions { get; set; }
    public string? LastSessionId { get; set; }

    // Call centre.
    public int CallsCompleted { get; set; }
    public int CallsAbandoned { get; set; }
    public long WaitSecondsTotal { get; set; }
    public long TalkSecondsTotal { get; set; }

    // Attributes and consent.
    public string? Country { get; set; }
    public string? Birthday { get; set; }
    public string? TimeZone { get; set; }
    public bool? ConsentVoice { get; set; }
    public bool? ConsentSms { get; set; }
    public bool? ConsentEmail { get; set; }

    /// <summary>When true, no outreach on any channel (<c>consent.doNotContact</c>).</summary>
    public bool? DoNotContact { get; set; }

    // Outreach outcomes received.
    public int OutcomesReceived { get; set; }

    // Recent activity, for rules.
    public long LastCallTicks { get; set; }
    public long LastCartAddTicks { get; set; }

    /// <summary>Cart adds since the last order (cart adds without a purchase).</summary>
    public int CartAddsSinceOrder { get; set; }

    /// <summary>Channels seen (<see cref="Channels"/> flags).</summary>
    public Channels ChannelsUsed { get; set; }

    /// <summary>Most frequent categories and products viewed or bought (bounded).</summary>
    public TopCounts TopCategories { get; set; } = new();
    public TopCounts TopProducts { get; set; } = new();

    /// <summary>Per-day activity for trailing-window values (RFM, points, call pressure), pruned by age.</summary>
    public DayBuckets Days { get; set; } = new();

    // Values derived by the rule set (see Rules.RuleSet); persisted so population counts and transitions are exact.
    public int Frequency { get; set; }
    public decimal Monetary { get; set; }
    public byte RScore { get; set; }
    public byte FScore { get; set; }
    public byte MScore { get; set; }
    public string? RfmSegment { get; set; }
    public int ChurnRisk { get; set; }

    /// <summary>Current stage of each ladder of the rule set, by ladder name (e.g. lifecycle, aarrr, ladder).</summary>
    public Dictionary<string, StageValue> Stages { get; set; } = new(StringComparer.Ordinal);

    public string? TierName { get; set; }
    public long TierPoints { get; set; }
    public string? TierProjected { get; set; }

    /// <summary>Next tier review (UTC ticks, 0 until the first order).</summary>
    public long TierReviewTicks { get; set; }

    /// <summary>Tags currently true, sorted ordinally.</summary>
    public string[] Tags { get; set; } = [];

    /// <summary>The rule-set version the derived values were last evaluated with.</summary>
    public string? RuleVersion { get; set; }

    /// <summary>What each trigger last saw and did, by trigger id.</summary>
    public Dictionary<string, TriggerMemory> Triggers { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Contacts queued for this customer (channel, due instant), newest last; older than the caps' windows dropped.</summary>
    public List<ContactEntry> Contacts { get; set; } = [];

    /// <summary>The latest firings, newest last (bounded), for explanations.</summary>
    public List<FiringSummary> RecentFirings { get; set; } = [];

    /// <summary>Outreach outcomes per channel: attempts, answered, converted (index: channel − 1, voice/sms/email).</summary>
    public int[] OutcomeCounts { get; set; } = new int[9];

    /// <summary>Answered or converted outreach by local hour of day.</summary>
    public int[] AnsweredHours { get; set; } = new int[24];

    /// <summary>The latest instant the derived values were evaluated at (UTC ticks).</summary>
    public long EvaluatedAtTicks { get; set; }

    /// <summary>The earliest instant (UTC ticks) at which a derived value may change by time alone; 0 = none.</summary>
    public long WakeTicks { get; set; }

    /// <summary>Bounded memory of recent event ids (64-bit hashes), oldest overwritten first.</summary>
    public RecentIds RecentEventIds { get; set; } = new();

    public decimal NetAmount => GrossAmount - RefundAmount;

    public int CallCount => CallsCompleted + CallsAbandoned;

    public int ClickCount => PageViews + ProductViews + CartAdds + Favorites + Searches + Logins;
}

/// <summary>A trigger's memory for one customer: whether its condition held, and its last firing.</summary>
public struct TriggerMemory
{
    public bool Holds;
    public long LastFiredTicks;

    /// <summary><see cref="Rules.Delivery"/> of the last firing.</summary>
    public byte LastDelivery;

    /// <summary>An order followed the last firing within the rule's attribution window.</summary>
    public bool Converted;
}

/// <summary>A contact counted against caps and the pressure budget.</summary>
public readonly record struct ContactEntry(byte Channel, long Ticks);

/// <summary>A firing as the customer remembers it (explanations: GET /v1/customers/{id}/triggers).</summary>
public sealed record FiringSummary
{
    public required string Id { get; init; }
    public required string Rule { get; init; }
    public required string RuleVersion { get; init; }
    public required long AtTicks { get; init; }
    public required byte Channel { get; init; }
    public required byte Delivery { get; init; }
    public string? SuppressedBy { get; init; }
    public long DueTicks { get; init; }

    /// <summary>The rule's inputs and their values when it fired (<c>name=value</c>, one per entry).</summary>
    public required IReadOnlyList<string> Reason { get; init; }
    public string? Outcome { get; set; }
}

/// <summary>A ladder stage and the instant it was entered.</summary>
public readonly record struct StageValue(string Name, long SinceTicks);

/// <summary>Sales and contact channels, as flags.</summary>
[Flags]
public enum Channels : byte
{
    None = 0,
    Online = 1,
    Store = 2,
    Web = 4,
    App = 8,
    Voice = 16,
    Sms = 32,
    Email = 64,
}

/// <summary>A fixed-capacity ring of 64-bit id hashes used to ignore redelivered events.</summary>
public sealed class RecentIds
{
    private ulong[] _ring;
    private int _count;
    private int _next;

    public RecentIds()
    {
        _ring = [];
    }

    internal RecentIds(ulong[] ring, int count, int next)
    {
        _ring = ring;
        _count = count;
        _next = next;
    }

    public int Count => _count;

    internal ReadOnlySpan<ulong> Raw => _ring.AsSpan(0, _count);

    internal int Next => _next;

    public bool Contains(ulong hash)
    {
        var span = _ring.AsSpan(0, _count);
        return span.Contains(hash);
    }

    /// <summary>Remembers <paramref name="hash"/>, forgetting the oldest when <paramref name="capacity"/> is reached.</summary>
    public void Add(ulong hash, int capacity)
    {
        if (capacity <= 0)
        {
            return;
        }

        if (_count < capacity)
        {
            if (_count == _ring.Length)
            {
                var grown = new ulong[Math.Min(capacity, Math.Max(4, _ring.Length * 2))];
                _ring.AsSpan(0, _count).CopyTo(grown);
                _ring = grown;
            }

            _ring[_count++] = hash;
            _next = _count % capacity;
            return;
        }

        // Full: capacity may have shrunk since the state was written; clamp.
        if (_next >= _count)
        {
            _next = 0;
        }

        _ring[_next] = hash;
        _next = (_next + 1) % _count;
    }
}
