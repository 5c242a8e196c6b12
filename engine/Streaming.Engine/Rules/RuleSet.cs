using Streaming.Engine.Rules.Expressions;

namespace Streaming.Engine.Rules;

/// <summary>
/// A compiled rule set: RFM scoring, the churn-risk formula, stage ladders, the membership tier table and tags. Built
/// once by <see cref="RuleSetLoader"/>, immutable, shared by every partition.
/// </summary>
public sealed class RuleSet
{
    public required string Name { get; init; }

    /// <summary><c>name@hash</c>: the hash covers the rule files' text, so equal text means equal version.</summary>
    public required string Version { get; init; }

    /// <summary>The files it was built from, in order, so the set can be persisted and shown.</summary>
    public required IReadOnlyList<RuleSource> Sources { get; init; }

    public required RfmRules Rfm { get; init; }

    public required NumberExpression ChurnRisk { get; init; }

    /// <summary>Evaluated in this order; a ladder may read the stages of those before it.</summary>
    public required IReadOnlyList<Ladder> Ladders { get; init; }

    public required TierRules Tiers { get; init; }

    public required IReadOnlyList<TagRule> Tags { get; init; }

    /// <summary>Evaluated after everything else, in this order.</summary>
    public IReadOnlyList<TriggerRule> Triggers { get; init; } = [];

    public ContactPolicy Contact { get; init; } = ContactPolicy.Default;

    /// <summary>The trigger with this id, or null.</summary>
    public TriggerRule? FindTrigger(string id)
    {
        foreach (var trigger in Triggers)
        {
            if (trigger.Id == id)
            {
                return trigger;
            }
        }

        return null;
    }

    /// <summary>Days of per-day activity each customer keeps: the longest window any rule reads.</summary>
    public required int RetentionDays { get; init; }

    /// <summary>The ladder with this name, or null.</summary>
    public Ladder? FindLadder(string name)
    {
        foreach (var ladder in Ladders)
        {
            if (ladder.Name == name)
            {
                return ladder;
            }
        }

        return null;
    }
}

/// <summary>One rule file's name and text.</summary>
public sealed record RuleSource(string FileName, string Text);

/// <summary>RFM: raw values over a trailing window, 1–5 scores by thresholds, and a named segment from the scores.</summary>
public sealed class RfmRules
{
    public required int WindowDays { get; init; }

    public required NumberExpression Frequency { get; init; }

    public required NumberExpression Monetary { get; init; }

    public required NumberExpression RScore { get; init; }

    public required NumberExpression FScore { get; init; }

    public required NumberExpression MScore { get; init; }

    /// <summary>First match wins.</summary>
    public required IReadOnlyList<NamedCondition> Segments { get; init; }

    /// <summary>Everything the RFM block reads.</summary>
    public Inputs Reads => Frequency.Reads | Monetary.Reads | RScore.Reads | FScore.Reads | MScore.Reads | Inputs.Orders;
}

/// <summary>A named condition (a stage, a segment, a tag).</summary>
public sealed record NamedCondition(string Name, BoolExpression When);

/// <summary>A tag: a label that is on while its condition holds.</summary>
public sealed record TagRule(string Name, BoolExpression When);

/// <summary>A stage ladder: ordered stages, the first whose condition holds is the customer's stage.</summary>
public sealed class Ladder
{
    public required string Name { get; init; }

    public required IReadOnlyList<NamedCondition> Stages { get; init; }

    public Inputs Reads { get; init; }
}

/// <summary>
/// Membership: points over a trailing window, tiers by points. Upgrades happen at once; downgrades only at the yearly
/// review on the anniversary of the first order.
/// </summary>
public sealed class TierRules
{
    public required int WindowDays { get; init; }

    /// <summary>Points per whole currency unit of an order's value (a refund takes its points back).</summary>
    public required decimal PointsPerUnit { get; init; }

    /// <summary>The points balance (e.g. <c>max(0, sum_in(points, 365d))</c>).</summary>
    public required NumberExpression Points { get; init; }

    /// <summary>Ascending by threshold; the first level's threshold is the floor.</summary>
    public required IReadOnlyList<TierLevel> Levels { get; init; }

    /// <summary>The tier the given points give.</summary>
    public TierLevel LevelFor(decimal points)
    {
        var level = Levels[0];
        foreach (var candidate in Levels)
        {
            if (points >= candidate.Points)
            {
                level = candidate;
            }
        }

        return level;
    }

    /// <summary>The rank of a tier name (-1 if the rule set does not know it).</summary>
    public int Rank(string? name)
    {
        for (var i = 0; i < Levels.Count; i++)
        {
            if (Levels[i].Name == name)
            {
                return i;
            }
        }

        return -1;
    }
}

public sealed record TierLevel(string Name, decimal Points);
