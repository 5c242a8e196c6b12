using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;
using static Streaming.Engine.Tests.TestEvents;

namespace Streaming.Engine.Tests.Rules;

/// <summary>The default rule pack through the actor: values follow CONTRACTS.md §6, derived by hand in each test.</summary>
public sealed class CustomerModelTests
{
    private readonly CustomerState _state = new(Customer);
    private readonly EvalContext _ctx = new();
    private readonly Population _population = new();
    private readonly ActorOptions _options = new();

    private static RuleSet Rules => RuleSetLoader.Default;

    private void Apply(CustomerEvent evt) =>
        Assert.Equal(ApplyResult.Applied, CustomerActor.Apply(_state, evt, _options, Rules, _ctx, _population));

    private void AdvanceTo(DateTimeOffset at) => CustomerActor.AdvanceTo(_state, at.UtcTicks, Rules, _ctx, _population);

    private string Stage(string ladder = "lifecycle") => _state.Stages[ladder].Name;

    private DateTimeOffset Since(string ladder = "lifecycle") => new(_state.Stages[ladder].SinceTicks, TimeSpan.Zero);

    [Fact]
    public void One_order_moves_new_active_at_risk_dormant_churned_at_each_threshold()
    {
        Apply(Placed("o1", T0, 50m));
        Assert.Equal(("new", T0), (Stage(), Since()));

        // (instant, expected stage, when it was entered) — thresholds: new < 30 days; active ≤ 90; at_risk ≤ 180;
        // dormant ≤ 365; then churned. days_since counts whole days, so "> 90" starts at 91 days.
        var steps = new (double Days, string Stage, double SinceDays)[]
        {
            (29.99, "new", 0), (30, "active", 30), (90.99, "active", 30), (91, "at_risk", 91), (181, "dormant", 181),
            (365.99, "dormant", 181), (366, "churned", 366), (3000, "churned", 366),
        };
        foreach (var (days, stage, since) in steps)
        {
            AdvanceTo(T0.AddDays(days));
            Assert.Equal((stage, T0.AddDays(since)), (Stage(), Since()));
        }

        Assert.Equal(1, _population.Counts[("lifecycle", "churned")]);
        Assert.False(_population.Counts.ContainsKey(("lifecycle", "new")));
        foreach (var (from, to) in new[] { ("new", "active"), ("active", "at_risk"), ("at_risk", "dormant"), ("dormant", "churned") })
        {
            Assert.Equal(1, _population.Transitions[("lifecycle", from, to)]);
        }
    }

    [Fact]
    public void An_order_while_dormant_wins_the_customer_back_for_90_days()
    {
        Apply(Placed("o1", T0, 50m));
        Apply(Placed("o2", T0.AddDays(200), 50m)); // timers move it to dormant at day 181 first
        Assert.Equal(("won_back", T0.AddDays(200)), (Stage(), Since()));
        Assert.Equal(1, _population.Transitions[("lifecycle", "dormant", "won_back")]);

        Apply(Placed("o3", T0.AddDays(250), 50m)); // still within the 90 days
        Assert.Equal(("won_back", T0.AddDays(200)), (Stage(), Since()));

        AdvanceTo(T0.AddDays(290)); // 90 days after winning back, last order 40 days ago: active
        Assert.Equal(("active", T0.AddDays(290)), (Stage(), Since()));
    }

    [Fact]
    public void An_order_while_at_risk_is_not_a_win_back()
    {
        Apply(Placed("o1", T0, 50m));
        Apply(Placed("o2", T0.AddDays(120), 50m));

        Assert.Equal("active", Stage());
    }

    [Fact]
    public void Rfm_values_and_scores_follow_the_trailing_window_and_thresholds()
    {
        Apply(Placed("o1", T0, 400m));
        Apply(Placed("o2", T0.AddDays(100), 300m));
        Apply(Cancelled("c1", T0.AddDays(101), 50m));
        Apply(Placed("o3", T0.AddDays(300), 500m));

        // At day 300: all three orders within 365 days; monetary 400 + 300 − 50 + 500 = 1150.
        Assert.Equal((3, 1150m), (_state.Frequency, _state.Monetary));
        // r: 0 days ≤ 30 → 5; f: 3 ≥ 3 → 3; m: 1150 ≥ 1000 → 4.
        Assert.Equal((5, 3, 4), (_state.RScore, _state.FScore, _state.MScore));

        // Day 365 (UTC day of T0 + 365) drops the first order: 2 orders, 750.
        AdvanceTo(T0.AddDays(366));
        Assert.Equal((2, 750m), (_state.Frequency, _state.Monetary));
        Assert.Equal((4, 2, 3), (_state.RScore, _state.FScore, _state.MScore)); // r: 66 days ≤ 90 → 4
    }

