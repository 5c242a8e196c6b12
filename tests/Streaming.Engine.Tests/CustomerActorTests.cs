using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;
using static Streaming.Engine.Tests.TestEvents;

namespace Streaming.Engine.Tests;

public sealed class CustomerActorTests
{
    private static readonly ActorOptions Options = new();

    private static long Utc(int year, int month, int day, int hour, int minute, int second = 0) =>
        new DateTime(year, month, day, hour, minute, second, DateTimeKind.Utc).Ticks;

    [Fact]
    public void Placed_then_cancelled_orders_update_counts_amounts_and_times_exactly()
    {
        var state = new CustomerState(Customer);
        var placed1 = Placed("e1", new DateTimeOffset(2024, 1, 1, 10, 0, 0, TimeSpan.Zero), 100.10m, items: 3);
        var placed2 = Placed("e2", new DateTimeOffset(2024, 1, 3, 8, 30, 0, TimeSpan.FromHours(2)), 0.2m, items: 1);
        var cancelled = Cancelled("e3", new DateTimeOffset(2024, 1, 4, 0, 0, 0, TimeSpan.Zero), 100.10m);

        Assert.Equal(ApplyResult.Applied, CustomerActor.Apply(state, placed1, Options));
        Assert.Equal(ApplyResult.Applied, CustomerActor.Apply(state, placed2, Options));
        Assert.Equal(ApplyResult.Applied, CustomerActor.Apply(state, cancelled, Options));

        Assert.Equal(3, state.EventsApplied);
        Assert.Equal(2, state.OrderCount);
        Assert.Equal(1, state.CancelledCount);
        Assert.Equal(100.30m, state.GrossAmount);
        Assert.Equal(100.10m, state.RefundAmount);
        Assert.Equal(0.20m, state.NetAmount);
        Assert.Equal(4, state.ItemsBought);

        // Order times are those of order_placed events only; 08:30+02:00 is 06:30 UTC.
        Assert.Equal(Utc(2024, 1, 1, 10, 0), state.FirstOrderTicks);
        Assert.Equal(Utc(2024, 1, 3, 6, 30), state.LastOrderTicks);

        // Seen times include the cancellation.
        Assert.Equal(Utc(2024, 1, 1, 10, 0), state.FirstSeenTicks);
        Assert.Equal(Utc(2024, 1, 4, 0, 0), state.LastSeenTicks);
    }

    [Fact]
    public void Amounts_add_up_exactly_as_decimals()
    {
        var state = new CustomerState(Customer);
        CustomerActor.Apply(state, Placed("e1", T0, 0.1m), Options);
        CustomerActor.Apply(state, Placed("e2", T0, 0.2m), Options);
        CustomerActor.Apply(state, Cancelled("e3", T0, 0.3m), Options);

        Assert.Equal(0.3m, state.GrossAmount);
        Assert.Equal(0m, state.NetAmount);
    }

    [Fact]
    public void Cancellation_alone_does_not_set_order_times_or_order_count()
    {
        var state = new CustomerState(Customer);
        CustomerActor.Apply(state, Cancelled("e1", T0, 5m), Options);

        Assert.Equal(0, state.OrderCount);
        Assert.Equal(1, state.CancelledCount);
        Assert.Equal(0L, state.FirstOrderTicks);
        Assert.Equal(0L, state.LastOrderTicks);
        Assert.Equal(-5m, state.NetAmount);
        Assert.Equal(T0.UtcTicks, state.FirstSeenTicks);
    }

    [Fact]
    public void Applying_the_same_event_id_twice_changes_nothing_the_second_time()
    {
        var state = new CustomerState(Customer);
        CustomerActor.Apply(state, Placed("e0", T0, 1m), Options);
        var evt = Placed("e1", T0.AddHours(1), 42.5m, items: 2, country: "DE");
        Assert.Equal(ApplyResult.Applied, CustomerActor.Apply(state, evt, Options));
        var before = CustomerStateCodec.Encode(state);

        Assert.Equal(ApplyResult.Duplicate, CustomerActor.Apply(state, evt, Options));
        Assert.Equal(before, CustomerStateCodec.Encode(state));

        // A redelivery is recognised by its id alone, even if its content differs.
        var sameIdOtherContent = Click("e1", T0.AddDays(9), EventType.Login, "s9");
        Assert.Equal(ApplyResult.Duplicate, CustomerActor.Apply(state, sameIdOtherContent, Options));
        Assert.Equal(before, CustomerStateCodec.Encode(state));
        Assert.Equal(2, state.EventsApplied);
        Assert.Equal(43.5m, state.GrossAmount);
    }

