using Akka.Actor;

namespace Streaming.Runtime.Partitions;

/// <summary>
/// Asks a node's <see cref="PartitionClocks"/> for the confirmed watermark of <paramref name="Partition"/>: a node
/// answering a profile read for a customer whose partition another node owns needs the owner's clock. Answered with
/// <see cref="PartitionWatermark"/>.
/// </summary>
public sealed record GetPartitionWatermark(int Partition);

/// <summary>
/// Whether the answering node runs <paramref name="Partition"/>'s coordinator (<paramref name="Owned"/>) and, if so,
/// its confirmed watermark (UTC ticks; 0 before any event).
/// </summary>
public sealed record PartitionWatermark(int Partition, bool Owned, long WatermarkTicks);

/// <summary>
/// The node's directory of its partitions' clocks, at <see cref="Path"/> on every node: answers
/// <see cref="GetPartitionWatermark"/> from the coordinators' latest polled statuses (about twice a second).
/// </summary>
public static class PartitionClocks
{
    /// <summary>The actor's name under <c>/user</c>.</summary>
    public const string Name = "partition-clocks";

    /// <summary>Where the directory of the node at <paramref name="node"/> lives.</summary>
    public static ActorPath Path(Address node) => new RootActorPath(node) / "user" / Name;

    /// <summary>Props of the directory; <paramref name="watermarks"/> gives the node's owned partitions and their watermarks, read at each question.</summary>
    public static Props Props(Func<IReadOnlyDictionary<int, long>> watermarks) => Akka.Actor.Props.Create(() => new PartitionClocksActor(watermarks));

    private sealed class PartitionClocksActor : ReceiveActor
    {
        public PartitionClocksActor(Func<IReadOnlyDictionary<int, long>> watermarks) =>
            Receive<GetPartitionWatermark>(q => Sender.Tell(watermarks().TryGetValue(q.Partition, out var ticks)
                ? new PartitionWatermark(q.Partition, true, ticks)
                : new PartitionWatermark(q.Partition, false, 0)));
    }
}
