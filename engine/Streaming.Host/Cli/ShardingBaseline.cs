using System.Globalization;
using System.Text;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Persistence;
using Streaming.Engine.Events;
using Streaming.Runtime.Local;

namespace Streaming.Host.Cli;

/// <summary>
/// The baseline of <c>bench --core</c>: the runtime's actor path with no product logic, timed on the same records in the
/// same process. A relay actor per partition (where the runtime has its coordinator) sends each record through a shard
/// region (shard = partition, entity = customer) to a persistent entity per customer that starts without recovery, as
/// the runtime's entity of a new customer does, and answers the relay, as the runtime's entity answers its coordinator.
/// Records are decoded as in the core pass; nothing is evaluated or saved. The core pass cannot run faster than this on
/// the same machine: the ratio of the two is the share of the time the customer core and the coordinators add to Akka's
/// own cost.
/// </summary>
internal static class ShardingBaseline
{
    /// <summary>
    /// Decodes <paramref name="records"/> on the calling thread, as the core pass does, and sends each through a fresh
    /// actor system to its customer's entity; waits until every entity has answered.
    /// </summary>
    /// <returns>The seconds from the first send to the last answer, the bytes allocated meanwhile (every thread), and the entities started.</returns>
    /// <exception cref="TimeoutException">The answers did not all arrive within <paramref name="patience"/>.</exception>
    public static async Task<(double Seconds, long AllocatedBytes, long Entities)> RunAsync(CoreBench.Record[] records, int partitions, TimeSpan patience)
    {
        var system = await LocalEngine.StartSystemAsync("bench-baseline", patience).ConfigureAwait(false);
        try
        {
            var sharding = ClusterSharding.Get(system);
            var entities = new Counter();
            var settings = ClusterShardingSettings.Create(system).WithPassivateIdleAfter(TimeSpan.Zero);
            var region = await sharding.StartAsync("baseline", id => Props.CreateBy(new EntityProducer(id, entities)), settings, new Extractor()).ConfigureAwait(false);
            var answered = new Counter();
            var relays = new IActorRef[partitions];
            for (var p = 0; p < partitions; p++)
            {
                relays[p] = system.ActorOf(Props.CreateBy(new RelayProducer(region, answered)), "relay-" + p.ToString(CultureInfo.InvariantCulture));
            }

            // Every shard started (and each relay's first answer seen) before the timing, as the core pass's engine starts.
            for (var p = 0; p < partitions; p++)
            {
                relays[p].Tell(new Touch("~baseline-warmup", p, null));
            }

            await WaitAsync(answered, partitions, patience).ConfigureAwait(false);
            Interlocked.Exchange(ref answered.Value, 0);
            Interlocked.Exchange(ref entities.Value, 0);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            var allocated = GC.GetTotalAllocatedBytes(precise: false);
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var decoder = new EventDecoder();
            foreach (var r in records)
            {
                // Decoded as the core pass decodes; the entity is named by the event's customer (the key if it is bad).
                var customerId = decoder.TryDecode(r.Topic, r.Key, r.Value, out var evt, out _) ? evt!.CustomerId : Encoding.UTF8.GetString(r.Key);
                relays[r.Partition].Tell(new Touch(customerId, r.Partition, evt));
            }

            await WaitAsync(answered, records.Length, patience).ConfigureAwait(false);
            return (System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds, GC.GetTotalAllocatedBytes(precise: false) - allocated, Interlocked.Read(ref entities.Value));
        }
        finally
        {
            await system.Terminate().ConfigureAwait(false);
        }
    }

    private static async Task WaitAsync(Counter answered, long expected, TimeSpan patience)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (Interlocked.Read(ref answered.Value) < expected)
        {
            if (waited.Elapsed > patience)
            {
                throw new TimeoutException($"the sharding baseline had {Interlocked.Read(ref answered.Value)} of {expected} answers after {patience}");
            }

            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    private sealed class Counter
    {
        public long Value;
    }

    /// <summary>A decoded record (null: it did not decode) with its routing: the customer (entity) and its partition (shard).</summary>
    private sealed record Touch(string CustomerId, int Partition, CustomerEvent? Event);

    /// <summary>The entity's answer to its relay.</summary>
    private sealed class Touched
    {
        public static readonly Touched Instance = new();
    }

    private sealed class Extractor : IMessageExtractor
    {
        public string? EntityId(object message) => (message as Touch)?.CustomerId;

        public object? EntityMessage(object message) => message;

        public string? ShardId(object message) => (message as Touch)?.Partition.ToString(CultureInfo.InvariantCulture);

        public string ShardId(string entityId, object? messageHint = null) =>
            messageHint is Touch touch ? ShardId(touch)! : throw new InvalidOperationException($"the shard of '{entityId}' is its partition, which only a record carries");
    }

    private sealed class RelayProducer(IActorRef region, Counter answered) : IIndirectActorProducer
    {
        public Type ActorType => typeof(Relay);

        public ActorBase Produce() => new Relay(region, answered);

        public void Release(ActorBase actor)
        {
        }
    }

    private sealed class Relay(IActorRef region, Counter answered) : UntypedActor
    {
        protected override void OnReceive(object message)
        {
            if (message is Touched)
            {
                Interlocked.Increment(ref answered.Value);
            }
            else
            {
                region.Tell(message);
            }
        }
    }

    private sealed class EntityProducer(string customerId, Counter started) : IIndirectActorProducer
    {
        public Type ActorType => typeof(Entity);

        public ActorBase Produce()
        {
            Interlocked.Increment(ref started.Value);
            return new Entity(customerId);
        }

        public void Release(ActorBase actor)
        {
        }
    }

    /// <summary>A persistent entity that starts without recovery and answers each message.</summary>
    private sealed class Entity(string customerId) : PersistentActor
    {
        private readonly string _persistenceId = "baseline-" + customerId;

        public override string PersistenceId => _persistenceId;

        public override Recovery Recovery => Recovery.None;

        protected override bool ReceiveRecover(object message) => true;

        protected override bool ReceiveCommand(object message)
        {
            Sender.Tell(Touched.Instance);
            return true;
        }
    }
}