    [Fact]
    public void Tiers_upgrade_at_once_and_downgrade_only_at_the_review()
    {
        Apply(Placed("o1", T0, 600.99m)); // 600 points
        Assert.Equal(("silver", 600L, "silver"), (_state.TierName, _state.TierPoints, _state.TierProjected));
        Assert.Equal(T0.AddYears(1).UtcTicks, _state.TierReviewTicks);

        Apply(Placed("o2", T0.AddDays(10), 1500m)); // 2100 points: gold at once
        Assert.Equal("gold", _state.TierName);

        // T0 + 1 year is 365 days after T0 (2024-03-05 → 2025-03-05), 10:00. The points of T0's day expire at
        // midnight starting day 365, before the review; those of day 10 at day 375, after it.
        AdvanceTo(T0.AddDays(364));
        Assert.Equal(("gold", 2100L), (_state.TierName, _state.TierPoints));
        AdvanceTo(T0.AddYears(1).AddTicks(-1));
        Assert.Equal(("gold", 1500L, "silver"), (_state.TierName, _state.TierPoints, _state.TierProjected));
        AdvanceTo(T0.AddYears(1));
        Assert.Equal(("silver", "silver"), (_state.TierName, _state.TierProjected));
        Assert.Equal(T0.AddYears(2).UtcTicks, _state.TierReviewTicks);
    }

    [Fact]
    public void Churn_risk_adds_recency_rhythm_and_service_parts()
    {
        Apply(Placed("o1", T0, 10m));
        Apply(Placed("o2", T0.AddDays(1), 10m));
        Apply(Call("k1", T0.AddDays(150), completed: false, waitSeconds: 200, talkSeconds: 0));

        // At day 150: recency 149 days → 25; two orders but one in the last 90 days? None (last order day 1) → 10;
        // one abandoned call in 30 days → 10 × 1 + 5 × 1 = 15.
        Assert.Equal(25 + 10 + 15, _state.ChurnRisk);
        Assert.Contains("service_issue", _state.Tags);

        AdvanceTo(T0.AddDays(200)); // the call left the 30-day window; recency 199 → 40
        Assert.Equal(40 + 10, _state.ChurnRisk);
        Assert.DoesNotContain("service_issue", _state.Tags);
    }

    [Fact]
    public void Ladders_and_tags_read_each_other_in_order()
    {
        for (var i = 0; i < 10; i++)
        {
            Apply(Placed("o" + i, T0.AddDays(i), 600m));
        }

        Assert.Equal(("advocate", "referral"), (Stage("ladder"), Stage("aarrr")));
        Assert.Equal(["frequent_buyer", "high_value", "vip"], _state.Tags);
        Assert.Equal("champions", _state.RfmSegment);
        Assert.Equal("platinum", _state.TierName);
    }

    [Fact]
    public void A_duplicate_event_changes_nothing_and_a_click_only_customer_is_a_prospect()
    {
        Apply(Click("k1", T0, EventType.AddToCart, "s1"));
        var before = CustomerStateCodec.Encode(_state);

        Assert.Equal(ApplyResult.Duplicate, CustomerActor.Apply(_state, Click("k1", T0, EventType.AddToCart, "s1"), _options, Rules, _ctx, _population));

        Assert.Equal(before, CustomerStateCodec.Encode(_state));
        Assert.Equal(("prospect", "interested", "acquisition"), (Stage(), Stage("ladder"), Stage("aarrr")));
        Assert.Equal(["cart_abandoner"], _state.Tags);
        AdvanceTo(T0.AddDays(2));
        Assert.Empty(_state.Tags);
    }

    [Fact]
    public void A_customer_keeps_trigger_memory_only_for_triggers_that_held_or_fired()
    {
        // A cart add: cart-abandoned waits 24 h, no other trigger of the pack reads clicks alone.
        Apply(Click("k1", T0, EventType.AddToCart, "s1"));
        Assert.Empty(_state.Triggers);

        // A day later the cart is abandoned: the trigger fires (suppressed or not, it remembers the firing).
        AdvanceTo(T0.AddDays(2));
        Assert.Equal(["cart-abandoned"], _state.Triggers.Keys.Order(StringComparer.Ordinal));

        // The first order: welcome holds and fires; cart-abandoned no longer holds but keeps its firing.
        Apply(Placed("o1", T0.AddDays(3), 50m));
        Assert.Equal(["cart-abandoned", "welcome"], _state.Triggers.Keys.Order(StringComparer.Ordinal));
        Assert.False(_state.Triggers["cart-abandoned"].Holds);
        Assert.Equal(T0.AddDays(1).UtcTicks, _state.Triggers["cart-abandoned"].LastFiredTicks);
        Assert.True(_state.Triggers["welcome"].Holds);
    }

    [Fact]
    public void Days_older_than_the_retention_are_dropped()
    {
        Apply(Placed("o1", T0, 10m));
        Apply(Placed("o2", T0.AddDays(CustomerActor.MinRetentionDays + 1), 10m));

        Assert.Equal(1, _state.Days.Count);
    }
}