    [Fact]
    public void Out_of_order_events_keep_the_earliest_first_and_latest_last_times()
    {
        var state = new CustomerState(Customer);
        var t1 = new DateTimeOffset(2024, 5, 1, 12, 0, 0, TimeSpan.Zero);
        var t2 = new DateTimeOffset(2024, 5, 2, 12, 0, 0, TimeSpan.Zero);
        var t3 = new DateTimeOffset(2024, 5, 3, 12, 0, 0, TimeSpan.Zero);
        var t0 = new DateTimeOffset(2024, 4, 30, 23, 0, 0, TimeSpan.FromHours(-3)); // 2024-05-01T02:00Z: earliest

        CustomerActor.Apply(state, Placed("a", t2, 1m), Options);
        CustomerActor.Apply(state, Placed("b", t3, 1m), Options);
        CustomerActor.Apply(state, Placed("c", t1, 1m), Options);
        CustomerActor.Apply(state, Click("d", t0, EventType.PageView, null), Options);

        Assert.Equal(Utc(2024, 5, 1, 2, 0), state.FirstSeenTicks);
        Assert.Equal(Utc(2024, 5, 3, 12, 0), state.LastSeenTicks);
        Assert.Equal(Utc(2024, 5, 1, 12, 0), state.FirstOrderTicks);
        Assert.Equal(Utc(2024, 5, 3, 12, 0), state.LastOrderTicks);
        Assert.Equal(3, state.OrderCount);
    }

    [Fact]
    public void Click_counters_and_sessions()
    {
        var state = new CustomerState(Customer);
        (EventType Type, string? Session)[] clicks =
        [
            (EventType.PageView, "s1"),    // session 1
            (EventType.PageView, "s1"),
            (EventType.ProductView, "s1"),
            (EventType.AddToCart, "s2"),   // session 2
            (EventType.Favorite, "s2"),
            (EventType.Search, null),      // no session: neither starts nor ends one
            (EventType.Login, "s1"),       // back to s1: a new session
            (EventType.Search, "s1"),
        ];
        for (var i = 0; i < clicks.Length; i++)
        {
            CustomerActor.Apply(state, Click("k" + i, T0.AddMinutes(i), clicks[i].Type, clicks[i].Session), Options);
        }

        Assert.Equal(2, state.PageViews);
        Assert.Equal(1, state.ProductViews);
        Assert.Equal(1, state.CartAdds);
        Assert.Equal(1, state.Favorites);
        Assert.Equal(2, state.Searches);
        Assert.Equal(1, state.Logins);
        Assert.Equal(8, state.ClickCount);
        Assert.Equal(3, state.Sessions);
        Assert.Equal("s1", state.LastSessionId);
        Assert.Equal(0, state.OrderCount);
        Assert.Equal(0, state.CallCount);
    }

    [Fact]
    public void Calls_count_completed_and_abandoned_and_sum_seconds()
    {
        var state = new CustomerState(Customer);
        CustomerActor.Apply(state, Call("k1", T0, completed: true, waitSeconds: 30, talkSeconds: 120), Options);
        CustomerActor.Apply(state, Call("k2", T0.AddMinutes(1), completed: false, waitSeconds: 45, talkSeconds: 0), Options);
        CustomerActor.Apply(state, Call("k3", T0.AddMinutes(2), completed: true, waitSeconds: 5, talkSeconds: 60), Options);

        Assert.Equal(2, state.CallsCompleted);
        Assert.Equal(1, state.CallsAbandoned);
        Assert.Equal(3, state.CallCount);
        Assert.Equal(80L, state.WaitSecondsTotal);
        Assert.Equal(180L, state.TalkSecondsTotal);
    }

    [Fact]
    public void Second_totals_do_not_overflow_int()
    {
        var state = new CustomerState(Customer);
        CustomerActor.Apply(state, Call("k1", T0, completed: true, waitSeconds: int.MaxValue, talkSeconds: int.MaxValue), Options);
        CustomerActor.Apply(state, Call("k2", T0, completed: true, waitSeconds: int.MaxValue, talkSeconds: 1), Options);

        Assert.Equal(2L * int.MaxValue, state.WaitSecondsTotal);
        Assert.Equal((long)int.MaxValue + 1, state.TalkSecondsTotal);
    }

    [Fact]
    public void Attributes_merge_and_null_fields_keep_the_old_value()
    {
        var state = new CustomerState(Customer);
        CustomerActor.Apply(state, Attributes("a1", T0, "1990-02-28", "Europe/Berlin", "DE"), Options);
        CustomerActor.Apply(state, Attributes("a2", T0.AddMinutes(1), null, null, "AT"), Options);

        Assert.Equal("1990-02-28", state.Birthday);
        Assert.Equal("Europe/Berlin", state.TimeZone);
        Assert.Equal("AT", state.Country);

        CustomerActor.Apply(state, Attributes("a3", T0.AddMinutes(2), null, "America/New_York", null), Options);
        Assert.Equal("1990-02-28", state.Birthday);
        Assert.Equal("America/New_York", state.TimeZone);
        Assert.Equal("AT", state.Country);

        // An order's country updates the customer's; an order without one keeps it.
        CustomerActor.Apply(state, Placed("o1", T0.AddMinutes(3), 1m, country: "CH"), Options);
        Assert.Equal("CH", state.Country);
        CustomerActor.Apply(state, Placed("o2", T0.AddMinutes(4), 1m), Options);
        Assert.Equal("CH", state.Country);

        // Attribute events leave consent alone.
        Assert.Null(state.ConsentVoice);
        Assert.Null(state.ConsentSms);
        Assert.Null(state.ConsentEmail);
    }

