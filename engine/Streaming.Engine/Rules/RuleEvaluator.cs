using Streaming.Engine.Model;

namespace Streaming.Engine.Rules;

/// <summary>Receives every change of a counted dimension (a ladder's stage, the tier, the RFM segment).</summary>
public interface IPopulationSink
{
    /// <summary>A customer left <paramref name="from"/> (null: newly counted) for <paramref name="to"/>.</summary>
    void Moved(string dimension, string? from, string? to);
}

/// <summary>
/// Re-derives a customer's values (RFM, churn risk, stages, tier, tags) from its state with a rule set, in that
/// order, skipping the parts none of whose inputs changed, and sets the customer's next wake-up instant. Pure: no I/O,
/// no clock; "now" comes in the context.
/// </summary>
public static class RuleEvaluator
{
    /// <summary>Population dimensions besides the ladders' names.</summary>
    public const string TierDimension = "tier";
    public const string SegmentDimension = "rfmSegment";

    public static void Evaluate(RuleSet rules, EvalContext ctx, Inputs changed, IPopulationSink? sink) =>
        Evaluate(rules, ctx, changed, sink, firings: null);

    /// <summary>As above; triggers fire into <paramref name="firings"/> (their memory is kept either way).</summary>
    public static void Evaluate(RuleSet rules, EvalContext ctx, Inputs changed, IPopulationSink? sink, IFiringSink? firings)
    {
        var s = ctx.State;
        ctx.DefaultTimeZone = rules.Contact.DefaultTimeZone;
        ctx.Rules = rules;
        var full = changed == Inputs.All || !string.Equals(s.RuleVersion, rules.Version, StringComparison.Ordinal);
        if (full)
        {
            changed = Inputs.All;
            s.RuleVersion = rules.Version;
            DropUnknownLadders(rules, s, sink);
        }

        var rfm = rules.Rfm;
        if ((changed & rfm.Reads) != 0)
        {
            var frequency = (int)(rfm.Frequency.Evaluate(ctx) ?? 0);
            var monetary = rfm.Monetary.Evaluate(ctx) ?? 0;
            s.Frequency = frequency;
            s.Monetary = monetary;
            var r = (byte)(rfm.RScore.Evaluate(ctx) ?? 0);
            var f = (byte)(rfm.FScore.Evaluate(ctx) ?? 0);
            var m = (byte)(rfm.MScore.Evaluate(ctx) ?? 0);
            if (r != s.RScore || f != s.FScore || m != s.MScore || full)
            {
                (s.RScore, s.FScore, s.MScore) = (r, f, m);
                changed |= Inputs.Rfm;
            }
        }

        if ((changed & Inputs.Rfm) != 0 || SegmentsRead(rfm, changed))
        {
            var segment = FirstMatch(rfm.Segments, ctx);
            if (!string.Equals(segment, s.RfmSegment, StringComparison.Ordinal))
            {
                sink?.Moved(SegmentDimension, s.RfmSegment, segment);
                s.RfmSegment = segment;
                changed |= Inputs.Rfm;
            }
        }

        if ((changed & rules.ChurnRisk.Reads) != 0)
        {
            var risk = (int)Math.Clamp(Math.Round(rules.ChurnRisk.Evaluate(ctx) ?? 0), 0, 100);
            if (risk != s.ChurnRisk)
            {
                s.ChurnRisk = risk;
                changed |= Inputs.Churn;
            }
        }

        // Indexed loops over the rule set's lists: foreach over an IReadOnlyList boxes its enumerator, per event.
        for (var l = 0; l < rules.Ladders.Count; l++)
        {
            var ladder = rules.Ladders[l];
            if ((changed & ladder.Reads) == 0)
            {
                continue;
            }

            var stage = FirstMatch(ladder.Stages, ctx);
            var had = s.Stages.TryGetValue(ladder.Name, out var current);
            if (!had || !string.Equals(current.Name, stage, StringComparison.Ordinal))
            {
                sink?.Moved(ladder.Name, had ? current.Name : null, stage);
                if (stage is null)
                {
                    s.Stages.Remove(ladder.Name);
                }
                else
                {
                    s.Stages[ladder.Name] = new StageValue(stage, ctx.Now);
                }

                changed |= Inputs.Stages;
            }
        }

        if ((changed & (Inputs.Orders | Inputs.Time)) != 0)
        {
            changed |= EvaluateTier(rules.Tiers, ctx, full, sink);
        }
        else if (s.TierReviewTicks != 0)
        {
            ctx.WakeAt(s.TierReviewTicks);
        }

        changed |= EvaluateTags(rules, ctx, changed);
        if (ctx.Event?.Type == Events.EventType.OrderPlaced)
        {
            TriggerEvaluator.RecordOrder(rules, s, ctx.Now, firings);
        }

        TriggerEvaluator.Evaluate(rules, ctx, changed, firings);

        // A partial evaluation keeps the earlier wake-up: it may belong to a part skipped now (waking early is harmless).
        var wake = ctx.Wake;
        if (!full && (changed & Inputs.Time) == 0 && s.WakeTicks > ctx.Now && s.WakeTicks < wake)
        {
            wake = s.WakeTicks;
        }

        s.WakeTicks = wake == long.MaxValue ? 0 : wake;
        s.EvaluatedAtTicks = Math.Max(s.EvaluatedAtTicks, ctx.Now);
    }

