using Akka.Actor;
using Akka.TestKit;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Partitions;
using Streaming.Runtime.Rules;
using Xunit.Abstractions;

namespace Streaming.Runtime.Tests;

/// <summary>
/// The partition coordinator with real customer entities on an in-memory journal (a local stand-in routes by customer
/// id, as the shard region does): the clock, wake-ups of customers without records, the checkpoint barrier, dead
/// letters and recovery. Expected counts come from the default rule file's thresholds, worked out here.
/// </summary>
public sealed class PartitionCoordinatorTests(ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit(CustomerEntityTests.RuntimeConfig, nameof(PartitionCoordinatorTests), output)
{
    private static readonly DateTimeOffset T0 = new(2024, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly RuleBook _book = new(RuleSetLoader.Default);

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

    private (IActorRef Coordinator, TestProbe Listener) Start(int partition, IActorRef? customers = null, PartitionCoordinatorOptions? options = null)
    {
        var listener = CreateTestProbe();
        customers ??= Sys.ActorOf(Props.Create(() => new LocalCustomers(_book)));
        var coordinator = Sys.ActorOf(PartitionCoordinator.Props(partition, customers, listener, _book, options ?? new PartitionCoordinatorOptions()));
        return (coordinator, listener);
    }

    private static CheckpointCompleted Checkpoint(IActorRef coordinator, TestProbe listener)
    {
        coordinator.Tell(CheckpointNow.Instance);
        var flush = listener.FishForMessage<FlushDeadLetters>(_ => true);
        listener.Reply(new DeadLettersFlushed(flush.Partition, flush.Seq));
        return listener.FishForMessage<CheckpointCompleted>(_ => true);
    }

    private PartitionStatus Status(IActorRef coordinator)
    {
        coordinator.Tell(GetPartitionStatus.Instance);
        return ExpectMsg<PartitionStatus>();
    }

    [Fact]
    public void The_watermark_wakes_a_customer_without_records_of_its_own_and_the_checkpoint_covers_every_offset()
    {
        var (coordinator, listener) = Start(1);

        // a orders at day 0 ("new" for 30 days); b orders at day 40: the watermark (day 40 minus 5 minutes) passes a's
        // wake-up at day 30, so a becomes "active" with no record of its own.
        coordinator.Tell(new PartitionRecord("orders", 10, Order("a", "a1", 25m, T0)));
        coordinator.Tell(new PartitionRecord("orders", 11, null, new DecodeError("invalid-json", "unexpected end")));
        coordinator.Tell(new PartitionRecord("orders", 12, Order("b", "b1", 35m, T0.AddDays(40))));
        var dead = listener.ExpectMsg<DeadLettered>();
        Assert.Equal(("orders", 11L, "invalid-json"), (dead.Topic, dead.Offset, dead.Code));

        var done = Checkpoint(coordinator, listener);
        Assert.Equal(1, done.Seq);
        Assert.Equal(13, done.NextOffsets["orders"]);
        Assert.Equal(["a", "b"], done.ChangedCustomers.Order(StringComparer.Ordinal));

        var status = Status(coordinator);
        Assert.Equal(T0.AddDays(40).UtcTicks, status.MaxEventTicks);
        Assert.Equal(1, status.Counts.GetValueOrDefault(("lifecycle", "active")));
        Assert.Equal(1, status.Counts.GetValueOrDefault(("lifecycle", "new")));
        Assert.True(status.TimersFired >= 1);
        Assert.Equal(0, status.InFlight);
    }

    [Fact]
    public void Messages_to_a_customer_are_numbered_and_a_refused_one_stops_the_coordinator_with_a_partition_failure()
    {
        var customers = CreateTestProbe();
        var (coordinator, listener) = Start(4, customers);
        Watch(coordinator);
        coordinator.Tell(new PartitionRecord("orders", 0, Order("n1", "a", 5m, T0)));
        coordinator.Tell(new PartitionRecord("orders", 1, Order("n2", "b", 6m, T0.AddHours(1))));
        coordinator.Tell(new PartitionRecord("orders", 2, Order("n1", "c", 7m, T0.AddHours(2))));
        var sent = Enumerable.Range(0, 3).Select(_ => customers.ExpectMsg<ApplyRecord>()).ToList();
        Assert.Equal([("n1", 1), ("n2", 1), ("n1", 2)], sent.Select(r => (r.CustomerId, r.Sequence)).ToList());

        // n1 answers its first record, then refuses its second (its entity restarted in between).
        var first = sent[0];
        customers.Reply(new CustomerChanged("n1", 4, first.Offset, ChangeOutcome.Applied, null, 0, 0, 0, EffectBundle.Empty, [], true, true) { Topic = "orders" });
        var third = sent[2];
        customers.Reply(new CustomerChanged("n1", 4, third.Offset, ChangeOutcome.Gap, "message 2 of run …, but this entity handled 0", 0, 0, 0, EffectBundle.Empty, [], true, false) { Topic = "orders" });
        var failed = listener.FishForMessage<PartitionFailed>(_ => true);
        Assert.Equal(4, failed.Partition);
        Assert.Contains("n1", failed.Reason, StringComparison.Ordinal);
        ExpectTerminated(coordinator);
    }

    /// <summary>
    /// Messages lost on the way to their customers (routed to a node that died before the cluster removed it): with
    /// <see cref="PartitionCoordinatorOptions.UnansweredTimeout"/> the coordinator fails the partition, which restarts
    /// from its last checkpoint, instead of waiting for the answers for ever.
    /// </summary>
    [Fact]
    public void Messages_no_customer_answers_fail_the_partition_after_two_checks_without_an_answer()
    {
        var lost = CreateTestProbe();
        var (coordinator, listener) = Start(6, lost, new PartitionCoordinatorOptions { UnansweredTimeout = TimeSpan.FromMilliseconds(200) });
        Watch(coordinator);
        coordinator.Tell(new PartitionRecord("orders", 0, Order("x1", "a", 5m, T0)));
        coordinator.Tell(new PartitionRecord("orders", 1, Order("x2", "b", 6m, T0.AddHours(1))));
        lost.ExpectMsg<ApplyRecord>();
        lost.ExpectMsg<ApplyRecord>();

        var failed = listener.FishForMessage<PartitionFailed>(_ => true, TimeSpan.FromSeconds(10));
        Assert.Equal(6, failed.Partition);
        Assert.Contains("2 records and 0 checkpoint saves sent to customers unanswered", failed.Reason, StringComparison.Ordinal);
        ExpectTerminated(coordinator);
    }

    /// <summary>
    /// The same for a checkpoint: the record was answered, but the customer's save never is (the save went to a node
    /// that died): the checkpoint cannot complete, and the partition fails instead of holding its firings for ever.
    /// </summary>
    [Fact]
    public void A_checkpoint_save_no_customer_answers_fails_the_partition_after_two_checks_without_an_answer()
    {
        var customers = CreateTestProbe();
        var (coordinator, listener) = Start(7, customers, new PartitionCoordinatorOptions { UnansweredTimeout = TimeSpan.FromMilliseconds(200) });
        Watch(coordinator);
        coordinator.Tell(new PartitionRecord("orders", 0, Order("s1", "a", 5m, T0)));
        var apply = customers.ExpectMsg<ApplyRecord>();
        customers.Reply(new CustomerChanged("a", 7, apply.Offset, ChangeOutcome.Applied, null, 0, 0, 0, EffectBundle.Empty, [], true, true) { Topic = "orders" });

        coordinator.Tell(CheckpointNow.Instance);
        var flush = listener.FishForMessage<FlushDeadLetters>(_ => true);
        listener.Reply(new DeadLettersFlushed(flush.Partition, flush.Seq));
        customers.FishForMessage<SaveCustomer>(_ => true, TimeSpan.FromSeconds(5));

        var failed = listener.FishForMessage<PartitionFailed>(_ => true, TimeSpan.FromSeconds(10));
        Assert.Equal(7, failed.Partition);
        Assert.Contains("0 records and 1 checkpoint saves sent to customers unanswered", failed.Reason, StringComparison.Ordinal);
        ExpectTerminated(coordinator);
    }

    /// <summary>
    /// A rule sweep's batch: the coordinator re-evaluates the customers not in memory under its rule set, numbered like
    /// any message to them, after the record in flight and within the in-flight bound (here 1), and answers with how
    /// many it sent once all are out.
    /// </summary>
    [Fact]
    public void A_sweep_re_evaluates_the_customers_not_in_memory_within_the_in_flight_bound_and_answers_when_all_are_sent()
    {
        var customers = CreateTestProbe();
        var (coordinator, _) = Start(5, customers, new PartitionCoordinatorOptions { MaxInFlight = 1 });
        coordinator.Tell(new PartitionRecord("orders", 0, Order("live", "l1", 5m, T0)));
        var record = customers.ExpectMsg<ApplyRecord>();
        coordinator.Tell(new SweepCustomers(["live", "s1", "s2"]));

        customers.Reply(new CustomerChanged("live", 5, record.Offset, ChangeOutcome.Applied, null, 0, 0, 0, EffectBundle.Empty, [], true, true) { Topic = "orders" });
        var first = customers.ExpectMsg<Reevaluate>();
        customers.Reply(new CustomerChanged(first.CustomerId, 5, -1, ChangeOutcome.Advanced, null, 0, 0, 0, EffectBundle.Empty, [], true, true));
        var second = customers.ExpectMsg<Reevaluate>();
        Assert.Equal([("s1", 1), ("s2", 1)], new[] { first, second }.Select(m => (m.CustomerId, m.Sequence)).ToList());
        Assert.All(new[] { first, second }, m => Assert.Equal(_book.Latest.Version, m.Clock.RuleVersion));
        // Nothing checkpointed yet: the partition's first checkpoint is the one that saves them.
        Assert.Equal((2, 1L), ExpectMsg<SweepSent>() is var sent ? (sent.Sent, sent.CoveredBy) : default);
        customers.Reply(new CustomerChanged(second.CustomerId, 5, -1, ChangeOutcome.Advanced, null, 0, 0, 0, EffectBundle.Empty, [], true, true));
        Assert.Equal(3, AwaitQuiet(coordinator).Cached);
    }

    [Fact]
    public void A_record_whose_change_fails_is_dead_lettered_and_moves_no_clock()
    {
        var (coordinator, listener) = Start(2);
        coordinator.Tell(new PartitionRecord("orders", 0, Order("big", "x", decimal.MaxValue, T0)));
        coordinator.Tell(new PartitionRecord("orders", 1, Order("big", "y", 1m, T0.AddDays(3))));
        var dead = listener.ExpectMsg<DeadLettered>();
        Assert.Equal((1L, "processing-error"), (dead.Offset, dead.Code));
        Checkpoint(coordinator, listener);
        Assert.Equal(T0.UtcTicks, Status(coordinator).MaxEventTicks);
    }

    [Fact]
    public void A_restarted_coordinator_resumes_from_its_last_checkpoint()
    {
        var customers = Sys.ActorOf(Props.Create(() => new LocalCustomers(_book)));
        var (coordinator, listener) = Start(3, customers);
        for (var i = 0; i < 6; i++)
        {
            coordinator.Tell(new PartitionRecord("orders", i, Order("c" + (i % 3), "o" + i, 10m, T0.AddHours(i))));
        }

        Checkpoint(coordinator, listener);

        // The node dies after one more record: changes after the checkpoint are not durable. The restarted coordinator
        // has the checkpoint's offsets and counts, its customers recover from their saves, and the record comes again.
        coordinator.Tell(new PartitionRecord("orders", 6, Order("c9", "o6", 10m, T0.AddHours(7))));
        foreach (var actor in new[] { coordinator, customers })
        {
            Watch(actor);
            Sys.Stop(actor);
            ExpectTerminated(actor);
        }

        var (again, listener2) = Start(3);
        var status = Status(again);
        Assert.Equal(1, status.CommittedSeq);
        Assert.Equal(T0.AddHours(5).UtcTicks, status.MaxEventTicks);
        // Two orders each: not "new" (exactly one order) but "active" (last order within 90 days).
        Assert.Equal(3, status.Counts.GetValueOrDefault(("lifecycle", "active")));
        Assert.Equal(0, status.Counts.GetValueOrDefault(("lifecycle", "new")));
        again.Tell(new PartitionRecord("orders", 6, Order("c9", "o6", 10m, T0.AddHours(7))));
        var done = Checkpoint(again, listener2);
        Assert.Equal(2, done.Seq);
        Assert.Equal(7, done.NextOffsets["orders"]);
        Assert.Equal(1, Status(again).Counts.GetValueOrDefault(("lifecycle", "new")));
        Assert.Equal(3, Status(again).Counts.GetValueOrDefault(("lifecycle", "active")));
    }

    [Fact]
    public void A_coordinator_restarting_under_live_customers_counts_their_changes_once_and_its_clock_follows_the_replay()
    {
        var customers = Sys.ActorOf(Props.Create(() => new LocalCustomers(_book)));
        var (coordinator, listener) = Start(4, customers);
        for (var i = 0; i < 6; i++)
        {
            coordinator.Tell(new PartitionRecord("orders", i, Order("c" + (i % 3), "o" + i, 10m, T0.AddHours(i))));
        }

        Checkpoint(coordinator, listener);
        var late = new[]
        {
            new PartitionRecord("orders", 6, Order("c0", "o6", 10m, T0.AddHours(7))),
            new PartitionRecord("orders", 7, Order("c9", "o7", 10m, T0.AddHours(8))),
        };
        foreach (var record in late)
        {
            coordinator.Tell(record);
        }

        Assert.Equal(0, AwaitQuiet(coordinator).Waiting);

        // Only the coordinator restarts; the customers, still alive, have applied records 6 and 7 and see them again as
        // duplicates. Their effects must still be counted once, and their times must move the clock.
        Watch(coordinator);
        Sys.Stop(coordinator);
        ExpectTerminated(coordinator);
        var (again, listener2) = Start(4, customers);
        foreach (var record in late)
        {
            again.Tell(record);
        }

        var done = Checkpoint(again, listener2);
        Assert.Equal(8, done.NextOffsets["orders"]);
        var status = Status(again);
        Assert.Equal(T0.AddHours(8).UtcTicks, status.MaxEventTicks);

        // c0 has three orders, c1 and c2 two (all "active"); c9 one ("new").
        Assert.Equal(3, status.Counts.GetValueOrDefault(("lifecycle", "active")));
        Assert.Equal(1, status.Counts.GetValueOrDefault(("lifecycle", "new")));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(50)]
    public void Customers_are_known_before_their_first_save_and_stay_known_after_a_restart(int snapshotEvery)
    {
        // snapshotEvery 1: the restart reads the set from a snapshot (events before it deleted); 50: from the events.
        var partition = 5 + snapshotEvery;
        var known = new KnownCustomerRegistry();
        var customers = Sys.ActorOf(Props.Create(() => new LocalCustomers(_book)));
        var (coordinator, listener) = Start(partition, customers, new PartitionCoordinatorOptions { Known = known, SnapshotEvery = snapshotEvery });
        coordinator.Tell(new PartitionRecord("orders", 0, Order("k1", "o0", 10m, T0)));
        coordinator.Tell(new PartitionRecord("orders", 1, Order("k2", "o1", 10m, T0.AddHours(1))));
        Assert.Equal(0, AwaitQuiet(coordinator).InFlight);
        Assert.True(known.IsNew(partition, "k1"), "nothing is saved before the checkpoint");

        Checkpoint(coordinator, listener);
        Assert.False(known.IsNew(partition, "k1"));
        Assert.False(known.IsNew(partition, "k2"));
        Assert.True(known.IsNew(partition, "never-seen"));
        Assert.False(known.IsNew(partition + 100, "never-seen"), "a partition without a set recovers everyone");

        coordinator.Tell(new PartitionRecord("orders", 2, Order("k3", "o2", 10m, T0.AddHours(2))));
        Checkpoint(coordinator, listener);
        foreach (var actor in new[] { coordinator, customers })
        {
            Watch(actor);
            Sys.Stop(actor);
            ExpectTerminated(actor);
        }

        Assert.False(known.IsNew(partition, "never-seen"), "a stopped coordinator's set leaves the registry (everyone recovers)");
        var again = new KnownCustomerRegistry();
        var (restarted, _) = Start(partition, options: new PartitionCoordinatorOptions { Known = again, SnapshotEvery = snapshotEvery });
        Assert.Equal(2, Status(restarted).CommittedSeq);
        Assert.All(new[] { "k1", "k2", "k3" }, c => Assert.False(again.IsNew(partition, c), c));
        Assert.True(again.IsNew(partition, "never-seen"));
    }

    private PartitionStatus AwaitQuiet(IActorRef coordinator)
    {
        PartitionStatus? status = null;
        AwaitCondition(() => (status = Status(coordinator)) is { InFlight: 0, Waiting: 0 }, TimeSpan.FromSeconds(20));
        return status!;
    }

    /// <summary>Routes customer commands to one child entity per customer, as a shard region does on one node.</summary>
    private sealed class LocalCustomers : ReceiveActor
    {
        public LocalCustomers(RuleBook book)
        {
            Receive<ICustomerCommand>(m =>
            {
                var name = Uri.EscapeDataString(m.CustomerId);
                var child = Context.Child(name);
                if (child.IsNobody())
                {
                    child = Context.ActorOf(CustomerEntity.Props(m.CustomerId, new CustomerEntityOptions(), book), name);
                }

                child.Forward(m);
            });
        }
    }
}
