using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Runtime.Rules;
using Xunit.Abstractions;
using static Streaming.Engine.Tests.TestEvents;

namespace Streaming.Runtime.Tests;

/// <summary>
/// The default pack's triggers through a partition of the actor runtime (coordinator and customer entities): when they
/// fire, and what becomes of each firing. Firings reach the test with the checkpoint that saves them, as they reach the
/// outbox. Expected instants and counts are worked out here from the rule file's thresholds.
/// </summary>
public sealed class TriggerTests(ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit(CustomerEntityTests.RuntimeConfig, nameof(TriggerTests), output)
{
    private PartitionHarness NewHost() => new(this, 0, new RuleBook(RuleSetLoader.Default));

    private static void Clock(PartitionHarness host, DateTimeOffset at) =>
        host.Apply(Click("clock-" + at.UtcTicks, at, EventType.PageView, "s", customerId: "clock"));

    private static UpdateEvent Consent(string id, DateTimeOffset at, string customer, bool voice = true, bool sms = true) =>
        Streaming.Engine.Tests.TestEvents.Consent(id, at, voice, sms, email: true, customerId: customer);

    private static List<TriggerFiring> Of(IEnumerable<TriggerFiring> firings, string rule, string? customer = null) =>
        firings.Where(f => f.Rule == rule && (customer is null || f.CustomerId == customer)).ToList();

    [Fact]
    public void Win_back_fires_once_per_lapse_of_more_than_90_days()
    {
        var host = NewHost();
        host.Apply(Placed("o1", T0, 10m, customerId: "w"));
        host.Apply(Placed("o2", T0.AddDays(50), 10m, customerId: "w"));  // no lapse
        host.Apply(Placed("o3", T0.AddDays(200), 10m, customerId: "w")); // lapse: fired at day 50 + 91
        host.Apply(Placed("o4", T0.AddDays(500), 10m, customerId: "w")); // lapse: fired at day 200 + 91
        Clock(host, T0.AddDays(600));                                     // lapse: fired at day 500 + 91
        host.Checkpoint();

        var winBack = Of(host.Firings, "win-back", "w");
        Assert.Equal([T0.AddDays(141).UtcTicks, T0.AddDays(291).UtcTicks, T0.AddDays(591).UtcTicks], winBack.Select(f => f.AtTicks));
        Assert.Equal(winBack.Count, winBack.Select(f => f.Id).Distinct().Count());
        Assert.Contains(winBack[0].Reason, r => r.Key == "days_since(orders.lastAt)" && r.Value == "91");
    }

    [Fact]
    public void Birthday_calls_fire_at_nine_local_time_in_three_time_zones_across_a_restart()
    {
        var host = NewHost();
        var zones = new[] { ("ny", "America/New_York", 13), ("berlin", "Europe/Berlin", 7), ("tokyo", "Asia/Tokyo", 0) };
        foreach (var (id, zone, _) in zones)
        {
            host.Apply(Attributes("a-" + id, T0, birthday: "1990-06-15", timeZone: zone, country: null, customerId: id));
            host.Apply(Consent("c-" + id, T0, id));
        }

        Clock(host, new DateTimeOffset(2024, 6, 10, 0, 0, 0, TimeSpan.Zero));
        host.Checkpoint();
        Assert.Empty(Of(host.Firings, "birthday-care"));

        // A restart before the birthdays; the wake-ups come back from the journal.
        host.Restart();
        Clock(host, new DateTimeOffset(2024, 6, 16, 12, 0, 0, TimeSpan.Zero));
        host.Checkpoint();

        foreach (var (id, _, utcHour) in zones)
        {
            // 09:00 local on 15 June 2024: New York is UTC−4 (summer), Berlin UTC+2, Tokyo UTC+9.
            var firing = Assert.Single(Of(host.Firings, "birthday-care", id));
            Assert.Equal(new DateTimeOffset(2024, 6, 15, utcHour, 0, 0, TimeSpan.Zero).UtcTicks, firing.AtTicks);
            Assert.Equal((Delivery.Queued, ContactChannel.Voice), (firing.Delivery, firing.Channel));
            Assert.Equal(firing.AtTicks, firing.DueTicks); // 09:00 is outside the quiet hours
        }
    }

    [Fact]
    public void A_tier_downgrade_warning_fires_30_days_before_the_review_and_quiet_hours_defer_the_call()
    {
        var host = NewHost();
        var zones = new[] { ("ny", "America/New_York"), ("berlin", "Europe/Berlin"), ("tokyo", "Asia/Tokyo") };
        foreach (var (id, zone) in zones)
        {
            host.Apply(Attributes("a-" + id, T0, birthday: null, timeZone: zone, country: null, customerId: id));
            host.Apply(Consent("c-" + id, T0, id));
            host.Apply(Placed("o-" + id, T0, 600m, customerId: id));          // silver
            host.Apply(Cancelled("r-" + id, T0.AddDays(10), 200m, customerId: id)); // 400 points: projected member
        }

        Clock(host, T0.AddDays(200));
        host.Checkpoint();
        host.Restart();
        Clock(host, T0.AddDays(400));
        host.Checkpoint();

        // T0 is 2024-03-05 10:00 UTC; the review is 2025-03-05 10:00 UTC; the warning 30 days before: 2025-02-03 10:00.
        var warningAt = new DateTimeOffset(2025, 2, 3, 10, 0, 0, TimeSpan.Zero);
        var expectedDue = new Dictionary<string, DateTimeOffset>
        {
            ["ny"] = new(2025, 2, 3, 14, 0, 0, TimeSpan.Zero),     // 05:00 EST is quiet: due at 09:00 EST
            ["berlin"] = warningAt,                                // 11:00 CET
            ["tokyo"] = warningAt,                                 // 19:00 JST
        };
        foreach (var (id, _) in zones)
        {
            var firing = Assert.Single(Of(host.Firings, "tier-downgrade-warning", id));
            Assert.Equal(warningAt.UtcTicks, firing.AtTicks);
            Assert.Equal(expectedDue[id].UtcTicks, firing.DueTicks);
            Assert.Equal(Delivery.Queued, firing.Delivery);
        }
    }

    [Fact]
    public void Suppression_checks_are_named_and_channels_fall_back()
    {
        var host = NewHost();

        // No consent at all: suppressed by consent.
        host.Apply(Placed("o1", T0, 10m, customerId: "nc"));

        // Do-not-contact beats consent.
        host.Apply(Consent("c-d", T0, "dnc"));
        host.Apply(new UpdateEvent { EventId = "d-d", CustomerId = "dnc", OccurredAt = T0, Type = EventType.Consent, DoNotContact = true });
        host.Apply(Placed("o2", T0, 10m, customerId: "dnc"));

        // A call within 48 hours holds marketing.
        host.Apply(Consent("c-h", T0, "held"));
        host.Apply(Placed("o3", T0, 10m, customerId: "held"));
        host.Apply(Call("k-h", T0.AddDays(90), completed: true, waitSeconds: 10, talkSeconds: 60, customerId: "held")); // win-back is due a day later

        // Only SMS consent: win-back falls back from voice to sms.
        host.Apply(Consent("c-s", T0, "smsonly", voice: false, sms: true));
        host.Apply(Placed("o4", T0, 10m, customerId: "smsonly"));

        Clock(host, T0.AddDays(92));
        host.Checkpoint();
        var firings = host.Firings;

        string? SuppressedBy(string customer) => Assert.Single(Of(firings, "win-back", customer)).SuppressedBy;
        var holdout = Of(firings, "win-back").Where(f => f.Delivery == Delivery.Holdout).Select(f => f.CustomerId).ToHashSet();
        Assert.Empty(holdout); // none of these ids is in the 10% control group (else this test would pick others)
        Assert.Equal(TriggerEvaluator.ConsentCheck, SuppressedBy("nc"));
        Assert.Equal(TriggerEvaluator.DoNotContactCheck, SuppressedBy("dnc"));
        Assert.Equal(TriggerEvaluator.ServiceHoldCheck, SuppressedBy("held"));
        var fallback = Assert.Single(Of(firings, "win-back", "smsonly"));
        Assert.Equal((Delivery.Queued, ContactChannel.Sms, (string?)null), (fallback.Delivery, fallback.Channel, fallback.SuppressedBy));
    }

    [Fact]
    public void Caps_and_the_pressure_budget_count_queued_contacts()
    {
        var rules = RuleSetLoader.Default;
        var trigger = rules.FindTrigger("win-back")!;
        var s = new CustomerState("p") { ConsentVoice = true, ConsentSms = true };
        var now = T0.UtcTicks;

        s.Contacts.Add(new ContactEntry((byte)ContactChannel.Voice, now - TimeSpan.FromDays(6).Ticks));
        Assert.Equal(TriggerEvaluator.CapCheck, TriggerEvaluator.Check(rules, trigger, s, ContactChannel.Voice, now));  // 1 voice per 7 days
        Assert.Null(TriggerEvaluator.Check(rules, trigger, s, ContactChannel.Sms, now));

        s.Contacts.Add(new ContactEntry((byte)ContactChannel.Sms, now - TimeSpan.FromDays(13).Ticks));
        s.Contacts.Add(new ContactEntry((byte)ContactChannel.Sms, now - TimeSpan.FromDays(1).Ticks));
        Assert.Equal(TriggerEvaluator.PressureCheck, TriggerEvaluator.Check(rules, trigger, s, ContactChannel.Sms, now));  // 3 per 14 days

        Assert.Null(TriggerEvaluator.Check(rules, trigger, s, ContactChannel.Sms, now + TimeSpan.FromDays(2).Ticks)); // the day-13 one left the window
    }

    [Fact]
    public void Holdouts_are_a_stable_share_and_are_published_not_queued()
    {
        var members = Enumerable.Range(0, 4000).Count(i => TriggerEvaluator.InHoldout("c" + i, "win-back", 0.1m));
        Assert.InRange(members, 320, 480); // 10% of 4000, give or take a few standard deviations (σ ≈ 19)
        Assert.Equal(members, Enumerable.Range(0, 4000).Count(i => TriggerEvaluator.InHoldout("c" + i, "win-back", 0.1m)));
        Assert.False(TriggerEvaluator.InHoldout("c1", "win-back", 0m));

        var inGroup = Enumerable.Range(0, 4000).Select(i => "c" + i).First(id => TriggerEvaluator.InHoldout(id, "win-back", 0.1m));
        var host = NewHost();
        host.Apply(Consent("c", T0, inGroup));
        host.Apply(Placed("o", T0, 10m, customerId: inGroup));
        Clock(host, T0.AddDays(95));
        host.Checkpoint();

        var firing = Assert.Single(Of(host.Firings, "win-back", inGroup));
        Assert.Equal(Delivery.Holdout, firing.Delivery);
        Assert.Empty(host.Find(inGroup)!.Contacts);
    }

    [Fact]
    public void An_order_within_the_attribution_window_converts_the_last_firing()
    {
        var host = NewHost();
        host.Apply(Consent("c", T0, "conv"));
        host.Apply(Placed("o1", T0, 10m, customerId: "conv"));
        Clock(host, T0.AddDays(95));                                    // win-back fires at day 91
        host.Apply(Placed("o2", T0.AddDays(100), 10m, customerId: "conv")); // 9 days later: converted
        host.Apply(Placed("o3", T0.AddDays(101), 10m, customerId: "conv")); // counted once

        var delivery = TriggerNames.Of((Delivery)host.Find("conv")!.Triggers["win-back"].LastDelivery);
        var counters = host.Status().RuleCounters;
        Assert.Equal(1, counters[("win-back", "converted", delivery)]);
        Assert.Equal(1, counters[("win-back", "fired", delivery)]);
    }

    [Fact]
    public void Event_triggers_fire_for_each_qualifying_event_within_their_cool_down()
    {
        var host = NewHost();
        host.Apply(Consent("c", T0, "svc"));
        host.Apply(Call("k1", T0, completed: false, waitSeconds: 150, talkSeconds: 0, customerId: "svc"));
        host.Apply(Call("k2", T0.AddHours(1), completed: false, waitSeconds: 300, talkSeconds: 0, customerId: "svc")); // within the 2-day cool-down
        host.Apply(Call("k3", T0.AddDays(3), completed: false, waitSeconds: 130, talkSeconds: 0, customerId: "svc"));
        host.Apply(Call("k4", T0.AddDays(6), completed: false, waitSeconds: 30, talkSeconds: 0, customerId: "svc")); // short wait, but the 4th call in 7 days
        host.Apply(Call("k5", T0.AddDays(14), completed: true, waitSeconds: 30, talkSeconds: 60, customerId: "svc")); // neither
        host.Checkpoint();

        Assert.Equal([T0.UtcTicks, T0.AddDays(3).UtcTicks, T0.AddDays(6).UtcTicks], Of(host.Firings, "service-recovery", "svc").Select(f => f.AtTicks));
    }

    [Fact]
    public void A_new_rule_set_does_not_fire_for_customers_who_already_qualify()
    {
        var host = NewHost();
        host.Apply(Placed("o", T0, 10m, customerId: "old"));
        host.Checkpoint();
        Assert.Single(Of(host.Firings, "welcome", "old"));

        var text = RuleSetLoader.DefaultText().Replace("  - id: welcome\n    when: orders.count >= 1", "  - id: welcome\n    when: orders.count >= 1 && orders.net > 0", StringComparison.Ordinal);
        var switchedTo = RuleSetLoader.Load([new RuleSource("r.yaml", text)]);
        Assert.NotEqual(RuleSetLoader.Default.Version, switchedTo.Version);
        var before = host.Firings.Count;
        host.SwitchRules(switchedTo);
        var after = host.Checkpoint();

        // Neither the checkpoint of the switch nor the one after the customers' re-derivation carries a firing.
        Assert.Empty(after.Firings);
        Assert.Equal(before, host.Firings.Count);
        Assert.Equal(switchedTo.Version, host.Find("old")!.RuleVersion);
    }
}
