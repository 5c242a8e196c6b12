using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Streaming.Engine.Rules;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Partitions;
using Streaming.Runtime.Rules;
using Streaming.Runtime.Sharding;
using Streaming.Runtime.Telemetry;

namespace Streaming.Runtime.Local;

/// <summary>
/// The runtime in one process with no broker and no database: a local actor system that is a cluster of one, the
/// customers' shard region, one <see cref="PartitionCoordinator"/> per partition, and Akka.Persistence's in-memory
/// journal and snapshot store. Used where records come from memory or a file instead of Kafka (<c>backtest</c>,
/// <c>bench --core</c>). Dead letters are taken as delivered and firings as stored the moment a checkpoint completes;
/// each completed checkpoint is handed to the callback given at start (on an actor thread: it must be thread-safe).
/// </summary>
public sealed class LocalEngine : IAsyncDisposable
{
    private readonly ActorSystem _system;
    private readonly IActorRef[] _coordinators;
    private readonly ConcurrentDictionary<(int Partition, string Topic), long> _covered = new();
    private long _checkpoints;
    private volatile string? _failure;

    private LocalEngine(ActorSystem system, IActorRef[] coordinators)
    {
        _system = system;
        _coordinators = coordinators;
    }

    /// <summary>Checkpoints completed so far, all partitions together.</summary>
    public long Checkpoints => Interlocked.Read(ref _checkpoints);

    /// <summary>Partitions, numbered 0 to <c>Partitions - 1</c>.</summary>
    public int Partitions => _coordinators.Length;

