using Streaming.Engine.Rules;
using Streaming.Engine.Rules.Expressions;

namespace Streaming.Tests.Shared;

/// <summary>Rule sets with a fault injected by a test: a tag whose condition is code the test supplies (and may throw).</summary>
internal static class InjectedRules
{
    /// <summary>The default rule set with one more tag, <paramref name="tag"/>, whose condition is <paramref name="when"/>.</summary>
    public static RuleSet DefaultWith(string tag, Func<EvalContext, bool> when)
    {
        var d = RuleSetLoader.Default;
        return new RuleSet
        {
            Name = d.Name,
            Version = d.Version + "+" + tag,
            Sources = d.Sources,
            Rfm = d.Rfm,
            ChurnRisk = d.ChurnRisk,
            Ladders = d.Ladders,
            Tiers = d.Tiers,
            Tags = [.. d.Tags, new TagRule(tag, new BoolExpression(tag, new InjectedNode(when)))],
            Triggers = d.Triggers,
            Contact = d.Contact,
            RetentionDays = d.RetentionDays,
        };
    }

    /// <summary>A rule condition supplied by the test: it reads orders and time, and may throw.</summary>
    private sealed class InjectedNode(Func<EvalContext, bool> when) : Node(0, ValueKind.Bool, Inputs.Orders | Inputs.Time)
    {
        public override bool EvalBool(EvalContext c) => when(c);
    }
}
