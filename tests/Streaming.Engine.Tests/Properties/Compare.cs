using System.Globalization;
using System.Text;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;
using Xunit.Sdk;

namespace Streaming.Engine.Tests.Properties;

/// <summary>Equality checks for states and populations that, on failure, say which fields differ.</summary>
internal static class Compare
{
    /// <summary>Fails unless both encodings are byte-identical, listing the differing fields of the decoded states.</summary>
    public static void SameEncoding(string what, string customerId, byte[]? expected, byte[]? actual)
    {
        if (expected is null || actual is null)
        {
            if (expected is null && actual is null)
            {
                return;
            }

            throw new XunitException($"{what}: customer {customerId} is {(expected is null ? "missing from the expected side" : "missing from the actual side")}");
        }

        if (expected.AsSpan().SequenceEqual(actual))
        {
            return;
        }

        var left = Lines(CustomerStateCodec.Decode(customerId, expected));
        var right = Lines(CustomerStateCodec.Decode(customerId, actual));
        throw new XunitException($"{what}: customer {customerId} encodes differently ({expected.Length} vs {actual.Length} bytes)" + Diff(left, right));
    }

    public static void SamePopulation(string what, Population expected, Population actual)
    {
        var left = Lines(expected);
        var right = Lines(actual);
        if (!left.SequenceEqual(right, StringComparer.Ordinal))
        {
            throw new XunitException($"{what}: populations differ" + Diff(left, right));
        }
    }

    /// <summary>Fails unless both lists hold the same lines in the same order, listing the lines only one side has.</summary>
    public static void SameLines(string what, IReadOnlyList<string> expected, IReadOnlyList<string> actual)
    {
        if (!expected.SequenceEqual(actual, StringComparer.Ordinal))
        {
            throw new XunitException($"{what}: {expected.Count} expected, {actual.Count} actual" + Diff(expected.ToList(), actual.ToList()));
        }
    }

    /// <summary>Counts and transitions, one per line, sorted.</summary>
    public static List<string> Lines(Population p)
    {
        var lines = new List<string>();
        foreach (var ((dimension, value), count) in p.Counts)
        {
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"count {dimension}={value}: {count}"));
        }

        foreach (var ((dimension, from, to), count) in p.Transitions)
        {
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"transition {dimension} {from}->{to}: {count}"));
        }

        lines.Sort(StringComparer.Ordinal);
        return lines;
    }

    /// <summary>Every persisted field of a state, one per line, in encoding order.</summary>
    public static List<string> Lines(CustomerState s)
    {
        var lines = new List<string>();
        void Add(string name, object? value) => lines.Add(name + " = " + Format(value));
        Add("FirstSeen", Time(s.FirstSeenTicks));
        Add("LastSeen", Time(s.LastSeenTicks));
        Add("EventsApplied", s.EventsApplied);
        Add("OrderCount", s.OrderCount);
        Add("CancelledCount", s.CancelledCount);
        Add("GrossAmount", s.GrossAmount);
        Add("RefundAmount", s.RefundAmount);
        Add("FirstOrder", Time(s.FirstOrderTicks));
        Add("LastOrder", Time(s.LastOrderTicks));
        Add("ItemsBought", s.ItemsBought);
        Add("Clicks", $"pv={s.PageViews} prv={s.ProductViews} cart={s.CartAdds} fav={s.Favorites} search={s.Searches} login={s.Logins}");
        Add("Sessions", $"{s.Sessions} last={s.LastSessionId}");
        Add("Calls", $"completed={s.CallsCompleted} abandoned={s.CallsAbandoned} wait={s.WaitSecondsTotal} talk={s.TalkSecondsTotal}");
        Add("Attributes", $"country={s.Country} birthday={s.Birthday} tz={s.TimeZone}");
        Add("Consent", $"voice={s.ConsentVoice} sms={s.ConsentSms} email={s.ConsentEmail}");
        Add("OutcomesReceived", s.OutcomesReceived);
        Add("RecentEventIds", $"count={s.RecentEventIds.Count} next={s.RecentEventIds.Next} [{string.Join(' ', s.RecentEventIds.Raw.ToArray().Select(h => h.ToString("x16", CultureInfo.InvariantCulture)))}]");
        Add("LastCall", Time(s.LastCallTicks));
        Add("LastCartAdd", Time(s.LastCartAddTicks));
        Add("CartAddsSinceOrder", s.CartAddsSinceOrder);
        Add("ChannelsUsed", s.ChannelsUsed);
        Add("TopCategories", string.Join(' ', s.TopCategories.Items.Select(p => $"{p.Key}:{p.Value}")));
        Add("TopProducts", string.Join(' ', s.TopProducts.Items.Select(p => $"{p.Key}:{p.Value}")));
        foreach (var d in s.Days.Items)
        {
            Add("Day " + new DateTime(d.Day * TimeSpan.TicksPerDay, DateTimeKind.Utc).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                $"orders={d.Orders} net={d.Net} points={d.Points} calls={d.Calls} abandoned={d.Abandoned} cartAdds={d.CartAdds}");
        }

        Add("Rfm", $"f={s.Frequency} m={s.Monetary} r/f/m={s.RScore}/{s.FScore}/{s.MScore} segment={s.RfmSegment}");
        Add("ChurnRisk", s.ChurnRisk);
        foreach (var (ladder, stage) in s.Stages)
        {
            Add("Stage " + ladder, $"{stage.Name} since {Time(stage.SinceTicks)}");
        }

        Add("Tier", $"{s.TierName} points={s.TierPoints} projected={s.TierProjected} review={Time(s.TierReviewTicks)}");
        Add("Tags", string.Join(' ', s.Tags));
        Add("RuleVersion", s.RuleVersion);
        Add("EvaluatedAt", Time(s.EvaluatedAtTicks));
        Add("Wake", Time(s.WakeTicks));
        return lines;
    }

    private static string Time(long ticks) =>
        ticks == 0 ? "-" : new DateTime(ticks, DateTimeKind.Utc).ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);

    private static string Format(object? value) => value switch
    {
        null => "null",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static string Diff(List<string> expected, List<string> actual)
    {
        var text = new StringBuilder();
        var missing = expected.Except(actual, StringComparer.Ordinal).ToList();
        var extra = actual.Except(expected, StringComparer.Ordinal).ToList();
        foreach (var line in missing)
        {
            text.Append("\n  expected: ").Append(line);
        }

        foreach (var line in extra)
        {
            text.Append("\n  actual:   ").Append(line);
        }

        if (missing.Count == 0 && extra.Count == 0)
        {
            text.Append("\n  (same fields, different order)");
        }

        return text.ToString();
    }
}