    [Fact]
    public void Consent_merges_and_null_flags_keep_the_old_value()
    {
        var state = new CustomerState(Customer);
        CustomerActor.Apply(state, Consent("c1", T0, voice: true, sms: false, email: null), Options);
        Assert.True(state.ConsentVoice);
        Assert.False(state.ConsentSms);
        Assert.Null(state.ConsentEmail);

        CustomerActor.Apply(state, Consent("c2", T0.AddMinutes(1), voice: null, sms: null, email: true), Options);
        Assert.True(state.ConsentVoice);
        Assert.False(state.ConsentSms);
        Assert.True(state.ConsentEmail);

        CustomerActor.Apply(state, Consent("c3", T0.AddMinutes(2), voice: false, sms: true, email: null), Options);
        Assert.False(state.ConsentVoice);
        Assert.True(state.ConsentSms);
        Assert.True(state.ConsentEmail);

        // Consent events leave attributes alone.
        Assert.Null(state.Birthday);
        Assert.Null(state.Country);
    }

    [Fact]
    public void Outreach_outcomes_are_counted()
    {
        var state = new CustomerState(Customer);
        CustomerActor.Apply(state, Outcome("r1", T0, "answered"), Options);
        CustomerActor.Apply(state, Outcome("r2", T0, "failed"), Options);
        CustomerActor.Apply(state, Outcome("r2", T0, "failed"), Options);

        Assert.Equal(2, state.OutcomesReceived);
        Assert.Equal(2, state.EventsApplied);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(32)]
    public void Recent_id_memory_forgets_the_oldest_after_capacity_plus_one_ids(int capacity)
    {
        var options = new ActorOptions { RecentIdCapacity = capacity };
        var state = new CustomerState(Customer);
        for (var i = 0; i <= capacity; i++)
        {
            Assert.Equal(ApplyResult.Applied, CustomerActor.Apply(state, Placed("e" + i, T0, 1m) with { OrderId = "o" + i }, options));
        }

        Assert.Equal(capacity, state.RecentEventIds.Count);

        // Ids 1..capacity are remembered: redeliveries change nothing.
        var before = CustomerStateCodec.Encode(state);
        for (var i = capacity; i >= 1; i--)
        {
            Assert.Equal(ApplyResult.Duplicate, CustomerActor.Apply(state, Placed("e" + i, T0, 1m) with { OrderId = "o" + i }, options));
        }

        Assert.Equal(before, CustomerStateCodec.Encode(state));

        // Id 0 was the oldest and has been forgotten: it applies again.
        Assert.Equal(ApplyResult.Applied, CustomerActor.Apply(state, Placed("e0", T0, 1m) with { OrderId = "o-again" }, options));
        Assert.Equal(capacity + 2, state.OrderCount);
        Assert.Equal(capacity + 2m, state.GrossAmount);

        // Re-remembering e0 evicted the next oldest, e1; the newest, e{capacity}, is still known (unless it was e1).
        Assert.True(state.RecentEventIds.Contains(IdHash.Fnv1a64("e0")));
        Assert.False(state.RecentEventIds.Contains(IdHash.Fnv1a64("e1")));
        Assert.Equal(capacity, state.RecentEventIds.Count);
        if (capacity >= 2)
        {
            Assert.Equal(ApplyResult.Duplicate, CustomerActor.Apply(state, Placed("e" + capacity, T0, 1m) with { OrderId = "o-last" }, options));
        }
    }

    [Fact]
    public void Recent_id_memory_keeps_its_eviction_order_across_the_codec()
    {
        var options = new ActorOptions { RecentIdCapacity = 4 };
        var live = new CustomerState(Customer);
        for (var i = 0; i < 6; i++)
        {
            CustomerActor.Apply(live, Placed("e" + i, T0, 1m), options);
        }

        var restored = CustomerStateCodec.Decode(Customer, CustomerStateCodec.Encode(live));

        // Remembered: e2..e5. Forgotten: e0, e1.
        foreach (var s in new[] { live, restored })
        {
            Assert.False(s.RecentEventIds.Contains(IdHash.Fnv1a64("e0")));
            Assert.False(s.RecentEventIds.Contains(IdHash.Fnv1a64("e1")));
            for (var i = 2; i < 6; i++)
            {
                Assert.True(s.RecentEventIds.Contains(IdHash.Fnv1a64("e" + i)), $"e{i} forgotten");
            }

            // The next id evicts e2, the oldest remembered.
            CustomerActor.Apply(s, Placed("e6", T0, 1m), options);
            Assert.False(s.RecentEventIds.Contains(IdHash.Fnv1a64("e2")));
            Assert.True(s.RecentEventIds.Contains(IdHash.Fnv1a64("e3")));
        }

        Assert.Equal(CustomerStateCodec.Encode(live), CustomerStateCodec.Encode(restored));
    }

