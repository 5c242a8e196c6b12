namespace Streaming.Engine.Model;

/// <summary>
/// Everything the engine keeps about one customer. Owned by exactly one partition host; mutated only by
/// <see cref="Runtime.CustomerActor"/>. Times are UTC ticks (0 = never).
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

    /// <summary>
    /// Event time (UTC ticks, 0 = never set) of the update that set each attribute and consent field, indexed by
    /// <see cref="ProfileField"/>: the latest <c>occurredAt</c> wins field by field (CONTRACTS.md §2, v1.1).
    /// </summary>
    public long[] FieldTicks { get; set; } = new long[ProfileFields.Count];

    /// <summary>64-bit hashes of the <c>orderId</c>s of every <c>order_placed</c> applied: a re-sent order is a duplicate.</summary>
    public IdSet PlacedOrderIds { get; set; } = new();

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

    /// <summary>
    /// What each trigger last saw and did, by trigger id. Only triggers whose memory is not the default
    /// (<see cref="TriggerMemory.IsDefault"/>) have an entry; a missing one reads as the default.
    /// </summary>
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

    /// <summary>
    /// Becomes an exact copy of <paramref name="source"/> (its id excepted), reusing this instance's collections, so a
    /// change can be undone without allocating: the partition host snapshots a customer before each change and copies
    /// the snapshot back if the change fails. Shared references are immutable (strings, <see cref="FiringSummary"/>,
    /// the <see cref="Tags"/> array, which is replaced, never changed in place). A test checks the copy against the
    /// state codec, which covers every persisted field.
    /// </summary>
    public void CopyFrom(CustomerState source)
    {
        FirstSeenTicks = source.FirstSeenTicks;
        LastSeenTicks = source.LastSeenTicks;
        EventsApplied = source.EventsApplied;
        OrderCount = source.OrderCount;
        CancelledCount = source.CancelledCount;
        GrossAmount = source.GrossAmount;
        RefundAmount = source.RefundAmount;
        FirstOrderTicks = source.FirstOrderTicks;
        LastOrderTicks = source.LastOrderTicks;
        ItemsBought = source.ItemsBought;
        PageViews = source.PageViews;
        ProductViews = source.ProductViews;
        CartAdds = source.CartAdds;
        Favorites = source.Favorites;
        Searches = source.Searches;
        Logins = source.Logins;
        Sessions = source.Sessions;
        LastSessionId = source.LastSessionId;
        CallsCompleted = source.CallsCompleted;
        CallsAbandoned = source.CallsAbandoned;
        WaitSecondsTotal = source.WaitSecondsTotal;
        TalkSecondsTotal = source.TalkSecondsTotal;
        Country = source.Country;
        Birthday = source.Birthday;
        TimeZone = source.TimeZone;
        ConsentVoice = source.ConsentVoice;
        ConsentSms = source.ConsentSms;
        ConsentEmail = source.ConsentEmail;
        DoNotContact = source.DoNotContact;
        CopyArray(source.FieldTicks, FieldTicks, a => FieldTicks = a);
        PlacedOrderIds.CopyFrom(source.PlacedOrderIds);
        OutcomesReceived = source.OutcomesReceived;
        LastCallTicks = source.LastCallTicks;
        LastCartAddTicks = source.LastCartAddTicks;
        CartAddsSinceOrder = source.CartAddsSinceOrder;
        ChannelsUsed = source.ChannelsUsed;
        TopCategories.CopyFrom(source.TopCategories);
        TopProducts.CopyFrom(source.TopProducts);
        Days.CopyFrom(source.Days);
        Frequency = source.Frequency;
        Monetary = source.Monetary;
        RScore = source.RScore;
        FScore = source.FScore;
        MScore = source.MScore;
        RfmSegment = source.RfmSegment;
        ChurnRisk = source.ChurnRisk;
        Stages.Clear();
        foreach (var (ladder, stage) in source.Stages)
        {
            Stages.Add(ladder, stage);
        }

        TierName = source.TierName;
        TierPoints = source.TierPoints;
        TierProjected = source.TierProjected;
        TierReviewTicks = source.TierReviewTicks;
        Tags = source.Tags;
        RuleVersion = source.RuleVersion;
        Triggers.Clear();
        foreach (var (id, memory) in source.Triggers)
        {
            Triggers.Add(id, memory);
        }

        Contacts.Clear();
        Contacts.AddRange(source.Contacts);
        RecentFirings.Clear();
        RecentFirings.AddRange(source.RecentFirings);
        CopyArray(source.OutcomeCounts, OutcomeCounts, a => OutcomeCounts = a);
        CopyArray(source.AnsweredHours, AnsweredHours, a => AnsweredHours = a);
        EvaluatedAtTicks = source.EvaluatedAtTicks;
        WakeTicks = source.WakeTicks;
        RecentEventIds.CopyFrom(source.RecentEventIds);
    }

    private static void CopyArray<T>(T[] source, T[] target, Action<T[]> replace)
    {
        if (source.Length == target.Length)
        {
            source.CopyTo(target, 0);
        }
        else
        {
            replace((T[])source.Clone());
        }
    }

    public int CallCount => CallsCompleted + CallsAbandoned;

    public int ClickCount => PageViews + ProductViews + CartAdds + Favorites + Searches + Logins;
}

