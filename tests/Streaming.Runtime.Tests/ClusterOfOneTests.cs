using Akka.Actor;
using Akka.Cluster;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Partitions;
using Streaming.Runtime.Rules;
using Streaming.Runtime.Sharding;
using Xunit.Abstractions;

namespace Streaming.Runtime.Tests;

/// <summary>
/// A real Akka.Cluster of one node with the customers' shard region (external allocation: shard = partition) and a
/// partition coordinator sending through it, on the in-memory journal.
/// </summary>
public sealed class ClusterOfOneTests(ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit(Config, nameof(ClusterOfOneTests), output)
{
    private const string Config = CustomerEntityTests.RuntimeConfig + """
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.cluster.min-nr-of-members = 1
        akka.loglevel = WARNING
        """;

    private static readonly DateTimeOffset T0 = new(2024, 3, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void The_region_leaves_passivation_to_the_coordinators()
    {
        // Akka's default (its sharding configuration is loaded with the extension) stops an entity idle for 120 s,
        // behind its coordinator's back.
        Akka.Cluster.Sharding.ClusterSharding.Get(Sys);
        Assert.Equal(TimeSpan.FromSeconds(120), Akka.Cluster.Sharding.ClusterShardingSettings.Create(Sys).PassivateIdleEntityAfter);
        Assert.Equal(TimeSpan.Zero, CustomerShards.Settings(Sys).PassivateIdleEntityAfter);
    }

    [Fact]
    public async Task Customers_of_an_assigned_partition_are_served_by_this_nodes_shard_and_a_checkpoint_goes_through()
    {
        var cluster = Cluster.Get(Sys);
        cluster.Join(cluster.SelfAddress);
        AwaitCondition(() => cluster.State.Members.Any(m => m.Status == MemberStatus.Up), TimeSpan.FromSeconds(20));

        var book = new RuleBook(RuleSetLoader.Default);
        var region = await CustomerShards.StartAsync(Sys, new CustomerEntityOptions(), book);
        await CustomerShards.AssignAsync(Sys, [0, 1, 2, 3]);

        var listener = CreateTestProbe();
        var coordinator = Sys.ActorOf(PartitionCoordinator.Props(2, region, listener, book, new PartitionCoordinatorOptions()));
        var amounts = new[] { 12.5m, 7.25m, 100m };
        for (var i = 0; i < amounts.Length; i++)
        {
            coordinator.Tell(new PartitionRecord("orders", i, new OrderEvent
            {
                EventId = "e" + i,
                CustomerId = "k" + (i % 2),
                OccurredAt = T0.AddHours(i),
                Type = EventType.OrderPlaced,
                OrderId = "o" + i,
                Amount = amounts[i],
                ItemCount = 1,
            }));
        }

        coordinator.Tell(CheckpointNow.Instance);
        var flush = listener.FishForMessage<FlushDeadLetters>(_ => true, TimeSpan.FromSeconds(20));
        listener.Reply(new DeadLettersFlushed(flush.Partition, flush.Seq));
        var done = listener.FishForMessage<CheckpointCompleted>(_ => true, TimeSpan.FromSeconds(20));
        Assert.Equal(3, done.NextOffsets["orders"]);
        Assert.Equal(["k0", "k1"], done.ChangedCustomers.Order(StringComparer.Ordinal));

        // Reads go through the region to the same entities: k0 has orders 0 and 2, k1 order 1.
        region.Tell(new GetCustomer("k0", 2));
        Assert.Equal(amounts[0] + amounts[2], ExpectMsg<CustomerFound>(TimeSpan.FromSeconds(10)).State!.NetAmount);
        region.Tell(new GetCustomer("k1", 2));
        Assert.Equal(amounts[1], ExpectMsg<CustomerFound>(TimeSpan.FromSeconds(10)).State!.NetAmount);

        // The entity lives under this node's shard "2".
        var shards = await region.Ask<Akka.Cluster.Sharding.CurrentShardRegionState>(Akka.Cluster.Sharding.GetShardRegionState.Instance, TimeSpan.FromSeconds(10));
        var shard = Assert.Single(shards.Shards);
        Assert.Equal("2", shard.ShardId);
        Assert.Equal(["k0", "k1"], shard.EntityIds.Order(StringComparer.Ordinal));

        // The home check: shard 2 is hosted here, and its probe leaves no customer behind. (Its false answer needs a
        // second node: the cluster tests' partitions wait for it after every move.)
        Assert.True(await CustomerShards.IsHomeAsync(Sys, 2, TimeSpan.FromSeconds(10)));
        await AwaitAssertAsync(async () =>
        {
            var after = await region.Ask<Akka.Cluster.Sharding.CurrentShardRegionState>(Akka.Cluster.Sharding.GetShardRegionState.Instance, TimeSpan.FromSeconds(10));
            Assert.Equal(["k0", "k1"], after.Shards.Single(s => s.ShardId == "2").EntityIds.Order(StringComparer.Ordinal));
        }, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Beyond_its_share_of_cached_customers_the_coordinator_passivates_the_least_recently_used_and_they_reload_exactly()
    {
        var cluster = Cluster.Get(Sys);
        cluster.Join(cluster.SelfAddress);
        AwaitCondition(() => cluster.State.Members.Any(m => m.Status == MemberStatus.Up), TimeSpan.FromSeconds(20));
        var book = new RuleBook(RuleSetLoader.Default);
        var region = await CustomerShards.StartAsync(Sys, new CustomerEntityOptions(), book);
        await CustomerShards.AssignAsync(Sys, [1]);

        const int bound = 4;
        var listener = CreateTestProbe();
        var coordinator = Sys.ActorOf(PartitionCoordinator.Props(1, region, listener, book, new PartitionCoordinatorOptions { MaxCachedCustomers = bound }));

        // Three rounds over ten customers, a checkpoint after each: far more customers than the bound.
        var expected = new Dictionary<string, (int Orders, decimal Net)>();
        var offset = 0;
        for (var round = 0; round < 3; round++)
        {
            for (var c = 0; c < 10; c++)
            {
                var customer = "m" + c;
                var amount = 1.01m * (c + 1) + round;
                coordinator.Tell(new PartitionRecord("orders", offset, new OrderEvent
                {
                    EventId = "e" + offset,
                    CustomerId = customer,
                    OccurredAt = T0.AddHours(offset),
                    Type = EventType.OrderPlaced,
                    OrderId = "o" + offset,
                    Amount = amount,
                    ItemCount = 1,
                }));
                offset++;
                var (orders, net) = expected.GetValueOrDefault(customer);
                expected[customer] = (orders + 1, net + amount);
            }

            coordinator.Tell(CheckpointNow.Instance);
            var flush = listener.FishForMessage<FlushDeadLetters>(_ => true, TimeSpan.FromSeconds(20));
            listener.Reply(new DeadLettersFlushed(flush.Partition, flush.Seq));
            listener.FishForMessage<CheckpointCompleted>(_ => true, TimeSpan.FromSeconds(20));
        }

        // After the last checkpoint at most nine tenths of the bound stay: the three customers sent to last.
        var status = await coordinator.Ask<PartitionStatus>(GetPartitionStatus.Instance, TimeSpan.FromSeconds(10));
        Assert.Equal(3, status.Cached);
        Assert.Equal(3 * (10 - 3), status.Passivations);
        string[] lastThree = ["m7", "m8", "m9"];
        await AwaitConditionAsync(async () =>
        {
            var shards = await region.Ask<Akka.Cluster.Sharding.CurrentShardRegionState>(Akka.Cluster.Sharding.GetShardRegionState.Instance, TimeSpan.FromSeconds(10));
            return shards.Shards.Single().EntityIds.Order(StringComparer.Ordinal).SequenceEqual(lastThree);
        }, TimeSpan.FromSeconds(20));

        // Every customer, passivated or not, reloads with exactly its orders; all ten count as active.
        foreach (var (customer, (orders, net)) in expected)
        {
            region.Tell(new GetCustomer(customer, 1));
            var state = ExpectMsg<CustomerFound>(TimeSpan.FromSeconds(10)).State!;
            Assert.Equal(orders, state.OrderCount);
            Assert.Equal(net, state.NetAmount);
        }

        Assert.Equal(10, status.Counts.GetValueOrDefault(("lifecycle", "active")));
    }
}