    [Fact]
    public void Recent_id_memory_keeps_its_eviction_order_when_restored_before_it_is_full()
    {
        var options = new ActorOptions { RecentIdCapacity = 8 };
        var live = new CustomerState(Customer);
        for (var i = 0; i < 3; i++)
        {
            CustomerActor.Apply(live, Placed("e" + i, T0, 1m), options);
        }

        var restored = CustomerStateCodec.Decode(Customer, CustomerStateCodec.Encode(live));
        for (var i = 3; i < 12; i++)
        {
            CustomerActor.Apply(live, Placed("e" + i, T0, 1m), options);
            CustomerActor.Apply(restored, Placed("e" + i, T0, 1m), options);
        }

        // 12 ids through a memory of 8: e0..e3 forgotten, e4..e11 remembered, in both.
        foreach (var s in new[] { live, restored })
        {
            for (var i = 0; i < 12; i++)
            {
                Assert.Equal(i >= 4, s.RecentEventIds.Contains(IdHash.Fnv1a64("e" + i)));
            }
        }

        Assert.Equal(CustomerStateCodec.Encode(live), CustomerStateCodec.Encode(restored));
    }

    [Fact]
    public void Same_random_sequence_gives_byte_identical_states()
    {
        const int seed = 424_242;
        var rng = new Random(seed);
        var events = new List<CustomerEvent>();
        for (var i = 0; i < 2000; i++)
        {
            // Some ids repeat (redeliveries), most are new.
            var id = rng.Next(10) == 0 && i > 0 ? "ev" + rng.Next(i) : "ev" + i;
            events.Add(TestEvents.Random(rng, id));
        }

        var a = new CustomerState(Customer);
        var b = new CustomerState(Customer);
        var c = new CustomerState(Customer);
        for (var i = 0; i < events.Count; i++)
        {
            CustomerActor.Apply(a, events[i], Options);
            CustomerActor.Apply(b, events[i], Options);
            if (i == events.Count / 2)
            {
                // Persisting and reloading midway must not change the outcome either.
                c = CustomerStateCodec.Decode(Customer, CustomerStateCodec.Encode(c));
            }

            CustomerActor.Apply(c, events[i], Options);
        }

        var encodedA = CustomerStateCodec.Encode(a);
        Assert.True(encodedA.AsSpan().SequenceEqual(CustomerStateCodec.Encode(b)), $"seed {seed}: two fresh states diverged");
        Assert.True(encodedA.AsSpan().SequenceEqual(CustomerStateCodec.Encode(c)), $"seed {seed}: a state reloaded midway diverged");
        Assert.True(a.EventsApplied > 1000, $"seed {seed}: only {a.EventsApplied} events applied");
    }

    [Fact]
    public void Redeliveries_within_the_memory_window_do_not_change_the_result()
    {
        const int seed = 7_771;
        var rng = new Random(seed);
        var options = new ActorOptions { RecentIdCapacity = 16 };
        var distinct = new List<CustomerEvent>();
        for (var i = 0; i < 1000; i++)
        {
            distinct.Add(TestEvents.Random(rng, "id-" + i));
        }

        var once = new CustomerState(Customer);
        foreach (var evt in distinct)
        {
            Assert.Equal(ApplyResult.Applied, CustomerActor.Apply(once, evt, options));
        }

        var withRedeliveries = new CustomerState(Customer);
        var duplicates = 0;
        for (var i = 0; i < distinct.Count; i++)
        {
            CustomerActor.Apply(withRedeliveries, distinct[i], options);
            if (rng.Next(3) == 0)
            {
                // Redeliver one of the last 16 events (all still remembered).
                var back = rng.Next(0, Math.Min(i + 1, options.RecentIdCapacity));
                Assert.Equal(ApplyResult.Duplicate, CustomerActor.Apply(withRedeliveries, distinct[i - back], options));
                duplicates++;
            }
        }

        Assert.True(duplicates > 100, $"seed {seed}: only {duplicates} redeliveries");
        Assert.True(
            CustomerStateCodec.Encode(once).AsSpan().SequenceEqual(CustomerStateCodec.Encode(withRedeliveries)),
            $"seed {seed}: redeliveries changed the state");
    }
}
