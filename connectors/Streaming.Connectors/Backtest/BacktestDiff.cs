namespace Streaming.Connectors.Backtest;

/// <summary>How one rule's counts changed from the base rule set to the compared one (compared minus base).</summary>
public sealed record RuleDiff
{
    /// <summary><c>both</c>, or the only side that has the rule: <c>base</c> or <c>compare</c>.</summary>
    public required string In { get; init; }

    public long Fired { get; init; }
    public long Customers { get; init; }

    /// <summary>All four deliveries.</summary>
    public required SortedDictionary<string, long> ByDelivery { get; init; }

    /// <summary>Every check either side counted.</summary>
    public required SortedDictionary<string, long> SuppressedBy { get; init; }

    /// <summary>Every month either side counted.</summary>
    public required SortedDictionary<string, long> PerMonth { get; init; }
}

/// <summary>Two backtests of the same data under two rule sets, and their differences per rule.</summary>
public sealed record BacktestComparison
{
    public required BacktestResult Base { get; init; }
    public required BacktestResult Compare { get; init; }

    /// <summary>Every rule of either set: a rule found in one set only counts as zero in the other.</summary>
    public required SortedDictionary<string, RuleDiff> Diff { get; init; }

    public static BacktestComparison Of(BacktestResult @base, BacktestResult compare)
    {
        var diff = new SortedDictionary<string, RuleDiff>(StringComparer.Ordinal);
        foreach (var rule in @base.Rules.Keys.Union(compare.Rules.Keys, StringComparer.Ordinal))
        {
            var a = @base.Rules.GetValueOrDefault(rule);
            var b = compare.Rules.GetValueOrDefault(rule);
            diff[rule] = new RuleDiff
            {
                In = a is null ? "compare" : b is null ? "base" : "both",
                Fired = (b?.Fired ?? 0) - (a?.Fired ?? 0),
                Customers = (b?.Customers ?? 0) - (a?.Customers ?? 0),
                ByDelivery = Delta(a?.ByDelivery, b?.ByDelivery),
                SuppressedBy = Delta(a?.SuppressedBy, b?.SuppressedBy),
                PerMonth = Delta(a?.PerMonth, b?.PerMonth),
            };
        }

        return new BacktestComparison { Base = @base, Compare = compare, Diff = diff };
    }

    private static SortedDictionary<string, long> Delta(SortedDictionary<string, long>? a, SortedDictionary<string, long>? b)
    {
        var result = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var key in (a?.Keys ?? Enumerable.Empty<string>()).Union(b?.Keys ?? Enumerable.Empty<string>(), StringComparer.Ordinal))
        {
            result[key] = (b?.GetValueOrDefault(key) ?? 0) - (a?.GetValueOrDefault(key) ?? 0);
        }

        return result;
    }
}
