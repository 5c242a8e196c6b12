using Akka.Actor;
using Akka.Cluster.Tools.Singleton;

namespace Streaming.Connectors.Kafka;

/// <summary>
/// The trigger relay's place in a cluster: an Akka.NET cluster singleton (<c>/user/trigger-relay</c>) that lives on
/// the oldest member. The outbox is one table shared by all nodes, so only the node holding the singleton publishes it;
/// the others' relays wait. When that node leaves, the singleton is handed over (stopped there first, then started on
/// the next oldest); when it dies, it starts elsewhere once the split-brain resolver has downed the dead node.
/// Publishing stays at least once with stable CloudEvent ids: a relay killed between publishing and deleting rows
/// leaves them to the next holder.
/// </summary>
public static class RelaySingleton
{
    /// <summary>The singleton manager's actor name.</summary>
    public const string Name = "trigger-relay";

    /// <summary>
    /// Starts the singleton manager on this node: <paramref name="lead"/> is called with true on the node where the
    /// singleton starts, and with false when it stops there.
    /// </summary>
    public static IActorRef Start(ActorSystem system, Action<bool> lead)
    {
        ArgumentNullException.ThrowIfNull(system);
        ArgumentNullException.ThrowIfNull(lead);
        return system.ActorOf(
            ClusterSingletonManager.Props(
                Props.Create(() => new Holder(lead)),
                PoisonPill.Instance,
                ClusterSingletonManagerSettings.Create(system)),
            Name);
    }

    /// <summary>The singleton itself: it holds no state, it only tells the relay that this node publishes.</summary>
    private sealed class Holder(Action<bool> lead) : UntypedActor
    {
        protected override void PreStart() => lead(true);

        protected override void PostStop() => lead(false);

        protected override void OnReceive(object message) => Unhandled(message);
    }
}