    /// <summary>Removes a customer's contribution to the population (before it is re-counted under new rules).</summary>
    public static void Uncount(CustomerState s, IPopulationSink sink)
    {
        foreach (var (ladder, stage) in s.Stages)
        {
            sink.Moved(ladder, stage.Name, null);
        }

        sink.Moved(TierDimension, s.TierName, null);
        sink.Moved(SegmentDimension, s.RfmSegment, null);
    }

    private static void DropUnknownLadders(RuleSet rules, CustomerState s, IPopulationSink? sink)
    {
        List<string>? gone = null;
        foreach (var name in s.Stages.Keys)
        {
            if (rules.FindLadder(name) is null)
            {
                (gone ??= []).Add(name);
            }
        }

        foreach (var name in gone ?? [])
        {
            sink?.Moved(name, s.Stages[name].Name, null);
            s.Stages.Remove(name);
        }
    }

    private static bool SegmentsRead(RfmRules rfm, Inputs changed)
    {
        for (var i = 0; i < rfm.Segments.Count; i++)
        {
            var segment = rfm.Segments[i];
            if ((segment.When.Reads & changed) != 0)
            {
                return true;
            }
        }

        return false;
    }

    private static string? FirstMatch(IReadOnlyList<NamedCondition> conditions, EvalContext ctx)
    {
        for (var i = 0; i < conditions.Count; i++)
        {
            var condition = conditions[i];
            if (condition.When.Evaluate(ctx))
            {
                return condition.Name;
            }
        }

        return null;
    }

    private static Inputs EvaluateTier(TierRules tiers, EvalContext ctx, bool full, IPopulationSink? sink)
    {
        var s = ctx.State;
        var points = (long)Math.Floor(tiers.Points.Evaluate(ctx) ?? 0);
        var projected = tiers.LevelFor(points).Name;
        var name = s.TierName;
        if (name is null || tiers.Rank(name) < 0)
        {
            name = projected;
        }

        if (s.FirstOrderTicks != 0)
        {
            if (s.TierReviewTicks == 0)
            {
                s.TierReviewTicks = Anniversary(s.FirstOrderTicks, ctx.Now);
            }
            else if (s.TierReviewTicks <= ctx.Now)
            {
                // The yearly review: the tier becomes what the points give, downwards too.
                name = projected;
                s.TierReviewTicks = Anniversary(s.FirstOrderTicks, ctx.Now);
            }

            ctx.WakeAt(s.TierReviewTicks);
        }

        if (tiers.Rank(projected) > tiers.Rank(name))
        {
            name = projected;
        }

        var changed = Inputs.None;
        if (!string.Equals(name, s.TierName, StringComparison.Ordinal))
        {
            sink?.Moved(TierDimension, s.TierName, name);
            s.TierName = name;
            changed |= Inputs.Tier;
        }

        if (points != s.TierPoints || !string.Equals(projected, s.TierProjected, StringComparison.Ordinal) || full)
        {
            s.TierPoints = points;
            s.TierProjected = projected;
            changed |= Inputs.Tier;
        }

        return changed;
    }

    /// <summary>The first anniversary of <paramref name="firstTicks"/> strictly after <paramref name="nowTicks"/>.</summary>
    public static long Anniversary(long firstTicks, long nowTicks)
    {
        var first = new DateTime(firstTicks, DateTimeKind.Utc);
        var years = Math.Max(1, new DateTime(nowTicks, DateTimeKind.Utc).Year - first.Year - 1);
        while (first.AddYears(years).Ticks <= nowTicks)
        {
            years++;
        }

        return first.AddYears(years).Ticks;
    }

    /// <summary>Re-derives the tags whose inputs changed; returns <see cref="Inputs.Tags"/> if the set changed (triggers read it).</summary>
    private static Inputs EvaluateTags(RuleSet rules, EvalContext ctx, Inputs changed)
    {
        var s = ctx.State;
        List<string>? next = null;
        var any = false;
        for (var t = 0; t < rules.Tags.Count; t++)
        {
            var tag = rules.Tags[t];
            bool on;
            if ((tag.When.Reads & changed) != 0)
            {
                any = true;
                on = tag.When.Evaluate(ctx);
            }
            else
            {
                on = Array.IndexOf(s.Tags, tag.Name) >= 0;
            }

            if (on)
            {
                (next ??= []).Add(tag.Name);
            }
        }

        if (!any && changed != Inputs.All)
        {
            return Inputs.None;
        }

        var tags = next is null ? [] : next.ToArray();
        Array.Sort(tags, StringComparer.Ordinal);
        if (tags.AsSpan().SequenceEqual(s.Tags))
        {
            return Inputs.None;
        }

        s.Tags = tags;
        return Inputs.Tags;
    }
}
