using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Persistence;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Partitions;
using Streaming.Runtime.Rules;
using Streaming.Runtime.Serialization;
using Streaming.Tests.Shared;
using Xunit.Abstractions;

namespace Streaming.Runtime.Tests;

/// <summary>
/// The customer entity on an in-memory journal: changes, saves at the barrier, recovery, offset de-duplication,
/// wake-ups carried by the watermark, effects reported again after a coordinator restart, passivation.
/// Expected values come from the default rule file's thresholds and from sums computed here, not from the engine.
/// </summary>
public sealed class CustomerEntityTests(ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit(RuntimeConfig, nameof(CustomerEntityTests), output)
{
    /// <summary>In-memory journal and snapshot store, and the runtime's configuration (serializers, customer mailbox).</summary>
    /// <remarks>
    /// Expectations wait up to 30 s (TestKit's default is 3 s): they return as soon as the message arrives, and a whole
    /// test run on two loaded cores delayed answers past 3 s.
    /// </remarks>
    internal const string RuntimeConfig = """
        akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
        akka.test.single-expect-default = 30s
        """ + "\n" + RuntimeConfiguration.Hocon;

    private static readonly DateTimeOffset T0 = new(2024, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly RuleSet Rules = RuleSetLoader.Default;
    private readonly RuleBook _book = new(Rules);

    /// <summary>A clock; <paramref name="completed"/>: the last checkpoint each earlier run completed (default: none did).</summary>
    private static PartitionClock Clock(DateTimeOffset watermark, long committed = 0, long run = 1, Dictionary<long, long>? completed = null) =>
        new(watermark.UtcTicks, watermark.UtcTicks - TimeSpan.FromHours(1).Ticks, Rules.Version, committed, run) { Completed = completed };

    private static OrderEvent Order(string customer, string orderId, decimal amount, DateTimeOffset at) => new()
    {
        EventId = "e-" + orderId,
        CustomerId = customer,
        OccurredAt = at,
        Type = EventType.OrderPlaced,
        OrderId = orderId,
        Amount = amount,
        ItemCount = 1,
    };

    private IActorRef Start(string customer, CustomerEntityOptions? options = null) =>
        Sys.ActorOf(CustomerEntity.Props(customer, options ?? new CustomerEntityOptions(), _book));

    private void Restart(ref IActorRef entity, string customer, CustomerEntityOptions? options = null)
    {
        Watch(entity);
        Sys.Stop(entity);
        ExpectTerminated(entity);
        entity = Start(customer, options);
    }

    private CustomerState Get(IActorRef entity, string customer)
    {
        entity.Tell(new GetCustomer(customer, 3));
        return ExpectMsg<CustomerFound>().State ?? throw new InvalidOperationException("customer unknown");
    }

    [Fact]
    public void Saved_changes_survive_a_restart_and_redelivered_offsets_are_duplicates()
    {
        var entity = Start("c1");
        decimal[] amounts = [10.50m, 99.99m, 0.01m, 1_000m];
        for (var i = 0; i < amounts.Length; i++)
        {
            entity.Tell(new ApplyRecord("c1", 3, "orders", 100 + i, Order("c1", "o" + i, amounts[i], T0.AddDays(i)), Clock(T0.AddDays(i))));
            var changed = ExpectMsg<CustomerChanged>();
            Assert.Equal(ChangeOutcome.Applied, changed.Outcome);
            Assert.Equal(3, changed.Partition);
            Assert.True(changed.Dirty);
        }

        entity.Tell(new SaveCustomer("c1", 3, Seq: 1));
        Assert.True(ExpectMsg<CustomerSaved>().Written);
        entity.Tell(new SaveCustomer("c1", 3, Seq: 2));
        Assert.False(ExpectMsg<CustomerSaved>().Written);

        Restart(ref entity, "c1");
        var state = Get(entity, "c1");
        Assert.Equal(amounts.Length, state.OrderCount);
        Assert.Equal(amounts.Sum(), state.NetAmount);

        // Kafka redelivers from the last committed offset: everything below the customer's next offset is a duplicate;
        // a new offset (a new event id) applies.
        for (var i = 0; i < amounts.Length; i++)
        {
            entity.Tell(new ApplyRecord("c1", 3, "orders", 100 + i, Order("c1", "o" + i, amounts[i], T0.AddDays(i)), Clock(T0.AddDays(4))));
            Assert.Equal(ChangeOutcome.Duplicate, ExpectMsg<CustomerChanged>().Outcome);
        }

        entity.Tell(new ApplyRecord("c1", 3, "orders", 104, Order("c1", "o4", 5m, T0.AddDays(5)), Clock(T0.AddDays(4))));
        Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
        Assert.Equal(amounts.Sum() + 5m, Get(entity, "c1").NetAmount);
    }

    [Fact]
    public void An_incarnation_that_missed_a_numbered_message_of_a_run_refuses_the_rest_of_that_run_and_takes_the_next()
    {
        var entity = Start("g1");
        var run1 = Clock(T0) with { Run = 1 };
        entity.Tell(new ApplyRecord("g1", 3, "orders", 100, Order("g1", "g-a", 11m, T0), run1) { Sequence = 1 });
        Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
        entity.Tell(new ApplyRecord("g1", 3, "orders", 101, Order("g1", "g-b", 22m, T0.AddHours(1)), run1) { Sequence = 2 });
        Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
        entity.Tell(new SaveCustomer("g1", 3, 1));
        Assert.True(ExpectMsg<CustomerSaved>().Written);

        // Applied, not saved, then the entity restarts: what message 3 changed is gone.
        entity.Tell(new ApplyRecord("g1", 3, "orders", 102, Order("g1", "g-c", 33m, T0.AddHours(2)), run1) { Sequence = 3 });
        Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
        Restart(ref entity, "g1");

        // The rest of run 1 is refused, record or wake-up, and changes nothing.
        entity.Tell(new ApplyRecord("g1", 3, "orders", 103, Order("g1", "g-d", 44m, T0.AddHours(3)), run1) { Sequence = 4 });
        var refused = ExpectMsg<CustomerChanged>();
        Assert.Equal((ChangeOutcome.Gap, 103L, false), (refused.Outcome, refused.Offset, refused.Dirty));
        entity.Tell(new WakeUp("g1", 3, run1) { Sequence = 5 });
        Assert.Equal(ChangeOutcome.Gap, ExpectMsg<CustomerChanged>().Outcome);
        Assert.Equal(11m + 22m, Get(entity, "g1").NetAmount);

        // The next run re-reads from the last checkpoint: numbering starts again at 1, and nothing is lost or doubled.
        var run2 = Clock(T0.AddHours(3)) with { Run = 2 };
        entity.Tell(new ApplyRecord("g1", 3, "orders", 101, Order("g1", "g-b", 22m, T0.AddHours(1)), run2) { Sequence = 1 });
        Assert.Equal(ChangeOutcome.Duplicate, ExpectMsg<CustomerChanged>().Outcome);
        entity.Tell(new ApplyRecord("g1", 3, "orders", 102, Order("g1", "g-c", 33m, T0.AddHours(2)), run2) { Sequence = 2 });
        Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
        entity.Tell(new ApplyRecord("g1", 3, "orders", 103, Order("g1", "g-d", 44m, T0.AddHours(3)), run2) { Sequence = 3 });
        Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
        Assert.Equal(11m + 22m + 33m + 44m, Get(entity, "g1").NetAmount);
    }

    [Fact]
    public void After_a_clean_stop_the_next_incarnation_takes_the_runs_next_message()
    {
        var entity = Start("g2");
        var run = Clock(T0) with { Run = 7 };
        entity.Tell(new ApplyRecord("g2", 3, "orders", 200, Order("g2", "h-a", 9m, T0), run) { Sequence = 1 });
        Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
        entity.Tell(new SaveCustomer("g2", 3, 1));
        Assert.True(ExpectMsg<CustomerSaved>().Written);

        // A redelivered record changes nothing but is message 2: the stop (idle passivation, hand-off) saves that too.
        entity.Tell(new ApplyRecord("g2", 3, "orders", 200, Order("g2", "h-a", 9m, T0), run) { Sequence = 2 });
        Assert.Equal(ChangeOutcome.Duplicate, ExpectMsg<CustomerChanged>().Outcome);
        Watch(entity);
        entity.Tell(CustomerEntity.StopEntity.Instance);
        ExpectTerminated(entity);

        entity = Start("g2");
        entity.Tell(new ApplyRecord("g2", 3, "orders", 201, Order("g2", "h-b", 4m, T0.AddHours(1)), run) { Sequence = 3 });
        Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
        Assert.Equal(13m, Get(entity, "g2").NetAmount);
    }

    [Fact]
    public void Unsaved_changes_are_lost_with_the_entity_and_redone_from_the_offsets()
    {
        var entity = Start("c2");
        entity.Tell(new ApplyRecord("c2", 3, "orders", 7, Order("c2", "a", 20m, T0), Clock(T0)));
        ExpectMsg<CustomerChanged>();
        entity.Tell(new SaveCustomer("c2", 3, 1));
        ExpectMsg<CustomerSaved>();
        entity.Tell(new ApplyRecord("c2", 3, "orders", 8, Order("c2", "b", 30m, T0.AddHours(1)), Clock(T0)));
        ExpectMsg<CustomerChanged>();

        Restart(ref entity, "c2");
        Assert.Equal(20m, Get(entity, "c2").NetAmount);
        entity.Tell(new ApplyRecord("c2", 3, "orders", 8, Order("c2", "b", 30m, T0.AddHours(1)), Clock(T0)));
        Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
        Assert.Equal(50m, Get(entity, "c2").NetAmount);
    }

    [Fact]
    public void A_watermark_past_the_wake_up_moves_the_lifecycle_through_each_threshold_at_its_own_instant()
    {
        // Default rules: one order makes a customer "new" for 30 days, then "active" while the last order is at most
        // 90 days old, then "at_risk" up to 180 days.
        var entity = Start("c3");
        entity.Tell(new ApplyRecord("c3", 3, "orders", 1, Order("c3", "x", 40m, T0), Clock(T0)));
        var first = ExpectMsg<CustomerChanged>();
        Assert.Contains(new StageMove("lifecycle", null, "new"), first.Effects.Moves);
        Assert.Equal(T0.AddDays(30).UtcTicks, first.WakeTicks);

        entity.Tell(new WakeUp("c3", 3, Clock(T0.AddDays(100))));
        var woke = ExpectMsg<CustomerChanged>();
        var lifecycle = woke.Effects.Moves.Where(m => m.Dimension == "lifecycle").ToList();
        Assert.Equal([new StageMove("lifecycle", "new", "active"), new StageMove("lifecycle", "active", "at_risk")], lifecycle);
        Assert.True(woke.TimersFired >= 2, $"{woke.TimersFired} wake-ups ran");
        Assert.Equal("at_risk", Get(entity, "c3").Stages["lifecycle"].Name);
    }

    [Fact]
    public void A_late_record_runs_the_due_wake_ups_first_whatever_the_coordinators_wake_up_timing()
    {
        // Two customers with the same history: an order at day 0, the partition's watermark at day 200, then a late
        // order stamped day 10. One got its wake-up before the late order, the other only sees the watermark on the
        // late order's own message. Both must end alike: at day 200 the customer was dormant (recency 200 > 180 days),
        // so the order makes it won_back; evaluated at day 10 instead, it would be "active" and then go dormant.
        var early = Start("e1");
        var lazy = Start("e2");
        foreach (var (entity, id) in new[] { (early, "e1"), (lazy, "e2") })
        {
            entity.Tell(new ApplyRecord(id, 3, "orders", 1, Order(id, "x", 40m, T0), Clock(T0)));
            ExpectMsg<CustomerChanged>();
        }

        early.Tell(new WakeUp("e1", 3, Clock(T0.AddDays(200))));
        ExpectMsg<CustomerChanged>();
        Assert.Equal("dormant", Get(early, "e1").Stages["lifecycle"].Name);
        early.Tell(new ApplyRecord("e1", 3, "orders", 2, Order("e1", "y", 60m, T0.AddDays(10)), Clock(T0.AddDays(200))));
        var a = ExpectMsg<CustomerChanged>();
        lazy.Tell(new ApplyRecord("e2", 3, "orders", 2, Order("e2", "y", 60m, T0.AddDays(10)), Clock(T0.AddDays(200))));
        var b = ExpectMsg<CustomerChanged>();

        Assert.Equal("won_back", Get(early, "e1").Stages["lifecycle"].Name);
        Assert.Equal("won_back", Get(lazy, "e2").Stages["lifecycle"].Name);
        Assert.Contains(new StageMove("lifecycle", "dormant", "won_back"), b.Effects.Moves);
        Assert.Equal(a.WakeTicks, b.WakeTicks);
        Assert.Equal(
            Get(early, "e1").Stages.ToDictionary(s => s.Key, s => s.Value.Name),
            Get(lazy, "e2").Stages.ToDictionary(s => s.Key, s => s.Value.Name));
    }

    [Fact]
    public void Offsets_catch_redelivered_records_beyond_the_cores_window_of_recent_event_ids()
    {
        // The core remembers the last 32 event ids; a redelivery after a crash can be longer than that.
        const int views = 40;
        var entity = Start("v1");
        for (var i = 0; i < views; i++)
        {
            entity.Tell(new ApplyRecord("v1", 3, "clickstream", 500 + i, View("v1", i), Clock(T0)));
            Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
        }

        entity.Tell(new SaveCustomer("v1", 3, 1));
        ExpectMsg<CustomerSaved>();
        Restart(ref entity, "v1");
        for (var i = 0; i < views; i++)
        {
            entity.Tell(new ApplyRecord("v1", 3, "clickstream", 500 + i, View("v1", i), Clock(T0)));
            Assert.Equal(ChangeOutcome.Duplicate, ExpectMsg<CustomerChanged>().Outcome);
        }

        Assert.Equal(views, Get(entity, "v1").PageViews);

        // Offsets are per topic: the same offset on another topic is a different record.
        entity.Tell(new ApplyRecord("v1", 3, "orders", 500, Order("v1", "o", 1m, T0.AddMinutes(50)), Clock(T0)));
        Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
    }

    private static ClickEvent View(string customer, int i) => new()
    {
        EventId = $"view-{i}",
        CustomerId = customer,
        OccurredAt = T0.AddMinutes(i),
        Type = EventType.PageView,
        SessionId = "s1",
    };

    [Fact]
    public void A_record_whose_sum_overflows_fails_and_changes_nothing()
    {
        var entity = Start("f1");
        entity.Tell(new ApplyRecord("f1", 3, "orders", 1, Order("f1", "a", decimal.MaxValue, T0), Clock(T0)));
        Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
        var before = CustomerStateCodec.Encode(Get(entity, "f1"));

        entity.Tell(new ApplyRecord("f1", 3, "orders", 2, Order("f1", "b", 1m, T0.AddMinutes(1)), Clock(T0)));
        var failed = ExpectMsg<CustomerChanged>();
        Assert.Equal(ChangeOutcome.Failed, failed.Outcome);
        Assert.StartsWith("OverflowException", failed.Failure, StringComparison.Ordinal);
        Assert.True(failed.Effects.IsEmpty);
        Assert.Equal(before, CustomerStateCodec.Encode(Get(entity, "f1")));

        // The failed offset was not taken: once saved and restarted, the record is tried again (and fails again).
        entity.Tell(new SaveCustomer("f1", 3, 1));
        ExpectMsg<CustomerSaved>();
        Restart(ref entity, "f1");
        entity.Tell(new ApplyRecord("f1", 3, "orders", 2, Order("f1", "b", 1m, T0.AddMinutes(1)), Clock(T0)));
        Assert.Equal(ChangeOutcome.Failed, ExpectMsg<CustomerChanged>().Outcome);
    }

    [Fact]
    public void Saved_effects_are_reported_once_to_each_new_coordinator_run_until_a_checkpoint_confirms_them()
    {
        var entity = Start("r1");
        entity.Tell(new ApplyRecord("r1", 3, "orders", 1, Order("r1", "x", 40m, T0), Clock(T0, committed: 0, run: 1)));
        var applied = ExpectMsg<CustomerChanged>();
        Assert.Empty(applied.Recovered);
        entity.Tell(new SaveCustomer("r1", 3, Seq: 5));
        ExpectMsg<CustomerSaved>();

        // The coordinator crashed before checkpoint 5 completed: its next run (committed 4) gets the effects once.
        Restart(ref entity, "r1");
        var run1 = new Dictionary<long, long> { [1] = 4 };
        entity.Tell(new ApplyRecord("r1", 3, "orders", 1, Order("r1", "x", 40m, T0), Clock(T0, committed: 4, run: 2, completed: run1)));
        var redelivered = ExpectMsg<CustomerChanged>();
        Assert.Equal(ChangeOutcome.Duplicate, redelivered.Outcome);
        var recovered = Assert.Single(redelivered.Recovered);
        Assert.Equal(5, recovered.Seq);
        Assert.Equal(applied.Effects.Moves, recovered.Moves);
        entity.Tell(new WakeUp("r1", 3, Clock(T0, committed: 4, run: 2, completed: run1)));
        Assert.Empty(ExpectMsg<CustomerChanged>().Recovered);

        // Saved with the run that took them: a reload in the same run does not report them again.
        entity.Tell(new SaveCustomer("r1", 3, Seq: 6));
        ExpectMsg<CustomerSaved>();
        Restart(ref entity, "r1");
        entity.Tell(new WakeUp("r1", 3, Clock(T0, committed: 4, run: 2, completed: run1)));
        Assert.Empty(ExpectMsg<CustomerChanged>().Recovered);

        // Run 2 completed checkpoint 6: confirmed, never reported again.
        entity.Tell(new WakeUp("r1", 3, Clock(T0, committed: 6, run: 3, completed: new() { [1] = 4, [2] = 6 })));
        Assert.Empty(ExpectMsg<CustomerChanged>().Recovered);
    }

    [Fact]
    public void Effects_saved_under_a_checkpoint_number_a_later_run_reused_are_not_confirmed_by_it()
    {
        var entity = Start("n1");
        entity.Tell(new ApplyRecord("n1", 3, "orders", 1, Order("n1", "x", 40m, T0), Clock(T0, committed: 0, run: 1)));
        var applied = ExpectMsg<CustomerChanged>();
        Assert.NotEmpty(applied.Effects.Moves);
        entity.Tell(new SaveCustomer("n1", 3, Seq: 1));
        ExpectMsg<CustomerSaved>();

        // Run 1 crashed before completing checkpoint 1. Run 2 started from checkpoint 0 and completed checkpoints 1 and
        // 2 of its own (other customers) before it first reached this one: no run has counted the effects yet.
        Restart(ref entity, "n1");
        var first = Ask(entity, new WakeUp("n1", 3, Clock(T0, committed: 2, run: 2)));
        Assert.Equal(applied.Effects.Moves, Assert.Single(first.Recovered).Moves);
        Assert.True(first.Dirty);

        // Run 2 saved them under its checkpoint 3, then crashed before completing it; run 3 (which knows run 2 completed
        // 2) counts them again, and so does run 4 after run 3 crashed before saving this customer at all. Run 3 reused
        // number 3 for checkpoints of its own: only a run that completed the number of its own label confirms them.
        entity.Tell(new SaveCustomer("n1", 3, Seq: 3));
        ExpectMsg<CustomerSaved>();
        Restart(ref entity, "n1");
        Assert.Equal(applied.Effects.Moves, Assert.Single(Ask(entity, new WakeUp("n1", 3, Clock(T0, committed: 3, run: 3, completed: new() { [2] = 2 }))).Recovered).Moves);
        Restart(ref entity, "n1");
        Assert.Equal(applied.Effects.Moves, Assert.Single(Ask(entity, new WakeUp("n1", 3, Clock(T0, committed: 5, run: 4, completed: new() { [2] = 2, [3] = 5 }))).Recovered).Moves);

        // Run 4 saves them under its checkpoint 6 and completes it: a later run finds them confirmed.
        entity.Tell(new SaveCustomer("n1", 3, Seq: 6));
        ExpectMsg<CustomerSaved>();
        Restart(ref entity, "n1");
        Assert.Empty(Ask(entity, new WakeUp("n1", 3, Clock(T0, committed: 6, run: 5, completed: new() { [2] = 2, [3] = 5, [4] = 6 }))).Recovered);
    }

    /// <summary>
    /// The previous owner's last checkpoint can land after the next owner recovered (it was under way when the partition
    /// moved). Run 1 saved the effects under its checkpoint 5; run 2 recovered with run 1 at 4, counted them and saved
    /// them relabelled as its own; run 2's first checkpoint then lost the journal race to run 1's checkpoint 5, which
    /// landed and counted them. Run 3 (run 1 complete to 5, run 2 never completing) must not count them a third time:
    /// the label run 1 gave them is kept and confirms them. (Found by a rolling restart of a three-node cluster, whose
    /// firing counters ended above the topic.)
    /// </summary>
    [Fact]
    public void Effects_a_late_checkpoint_of_the_run_that_first_saved_them_confirms_are_not_reported_again()
    {
        var entity = Start("l1");
        var applied = Ask(entity, new ApplyRecord("l1", 3, "orders", 1, Order("l1", "x", 40m, T0), Clock(T0, committed: 4, run: 1)));
        Assert.NotEmpty(applied.Effects.Moves);
        entity.Tell(new SaveCustomer("l1", 3, Seq: 5));
        ExpectMsg<CustomerSaved>();

        Restart(ref entity, "l1");
        var taken = Ask(entity, new WakeUp("l1", 3, Clock(T0, committed: 4, run: 2, completed: new() { [1] = 4 })));
        Assert.Equal(applied.Effects.Moves, Assert.Single(taken.Recovered).Moves);
        entity.Tell(new SaveCustomer("l1", 3, Seq: 5));
        ExpectMsg<CustomerSaved>();

        Restart(ref entity, "l1");
        Assert.Empty(Ask(entity, new WakeUp("l1", 3, Clock(T0, committed: 5, run: 3, completed: new() { [1] = 5 }))).Recovered);

        // Had run 1's checkpoint 5 not landed, run 3 would count them (run 2's label confirms nothing).
        var other = Start("l2");
        Ask(other, new ApplyRecord("l2", 3, "orders", 1, Order("l2", "y", 40m, T0), Clock(T0, committed: 4, run: 1)));
        other.Tell(new SaveCustomer("l2", 3, Seq: 5));
        ExpectMsg<CustomerSaved>();
        Restart(ref other, "l2");
        Assert.Single(Ask(other, new WakeUp("l2", 3, Clock(T0, committed: 4, run: 2, completed: new() { [1] = 4 }))).Recovered);
        other.Tell(new SaveCustomer("l2", 3, Seq: 5));
        ExpectMsg<CustomerSaved>();
        Restart(ref other, "l2");
        Assert.Single(Ask(other, new WakeUp("l2", 3, Clock(T0, committed: 4, run: 3, completed: new() { [1] = 4 }))).Recovered);
    }

    private CustomerChanged Ask(IActorRef entity, object message)
    {
        entity.Tell(message);
        return ExpectMsg<CustomerChanged>();
    }

    [Fact]
    public void A_read_passivates_an_unknown_customer_but_not_one_its_coordinator_has_numbered_messages_to()
    {
        // A read of a made-up id leaves nothing in memory.
        var ghost = Sys.ActorOf(Props.Create(() => new ShardStandIn("ghost", _book)));
        ghost.Tell(new GetCustomer("ghost", 3));
        Assert.Null(ExpectMsg<CustomerFound>().State);
        ExpectMsg<ShardStandIn.EntityStopped>();

        // A customer whose first record failed (a rule that throws) does not exist either, but its coordinator has sent
        // it message 1 of its run: after a read, message 2 must reach the same incarnation, not a new one that refuses it.
        var failing = InjectedRules.DefaultWith("boom", _ => throw new InvalidOperationException("injected rule failure"));
        var book = new RuleBook(failing);
        var shard = Sys.ActorOf(Props.Create(() => new ShardStandIn("f1", book)));
        var run = Clock(T0) with { RuleVersion = failing.Version, Run = 5 };
        shard.Tell(new ApplyRecord("f1", 3, "orders", 0, Order("f1", "f-a", 10m, T0), run) { Sequence = 1 });
        var failed = ExpectMsg<CustomerChanged>();
        Assert.Equal((ChangeOutcome.Failed, false), (failed.Outcome, failed.Exists));
        shard.Tell(new GetCustomer("f1", 3));
        Assert.Null(ExpectMsg<CustomerFound>().State);
        shard.Tell(new WakeUp("f1", 3, run) { Sequence = 2 });
        Assert.Equal(ChangeOutcome.Advanced, ExpectMsg<CustomerChanged>().Outcome);
    }

    /// <summary>
    /// A read of a customer its partition has never saved asks the shard to passivate the empty entity. The customer's
    /// first record can reach the entity before the shard acts on that request. The entity applies the record and saves
    /// it before it stops. The next incarnation must then read the journal: it must not start empty, as a customer
    /// outside the partition's known set otherwise does, or it would refuse the coordinator's next message as a gap.
    /// The partition would restart, and the next save would reuse a sequence number the journal already holds.
    /// </summary>
    [Fact]
    public void A_record_that_overtakes_a_read_passivation_is_saved_and_the_next_incarnation_recovers_it()
    {
        var registry = new KnownCustomerRegistry();
        registry.Register(3, new KnownCustomers());
        var shard = Sys.ActorOf(Props.Create(() => new ShardStandIn("r1", _book, new CustomerEntityOptions { Known = registry }, true)), "3");

        shard.Tell(new GetCustomer("r1", 3));
        Assert.Null(ExpectMsg<CustomerFound>().State);

        // The entity has asked to passivate; the shard has not acted yet, so the first record still reaches it.
        var run = Clock(T0, committed: 0, run: 7);
        shard.Tell(new ApplyRecord("r1", 3, "orders", 0, Order("r1", "r-a", 25m, T0), run) { Sequence = 1 });
        Assert.Equal(ChangeOutcome.Applied, ExpectMsg<CustomerChanged>().Outcome);
        shard.Tell(ShardStandIn.ActOnPassivation.Instance);
        ExpectMsg<ShardStandIn.EntityStopped>();

        // A new incarnation takes message 2 of the same run, with the order the first one applied.
        shard.Tell(new WakeUp("r1", 3, run) { Sequence = 2 });
        var next = ExpectMsg<CustomerChanged>();
        Assert.True(next.Outcome == ChangeOutcome.Advanced, $"{next.Outcome}: {next.Failure}");
        shard.Tell(new GetCustomer("r1", 3));
        Assert.Equal(1, ExpectMsg<CustomerFound>().State?.OrderCount);
    }

    [Fact]
    public void Effects_saved_at_a_passivation_are_not_reported_again_to_the_run_that_counted_them()
    {
        var shard = Sys.ActorOf(Props.Create(() => new ShardStandIn("q1", _book)));
        shard.Tell(new ApplyRecord("q1", 3, "orders", 1, Order("q1", "x", 40m, T0), Clock(T0, committed: 0, run: 1)));
        var applied = ExpectMsg<CustomerChanged>();
        Assert.NotEmpty(applied.Effects.Moves);
        shard.Tell(new PassivateCustomer("q1", 3, Seq: 1));
        ExpectMsg<CustomerPassivated>();
        ExpectMsg<ShardStandIn.EntityStopped>();

        // Reloaded before checkpoint 1 completes, in the run that counted the effects live: nothing comes back.
        shard.Tell(new WakeUp("q1", 3, Clock(T0, committed: 0, run: 1)));
        Assert.Empty(ExpectMsg<CustomerChanged>().Recovered);

        // A new run (the coordinator restarted from checkpoint 0) gets them once.
        shard.Tell(new WakeUp("q1", 3, Clock(T0, committed: 0, run: 2)));
        var recovered = Assert.Single(ExpectMsg<CustomerChanged>().Recovered);
        Assert.Equal(applied.Effects.Moves, recovered.Moves);
    }

    [Fact]
    public void A_coordinator_restarting_under_a_live_entity_gets_its_unsaved_effects_once()
    {
        var entity = Start("u1");
        entity.Tell(new ApplyRecord("u1", 3, "orders", 1, Order("u1", "x", 40m, T0), Clock(T0, committed: 0, run: 1)));
        var applied = ExpectMsg<CustomerChanged>();

        // The coordinator restarted from checkpoint 0 and sends the record again: the entity, still alive, has applied
        // it (a duplicate by offset), so the new run must learn its effects from the entity, once.
        entity.Tell(new ApplyRecord("u1", 3, "orders", 1, Order("u1", "x", 40m, T0), Clock(T0, committed: 0, run: 2)));
        var again = ExpectMsg<CustomerChanged>();
        Assert.Equal(ChangeOutcome.Duplicate, again.Outcome);
        var recovered = Assert.Single(again.Recovered);
        Assert.Equal(applied.Effects.Moves, recovered.Moves);
        Assert.True(again.Dirty);
        entity.Tell(new WakeUp("u1", 3, Clock(T0, committed: 0, run: 2)));
        Assert.Empty(ExpectMsg<CustomerChanged>().Recovered);
        Assert.Equal(1, Get(entity, "u1").OrderCount);
    }

    [Fact]
    public void Passivation_saves_first_and_the_reloaded_customer_is_the_same()
    {
        var shard = Sys.ActorOf(Props.Create(() => new ShardStandIn("p1", _book)));
        shard.Tell(new ApplyRecord("p1", 3, "orders", 1, Order("p1", "x", 12.34m, T0), Clock(T0)));
        ExpectMsg<CustomerChanged>();
        shard.Tell(new PassivateCustomer("p1", 3, Seq: 9));
        ExpectMsg<CustomerPassivated>();
        ExpectMsg<ShardStandIn.EntityStopped>();

        shard.Tell(new GetCustomer("p1", 3));
        var state = ExpectMsg<CustomerFound>().State;
        Assert.NotNull(state);
        Assert.Equal(12.34m, state.NetAmount);
        Assert.Equal(1, state.OrderCount);
    }

    [Fact]
    public void Compaction_bounds_the_journal_and_keeps_the_state()
    {
        var options = new CustomerEntityOptions { CompactEvery = 2 };
        var entity = Start("s1", options);
        var total = 0m;
        for (var i = 0; i < 5; i++)
        {
            var amount = 1.25m * (i + 1);
            total += amount;
            entity.Tell(new ApplyRecord("s1", 3, "orders", i, Order("s1", "o" + i, amount, T0.AddHours(i)), Clock(T0)));
            ExpectMsg<CustomerChanged>();
            entity.Tell(new SaveCustomer("s1", 3, i + 1));
            ExpectMsg<CustomerSaved>();
        }

        // Five saves, compacted at 2 and 4: the journal keeps events 4 and 5 (the deletes run after the saves' answers).
        AwaitAssert(() => Assert.Equal([4L, 5L], JournalOf("customer-s1")), TimeSpan.FromSeconds(5));
        Restart(ref entity, "s1", options);
        var state = Get(entity, "s1");
        Assert.Equal(5, state.OrderCount);
        Assert.Equal(total, state.NetAmount);
    }

    /// <summary>The sequence numbers the journal replays for <paramref name="persistenceId"/>.</summary>
    private List<long> JournalOf(string persistenceId)
    {
        var probe = CreateTestProbe();
        Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null).Tell(new ReplayMessages(1, long.MaxValue, long.MaxValue, persistenceId, probe.Ref));
        var seqs = new List<long>();
        while (probe.ExpectMsg<object>() is ReplayedMessage replayed)
        {
            seqs.Add(replayed.Persistent.SequenceNr);
        }

        return seqs;
    }

    /// <summary>The queries one node sends another (a profile read, a partition's clock) go through the bound query serializer and come back equal.</summary>
    [Fact]
    public void Cluster_queries_round_trip_through_the_bound_serializer()
    {
        var state = new CustomerState("c 7/ü") { OrderCount = 4, GrossAmount = 99.95m, RefundAmount = 5m, WakeTicks = T0.UtcTicks, RuleVersion = "v9" };
        object[] messages = [new GetCustomer("c 7/ü", 5), new CustomerFound("c 7/ü", 5, state), new CustomerFound("nobody", 2, null), new GetPartitionWatermark(11), new PartitionWatermark(11, true, T0.UtcTicks), new PartitionWatermark(3, false, 0)];
        foreach (var message in messages)
        {
            var serializer = (Akka.Serialization.SerializerWithStringManifest)Sys.Serialization.FindSerializerFor(message);
            Assert.IsType<QuerySerializer>(serializer);
            var back = Sys.Serialization.Deserialize(serializer.ToBinary(message), serializer.Identifier, serializer.Manifest(message));
            if (message is CustomerFound { State: { } sent })
            {
                var found = Assert.IsType<CustomerFound>(back);
                Assert.Equal(("c 7/ü", 5), (found.CustomerId, found.Partition));
                Assert.Equal((4, 99.95m, 5m, T0.UtcTicks, "v9"), (found.State!.OrderCount, found.State.GrossAmount, found.State.RefundAmount, found.State.WakeTicks, found.State.RuleVersion));
                Assert.Equal(CustomerStateCodec.Encode(sent), CustomerStateCodec.Encode(found.State));
            }
            else
            {
                Assert.Equal(message, back);
            }
        }
    }

    [Fact]
    public void The_journal_event_round_trips_through_the_bound_serializer()
    {
        var state = new CustomerState("z") { OrderCount = 3, GrossAmount = 12.5m, WakeTicks = T0.UtcTicks };
        var firing = new TriggerFiring
        {
            Id = "f-1",
            CustomerId = "z",
            Rule = "win_back",
            RuleVersion = "v1",
            Channel = ContactChannel.Voice,
            Priority = 7,
            AtTicks = T0.UtcTicks,
            DueTicks = T0.AddHours(9).UtcTicks,
            ExpiresTicks = T0.AddDays(3).UtcTicks,
            Delivery = Delivery.Queued,
            Reason = [new("lifecycle.stage", "dormant")],
            Partition = 3,
            Profile = new Dictionary<string, object?> { ["tier"] = null, ["ordersCount"] = 3, ["netAmount"] = 12.5m, ["tags"] = new[] { "vip", "lapsed" } },
        };
        var saved = new CustomerCheckpointed(
            8,
            CustomerStateCodec.Encode(state),
            new Dictionary<string, long> { ["orders"] = 41, ["clickstream"] = 7 },
            2,
            [new EffectBundle(8, [new StageMove("lifecycle", "active", null)], [firing], [new Conversion("win_back", Delivery.Holdout)]) { Run = 3, Earlier = [new(1, 6), new(2, 7)] }],
            SequenceRun: 638_000_000_000_000_000,
            Sequence: 12,
            Partition: 5);

        var serializer = Sys.Serialization.FindSerializerFor(saved);
        Assert.IsType<RuntimeSerializer>(serializer);
        var back = (CustomerCheckpointed)Sys.Serialization.Deserialize(serializer.ToBinary(saved), serializer.Identifier, ((Akka.Serialization.SerializerWithStringManifest)serializer).Manifest(saved));

        Assert.Equal(8, back.Seq);
        Assert.Equal(2, back.ReportedRun);
        Assert.Equal((638_000_000_000_000_000L, 12, 5), (back.SequenceRun, back.Sequence, back.Partition));

        var label = Assert.Single(back.Unconfirmed);
        Assert.Equal(3L, label.Run);
        Assert.Equal([new EffectLabel(1, 6), new EffectLabel(2, 7)], label.Earlier);

        // Events written before the bundles' earlier labels (4 bytes of count and 16 per label), before the partition (4
        // more) and before the numbering (12 more) was stored decode with no earlier labels, the partition unknown, and
        // with no message handled.
        var manifest = ((Akka.Serialization.SerializerWithStringManifest)serializer).Manifest(saved);
        var labels = 4 + (2 * 16);
        var noLabels = (CustomerCheckpointed)Sys.Serialization.Deserialize(serializer.ToBinary(saved)[..^labels], serializer.Identifier, manifest);
        Assert.Equal((5, 0), (noLabels.Partition, Assert.Single(noLabels.Unconfirmed).Earlier.Count));
        var noPartition = (CustomerCheckpointed)Sys.Serialization.Deserialize(serializer.ToBinary(saved)[..^(labels + 4)], serializer.Identifier, manifest);
        Assert.Equal((638_000_000_000_000_000L, 12, -1), (noPartition.SequenceRun, noPartition.Sequence, noPartition.Partition));
        var old = (CustomerCheckpointed)Sys.Serialization.Deserialize(serializer.ToBinary(saved)[..^(labels + 16)], serializer.Identifier, manifest);
        Assert.Equal((0L, 0, 8L, -1), (old.SequenceRun, old.Sequence, old.Seq, old.Partition));
        Assert.Equal(saved.NextOffsets, back.NextOffsets);
        var decoded = CustomerStateCodec.Decode("z", back.State);
        Assert.Equal((3, 12.5m, T0.UtcTicks), (decoded.OrderCount, decoded.GrossAmount, decoded.WakeTicks));
        var bundle = Assert.Single(back.Unconfirmed);
        Assert.Equal(saved.Unconfirmed[0].Moves, bundle.Moves);
        Assert.Equal(saved.Unconfirmed[0].Converted, bundle.Converted);
        var f = Assert.Single(bundle.Fired);
        Assert.Equal((firing.Id, firing.Rule, firing.DueTicks, firing.Delivery, firing.Priority), (f.Id, f.Rule, f.DueTicks, f.Delivery, f.Priority));
        Assert.Equal(firing.Reason, f.Reason);
        Assert.Equal(["vip", "lapsed"], (string[])f.Profile["tags"]!);
        Assert.Equal(12.5m, f.Profile["netAmount"]);
        Assert.Null(f.Profile["tier"]);
    }

    [Fact]
    public void The_partition_events_round_trip_with_their_known_customers()
    {
        // Hashes at both ends of the unsigned range, as XxHash64 gives them.
        ulong[] hashes = [0UL, 1UL, 0x8000_0000_0000_0000UL, ulong.MaxValue, KnownCustomers.Hash("c-1")];
        var known = new CustomersKnown(4, hashes);
        var snapshot = new PartitionCheckpointed(9, new Dictionary<string, long> { ["orders"] = 12 }, T0.UtcTicks, 0, [1, 2], new Dictionary<string, long> { ["c-1"] = T0.UtcTicks }, "v1", [], 77, new Dictionary<long, long> { [70] = 8 }) { Known = hashes };

        object RoundTrip(object o)
        {
            var serializer = (Akka.Serialization.SerializerWithStringManifest)Sys.Serialization.FindSerializerFor(o);
            Assert.IsType<RuntimeSerializer>(serializer);
            return Sys.Serialization.Deserialize(serializer.ToBinary(o), serializer.Identifier, serializer.Manifest(o));
        }

        var knownBack = (CustomersKnown)RoundTrip(known);
        Assert.Equal(4, knownBack.Seq);
        Assert.Equal(hashes, knownBack.Hashes);
        var snapshotBack = (PartitionCheckpointed)RoundTrip(snapshot);
        Assert.Equal(hashes, snapshotBack.Known);
        Assert.Equal((9L, 77L, "v1"), (snapshotBack.Seq, snapshotBack.Run, snapshotBack.RuleVersion));
        Assert.Equal(8, snapshotBack.Runs[70]);
        Assert.Equal(long.MaxValue, snapshotBack.PageEnd);

        // The page end of bounded wake-ups goes along; an event written before it existed (without its last 8 bytes)
        // reads as every wake-up held.
        var paged = snapshot with { PageEnd = T0.UtcTicks + 42 };
        Assert.Equal(T0.UtcTicks + 42, ((PartitionCheckpointed)RoundTrip(paged)).PageEnd);
        var older = RuntimeSerializer.Encode(paged)[..^8];
        var olderBack = RuntimeSerializer.DecodePartition(older);
        Assert.Equal(long.MaxValue, olderBack.PageEnd);
        Assert.Equal(hashes, olderBack.Known);

        // A count larger than the bytes that follow is corrupt, not an allocation.
        var bytes = RuntimeSerializer.Encode(known);
        bytes[8] = 0xFF;
        bytes[9] = 0xFF;
        bytes[10] = 0xFF;
        bytes[11] = 0x0F;
        Assert.Throws<InvalidDataException>(() => RuntimeSerializer.DecodeKnown(bytes));
    }

    [Fact]
    public void Events_encoded_after_a_large_snapshot_on_the_same_thread_hold_only_their_own_bytes()
    {
        // A snapshot of 3 MiB of population and 20,000 wake-ups: more than a thread's encoding buffer keeps.
        var population = Enumerable.Range(0, 3 << 20).Select(i => (byte)(i * 7)).ToArray();
        var wakes = Enumerable.Range(0, 20_000).ToDictionary(i => "c-" + i, i => T0.UtcTicks + i);
        var large = new PartitionCheckpointed(11, new Dictionary<string, long> { ["orders"] = 5 }, T0.UtcTicks, 0, population, wakes, "v2", [], 3, new Dictionary<long, long>());
        var small = new PartitionCheckpointed(12, new Dictionary<string, long> { ["orders"] = 6 }, T0.UtcTicks, 0, [9], new Dictionary<string, long> { ["c-1"] = T0.UtcTicks }, "v2", [], 3, new Dictionary<long, long>());
        var known = new CustomersKnown(4, [1UL, 2UL]);

        // The same events encoded first on a thread of their own, whose buffer has held nothing.
        byte[] smallAlone = [], knownAlone = [];
        var fresh = new Thread(() => (smallAlone, knownAlone) = (RuntimeSerializer.Encode(small), RuntimeSerializer.Encode(known)));
        fresh.Start();
        Assert.True(fresh.Join(TimeSpan.FromSeconds(30)));

        var largeBytes = RuntimeSerializer.Encode(large);
        var smallBytes = RuntimeSerializer.Encode(small);
        var knownBytes = RuntimeSerializer.Encode(known);
        var largeAgain = RuntimeSerializer.Encode(large);

        Assert.True(largeBytes.Length > population.Length + (20_000 * 12), $"{largeBytes.Length} bytes");
        Assert.Equal(smallAlone, smallBytes);
        Assert.Equal(knownAlone, knownBytes);
        Assert.Equal(largeBytes, largeAgain);
        var largeBack = RuntimeSerializer.DecodePartition(largeBytes);
        Assert.Equal(population, largeBack.Population);
        Assert.Equal(wakes, largeBack.Wakes);
        var smallBack = RuntimeSerializer.DecodePartition(smallBytes);
        Assert.Equal((12L, (byte)9, 1), (smallBack.Seq, Assert.Single(smallBack.Population), smallBack.Wakes.Count));
        Assert.Equal([1UL, 2UL], RuntimeSerializer.DecodeKnown(knownBytes).Hashes);
    }

    /// <summary>
    /// Plays the shard for one entity: starts it, forwards messages, answers its passivation request with the stop
    /// message, buffers what arrives until the entity has stopped, and starts it again for them (as the shard does).
    /// With <c>holdPassivation</c>, the request waits for <see cref="ActOnPassivation"/> and messages meanwhile still
    /// reach the entity: the shard's race, left open. Create it named after its partition (as Akka.Cluster.Sharding
    /// names a shard) for the entity to consult <see cref="CustomerEntityOptions.Known"/>.
    /// </summary>
    private sealed class ShardStandIn : ReceiveActor
    {
        public sealed record EntityStopped;

        public sealed record ActOnPassivation
        {
            public static readonly ActOnPassivation Instance = new();
        }

        private readonly Queue<(object Message, IActorRef Sender)> _buffered = new();
        private IActorRef? _entity;
        private object? _stopMessage;
        private bool _stopping;
        private IActorRef? _requester;

        public ShardStandIn(string customer, RuleBook book)
            : this(customer, book, new CustomerEntityOptions(), holdPassivation: false)
        {
        }

        public ShardStandIn(string customer, RuleBook book, CustomerEntityOptions options, bool holdPassivation)
        {
            Receive<Passivate>(p =>
            {
                _stopMessage = p.StopMessage;
                if (!holdPassivation)
                {
                    Stop();
                }
            });
            Receive<ActOnPassivation>(_ =>
            {
                _requester = Sender;
                Stop();
            });
            Receive<Terminated>(_ =>
            {
                (_entity, _stopping) = (null, false);
                _requester?.Tell(new EntityStopped());
                while (_buffered.TryDequeue(out var held))
                {
                    Deliver(customer, book, options, held.Message, held.Sender);
                }
            });
            Receive<ICustomerCommand>(m =>
            {
                _requester = Sender;
                if (_stopping)
                {
                    _buffered.Enqueue((m, Sender));
                    return;
                }

                Deliver(customer, book, options, m, Sender);
            });
        }

        private void Stop()
        {
            _stopping = true;
            _entity!.Tell(_stopMessage!);
        }

        private void Deliver(string customer, RuleBook book, CustomerEntityOptions options, object message, IActorRef sender)
        {
            if (_entity is null)
            {
                _entity = Context.ActorOf(CustomerEntity.Props(customer, options, book));
                Context.Watch(_entity);
            }

            _entity.Tell(message, sender);
        }
    }
}