    /// <summary>
    /// Starts the system (named <paramref name="name"/>, remoting on a free loopback port), joins it to itself, starts
    /// the region with every partition's shard here, and the coordinators; completes when each coordinator answers.
    /// </summary>
    /// <param name="rules">The rule set every partition evaluates with.</param>
    /// <param name="onCheckpoint">Called with each completed checkpoint (its firings included), or null.</param>
    /// <exception cref="TimeoutException">The cluster of one did not come up within <paramref name="patience"/>.</exception>
    public static async Task<LocalEngine> StartAsync(string name, int partitions, RuleSet rules, PartitionCoordinatorOptions options, Action<CheckpointCompleted>? onCheckpoint, TimeSpan patience)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        var system = await StartSystemAsync(name, patience).ConfigureAwait(false);
        try
        {
            var book = new RuleBook(rules);
            // As in the engine: a customer its partition never saved starts without a read of the journal.
            var known = new KnownCustomerRegistry();
            options = options with { Known = known };
            var region = await CustomerShards.StartAsync(system, new CustomerEntityOptions { Known = known }, book).ConfigureAwait(false);
            await CustomerShards.AssignAsync(system, Enumerable.Range(0, partitions)).WaitAsync(patience).ConfigureAwait(false);
            var engine = new LocalEngine(system, new IActorRef[partitions]);
            var listener = system.ActorOf(Props.Create(() => new Listener(engine, onCheckpoint)), "local-listener");
            for (var p = 0; p < partitions; p++)
            {
                engine._coordinators[p] = system.ActorOf(PartitionCoordinator.Props(p, region, listener, book, options), "partition-" + p);
            }

            await engine.StatusAsync(patience).ConfigureAwait(false);
            return engine;
        }
        catch
        {
            await system.Terminate().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// A local actor system named <paramref name="name"/> (remoting on a free loopback port, Akka.Persistence's in-memory
    /// journal and snapshot store, the runtime's serializers) joined to itself: a cluster of one, ready for shard regions.
    /// The caller terminates it.
    /// </summary>
    /// <exception cref="TimeoutException">The cluster of one did not come up within <paramref name="patience"/> (the system is terminated).</exception>
    public static async Task<ActorSystem> StartSystemAsync(string name, TimeSpan patience)
    {
        var config = ConfigurationFactory.ParseString("""
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp.hostname = 127.0.0.1
            akka.remote.dot-netty.tcp.port = 0
            akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
            # As on the engine's SQL journal (ActorStore): sharding keeps one writer per customer, and the filter would
            # start an actor for every recovery, that is for every customer loaded.
            akka.persistence.journal.inmem.replay-filter.mode = off
            akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
            """).WithFallback(ConfigurationFactory.ParseString(StandardErrorLogger.Hocon)).WithFallback(ConfigurationFactory.ParseString(RuntimeConfiguration.Hocon));
        var system = ActorSystem.Create(name, config);
        try
        {
            var cluster = Cluster.Get(system);
            await cluster.JoinAsync(cluster.SelfAddress).WaitAsync(patience).ConfigureAwait(false);
            return system;
        }
        catch
        {
            await system.Terminate().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Sends one record to its partition's coordinator (which applies records in the order sent).</summary>
    public void Send(int partition, PartitionRecord record) => _coordinators[partition].Tell(record);

    /// <summary>Asks a partition for a checkpoint (queued behind the records sent before).</summary>
    public void Checkpoint(int partition) => _coordinators[partition].Tell(CheckpointNow.Instance);

    /// <summary>
    /// The next offset of <paramref name="topic"/> that <paramref name="partition"/>'s last completed checkpoint covers
    /// (0 before its first checkpoint).
    /// </summary>
    public long Covered(int partition, string topic) => _covered.GetValueOrDefault((partition, topic), 0);

    /// <summary>
    /// Checkpoints every partition until each checkpoint covers the offsets in <paramref name="last"/> (the last
    /// offset sent per partition and topic), so that every firing of those records has reached the callback.
    /// </summary>
    /// <exception cref="TimeoutException">Not covered within <paramref name="patience"/>.</exception>
    /// <exception cref="InvalidOperationException">A checkpoint failed (the reason is in the message).</exception>
    public async Task CheckpointThroughAsync(IReadOnlyDictionary<(int Partition, string Topic), long> last, TimeSpan patience, CancellationToken cancellationToken = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(patience);
        var behind = Behind(last);
        while (behind.Count > 0)
        {
            foreach (var p in behind)
            {
                Checkpoint(p);
            }

            try
            {
                await Task.Delay(20, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"partitions [{string.Join(",", behind)}] did not checkpoint their records within {patience}");
            }

            behind = Behind(last);
        }
    }

    /// <summary>
    /// Waits until every partition's coordinator has processed (not necessarily checkpointed) the records up to the
    /// offsets in <paramref name="last"/> (the last offset sent per partition and topic), polling its status.
    /// </summary>
    /// <exception cref="TimeoutException">Not processed within <paramref name="patience"/>.</exception>
    public async Task ProcessedThroughAsync(IReadOnlyDictionary<(int Partition, string Topic), long> last, TimeSpan patience, CancellationToken cancellationToken = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(patience);
        // Only the partitions still behind are asked, every 20 ms: a status is a copy of the partition's counters, and
        // asking every partition every few milliseconds cost the engine it measures a share of its time.
        var behind = last.Select(l => l.Key.Partition).Distinct().Order().ToList();
        while (true)
        {
            var statuses = await Task.WhenAll(behind.Select(p => _coordinators[p].Ask<PartitionStatus>(GetPartitionStatus.Instance, patience))).ConfigureAwait(false);
            behind = [.. statuses.Where(s => last.Any(l => l.Key.Partition == s.Partition && s.ProcessedOffsets.GetValueOrDefault(l.Key.Topic) <= l.Value)).Select(s => s.Partition)];
            if (behind.Count == 0)
            {
                return;
            }

            try
            {
                await Task.Delay(20, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"partitions [{string.Join(",", behind)}] did not process their records within {patience}");
            }
        }
    }

    /// <summary>Each partition's counters, in partition order.</summary>
    public async Task<PartitionStatus[]> StatusAsync(TimeSpan patience)
    {
        var all = new PartitionStatus[_coordinators.Length];
        for (var p = 0; p < all.Length; p++)
        {
            all[p] = await _coordinators[p].Ask<PartitionStatus>(GetPartitionStatus.Instance, patience).ConfigureAwait(false);
        }

        return all;
    }

    /// <summary>Terminates the actor system (nothing it held is kept).</summary>
    public async ValueTask DisposeAsync() => await _system.Terminate().ConfigureAwait(false);

    private List<int> Behind(IReadOnlyDictionary<(int Partition, string Topic), long> last) =>
        _failure is { } failure ? throw new InvalidOperationException(failure) : last.Where(l => Covered(l.Key.Partition, l.Key.Topic) <= l.Value).Select(l => l.Key.Partition).Distinct().Order().ToList();

    private void Completed(CheckpointCompleted done, Action<CheckpointCompleted>? onCheckpoint)
    {
        onCheckpoint?.Invoke(done);
        foreach (var (topic, next) in done.NextOffsets)
        {
            _covered[(done.Partition, topic)] = next;
        }

        Interlocked.Increment(ref _checkpoints);
    }

    /// <summary>The coordinators' listener without a broker: dead letters are taken as delivered, firings as stored.</summary>
    private sealed class Listener(LocalEngine engine, Action<CheckpointCompleted>? onCheckpoint) : UntypedActor
    {
        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case FlushDeadLetters flush:
                    Sender.Tell(new DeadLettersFlushed(flush.Partition, flush.Seq));
                    break;
                case CheckpointCompleted done:
                    engine.Completed(done, onCheckpoint);
                    Sender.Tell(new FiringsStored(done.Partition, done.Seq));
                    break;
                case CheckpointFailed failed:
                    engine._failure ??= $"partition {failed.Partition}: checkpoint {failed.Seq} failed: {failed.Reason}";
                    break;
                case DeadLettered:
                    break;
                default:
                    Unhandled(message);
                    break;
            }
        }
    }
}
