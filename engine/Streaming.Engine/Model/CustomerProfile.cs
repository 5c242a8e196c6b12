namespace Streaming.Engine.Model;

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
    };

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
