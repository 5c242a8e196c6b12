using Akka.Actor;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Runtime.Partitions;
using Streaming.Runtime.Rules;
using Xunit.Abstractions;
using static Streaming.Engine.Tests.TestEvents;

namespace Streaming.Runtime.Tests;

/// <summary>
/// Durable wake-ups on the actor runtime: kept by the partition's coordinator across a restart, run in due order when
/// the watermark passes them (late ones counted), and following the wall clock when the partition is quiet. Expected
/// stages and instants come from the default rule file's lifecycle thresholds (new 30 days, active 90, at_risk 180,
/// dormant 365 days after the last order).
/// </summary>
public sealed class TimerTests(ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit(CustomerEntityTests.RuntimeConfig, nameof(TimerTests), output)
{
    private const int Customers = 1000;

    private PartitionHarness NewHost() => new(this, 0, new RuleBook(RuleSetLoader.Default));

    /// <summary>Moves the partition's watermark with an event of a customer that has no wake-ups of its own yet.</summary>
    private static void Clock(PartitionHarness host, DateTimeOffset at, string suffix = "") =>
        host.Apply(Click("clock-" + at.UtcTicks + suffix, at, EventType.PageView, "s", customerId: "clock"));

    [Fact]
    public void Far_future_wake_ups_survive_a_restart_and_all_run_once_the_watermark_passes_them()
    {
        var host = NewHost();
        for (var i = 0; i < Customers; i++)
        {
            // Each customer's next wake-up is 30 days after its order (new → active).
            host.Feed(Placed("o" + i, T0.AddMinutes(i), 10m, customerId: "c" + i));
        }

        host.AwaitQuiet();
        host.Checkpoint();

        host.Restart();
        Clock(host, T0.AddDays(20));
        Assert.Equal(0, host.Status().TimersFired); // nothing due yet

        // Past every wake-up: all run.
        Clock(host, T0.AddDays(32));
        var status = host.Status();
        Assert.Equal(Customers, status.Counts[("lifecycle", "active")]);
        Assert.Equal(Customers, status.Transitions[("lifecycle", "new", "active")]);
        for (var i = 0; i < Customers; i += 97)
        {
            var state = host.Find("c" + i)!;
            Assert.Equal(new StageValue("active", T0.AddMinutes(i).AddDays(30).UtcTicks), state.Stages["lifecycle"]);
        }
    }

    [Fact]
    public void After_an_outage_overdue_timers_fire_once_in_due_order_and_are_counted_late()
    {
        var host = NewHost();
        host.Apply(Placed("a", T0, 10m, customerId: "a"));
        host.Apply(Placed("b", T0.AddDays(1), 10m, customerId: "b"));
        host.Checkpoint();

        // The engine comes back a year later: one event jumps the watermark past every threshold of both customers.
        host.Restart();
        Clock(host, T0.AddDays(400));

        foreach (var (id, start) in new[] { ("a", T0), ("b", T0.AddDays(1)) })
        {
            // Each stage was entered at its own due time, not at the watermark: they fired in order.
            Assert.Equal(new StageValue("churned", start.AddDays(366).UtcTicks), host.Find(id)!.Stages["lifecycle"]);
        }

        // new→active, →at_risk, →dormant, →churned per customer, plus RFM window expiries: all late.
        var status = host.Status();
        Assert.Equal(status.TimersFired, status.LateTimersFired);
        Assert.True(status.TimersFired >= 8, $"{status.TimersFired} fired");
        Assert.Equal(2, status.Transitions[("lifecycle", "dormant", "churned")]);

        // The watermark reached again (an event at the same instant) runs nothing more: each wake-up ran once.
        Clock(host, T0.AddDays(400), "-again");
        var again = host.Status();
        Assert.Equal(status.TimersFired, again.TimersFired);
        Assert.Equal(status.Transitions, again.Transitions);
    }

    [Fact]
    public void A_timer_of_a_changed_customer_not_yet_checkpointed_still_fires()
    {
        var host = NewHost();
        Clock(host, T0);
        host.Apply(Placed("a", T0, 10m, customerId: "a")); // wake-up at T0 + 30d

        // No checkpoint: the journal has never seen "a".
        Clock(host, T0.AddDays(31));

        Assert.Equal("active", host.Find("a")!.Stages["lifecycle"].Name);
    }

    [Fact]
    public void In_hybrid_time_a_quiet_partition_follows_the_wall_clock()
    {
        var host = NewHost();
        host.Apply(Placed("a", T0, 10m, customerId: "a"));
        var before = host.Status().WatermarkTicks;

        host.Coordinator.Tell(new AdvanceIdle(T0.AddDays(31).UtcTicks));

        // The wall clock minus the allowed lateness (5 minutes) passed the 30-day threshold.
        Assert.Equal(T0.AddDays(31).AddMinutes(-5).UtcTicks, host.AwaitQuiet().WatermarkTicks);
        Assert.Equal(new StageValue("active", T0.AddDays(30).UtcTicks), host.Find("a")!.Stages["lifecycle"]);

        // An earlier wall clock never moves the watermark back.
        host.Coordinator.Tell(new AdvanceIdle(T0.UtcTicks));
        var watermark = host.AwaitQuiet().WatermarkTicks;
        Assert.True(watermark > before);
        Assert.Equal(T0.AddDays(31).AddMinutes(-5).UtcTicks, watermark);
    }
}
