using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;
using static Streaming.Engine.Tests.TestEvents;

namespace Streaming.Engine.Tests.Rules;

/// <summary>Durable timers: paged from the store by due time, fired in due order, late ones counted.</summary>
public sealed class TimerTests
{
    private const int Partition = 0;
    private const int Customers = 1000;

    private readonly InMemoryStateStore _store = new();

    private static readonly PartitionHostOptions Options = new()
    {
        TimerPageSpan = TimeSpan.FromDays(1),
        TimerPageLimit = 50,
    };

    private PartitionHost NewHost() => new(Partition, _store, Options);

    private static void Checkpoint(PartitionHost host, InMemoryStateStore store)
    {
        var batch = new CheckpointBatch();
        host.CollectCheckpoint(batch);
        store.Commit(batch);
        host.MarkClean();
    }

    /// <summary>Moves the partition's watermark with an event of a customer that has no timers of its own yet.</summary>
    private static void Clock(PartitionHost host, DateTimeOffset at) =>
        host.Apply(Click("clock-" + at.UtcTicks, at, EventType.PageView, "s", customerId: "clock"));

    [Fact]
    public void Far_future_timers_stay_in_the_store_until_the_watermark_nears_them()
    {
        var host = NewHost();
        for (var i = 0; i < Customers; i++)
        {
            // Each customer's next wake-up is 30 days after its order (new → active).
            host.Apply(Placed("o" + i, T0.AddMinutes(i), 10m, customerId: "c" + i));
        }

        Checkpoint(host, _store);
        Assert.True(host.TimersInMemory <= Options.TimerPageLimit, $"{host.TimersInMemory} timers in memory");

        var restarted = NewHost();
        Clock(restarted, T0.AddDays(20));
        Assert.Equal(0, restarted.TimersInMemory); // nothing due within a day of the watermark

        // Past every wake-up: all fire, paged in by at most the page limit at a time (plus exact ties).
        Clock(restarted, T0.AddDays(32));
        Assert.Equal(Customers, restarted.Population.Counts[("lifecycle", "active")]);
        Assert.Equal(Customers, restarted.Population.Transitions[("lifecycle", "new", "active")]);
        Assert.True(restarted.TimersInMemory <= Options.TimerPageLimit, $"{restarted.TimersInMemory} timers in memory");
        for (var i = 0; i < Customers; i += 97)
        {
            var state = restarted.Find("c" + i)!;
            Assert.Equal(new StageValue("active", T0.AddMinutes(i).AddDays(30).UtcTicks), state.Stages["lifecycle"]);
        }
    }

    [Fact]
    public void After_an_outage_overdue_timers_fire_once_in_due_order_and_are_counted_late()
    {
        var host = NewHost();
        host.Apply(Placed("a", T0, 10m, customerId: "a"));
        host.Apply(Placed("b", T0.AddDays(1), 10m, customerId: "b"));
        Checkpoint(host, _store);

        // The engine comes back a year later: one event jumps the watermark past every threshold of both customers.
        var restarted = NewHost();
        Clock(restarted, T0.AddDays(400));

        foreach (var (id, start) in new[] { ("a", T0), ("b", T0.AddDays(1)) })
        {
            // Each stage was entered at its own due time, not at the watermark: they fired in order.
            Assert.Equal(new StageValue("churned", start.AddDays(366).UtcTicks), restarted.Find(id)!.Stages["lifecycle"]);
        }

        // new→active, →at_risk, →dormant, →churned per customer, plus RFM window expiries: all late.
        Assert.Equal(restarted.TimersFired, restarted.LateTimersFired);
        Assert.True(restarted.TimersFired >= 8, $"{restarted.TimersFired} fired");
        Assert.Equal(2, restarted.Population.Transitions[("lifecycle", "dormant", "churned")]);

        // Firing again changes nothing: each timer fired once.
        var fired = restarted.TimersFired;
        Assert.Equal(0, restarted.FireDueTimers());
        Assert.Equal(fired, restarted.TimersFired);
    }

    [Fact]
    public void A_timer_of_a_changed_customer_not_yet_checkpointed_still_fires()
    {
        var host = NewHost();
        Clock(host, T0);
        host.Apply(Placed("a", T0, 10m, customerId: "a")); // wake-up at T0 + 30d, beyond the paged horizon

        // No checkpoint: the store has never seen "a", so paging must find it among the changed customers.
        Clock(host, T0.AddDays(31));

        Assert.Equal("active", host.Find("a")!.Stages["lifecycle"].Name);
    }

    [Fact]
    public void In_hybrid_time_a_quiet_partition_follows_the_wall_clock()
    {
        var host = NewHost();
        host.Apply(Placed("a", T0, 10m, customerId: "a"));
        var before = host.WatermarkTicks;

        host.AdvanceIdle(T0.AddDays(31).UtcTicks);

        // The wall clock minus the allowed lateness (5 minutes) passed the 30-day threshold.
        Assert.Equal(T0.AddDays(31).AddMinutes(-5).UtcTicks, host.WatermarkTicks);
        Assert.Equal(new StageValue("active", T0.AddDays(30).UtcTicks), host.Find("a")!.Stages["lifecycle"]);

        // An earlier wall clock never moves the watermark back.
        host.AdvanceIdle(T0.UtcTicks);
        Assert.True(host.WatermarkTicks > before);
        Assert.Equal(T0.AddDays(31).AddMinutes(-5).UtcTicks, host.WatermarkTicks);
    }
}
