using Akka.Actor;
using System.Runtime.CompilerServices;
using Akka.TestKit;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Partitions;
using Streaming.Runtime.Rules;
using Xunit.Abstractions;
using static Streaming.Engine.Tests.TestEvents;

namespace Streaming.Runtime.Tests;

/// <summary>
/// Wake-ups paged through a bounded coordinator (<see cref="PartitionCoordinatorOptions.MaxWakeUpsInMemory"/>): fifty
/// customers, each with one order a minute after the one before, and a bound of ten. Under the default rules a
/// customer's first wake-up is exactly 30 days after its first order (lifecycle new → active) and the next one a day
/// later, so within the 49 minutes the first wake-ups span each customer wakes once, in the order of its first order.
/// The harness's tap sees every wake-up as the customers receive it.
/// </summary>
public sealed class WakeUpPagingTests(ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit(CustomerEntityTests.RuntimeConfig, nameof(WakeUpPagingTests), output)
{
    private const int Customers = 50;
    private const int Bound = 10;
    private static readonly TimeSpan Spacing = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan FirstWakeAfter = TimeSpan.FromDays(30);

    /// <summary>Customer of the i-th order (in time): a fixed shuffle, so due order is neither name nor feed order of ids.</summary>
    private static readonly string[] Ids = Enumerable.Range(0, Customers).Select(i => "c" + i).OrderBy(_ => 0).ToArray().Shuffled(7);

    /// <summary>The i-th order: from 23:30:30 UTC on, so the first wake-ups span midnight (none at it).</summary>
    private static DateTimeOffset OrderedAt(int i) => T0 + TimeSpan.FromHours(13.5) + TimeSpan.FromSeconds(30) + (Spacing * i);

    /// <summary>The stored-customer listing: every customer of the test (and the clock), in another shuffle.</summary>
    private static async IAsyncEnumerable<string> Listing(int partition, [EnumeratorCancellation] CancellationToken ct = default)
    {
        _ = partition;
        foreach (var id in Ids.Append("clock").ToArray().Shuffled(11))
        {
            ct.ThrowIfCancellationRequested();
            await Task.Yield();
            yield return id;
        }
    }

    private static PartitionCoordinatorOptions Options(Func<int, CancellationToken, IAsyncEnumerable<string>>? listing = null, int cached = 250_000) => new()
    {
        QuietCheckpointAfter = TimeSpan.FromHours(1),
        MaxWakeUpsInMemory = Bound,
        MaxCachedCustomers = cached,
        StoredCustomers = listing ?? ((p, ct) => Listing(p, ct)),
    };

    /// <summary>Moves the partition's watermark (the event time minus the 5 minutes of lateness) with a page view.</summary>
    private static void Clock(PartitionHarness host, DateTimeOffset at, string prefix = "") =>
        host.Apply(Click(prefix + "clock-" + at.UtcTicks, at, EventType.PageView, "s", customerId: prefix + "clock"));

    private static void FeedOrders(PartitionHarness host, string prefix = "")
    {
        for (var i = 0; i < Customers; i++)
        {
            host.Apply(Placed(prefix + "o" + i, OrderedAt(i), 10m, customerId: prefix + Ids[i]));
        }
    }

    /// <summary>The customers the tap saw woken so far (the clock's own wake-ups left out), in order.</summary>
    private static List<string> Woken(TestProbe tap)
    {
        var woken = new List<string>();
        while (tap.HasMessages)
        {
            var wake = (WakeUp)tap.ReceiveOne(TimeSpan.Zero)!;
            if (!wake.CustomerId.EndsWith("clock", StringComparison.Ordinal))
            {
                woken.Add(wake.CustomerId);
            }
        }

        return woken;
    }

    /// <summary>Steps the watermark 5 minutes at a time until it is past <paramref name="until"/>; the held wake-ups stay within the bound after each.</summary>
    private static void StepTo(PartitionHarness host, DateTimeOffset from, DateTimeOffset until)
    {
        for (var at = from; at <= until + TimeSpan.FromMinutes(10); at += TimeSpan.FromMinutes(5))
        {
            Clock(host, at);
            Assert.True(host.Status().Timers <= Bound, $"{host.Status().Timers} wake-ups held at {at:O}");
        }
    }

    [Fact]
    public void Every_customer_wakes_once_in_due_order_while_the_held_wake_ups_stay_within_the_bound()
    {
        var tap = CreateTestProbe();
        var host = new PartitionHarness(this, 0, new RuleBook(RuleSetLoader.Default), Options(), tap: tap.Ref);
        FeedOrders(host);
        host.Checkpoint();
        var fed = host.Status();
        Assert.True(fed.Timers <= Bound, $"{fed.Timers} held after the orders");
        Assert.True(fed.WakeUpPageEndTicks < (OrderedAt(Customers - 1) + FirstWakeAfter).UtcTicks, "nothing was paged out");

        StepTo(host, OrderedAt(0) + FirstWakeAfter - TimeSpan.FromMinutes(10), OrderedAt(Customers - 1) + FirstWakeAfter);

        // In order of their orders (distinct instants), each once.
        Assert.Equal(Ids, Woken(tap));
        var status = host.Status();
        Assert.True(status.WakeUpsHeldPeak <= Bound, $"peak {status.WakeUpsHeldPeak}");
        Assert.True(status.WakeUpPageIns >= (Customers / Bound) - 1, $"{status.WakeUpPageIns} page-ins");
        Assert.Equal(Customers, status.Transitions[("lifecycle", "new", "active")]);
    }

    [Fact]
    public void Every_customer_wakes_once_in_due_order_in_one_jump_across_many_pages()
    {
        var tap = CreateTestProbe();
        var host = new PartitionHarness(this, 0, new RuleBook(RuleSetLoader.Default), Options(), tap: tap.Ref);
        FeedOrders(host);
        host.Checkpoint();

        Clock(host, OrderedAt(Customers) + FirstWakeAfter + TimeSpan.FromMinutes(10));

        Assert.Equal(Ids, Woken(tap));
        var status = host.Status();
        Assert.True(status.WakeUpsHeldPeak <= Bound, $"peak {status.WakeUpsHeldPeak}");
        Assert.Equal(Customers, status.Transitions[("lifecycle", "new", "active")]);
    }

    [Fact]
    public void A_crash_in_the_middle_of_a_page_in_still_wakes_each_customer_once()
    {
        var tap = CreateTestProbe();
        var gate = new TaskCompletionSource();

        // The first run's listing never gets past its start; most customers are passivated (stored, not in memory).
        async IAsyncEnumerable<string> Stuck(int partition, [EnumeratorCancellation] CancellationToken ct = default)
        {
            await gate.Task.WaitAsync(ct);
            await foreach (var id in Listing(partition, ct))
            {
                yield return id;
            }
        }

        var host = new PartitionHarness(this, 0, new RuleBook(RuleSetLoader.Default), Options((p, ct) => Stuck(p, ct), cached: 5), tap: tap.Ref);
        host.QuietWhilePaging = true;
        FeedOrders(host);
        host.Checkpoint();
        host.Checkpoint(); // passivates down to the bound, after the first one saved them

        // Past the page end: the page-in starts, asks the customers in memory, and waits for the listing.
        var during = OrderedAt(30) + FirstWakeAfter;
        Clock(host, during);
        host.AwaitQuiet(paging: true);
        Assert.True(host.Status().PagingWakeUps);
        var before = Woken(tap);

        // Only wake-ups of the page it started from ran, in order; then a checkpoint and a crash.
        Assert.Equal(Ids.Take(before.Count), before);
        Assert.True(before.Count < 30, $"{before.Count} woken before the page-in completed");
        host.Checkpoint(paging: true);
        host.Restart(Options(cached: 5));
        host.QuietWhilePaging = false;

        Clock(host, OrderedAt(Customers) + FirstWakeAfter + TimeSpan.FromMinutes(10));
        var after = Woken(tap);

        // Each once over both runs, in due order.
        Assert.Equal(Ids, before.Concat(after));
        Assert.Equal(Customers, host.Status().Counts[("lifecycle", "active")]);
        gate.SetResult();
    }

    [Fact]
    public void A_wake_up_changed_after_being_paged_out_runs_at_its_new_time()
    {
        // The same inputs on a coordinator that holds every wake-up (customers prefixed "r-", so the two share the
        // journal without sharing customers) say what wakes when: paging must change none of it.
        var tap = CreateTestProbe();
        var refTap = CreateTestProbe();
        var host = new PartitionHarness(this, 0, new RuleBook(RuleSetLoader.Default), Options(), tap: tap.Ref);
        var reference = new PartitionHarness(this, 1, new RuleBook(RuleSetLoader.Default), new PartitionCoordinatorOptions { QuietCheckpointAfter = TimeSpan.FromHours(1) }, tap: refTap.Ref);
        FeedOrders(host);
        FeedOrders(reference, "r-");
        host.Checkpoint();
        reference.Checkpoint();

        // One of the last (paged out: its wake-up only in its saved state) adds to its cart, three hours before the first
        // wake-ups: its next wake-up moves before its old one (the cart add is read by UTC day: the next is at midnight,
        // within the first wake-ups) and past the page end, known only to the customer in memory (no checkpoint follows).
        var moved = Ids[45];
        var added = OrderedAt(0) + FirstWakeAfter - TimeSpan.FromHours(3);
        Assert.True(host.Status().WakeUpPageEndTicks < (OrderedAt(45) + FirstWakeAfter).UtcTicks, "it is held");
        host.Apply(Click("cart", added, EventType.AddToCart, "s", customerId: moved));
        reference.Apply(Click("r-cart", added, EventType.AddToCart, "s", customerId: "r-" + moved));
        var newWake = reference.Find("r-" + moved)!.WakeTicks;
        Assert.True(newWake > host.Status().WakeUpPageEndTicks && newWake < (OrderedAt(45) + FirstWakeAfter).UtcTicks, "the change does not move it within the page and before its old time");

        // Step by step, the same customers wake in the same order.
        var steps = 0;
        for (var at = added; at <= OrderedAt(Customers) + FirstWakeAfter + TimeSpan.FromMinutes(10); at += TimeSpan.FromMinutes(5), steps++)
        {
            Clock(host, at);
            Clock(reference, at, "r-");
            var expected = Woken(refTap).Select(id => id[2..]).ToList();
            Assert.Equal(expected, Woken(tap));
            Assert.True(host.Status().Timers <= Bound);
        }

        Assert.True(host.Status().WakeUpPageIns >= 2, $"{host.Status().WakeUpPageIns} page-ins in {steps} steps");
        Assert.True(host.Status().TimersFired > Customers, $"{host.Status().TimersFired} fired");
        Assert.Equal(reference.Status().TimersFired, host.Status().TimersFired);
    }
    [Fact]
    public void A_held_wake_up_moved_past_the_page_end_leaves_memory_and_runs_only_at_its_new_time()
    {
        // Scripted customers (no rules): an order of amount n sets its customer's wake-up to day n; a wake-up leaves none.
        var tap = CreateTestProbe();
        var customers = Sys.ActorOf(Props.Create(() => new ScriptedCustomers(tap.Ref)));
        var listener = CreateTestProbe();
        var ids = Enumerable.Range(0, 20).Select(i => "s" + i).ToArray();
        var coordinator = Sys.ActorOf(PartitionCoordinator.Props(0, customers, listener, new RuleBook(RuleSetLoader.Default), Options((_, ct) => ids.ToAsyncEnumerable(ct))));
        long offset = 0;
        void Send(string customer, CustomerEvent evt) => coordinator.Tell(new PartitionRecord("orders", offset++, evt with { CustomerId = customer }));
        OrderEvent Order(int day) => Placed("o" + offset, T0, day, customerId: "x");
        void ClockAt(int day) => Send("clock", Click("k" + offset, T0.AddDays(day), EventType.PageView, "s", customerId: "x"));
        PartitionStatus Quiet()
        {
            PartitionStatus? status = null;
            AwaitCondition(() => (status = StatusOf(coordinator)) is { InFlight: 0, Waiting: 0, PagingWakeUps: false }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(5));
            return status!;
        }

        // s0..s19 wake at days 10..29; ten fit, so the page ends at the ninth, day 18.
        for (var i = 0; i < ids.Length; i++)
        {
            Send(ids[i], Order(10 + i));
        }

        Assert.Equal(T0.AddDays(18).UtcTicks, Quiet().WakeUpPageEndTicks);

        // s2 (held, day 12) moves to day 40, past the page end.
        Send("s2", Order(40));
        Assert.Equal(8, Quiet().Timers);

        ClockAt(35);
        Quiet();
        var woken = tap.ReceiveN(19).Cast<string>().ToList();
        Assert.Equal(ids.Where(id => id != "s2"), woken);
        tap.ExpectNoMsg(TimeSpan.FromMilliseconds(100));

        ClockAt(41);
        Quiet();
        Assert.Equal("s2", tap.ExpectMsg<string>());
    }

    private PartitionStatus StatusOf(IActorRef coordinator)
    {
        var asker = CreateTestProbe();
        coordinator.Tell(GetPartitionStatus.Instance, asker.Ref);
        return asker.ExpectMsg<PartitionStatus>();
    }

    /// <summary>
    /// Customers without rules: an order of amount n sets the customer's wake-up to day n after T0 (anything else leaves
    /// it), a wake-up clears it and tells the tap the customer's id; nothing is ever dirty.
    /// </summary>
    private sealed class ScriptedCustomers : ReceiveActor
    {
        private readonly Dictionary<string, long> _wakes = [];

        public ScriptedCustomers(IActorRef tap)
        {
            Receive<ApplyRecord>(m =>
            {
                if (m.Event is OrderEvent order)
                {
                    _wakes[m.CustomerId] = T0.AddDays((double)order.Amount).UtcTicks;
                }

                Sender.Tell(Changed(m.CustomerId, m.Partition, m.Offset, ChangeOutcome.Applied) with { Topic = m.Topic });
            });
            Receive<WakeUp>(m =>
            {
                tap.Tell(m.CustomerId);
                _wakes.Remove(m.CustomerId);
                Sender.Tell(Changed(m.CustomerId, m.Partition, -1, ChangeOutcome.Advanced));
            });
            Receive<GetWakeUp>(m => Sender.Tell(new CustomerWakeUp(m.CustomerId, m.Partition, _wakes.GetValueOrDefault(m.CustomerId))));
            Receive<PassivateCustomer>(m => Sender.Tell(new CustomerPassivated(m.CustomerId, m.Partition)));
        }

        private CustomerChanged Changed(string customer, int partition, long offset, ChangeOutcome outcome) =>
            new(customer, partition, offset, outcome, null, _wakes.GetValueOrDefault(customer), 0, 0, EffectBundle.Empty, [], true, false);
    }
}

/// <summary>A deterministic shuffle for the tests.</summary>
internal static class ShuffleExtensions
{
    /// <summary>The items, one at a time, as a listing of stored customers gives them.</summary>
    public static async IAsyncEnumerable<string> ToAsyncEnumerable(this IEnumerable<string> items, [EnumeratorCancellation] CancellationToken ct = default)
    {
        foreach (var item in items)
        {
            ct.ThrowIfCancellationRequested();
            await Task.Yield();
            yield return item;
        }
    }

    /// <summary>The items in an order fixed by <paramref name="seed"/>.</summary>
    public static T[] Shuffled<T>(this T[] items, int seed)
    {
        var copy = items.ToArray();
        new Random(seed).Shuffle(copy);
        return copy;
    }
}
