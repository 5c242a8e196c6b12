using Streaming.Engine.Model;
using Streaming.Engine.Rules;

namespace Streaming.Engine.Runtime;

/// <summary>The public view of a customer (GET /v1/customers/{id}). Field names are part of the contract.</summary>
public sealed record CustomerProfile
{
    public required string CustomerId { get; init; }
    public required int Partition { get; init; }
    public required DateTimeOffset? AsOf { get; init; }
    public required DateTimeOffset? FirstSeen { get; init; }
    public required DateTimeOffset? LastSeen { get; init; }
    public required long EventsApplied { get; init; }
    public required OrdersView Orders { get; init; }
    public required ClicksView Clicks { get; init; }
    public required CallsView Calls { get; init; }
    public required AttributesView Attributes { get; init; }
    public required RfmView Rfm { get; init; }
    public required StageView? Lifecycle { get; init; }
    public required StageView? Aarrr { get; init; }
    public required StageView? Ladder { get; init; }

    /// <summary>Every ladder's stage by ladder name (lifecycle, aarrr and ladder included).</summary>
    public required IReadOnlyDictionary<string, StageView> Stages { get; init; }
    public required TierView Tier { get; init; }
    public required IReadOnlyList<string> Tags { get; init; }
    public required int ChurnRisk { get; init; }
    public required string? RuleVersion { get; init; }
    public required IReadOnlyList<string> Channels { get; init; }
    public required IReadOnlyList<string> TopCategories { get; init; }
    public required IReadOnlyList<string> TopProducts { get; init; }
    public required OutreachView Outreach { get; init; }

    /// <summary>
    /// The profile as of the partition's watermark. Values that depend on "now" are computed at it: recency here,
    /// the windowed RFM values from the per-day buckets with the rule set's window.
    /// </summary>
    public static CustomerProfile From(CustomerState s, int partition, long watermarkTicks, RuleSet rules)
    {
        var today = (int)(watermarkTicks / TimeSpan.TicksPerDay);
        var window = rules.Rfm.WindowDays;
        return From(s, partition, watermarkTicks) with
        {
            Rfm = new RfmView
            {
                RecencyDays = s.LastOrderTicks == 0 ? null : (int)Math.Max(0, (watermarkTicks - s.LastOrderTicks) / TimeSpan.TicksPerDay),
                Frequency = (int)s.Days.Sum(DaySeries.Orders, today, window, out _),
                Monetary = s.Days.Sum(DaySeries.Net, today, window, out _),
                R = Score(s.RScore),
                F = Score(s.FScore),
                M = Score(s.MScore),
                Segment = s.RfmSegment,
            },
        };
    }

    private static int? Score(byte score) => score == 0 ? null : score;

    private static StageView? StageOf(CustomerState s, string ladder) =>
        s.Stages.TryGetValue(ladder, out var v) ? new StageView { Stage = v.Name, Since = Time(v.SinceTicks) } : null;

    /// <summary>The profile with the derived values as last evaluated (no rule set at hand).</summary>
    public static CustomerProfile From(CustomerState s, int partition, long watermarkTicks) => new()
    {
        CustomerId = s.CustomerId,
        Partition = partition,
        AsOf = Time(watermarkTicks),
        FirstSeen = Time(s.FirstSeenTicks),
        LastSeen = Time(s.LastSeenTicks),
        EventsApplied = s.EventsApplied,
        Orders = new OrdersView
        {
            Count = s.OrderCount,
            CancelledCount = s.CancelledCount,
            GrossAmount = s.GrossAmount,
            RefundAmount = s.RefundAmount,
            NetAmount = s.NetAmount,
            AverageOrderValue = s.OrderCount == 0 ? null : decimal.Round(s.GrossAmount / s.OrderCount, 2, MidpointRounding.ToEven),
            Items = s.ItemsBought,
            FirstAt = Time(s.FirstOrderTicks),
            LastAt = Time(s.LastOrderTicks),
        },
        Clicks = new ClicksView
        {
            Total = s.ClickCount,
            PageViews = s.PageViews,
            ProductViews = s.ProductViews,
            CartAdds = s.CartAdds,
            Favorites = s.Favorites,
            Searches = s.Searches,
            Logins = s.Logins,
            Sessions = s.Sessions,
            CartAddsWithoutPurchase = s.CartAddsSinceOrder,
        },
        Calls = new CallsView
        {
            Total = s.CallCount,
            Completed = s.CallsCompleted,
            Abandoned = s.CallsAbandoned,
            WaitSeconds = s.WaitSecondsTotal,
            TalkSeconds = s.TalkSecondsTotal,
        },
        Attributes = new AttributesView
        {
            Country = s.Country,
            Birthday = s.Birthday,
            TimeZone = s.TimeZone,
            Consent = new ConsentView { Voice = s.ConsentVoice, Sms = s.ConsentSms, Email = s.ConsentEmail },
        },
        Rfm = new RfmView
        {
            RecencyDays = s.LastOrderTicks == 0 ? null : (int)Math.Max(0, (watermarkTicks - s.LastOrderTicks) / TimeSpan.TicksPerDay),
            Frequency = s.Frequency,
            Monetary = s.Monetary,
            R = Score(s.RScore),
            F = Score(s.FScore),
            M = Score(s.MScore),
            Segment = s.RfmSegment,
        },
        Lifecycle = StageOf(s, "lifecycle"),
        Aarrr = StageOf(s, "aarrr"),
        Ladder = StageOf(s, "ladder"),
        Stages = s.Stages.ToDictionary(p => p.Key, p => new StageView { Stage = p.Value.Name, Since = Time(p.Value.SinceTicks) }, StringComparer.Ordinal),
        Tier = new TierView
        {
            Name = s.TierName,
            Points = s.TierPoints,
            ReviewAt = Time(s.TierReviewTicks),
            Projected = s.TierProjected,
        },
        Tags = s.Tags,
        ChurnRisk = s.ChurnRisk,
        RuleVersion = s.RuleVersion,
        Channels = ChannelNames(s.ChannelsUsed),
        TopCategories = s.TopCategories.Ranked(),
        TopProducts = s.TopProducts.Ranked(),
        Outreach = OutreachView.From(s),
    };

