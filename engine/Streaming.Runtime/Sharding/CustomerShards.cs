using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Cluster.Sharding.External;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Rules;

namespace Streaming.Runtime.Sharding;

/// <summary>
/// The customers' shard region. Shards are Kafka partitions, allocated by <see cref="ExternalShardAllocationStrategy"/>
/// to the node whose consumer owns the partition (the pattern Alpakka Kafka calls Kafka cluster sharding): the
/// consumer's assignment callbacks call <see cref="AssignAsync"/>, so records never cross the network. Akka.Hosting's
/// <c>WithShardRegion</c> takes no allocation strategy, hence this starter.
/// </summary>
public static class CustomerShards
{
    /// <summary>The sharding type name (also the external allocation's key).</summary>
    public const string TypeName = "customer";

    /// <summary>Starts the region on this node; messages to it are <see cref="ICustomerCommand"/>s.</summary>
    public static Task<IActorRef> StartAsync(ActorSystem system, CustomerEntityOptions options, RuleBook rules) =>
        ClusterSharding.Get(system).StartAsync(
            TypeName,
            customerId => CustomerEntity.Props(customerId, options, rules),
            Settings(system),
            new PartitionMessageExtractor(),
            new ExternalShardAllocationStrategy(system, TypeName),
            CustomerEntity.StopEntity.Instance);

    /// <summary>
    /// The region's settings: the system's <c>akka.cluster.sharding</c> section, without Akka's idle passivation (by
    /// default an entity idle for 120 s stops). Each partition's coordinator passivates its least recently used customers
    /// instead (<c>MaxCachedCustomers</c>): it knows which ones stop, adds them to its known customers before their last
    /// save, and numbers its next message to them from 1.
    /// </summary>
    public static ClusterShardingSettings Settings(ActorSystem system) =>
        ClusterShardingSettings.Create(system).WithPassivateIdleAfter(TimeSpan.Zero);

    /// <summary>
    /// The customer id of the read-only message <see cref="IsHomeAsync"/> sends through the region. An unknown customer
    /// (no real one is expected to bear it; a real one would only be asked its next wake-up): its entity stops again.
    /// </summary>
    public const string HomeProbeId = "~shard-home-probe";

    /// <summary>
    /// Whether <paramref name="partition"/>'s shard is hosted by this node's region: a read-only message
    /// (<see cref="GetWakeUp"/> for <see cref="HomeProbeId"/>) goes through the region, which starts the shard where the
    /// sharding coordinator says it lives, then the region lists the shards it hosts. False while the coordinator still
    /// places the shard on the node that had it (it moves shards every <c>rebalance-interval</c>, and not while a member
    /// is unreachable) or when either answer takes longer than <paramref name="timeout"/>.
    /// </summary>
    public static async Task<bool> IsHomeAsync(ActorSystem system, int partition, TimeSpan timeout)
    {
        var region = ClusterSharding.Get(system).ShardRegion(TypeName);
        try
        {
            await region.Ask<CustomerWakeUp>(new GetWakeUp(HomeProbeId, partition), timeout).ConfigureAwait(false);
            var state = await region.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, timeout).ConfigureAwait(false);
            var shard = PartitionMessageExtractor.ShardOf(partition);
            return state.Shards.Any(s => s.ShardId == shard);
        }
        catch (AskTimeoutException)
        {
            return false;
        }
    }

    /// <summary>
    /// The consumer on this node was assigned <paramref name="partitions"/>: their shards are to live here. Completes
    /// when the locations are replicated (distributed data, majority).
    /// </summary>
    public static Task AssignAsync(ActorSystem system, IEnumerable<int> partitions)
    {
        var self = Cluster.Get(system).SelfAddress;
        var locations = partitions.ToImmutableDictionary(PartitionMessageExtractor.ShardOf, _ => self);
        return ExternalShardAllocation.Get(system).ClientFor(TypeName).UpdateShardLocations(locations);
    }
}
