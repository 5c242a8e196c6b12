using System.Collections.Concurrent;
using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Partitions;
using Streaming.Runtime.Rules;
using Streaming.Runtime.Serialization;
using Streaming.Runtime.Sharding;
using PartitionStatus = Streaming.Runtime.Partitions.PartitionStatus;

namespace Streaming.Host.Cli;

/// <summary>
/// <c>bench --core --runtime akka</c>: the actor runtime without a broker or a database. The same events as
/// <see cref="CoreBench"/> (the demo population, pre-encoded, with the partitions and offsets a producer would give
/// them) are decoded and sent to each partition's coordinator in a local actor system (a cluster of one, the customers'
/// shard region), with Akka.Persistence's in-memory journal. Two passes, each on a fresh actor system after a warm-up
/// run: every record applied without checkpoints, then with a checkpoint of each partition every
/// <c>checkpointEvery</c> of its records, timed until the last checkpoint is complete.
/// </summary>
internal static class AkkaCoreBench
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(10);

    public static async Task<AkkaCoreBenchResult> RunAsync(int n, int partitions, int checkpointEvery, string dataDir, Action<string> progress)
    {
        progress($"preparing {n:N0} events from the demo population, encoded as UTF-8 JSON in memory");
        var (records, warmup) = CoreBench.Prepare(n, partitions, dataDir);
        progress($"warm-up: {warmup.Length:N0} events of other customers through both passes");
        await PassAsync(warmup, partitions, checkpointEvery: 0).ConfigureAwait(false);
        await PassAsync(warmup, partitions, checkpointEvery).ConfigureAwait(false);

        progress("core pass: decode, coordinators, customer entities (no checkpoints)");
        var core = await PassAsync(records, partitions, checkpointEvery: 0).ConfigureAwait(false);
        progress($"checkpoint pass: the same with a checkpoint of each partition every {checkpointEvery:N0} of its records (in-memory journal)");
        var withCheckpoints = await PassAsync(records, partitions, checkpointEvery).ConfigureAwait(false);
        return new AkkaCoreBenchResult
        {
            Events = n,
            Partitions = partitions,
            CoreEventsPerSec = Math.Round(n / core.Seconds),
            CoreWithCheckpointsEventsPerSec = Math.Round(n / withCheckpoints.Seconds),
            AllocatedBytesPerEvent = Math.Round((double)core.AllocatedBytes / n),
            WithCheckpointsAllocatedBytesPerEvent = Math.Round((double)withCheckpoints.AllocatedBytes / n),
            Checkpoints = withCheckpoints.Checkpoints,
            CheckpointEveryEvents = checkpointEvery,
            CachedCustomers = withCheckpoints.Cached,
            PeakWorkingSetMB = Math.Round(Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0, 1),
        };
    }

    private static async Task<Pass> PassAsync(CoreBench.Record[] records, int partitions, int checkpointEvery)
    {
        var config = ConfigurationFactory.ParseString("""
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp.hostname = 127.0.0.1
            akka.remote.dot-netty.tcp.port = 0
            akka.loglevel = WARNING
            akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
            akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
            """).WithFallback(ConfigurationFactory.ParseString(RuntimeSerialization.Hocon));
        var system = ActorSystem.Create("bench-core", config);
        try
        {
            var cluster = Cluster.Get(system);
            await cluster.JoinAsync(cluster.SelfAddress).WaitAsync(Patience).ConfigureAwait(false);
            var book = new RuleBook(RuleSetLoader.Default);
            var region = await CustomerShards.StartAsync(system, new CustomerEntityOptions(), book).ConfigureAwait(false);
            await CustomerShards.AssignAsync(system, Enumerable.Range(0, partitions)).WaitAsync(Patience).ConfigureAwait(false);
            var listener = new Listener();
            var listenerRef = system.ActorOf(Props.Create(() => new ListenerActor(listener)), "bench-listener");
            var coordinators = Enumerable.Range(0, partitions)
                .Select(p => system.ActorOf(PartitionCoordinator.Props(p, region, listenerRef, book, new PartitionCoordinatorOptions { MaxCachedCustomers = int.MaxValue }), "partition-" + p))
                .ToArray();
            foreach (var coordinator in coordinators)
            {
                await coordinator.Ask<PartitionStatus>(GetPartitionStatus.Instance, Patience).ConfigureAwait(false);
            }

            // The last offset sent per partition and topic: the pass ends when each is processed (or checkpointed).
            var last = new Dictionary<(int Partition, string Topic), long>();
            var since = new int[partitions];
            var decoder = new EventDecoder();
            var allocated = GC.GetTotalAllocatedBytes(precise: false);
            var started = Stopwatch.GetTimestamp();
            foreach (var r in records)
            {
                var topic = Topics.Inputs[(int)r.Topic];
                var record = decoder.TryDecode(r.Topic, r.Key, r.Value, out var evt, out var error)
                    ? new PartitionRecord(topic, r.Offset, evt)
                    : new PartitionRecord(topic, r.Offset, null, error);
                coordinators[r.Partition].Tell(record with { Key = r.Key, Value = r.Value });
                last[(r.Partition, topic)] = r.Offset;
                if (checkpointEvery > 0 && ++since[r.Partition] == checkpointEvery)
                {
                    coordinators[r.Partition].Tell(CheckpointNow.Instance);
                    since[r.Partition] = 0;
                }
            }

            var deadline = Stopwatch.StartNew();
            while (true)
            {
                var behind = checkpointEvery > 0
                    ? last.Where(l => listener.Covered(l.Key.Partition, l.Key.Topic) <= l.Value).Select(l => l.Key.Partition).Distinct().ToList()
                    : await BehindAsync(coordinators, last).ConfigureAwait(false);
                if (behind.Count == 0)
                {
                    break;
                }

                if (deadline.Elapsed > Patience)
                {
                    throw new TimeoutException($"partitions [{string.Join(",", behind)}] did not finish within {Patience}");
                }

                foreach (var p in checkpointEvery > 0 ? behind : [])
                {
                    coordinators[p].Tell(CheckpointNow.Instance);
                }

                await Task.Delay(checkpointEvery > 0 ? 20 : 5).ConfigureAwait(false);
            }

            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var allocatedBytes = GC.GetTotalAllocatedBytes(precise: false) - allocated;
            long cached = 0;
            foreach (var coordinator in coordinators)
            {
                cached += (await coordinator.Ask<PartitionStatus>(GetPartitionStatus.Instance, Patience).ConfigureAwait(false)).Cached;
            }

            return new Pass(seconds, allocatedBytes, listener.Checkpoints, cached);
        }
        finally
        {
            await system.Terminate().ConfigureAwait(false);
        }
    }

    /// <summary>The partitions whose coordinator has not yet processed the last record sent to it.</summary>
    private static async Task<List<int>> BehindAsync(IActorRef[] coordinators, Dictionary<(int Partition, string Topic), long> last)
    {
        var behind = new List<int>();
        foreach (var group in last.GroupBy(l => l.Key.Partition))
        {
            var status = await coordinators[group.Key].Ask<PartitionStatus>(GetPartitionStatus.Instance, Patience).ConfigureAwait(false);
            if (group.Any(l => status.ProcessedOffsets.GetValueOrDefault(l.Key.Topic) <= l.Value))
            {
                behind.Add(group.Key);
            }
        }

        return behind;
    }

    private readonly record struct Pass(double Seconds, long AllocatedBytes, long Checkpoints, long Cached);

    /// <summary>What the listener saw: per partition and topic, the next offset the last completed checkpoint covers.</summary>
    private sealed class Listener
    {
        private readonly ConcurrentDictionary<(int, string), long> _covered = new();
        private long _checkpoints;

        public long Checkpoints => Interlocked.Read(ref _checkpoints);

        public long Covered(int partition, string topic) => _covered.GetValueOrDefault((partition, topic), 0);

        public void Completed(CheckpointCompleted done)
        {
            Interlocked.Increment(ref _checkpoints);
            foreach (var (topic, next) in done.NextOffsets)
            {
                _covered[(done.Partition, topic)] = next;
            }
        }
    }

    /// <summary>The coordinators' listener without a broker: dead letters are taken as delivered, firings as stored.</summary>
    private sealed class ListenerActor(Listener listener) : UntypedActor
    {
        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case FlushDeadLetters flush:
                    Sender.Tell(new DeadLettersFlushed(flush.Partition, flush.Seq));
                    break;
                case CheckpointCompleted done:
                    listener.Completed(done);
                    Sender.Tell(new FiringsStored(done.Partition, done.Seq));
                    break;
                case CheckpointFailed failed:
                    throw new InvalidOperationException($"partition {failed.Partition}: checkpoint {failed.Seq} failed: {failed.Reason}");
                case DeadLettered:
                    break;
                default:
                    Unhandled(message);
                    break;
            }
        }
    }
}

/// <summary>The JSON of <c>bench --core --runtime akka</c>.</summary>
internal sealed record AkkaCoreBenchResult
{
    public string Runtime { get; init; } = "akka";
    public long Events { get; init; }
    public int Partitions { get; init; }

    /// <summary>Events per second from the first record sent to the last one applied, without checkpoints.</summary>
    public double CoreEventsPerSec { get; init; }

    /// <summary>Events per second until the last checkpoint (every changed customer saved, the partition's checkpoint persisted, in memory) is complete.</summary>
    public double CoreWithCheckpointsEventsPerSec { get; init; }

    /// <summary>Bytes allocated per event in the core pass, every thread included.</summary>
    public double AllocatedBytesPerEvent { get; init; }

    public double WithCheckpointsAllocatedBytesPerEvent { get; init; }
    public long Checkpoints { get; init; }
    public int CheckpointEveryEvents { get; init; }
    public long CachedCustomers { get; init; }
    public double PeakWorkingSetMB { get; init; }
}