    private static List<string> ChannelNames(Channels channels)
    {
        var names = new List<string>();
        foreach (var flag in Enum.GetValues<Channels>())
        {
            if (flag != Model.Channels.None && channels.HasFlag(flag))
            {
                names.Add(flag.ToString().ToLowerInvariant());
            }
        }

        return names;
    }

    private static DateTimeOffset? Time(long ticks) => ticks == 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
}

public sealed record OrdersView
{
    public required int Count { get; init; }
    public required int CancelledCount { get; init; }
    public required decimal GrossAmount { get; init; }
    public required decimal RefundAmount { get; init; }
    public required decimal NetAmount { get; init; }
    public required decimal? AverageOrderValue { get; init; }
    public required int Items { get; init; }
    public required DateTimeOffset? FirstAt { get; init; }
    public required DateTimeOffset? LastAt { get; init; }
}

/// <summary>Engagement with outreach: outcomes per channel, the channel and local hour that answer best.</summary>
public sealed record OutreachView
{
    public required IReadOnlyDictionary<string, ChannelOutcomes> Channels { get; init; }

    /// <summary>The channel with the best response rate (ties: more attempts), null before any outcome.</summary>
    public required string? PreferredChannel { get; init; }

    /// <summary>The local hour (0–23) with the most answered contacts, null before any.</summary>
    public required int? BestContactHour { get; init; }

    public static OutreachView From(CustomerState s)
    {
        var names = new[] { "voice", "sms", "email" };
        var channels = new Dictionary<string, ChannelOutcomes>(StringComparer.Ordinal);
        for (var i = 0; i < names.Length; i++)
        {
            var attempts = s.OutcomeCounts[i * 3];
            var answered = s.OutcomeCounts[(i * 3) + 1];
            channels[names[i]] = new ChannelOutcomes
            {
                Attempts = attempts,
                Answered = answered,
                Converted = s.OutcomeCounts[(i * 3) + 2],
                ResponseRate = attempts == 0 ? null : Math.Round((decimal)answered / attempts, 4),
            };
        }

        var preferred = channels.Where(c => c.Value.Attempts > 0)
            .OrderByDescending(c => c.Value.ResponseRate).ThenByDescending(c => c.Value.Attempts).Select(c => c.Key).FirstOrDefault();
        int? best = null;
        for (var h = 0; h < 24; h++)
        {
            if (s.AnsweredHours[h] > 0 && (best is null || s.AnsweredHours[h] > s.AnsweredHours[best.Value]))
            {
                best = h;
            }
        }

        return new OutreachView { Channels = channels, PreferredChannel = preferred, BestContactHour = best };
    }
}

public sealed record ChannelOutcomes
{
    public required int Attempts { get; init; }
    public required int Answered { get; init; }
    public required int Converted { get; init; }
    public required decimal? ResponseRate { get; init; }
}

public sealed record RfmView
{
    /// <summary>Whole days from the last order to <c>asOf</c>; null without orders.</summary>
    public required int? RecencyDays { get; init; }

    /// <summary>Orders placed on the UTC days of the trailing window ending with <c>asOf</c>'s day.</summary>
    public required int Frequency { get; init; }

    /// <summary>Placed minus refunded amounts over the same days.</summary>
    public required decimal Monetary { get; init; }
    public required int? R { get; init; }
    public required int? F { get; init; }
    public required int? M { get; init; }
    public required string? Segment { get; init; }
}

public sealed record StageView
{
    public required string Stage { get; init; }
    public required DateTimeOffset? Since { get; init; }
}

public sealed record TierView
{
    public required string? Name { get; init; }
    public required long Points { get; init; }
    public required DateTimeOffset? ReviewAt { get; init; }
    public required string? Projected { get; init; }
}

public sealed record ClicksView
{
    public required int Total { get; init; }
    public required int PageViews { get; init; }
    public required int ProductViews { get; init; }
    public required int CartAdds { get; init; }
    public required int Favorites { get; init; }
    public required int Searches { get; init; }
    public required int Logins { get; init; }
    public required int Sessions { get; init; }
    public required int CartAddsWithoutPurchase { get; init; }
}

public sealed record CallsView
{
    public required int Total { get; init; }
    public required int Completed { get; init; }
    public required int Abandoned { get; init; }
    public required long WaitSeconds { get; init; }
    public required long TalkSeconds { get; init; }
}

public sealed record AttributesView
{
    public required string? Country { get; init; }
    public required string? Birthday { get; init; }
    public required string? TimeZone { get; init; }
    public required ConsentView Consent { get; init; }
}

public sealed record ConsentView
{
    public required bool? Voice { get; init; }
    public required bool? Sms { get; init; }
    public required bool? Email { get; init; }
}
