namespace Streaming.Connectors.Kafka;

/// <summary>A query reached an engine that has stopped (stopping, or failed).</summary>
public sealed class EngineStoppedException() : InvalidOperationException("the engine is not running");

/// <summary>
/// The engine's node was removed from its Akka cluster without being asked to stop: downed by the split-brain resolver
/// (keep-majority: it was cut off in a minority, or the majority found it unreachable for the resolver's
/// <c>stable-after</c>) or by an operator. A removed member cannot rejoin with the same actor system; the process exits
/// with code 1 and is meant to be started again (its supervisor: Kubernetes, systemd, docker-compose), joining anew.
/// </summary>
/// <param name="address">The node's Akka address, e.g. <c>akka.tcp://streaming@10.0.0.5:4053</c>.</param>
public sealed class EngineRemovedFromClusterException(string address)
    : InvalidOperationException($"this node ({address}) was removed from the cluster (downed) and stopped; start it again to rejoin");

/// <summary>Population counts summed over the owned partitions.</summary>
public sealed record PopulationView(
    IReadOnlyDictionary<(string Dimension, string Value), long> Counts,
    IReadOnlyDictionary<(string Dimension, string From, string To), long> Transitions,
    string RuleVersion,
    long TimersFired,
    long LateTimersFired);

/// <summary>A point-in-time view of the engine for /v1/status.</summary>
/// <param name="FiringsPending">Trigger firings evaluated but not yet written with a checkpoint (not yet in the outbox).</param>
/// <param name="ConsumerLag">Records behind the log end, summed over the assigned input partitions; null while none is assigned (not "caught up").</param>
public sealed record EngineStatus(IReadOnlyList<PartitionStatus> Partitions, long? ConsumerLag, long CachedCustomers, long CheckpointSeq, long FiringsPending = 0)
{
    public static readonly EngineStatus Empty = new([], null, 0, 0);
}

/// <summary>One assigned input partition: next offset to process, lag behind the log end, event-time watermark.</summary>
public sealed record PartitionStatus(string Topic, int Partition, long Offset, long Lag, DateTimeOffset? Watermark);

/// <summary>
/// The Akka.NET cluster as this node sees it (<c>GET /v1/cluster</c>, CONTRACTS §8): its own address and every member
/// with the input partitions whose shards it hosts.
/// </summary>
/// <param name="Self">This node's cluster address as <c>host:port</c>; empty while the engine is starting.</param>
/// <param name="Members">Members in address order (this node included once it has joined).</param>
public sealed record ClusterMembership(string Self, IReadOnlyList<ClusterMemberView> Members)
{
    /// <summary>No cluster yet (the engine is still starting).</summary>
    public static readonly ClusterMembership Empty = new("", []);
}

/// <summary>One member of the cluster.</summary>
/// <param name="Address">The member's address as <c>host:port</c> (what <c>--seed-node</c> takes).</param>
/// <param name="Status">Akka's member status in lower case: <c>joining</c>, <c>weaklyup</c>, <c>up</c>, <c>leaving</c>, <c>exiting</c>, <c>down</c>, <c>removed</c>.</param>
/// <param name="Reachable">False while the failure detector of some member cannot reach it (the split-brain resolver decides after 20 s of stable membership).</param>
/// <param name="Partitions">The input partitions whose shards it hosts, ascending: this node's from its own coordinators, others' from the external shard allocation (refreshed about twice a second).</param>
public sealed record ClusterMemberView(string Address, string Status, bool Reachable, IReadOnlyList<int> Partitions);