/// <summary>An attribute or consent field whose value is "latest occurredAt wins". Persisted values: never renumber.</summary>
public enum ProfileField : byte
{
    Birthday = 0,
    TimeZone = 1,
    Country = 2,
    ConsentVoice = 3,
    ConsentSms = 4,
    ConsentEmail = 5,
    DoNotContact = 6,
}

/// <summary>Last-writer-wins by event time for <see cref="ProfileField"/>s.</summary>
public static class ProfileFields
{
    /// <summary>How many <see cref="ProfileField"/> values there are (the length of <see cref="CustomerState.FieldTicks"/>).</summary>
    public const int Count = 7;

    /// <summary>
    /// Whether an update of <paramref name="field"/> that occurred at <paramref name="ticks"/> (UTC) may set it: true
    /// when it is not older than the update that set it last (ties go to the later record), and then records
    /// <paramref name="ticks"/> as the field's time.
    /// </summary>
    public static bool Claim(CustomerState state, ProfileField field, long ticks)
    {
        ref var last = ref state.FieldTicks[(int)field];
        if (ticks < last)
        {
            return false;
        }

        last = ticks;
        return true;
    }
}

/// <summary>A growing set of 64-bit id hashes kept sorted (8 bytes an id; binary search, insertion by copy).</summary>
public sealed class IdSet
{
    private ulong[] _items;
    private int _count;

    public IdSet()
    {
        _items = [];
    }

    /// <summary>Builds a set from hashes already sorted ascending without repeats (the codec's order).</summary>
    /// <exception cref="InvalidDataException">The hashes are not strictly ascending.</exception>
    internal IdSet(ulong[] sorted)
    {
        for (var i = 1; i < sorted.Length; i++)
        {
            if (sorted[i] <= sorted[i - 1])
            {
                throw new InvalidDataException("corrupt id set: hashes not strictly ascending");
            }
        }

        _items = sorted;
        _count = sorted.Length;
    }

    public int Count => _count;

    /// <summary>The hashes in ascending order.</summary>
    internal ReadOnlySpan<ulong> Raw => _items.AsSpan(0, _count);

    public bool Contains(ulong hash) => _items.AsSpan(0, _count).BinarySearch(hash) >= 0;

    /// <summary>Becomes a copy of <paramref name="source"/>, reusing this array when it is large enough.</summary>
    internal void CopyFrom(IdSet source)
    {
        if (_items.Length < source._count)
        {
            _items = new ulong[source._items.Length];
        }

        source._items.AsSpan(0, source._count).CopyTo(_items);
        _count = source._count;
    }

    /// <summary>Adds <paramref name="hash"/>; false if it was already there.</summary>
    public bool Add(ulong hash)
    {
        var at = _items.AsSpan(0, _count).BinarySearch(hash);
        if (at >= 0)
        {
            return false;
        }

        at = ~at;
        if (_count == _items.Length)
        {
            var grown = new ulong[Math.Max(4, _items.Length * 2)];
            _items.AsSpan(0, _count).CopyTo(grown);
            _items = grown;
        }

        _items.AsSpan(at, _count - at).CopyTo(_items.AsSpan(at + 1));
        _items[at] = hash;
        _count++;
        return true;
    }
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

    /// <summary>The condition does not hold and the trigger never fired: the memory of a trigger the customer never met.</summary>
    public readonly bool IsDefault => !Holds && LastFiredTicks == 0 && LastDelivery == 0 && !Converted;
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

    /// <summary>The outcome a dialer reported, if any. Immutable: an outcome replaces the summary in the list.</summary>
    public string? Outcome { get; init; }
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

    /// <summary>Becomes a copy of <paramref name="source"/>, reusing this ring when it is large enough.</summary>
    internal void CopyFrom(RecentIds source)
    {
        if (_ring.Length < source._count)
        {
            _ring = new ulong[source._ring.Length];
        }

        source._ring.AsSpan(0, source._count).CopyTo(_ring);
        _count = source._count;
        _next = source._next;
    }

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
