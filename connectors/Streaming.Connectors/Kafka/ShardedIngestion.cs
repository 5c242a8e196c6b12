using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Akka.Actor;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Streaming.Connectors.Telemetry;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;
using Streaming.Runtime.Partitions;
using CoordinatorStatus = Streaming.Runtime.Partitions.PartitionStatus;
using Streaming.Runtime.Rules;
using Streaming.Runtime.Sharding;

namespace Streaming.Connectors.Kafka;

/// <summary>Settings of <see cref="ShardedIngestion"/>.</summary>
public sealed record IngestionOptions
{
    /// <summary>Kafka bootstrap servers (<c>host:port</c>, comma-separated).</summary>
    public required string BootstrapServers { get; init; }

    /// <summary>The consumer group every node of the cluster joins.</summary>
    public string GroupId { get; init; } = "streaming-engine";

    /// <summary>A partition checkpoints after this many records since its last checkpoint…</summary>
    public int CheckpointEveryRecords { get; init; } = 20_000;

    /// <summary>…or this long after its last checkpoint when it has new records.</summary>
    public TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Kafka consumer session timeout (ms).</summary>
    public int SessionTimeoutMs { get; init; } = 6000;

    /// <summary>Longest wait for a coordinator to recover on assignment, or for its last checkpoint on revoke.</summary>
    public TimeSpan HandOffTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A partition just assigned here is read no earlier than this after the assignment: the time for its shard to move
    /// here from the node that had it (the sharding coordinator checks every second). Records sent before would reach
    /// the customers on the old node; they would be refused by message numbering and the partition restarted, so this
    /// only saves that detour. Zero (the default) on a single node, where shards never move.
    /// </summary>
    public TimeSpan HandOffGrace { get; init; }

    /// <summary>
    /// In a cluster: false while a member is unreachable. A shard on an unreachable node cannot move until the
    /// split-brain resolver has downed it, and records sent meanwhile would be lost on the way to it, so assigned or
    /// restarting partitions wait (the dead node's partitions are served once it is removed). Null: never waits.
    /// </summary>
    public Func<bool>? ClusterSettled { get; init; }

    /// <summary>
    /// In a cluster: whether partition p's shard is hosted by this node's region yet (true, or false / a failed task:
    /// not yet). An assigned or restarting partition is read only once it is: the move from the node that had the shard
    /// waits for the sharding coordinator, which does not rebalance while a member is unreachable, and records sent to
    /// the old home meanwhile are dropped at the hand-off (the partition would restart from its checkpoint). Asked again
    /// every second until true. Null: never asked (a single node, where shards never move).
    /// </summary>
    public Func<int, Task<bool>>? ShardHome { get; init; }

    /// <summary>How each partition's coordinator runs (in-flight bound, cached customers, lateness).</summary>
    public PartitionCoordinatorOptions Coordinator { get; init; } = new();

    /// <summary>The decoder's limits (record size, future skew…).</summary>
    public DecoderOptions Decoder { get; init; } = new();

    /// <summary>
    /// Hybrid time: a partition without records for this long has its watermark follow the wall clock, so timers fire
    /// in live operation. Null: event time only (replays give exactly the live run's states).
    /// </summary>
    public TimeSpan? IdleAfter { get; init; }

    /// <summary>librdkafka's prefetch bound, in KiB (<c>queued.max.messages.kbytes</c>).</summary>
    public int PrefetchMaxKbytes { get; init; } = 64 * 1024;

    /// <summary>
    /// A partition whose checkpoint failed (the store is away) restarts from its last checkpoint after this, doubling at
    /// each failure in a row up to <see cref="MaxRestartDelay"/>; its consumption is paused meanwhile.
    /// </summary>
    public TimeSpan RestartDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The longest wait between two restarts of a failing partition.</summary>
    public TimeSpan MaxRestartDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Where the node's checkpoint numbering is kept (null: in memory, restarting from 1).</summary>
    public ICheckpointCounter? Counter { get; init; }

    /// <summary>
    /// Receives the customers each completed checkpoint saved, numbered by the node's checkpoint numbering (null: no
    /// mirror). With checkpoint seqs (<see cref="IStateMirror.SeqSource"/>), checkpoints under a newer rule set are handed
    /// on only once no partition still runs an older one, so the numbers never interleave two rule versions.
    /// </summary>
    public IStateMirror? Mirror { get; init; }

    /// <summary>
    /// Told (on the consumer thread; it must not block) each partition this node took over, once its coordinator recovered
    /// and its records flow again: the node that had it may have died between saving customers and mirroring them.
    /// </summary>
    public Action<int>? PartitionTakenOver { get; init; }

    /// <summary>
    /// How long the producer tries to deliver a dead letter (librdkafka's <c>message.timeout.ms</c>) before reporting it
    /// failed; a failed one is produced again (<c>Streaming:Engine:DeadLetterTimeoutMs</c>).
    /// </summary>
    public TimeSpan DeadLetterTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>One assigned input partition as the consumer sees it.</summary>
/// <param name="Next">The next offset to read (sent to the coordinator up to before it).</param>
/// <param name="High">The log end (high watermark); -1 while unknown.</param>
public readonly record struct PartitionPosition(string Topic, int Partition, long Next, long High);

/// <summary>
/// Takes the firings of each completed checkpoint before its offsets are committed: the outbox that the trigger relay
/// publishes from and the dialers' outreach queue. Must be idempotent by firing id (a recovered partition reports its
/// last checkpoint's firings again). A call that throws is retried; meanwhile the partition's offsets wait.
/// </summary>
public interface IFiringOutbox
{
    /// <summary>Stores <paramref name="firings"/> durably (all or none).</summary>
    void Append(IReadOnlyList<TriggerFiring> firings);
}

/// <summary>What became of a rule sweep's customers handed to a partition (<see cref="ShardedIngestion.SweepAsync"/>).</summary>
public enum SweepHandOff
{
    /// <summary>Sent to the partition's coordinator.</summary>
    Sent,

    /// <summary>This node does not own the partition.</summary>
    NotOwned,

    /// <summary>The partition is restarting (a failed checkpoint's back-off): nothing was sent.</summary>
    Restarting,
}

/// <summary>What <see cref="ShardedIngestion.SweepAsync"/> did with a sweep's customers, and for customers sent: to which coordinator, and the checkpoint that makes them durable.</summary>
public sealed record SweepReceipt(SweepHandOff HandOff, IActorRef? Coordinator = null, long CoveredBy = 0);

/// <summary>How a sweep hand-off ended (<see cref="ShardedIngestion.SettleSweepAsync"/>).</summary>
public enum SweepSettled
{
    /// <summary>The checkpoint covering the re-evaluations completed: they are saved.</summary>
    Durable,

    /// <summary>The coordinator that took them is gone before that: sweep them again.</summary>
    Replaced,
}

/// <summary>
/// Keeps the node's checkpoint numbering durable: every completed partition checkpoint gets the next number (the
/// status's <c>checkpointSeq</c> and the Redis mirror's <c>seq</c>), and numbers are reserved before use (the ingestion
/// reserves one at a time), so a restart continues above every number handed out before it (gaps are allowed, going back
/// is not).
/// </summary>
public interface ICheckpointCounter
{
    /// <summary>The highest number reserved so far (0: none).</summary>
    long Reserved { get; }

    /// <summary>Makes <paramref name="through"/> the highest reserved number, durably, before it returns.</summary>
    void Reserve(long through);

    /// <summary>
    /// Stores the number a partition checkpoint was given (kept while the Redis mirror may still need it: a customer's
    /// journal event names its partition checkpoint, and the mirror's catch-up publishes it under this number).
    /// </summary>
    void Record(CheckpointNumber number);

    /// <summary>
    /// Forgets the numbers at or below <paramref name="mirrored"/> (every checkpoint up to it is in Redis), keeping in
    /// each partition the last checkpoint of every run of one rule version (a set switched back to counts as a new run):
    /// a customer saved by a forgotten checkpoint maps to the next kept one, which carries the same rule version.
    /// </summary>
    void Prune(long mirrored);

    /// <summary>Every number kept, in (partition, seq) order.</summary>
    IReadOnlyList<CheckpointNumber> LoadNumbers();
}

/// <summary>The node's number (<paramref name="Number"/>) of checkpoint <paramref name="Seq"/> of <paramref name="Partition"/>, whose customers carry <paramref name="RuleVersion"/>.</summary>
public readonly record struct CheckpointNumber(int Partition, long Seq, long Number, string RuleVersion);

/// <summary>
/// Kafka into the actor runtime, one per node: one consumer in the group (cooperative-sticky), whose assignment decides
/// where the customers' shards live (<see cref="CustomerShards.AssignAsync"/>) and which partition coordinators run here.
/// </summary>
/// <remarks>
/// <para><b>On assign:</b> the shards move here, the coordinator recovers, and consumption starts at the offsets its last
/// checkpoint covers (the journal is the truth; Kafka's committed offsets follow it).</para>
/// <para><b>Records</b> are decoded here and sent to their partition's coordinator, which applies them through the
/// customers' entities. Bounded: a partition whose records since its last completed checkpoint reach two checkpoints'
/// worth is paused until one completes.</para>
/// <para><b>Offsets</b> are committed to Kafka only after a checkpoint that covers them is durable, and dead letters are
/// on the broker before the checkpoint that covers them completes.</para>
/// <para><b>A failed checkpoint</b> (a journal write failed: the store is away) or a customer refusing a record pauses
/// the partition and stops its coordinator; after a back-off a new coordinator recovers the last durable checkpoint and
/// consumption resumes from its offsets. Nothing is lost (records are re-read) and nothing counts twice (customers'
/// offsets); the engine goes on with its other partitions meanwhile.</para>
/// <para><b>On revoke:</b> each partition checkpoints everything it was sent, commits, and its coordinator stops; the new
/// owner's assignment moves the shard. <b>On loss</b> nothing is committed: the new owner re-reads from the last
/// checkpoint, and customers' offsets make the re-read records duplicates where they were already saved.</para>
/// </remarks>
public sealed partial class ShardedIngestion : IDisposable
{
    private readonly ActorSystem _system;
    private readonly IActorRef _region;
    private readonly RuleBook _rules;
    private readonly IngestionOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly EventDecoder _decoder;
    private readonly IFiringOutbox? _firings;
    private readonly EngineInstruments? _instruments;
    private readonly ConcurrentQueue<object> _inbox = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly Dictionary<int, Partition> _partitions = [];

    private volatile bool _joined;

    /// <summary>
    /// True once the consumer has joined its group and received an assignment, even an empty one (a cluster with more
    /// nodes than partitions): the node then serves reads through the shard region.
    /// </summary>
    public bool Joined => _joined;

    /// <summary>
    /// The topic the consumer group assigns: the input topics are co-partitioned by customer id, and partition p of every
    /// other input topic is read by the member the group gave partition p of this one (as Kafka Streams does for
    /// co-partitioned topics; librdkafka takes no custom assignor from .NET, so the group's assignor, cooperative-sticky,
    /// sees this topic alone). It is also the topic whose partition count is the shard count.
    /// </summary>
    public static string LeadTopic => Topics.Orders;

    /// <summary>Topic partitions assigned in the last poll, paused by the poll loop until their coordinators recover (consumer thread only).</summary>
    private readonly List<TopicPartition> _toPause = [];

    /// <summary>Set when partitions were released: <see cref="DropFollowers"/> has work (consumer thread only).</summary>
    private bool _followersToDrop;

    /// <summary>Failed changes of the follower topics' assignment in a row (the first of a run is logged).</summary>
    private int _followRetries;

    /// <summary>Consume errors already logged, by topic and code (each is logged once).</summary>
    private readonly HashSet<(string Topic, ErrorCode Code)> _consumeErrors = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IActorRef? _listener;
    private IProducer<byte[]?, byte[]?>? _producer;
    private Thread? _thread;
    private bool _checkpointOnStop = true;
    private long _records;
    private readonly long[,] _eventCounts = new long[Topics.Inputs.Count, 16];
    private volatile IReadOnlyList<PartitionPosition> _positions = [];
    private long _positionsAt;
    private readonly List<double> _checkpointMs = [];
    private volatile bool _paused;
    private long _lastCommitAt;
    private long _commits;
    private long _deadLetters;
    private long _unacknowledged;
    private long _checkpointSeq;

    /// <summary>
    /// An ingestion stage feeding <paramref name="region"/> (the customers' shard region on this node). Each completed
    /// checkpoint's firings go to <paramref name="firings"/> (null: dropped, for tests of the state alone) before its
    /// offsets are committed.
    /// </summary>
    public ShardedIngestion(ActorSystem system, IActorRef region, RuleBook rules, IngestionOptions options, ILogger logger, TimeProvider time, IFiringOutbox? firings = null, EngineInstruments? instruments = null)
    {
        _firings = firings;
        _instruments = instruments;
        if (instruments is not null && options.Coordinator.Applied is null)
        {
            options = options with { Coordinator = options.Coordinator with { Applied = s => instruments.ProcessingLatency.Record(s), Time = time, Persistence = instruments } };
        }

        _system = system;
        _region = region;
        _rules = rules;
        _options = options;
        _logger = logger;
        _time = time;
        _decoder = new EventDecoder(options.Decoder);

        // A restart goes on above every number reserved before it.
        _checkpointSeq = options.Counter?.Reserved ?? 0;
    }

    /// <summary>Records read and sent to coordinators.</summary>
    public long Records => Interlocked.Read(ref _records);

    /// <summary>Checkpoints whose offsets were committed to Kafka.</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Dead letters the broker acknowledged.</summary>
    public long DeadLetters => Interlocked.Read(ref _deadLetters);

    /// <summary>The node's last checkpoint number (<see cref="ICheckpointCounter"/>): completed partition checkpoints, numbered in order.</summary>
    public long CheckpointSeq => Interlocked.Read(ref _checkpointSeq);

    /// <summary>Dead letters produced and not yet acknowledged by the broker (their partitions' checkpoints wait).</summary>
    public long DeadLettersUnacknowledged => Interlocked.Read(ref _unacknowledged);

    /// <summary>The assigned input partitions' read positions and log ends, refreshed about twice a second.</summary>
    public IReadOnlyList<PartitionPosition> Positions => _positions;

    /// <summary>True while some partition is paused (it holds two checkpoints' worth of records).</summary>
    public bool Paused => _paused;

    /// <summary>When the last checkpoint was committed (<see cref="TimeProvider.GetTimestamp"/>; 0: none yet).</summary>
    public long LastCommitAt => Interlocked.Read(ref _lastCommitAt);

    /// <summary>Records read per input topic and event type (type 0: not decodable), by <see cref="Topics.Inputs"/> index.</summary>
    public Dictionary<(string Topic, string Type), long> EventCounts()
    {
        var counts = new Dictionary<(string, string), long>();
        for (var t = 0; t < _eventCounts.GetLength(0); t++)
        {
            for (var e = 0; e < _eventCounts.GetLength(1); e++)
            {
                var n = Interlocked.Read(ref _eventCounts[t, e]);
                if (n > 0)
                {
                    counts[(Topics.Inputs[t], e == 0 ? "invalid" : EventTypes.Name((EventType)e))] = n;
                }
            }
        }

        return counts;
    }

    /// <summary>Durations of completed checkpoints, from the request to the commit, in milliseconds.</summary>
    public double[] CheckpointDurationsMs()
    {
        lock (_checkpointMs)
        {
            return [.. _checkpointMs];
        }
    }

    /// <summary>Completes when the consumer thread ends (faulted if it ended on an error).</summary>
    public Task Stopped => _stopped.Task;

    /// <summary>The coordinators of the partitions this node owns, by partition.</summary>
    public IReadOnlyDictionary<int, IActorRef> Coordinators
    {
        get
        {
            lock (_partitions)
            {
                return _partitions.ToDictionary(p => p.Key, p => p.Value.Coordinator);
            }
        }
    }

    /// <summary>Starts the consumer thread.</summary>
    public void Start()
    {
        _producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig
        {
            BootstrapServers = _options.BootstrapServers,
            ClientId = "streaming-dead-letters",
            EnableIdempotence = true,
            MessageTimeoutMs = (int)_options.DeadLetterTimeout.TotalMilliseconds,
        }).SetLogHandler((_, m) => LogKafka(m.Level.ToString(), m.Message)).Build();
        _listener = _system.ActorOf(Props.Create(() => new Listener(this)), "ingestion-" + Guid.NewGuid().ToString("N"));
        _thread = new Thread(Run) { Name = "streaming-ingestion", IsBackground = true };
        _thread.Start();
    }

    /// <summary>
    /// Stops consuming. With <paramref name="checkpoint"/> every owned partition first checkpoints and commits what it
    /// was sent; without, the node stops as if it crashed (the next owner re-reads from the last checkpoint).
    /// </summary>
    public async Task StopAsync(TimeSpan timeout, bool checkpoint = true)
    {
        _checkpointOnStop = checkpoint;
        _stop.Cancel();
        _signal.Release();
        await _stopped.Task.WaitAsync(timeout).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stop.Cancel();
        _thread?.Join(TimeSpan.FromSeconds(10));
        _producer?.Dispose();
        _stop.Dispose();
        _signal.Dispose();
    }

    private void Run()
    {
        try
        {
            using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
            {
                BootstrapServers = _options.BootstrapServers,
                GroupId = _options.GroupId,
                ClientId = "streaming-engine",
                EnableAutoCommit = false,
                EnableAutoOffsetStore = false,
                AutoOffsetReset = AutoOffsetReset.Earliest,
                // Incremental rebalances: a member joining or leaving moves only the partitions that change owner, and
                // every other partition keeps its coordinator and goes on reading. The group subscribes to the lead topic
                // only; the same partition of every other input topic follows it (see LeadTopic).
                PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky,
                SessionTimeoutMs = _options.SessionTimeoutMs,
                HeartbeatIntervalMs = Math.Max(500, _options.SessionTimeoutMs / 4),
                QueuedMaxMessagesKbytes = _options.PrefetchMaxKbytes,
            })
                .SetLogHandler((_, m) => LogKafka(m.Level.ToString(), m.Message))
                .SetPartitionsAssignedHandler(OnAssigned)
                .SetPartitionsRevokedHandler((c, revoked) => Release(c, revoked.Select(t => t.TopicPartition), checkpoint: true, rebalancing: true))
                .SetPartitionsLostHandler((c, lost) => Release(c, lost.Select(t => t.TopicPartition), checkpoint: false))
                .Build();
            consumer.Subscribe(LeadTopic);
            while (!_stop.IsCancellationRequested)
            {
                DrainInbox(consumer);
                ConsumeResult<byte[]?, byte[]?>? result = null;
                try
                {
                    result = consumer.Consume(TimeSpan.FromMilliseconds(50));
                }
                catch (ConsumeException ex) when (!ex.Error.IsFatal && ex.Error.Code is not (ErrorCode.RebalanceInProgress or ErrorCode.IllegalGeneration or ErrorCode.UnknownMemberId))
                {
                    // A partition-level error (an input topic missing, or with fewer partitions than the lead topic):
                    // librdkafka keeps trying, and the partition's other topics are read meanwhile.
                    if (_consumeErrors.Add((ex.ConsumerRecord?.Topic ?? "", ex.Error.Code)))
                    {
                        LogConsumeError(ex.ConsumerRecord?.Topic ?? "?", ex.ConsumerRecord?.Partition.Value ?? -1, ex.Error.Code.ToString(), ex.Error.Reason);
                    }
                }
                catch (KafkaException ex) when (!ex.Error.IsFatal && ex.Error.Code is ErrorCode.RebalanceInProgress or ErrorCode.IllegalGeneration or ErrorCode.UnknownMemberId)
                {
                    // The group changed under a rebalance callback (a member joined, left or died): the consumer rejoins
                    // on the next poll, and every partition it gets is recovered from the store as on any assignment.
                    LogRebalanceInterrupted(ex.Error.Code.ToString(), ex.Error.Reason);
                }

                DropFollowers(consumer);

                if (_toPause.Count > 0)
                {
                    // Assigned in the last poll and not recovered yet: nothing is fetched for them until Resume seeks.
                    var pause = _toPause.Where(tp => _partitions.TryGetValue(tp.Partition.Value, out var recovering) && recovering.RestartAt != 0).ToList();
                    consumer.Pause(pause);
                    foreach (var tp in pause)
                    {
                        _partitions[tp.Partition.Value].Paused = true;
                    }

                    _toPause.Clear();
                }

                if (result is not null)
                {
                    Handle(result);
                }

                Pace(consumer);
            }

            Release(consumer, consumer.Assignment, _checkpointOnStop);
            DropFollowers(consumer);
            consumer.Close();
            _stopped.TrySetResult();
        }
        catch (Exception ex)
        {
            LogFailed(ex);
            _stopped.TrySetException(ex);
        }
    }

    /// <summary>
    /// Kafka gave this node partitions: their shards are allocated here and a coordinator starts for each new one. The
    /// callback does not wait for the coordinators to recover (a rebalance callback that blocks for seconds holds up the
    /// whole group, and the next rebalance comes before it is done): the new partitions start paused at their committed
    /// offsets, and <see cref="Resume"/> seeks each to where its last checkpoint ends once its coordinator has recovered,
    /// as after a restart.
    /// </summary>
    private IEnumerable<TopicPartitionOffset> OnAssigned(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> assigned)
    {
        _joined = true;
        var added = assigned.Select(t => t.Partition.Value).Distinct().Where(p => !_partitions.ContainsKey(p)).ToList();
        var now = _time.GetTimestamp();
        foreach (var p in added)
        {
            var coordinator = StartCoordinator(p);
            var partition = new Partition(coordinator, now)
            {
                // Recovering: Handle drops its records until Resume has moved the shard here and sought to the
                // checkpoint's offsets.
                RestartAt = now,
                Recovering = coordinator.Ask<CoordinatorStatus>(GetPartitionStatus.Instance, _options.HandOffTimeout),
            };
            lock (_partitions)
            {
                _partitions[p] = partition;
            }
        }

        foreach (var p in added)
        {
            // The lead topic's partition came from the group; Resume adds the other input topics' partition p, at the
            // offsets of the checkpoint the coordinator recovered.
            _partitions[p].Topics.Add(LeadTopic);
            _toPause.Add(new TopicPartition(LeadTopic, p));
        }

        LogAssigned(assigned.Count, string.Join(",", added));

        // Offset.Unset: the committed offsets (or the earliest); Resume seeks the new partitions before they are read.
        return assigned.Select(tp => new TopicPartitionOffset(tp, Offset.Unset));
    }

    /// <summary>
    /// Removes from the consumer's assignment the follower topics' partitions of partitions this node no longer owns
    /// (consumer thread, after the rebalance callback that released them: Confluent.Kafka allows no assignment change
    /// inside one). Tried again at the next poll if the consumer refuses.
    /// </summary>
    private void DropFollowers(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (!_followersToDrop)
        {
            return;
        }

        try
        {
            var stale = consumer.Assignment.Where(tp => tp.Topic != LeadTopic && !_partitions.ContainsKey(tp.Partition.Value)).ToList();
            if (stale.Count > 0)
            {
                consumer.IncrementalUnassign(stale);
            }

            _followersToDrop = false;
            _followRetries = 0;
        }
        catch (KafkaException ex) when (!ex.Error.IsFatal)
        {
            FollowRetry(ex);
        }
    }

    /// <summary>Logs the first of a run of refused changes to the follower topics' assignment.</summary>
    private void FollowRetry(KafkaException ex)
    {
        if (_followRetries++ == 0)
        {
            LogFollowRetry(LeadTopic, ex.Error.Code.ToString(), ex.Error.Reason);
        }
    }

    private void Handle(ConsumeResult<byte[]?, byte[]?> result)
    {
        if (!Topics.TryParseInput(result.Topic, out var topic) || !_partitions.TryGetValue(result.Partition.Value, out var partition) || partition.RestartAt != 0)
        {
            // Records of a restarting partition fetched before its pause are read again after its seek.
            return;
        }

        var message = result.Message;
        CustomerEvent? evt = null;
        var record = !BrokerTime.TryGet(message.Timestamp, out var appended)
            ? new PartitionRecord(result.Topic, result.Offset.Value, null, BrokerTime.OutOfRange(message.Timestamp))
            : _decoder.TryDecode(topic, message.Key, message.Value, appended, out evt, out var error)
                ? new PartitionRecord(result.Topic, result.Offset.Value, evt)
                : new PartitionRecord(result.Topic, result.Offset.Value, null, error);
        partition.Coordinator.Tell(record with { Key = message.Key, Value = message.Value, AppendedTicks = appended?.UtcTicks ?? 0 });
        Interlocked.Increment(ref _eventCounts[(int)topic, evt is null ? 0 : (int)evt.Type]);
        partition.Sent[result.Topic] = result.Offset.Value + 1;
        partition.LastRecordAt = _time.GetTimestamp();
        partition.SinceCheckpoint++;
        Interlocked.Increment(ref _records);
    }

    /// <summary>
    /// Pauses or resumes fetching partition <paramref name="p"/> of every topic the partition reads. Apart from
    /// <see cref="Pace"/>, which runs after every record, so that its loop allocates nothing (a lambda over the loop's
    /// partition number would allocate its closure on every pass).
    /// </summary>
    private static void Hold(IConsumer<byte[]?, byte[]?> consumer, int p, Partition partition, bool hold)
    {
        var tps = partition.Topics.Select(t => new TopicPartition(t, p)).ToList();
        if (hold)
        {
            consumer.Pause(tps);
        }
        else
        {
            consumer.Resume(tps);
        }

        partition.Paused = hold;
    }

    /// <summary>Asks for checkpoints when due, and pauses partitions that hold two checkpoints' worth of records.</summary>
    private void Pace(IConsumer<byte[]?, byte[]?> consumer)
    {
        var paused = false;
        foreach (var (p, partition) in _partitions)
        {
            if (partition.RestartAt != 0)
            {
                Resume(consumer, p, partition);
                paused |= partition.RestartAt != 0;
                continue;
            }

            if (_options.IdleAfter is { } idle && _time.GetElapsedTime(partition.LastRecordAt) >= idle)
            {
                partition.Coordinator.Tell(new AdvanceIdle(_time.GetUtcNow().UtcTicks));
                partition.LastRecordAt = _time.GetTimestamp() - (long)(idle.TotalSeconds * _time.TimestampFrequency) + _time.TimestampFrequency;
            }

            if (partition.Uncommitted is { } uncommitted && _time.GetTimestamp() >= partition.CommitRetryAt)
            {
                Commit(consumer, partition, uncommitted);
                if (partition.Uncommitted is null)
                {
                    LogCommitRetried(p, uncommitted.Seq);
                }
            }

            var due = partition.SinceCheckpoint >= _options.CheckpointEveryRecords
                || (partition.SinceCheckpoint > 0 && _time.GetElapsedTime(partition.LastCheckpointAt) >= _options.CheckpointInterval);
            if (due && partition.Requested is null)
            {
                partition.Requested = new Dictionary<string, long>(partition.Sent, StringComparer.Ordinal);
                partition.RequestedAt = _time.GetTimestamp();
                partition.SinceRequest = partition.SinceCheckpoint;
                partition.Coordinator.Tell(CheckpointNow.Instance);
            }

            var hold = partition.SinceCheckpoint >= 2L * _options.CheckpointEveryRecords;
            if (hold != partition.Paused)
            {
                Hold(consumer, p, partition, hold);
            }

            paused |= partition.Paused;
        }

        _paused = paused;
        if (_positionsAt == 0 || _time.GetElapsedTime(_positionsAt) >= TimeSpan.FromMilliseconds(500))
        {
            _positionsAt = _time.GetTimestamp();
            _positions = [.. consumer.Assignment.Select(tp => new PartitionPosition(
                tp.Topic,
                tp.Partition.Value,
                !_partitions.TryGetValue(tp.Partition.Value, out var owned) ? -1
                    : owned.Sent.TryGetValue(tp.Topic, out var next) ? next
                    : owned.StartedAt.GetValueOrDefault(tp.Topic),
                consumer.GetWatermarkOffsets(tp).High.Value)).OrderBy(p => p.Topic, StringComparer.Ordinal).ThenBy(p => p.Partition)];
        }
    }

    private void DrainInbox(IConsumer<byte[]?, byte[]?> consumer)
    {
        while (_inbox.TryDequeue(out var message))
        {
            switch (message)
            {
                case CheckpointCompleted { Recovered: true } done when _partitions.TryGetValue(done.Partition, out var recovered):
                    // A recovered coordinator's last checkpoint, reported again for its firings: nothing to pace.
                    Commit(consumer, recovered, done);
                    break;
                case CheckpointCompleted done when _partitions.TryGetValue(done.Partition, out var partition):
                    // Durable, so committed even when it comes from a coordinator stopped since (the offsets it covers
                    // are not re-read); the pacing is the current coordinator's.
                    Commit(consumer, partition, done);
                    if (partition.RestartAt != 0)
                    {
                        break;
                    }

                    partition.Restarts = 0;
                    if (partition.Requested is not null)
                    {
                        var elapsed = _time.GetElapsedTime(partition.RequestedAt);
                        lock (_checkpointMs)
                        {
                            _checkpointMs.Add(elapsed.TotalMilliseconds);
                        }

                        _instruments?.CheckpointDuration.Record(elapsed.TotalSeconds);
                    }

                    _instruments?.CheckpointCustomers.Record(done.ChangedCustomers.Count);

                    partition.LastCheckpointAt = _time.GetTimestamp();
                    partition.SinceCheckpoint -= partition.SinceRequest;
                    partition.SinceRequest = 0;
                    partition.Requested = null;
                    partition.Completed = done;
                    break;
                case CheckpointFailed failed:
                    Restart(consumer, failed.Partition, null, $"checkpoint {failed.Seq} failed: {failed.Reason}");
                    break;
                case PartitionFailed failed:
                    Restart(consumer, failed.Partition, null, failed.Reason);
                    break;
                case CoordinatorStopped stopped:
                    foreach (var (p, partition) in _partitions.Where(p => p.Value.Coordinator.Equals(stopped.Coordinator)).ToList())
                    {
                        Restart(consumer, p, stopped.Coordinator, "its coordinator stopped");
                    }

                    break;
            }
        }
    }

    /// <summary>
    /// Commits <paramref name="done"/>'s offsets; if the broker refuses, they are committed again later (<see cref="Pace"/>)
    /// unless a later checkpoint's commit covers them first. Without that, a partition whose last checkpoint's commit fell
    /// in a rebalance kept its committed offsets behind until new records came: its lag never reached 0, and a producer
    /// paced by the group's commits (<c>streaming replay</c>) waited for ever.
    /// </summary>
    private void Commit(IConsumer<byte[]?, byte[]?> consumer, Partition partition, CheckpointCompleted done)
    {
        if (Commit(consumer, done))
        {
            if (partition.Uncommitted is { } older && older.Seq <= done.Seq)
            {
                partition.Uncommitted = null;
            }
        }
        else if (partition.Uncommitted is null || partition.Uncommitted.Seq <= done.Seq)
        {
            partition.Uncommitted = done;
            partition.CommitRetryAt = _time.GetTimestamp() + (long)(CommitRetryAfter.TotalSeconds * _time.TimestampFrequency);
        }
    }

    /// <summary>How long after a refused commit it is tried again.</summary>
    private static readonly TimeSpan CommitRetryAfter = TimeSpan.FromSeconds(1);

    /// <summary>Commits <paramref name="done"/>'s offsets of the partitions still assigned here; false when the broker refused.</summary>
    private bool Commit(IConsumer<byte[]?, byte[]?> consumer, CheckpointCompleted done)
    {
        var owned = consumer.Assignment.ToHashSet();
        var offsets = done.NextOffsets
            .Select(o => new TopicPartitionOffset(o.Key, done.Partition, o.Value))
            .Where(o => owned.Contains(o.TopicPartition))
            .ToList();
        if (offsets.Count > 0)
        {
            try
            {
                consumer.Commit(offsets);
            }
            catch (KafkaException ex)
            {
                // E.g. "rebalance in progress" while another member joins or dies: the state these offsets reflect is
                // durable, so the next checkpoint (or the next owner, skipping what its customers applied) goes on
                // from the older committed offsets. Failing here used to stop the node's ingestion.
                LogCommitFailed(done.Partition, done.Seq, ex.Error.Code.ToString(), ex.Error.Reason);
                return false;
            }
        }

        Interlocked.Increment(ref _commits);
        Interlocked.Exchange(ref _lastCommitAt, _time.GetTimestamp());
        return true;
    }

    /// <summary>
    /// The partitions of <paramref name="released"/> leave this node: with <paramref name="checkpoint"/>, each first
    /// checkpoints everything it was sent and commits; then its coordinator stops.
    /// </summary>
    /// <param name="rebalancing">In a revoke callback: the final checkpoints get at most half the session timeout.</param>
    private void Release(IConsumer<byte[]?, byte[]?> consumer, IEnumerable<TopicPartition> released, bool checkpoint, bool rebalancing = false)
    {
        var partitions = released.Select(t => t.Partition.Value).Distinct().Where(_partitions.ContainsKey).ToList();
        if (checkpoint)
        {
            // A last checkpoint of what each coordinator has sent to its customers (records still waiting in it are
            // dropped and left to the next owner): the first one completed after this request.
            // All of them at once, within one deadline: the group waits for this callback, and a member that does not
            // rejoin within the rebalance timeout is dropped from the group (the embedded broker allows a session
            // timeout). What a final checkpoint does not cover is read again by the next owner from the last one.
            var deadline = _time.GetTimestamp();
            var allowed = rebalancing ? TimeSpan.FromTicks(Math.Min(_options.HandOffTimeout.Ticks, TimeSpan.FromMilliseconds(_options.SessionTimeoutMs / 2.0).Ticks)) : _options.HandOffTimeout;
            var waiting = partitions.Where(p => _partitions[p].RestartAt == 0).Select(p => (P: p, After: _partitions[p].Completed?.Seq ?? 0)).ToList();
            foreach (var (p, _) in waiting)
            {
                _partitions[p].Coordinator.Tell(CheckpointNow.Final);
            }

            bool Pending((int P, long After) w) => (_partitions[w.P].Completed?.Seq ?? 0) <= w.After;
            while (waiting.Any(Pending) && _time.GetElapsedTime(deadline) < allowed)
            {
                _signal.Wait(TimeSpan.FromMilliseconds(200));
                DrainInbox(consumer);
            }

            foreach (var w in waiting.Where(Pending))
            {
                LogHandOffTimedOut(w.P);
            }
        }

        foreach (var p in partitions)
        {
            _followersToDrop = true;
            _system.Stop(_partitions[p].Coordinator);
            _listener!.Tell(new PartitionReleased(p));
            lock (_partitions)
            {
                _partitions.Remove(p);
            }
        }

        if (partitions.Count > 0)
        {
            LogReleased(string.Join(",", partitions), checkpoint);
        }
    }

    /// <summary>
    /// Hands a rule sweep's customers of partition <paramref name="partition"/> to its coordinator; completes once they
    /// are all sent. <see cref="SweepHandOff.NotOwned"/>: another node owns the partition (its sweep takes them);
    /// <see cref="SweepHandOff.Restarting"/>: the partition is restarting, ask again after a while. Sent is not saved:
    /// <see cref="SettleSweepAsync"/> with the receipt tells when they are durable.
    /// </summary>
    /// <exception cref="Akka.Actor.AskTimeoutException">The coordinator did not take them within <paramref name="timeout"/>.</exception>
    public async Task<SweepReceipt> SweepAsync(int partition, IReadOnlyList<string> customers, TimeSpan timeout)
    {
        IActorRef coordinator;
        lock (_partitions)
        {
            if (!_partitions.TryGetValue(partition, out var owned))
            {
                return new SweepReceipt(SweepHandOff.NotOwned);
            }

            if (owned.RestartAt != 0)
            {
                return new SweepReceipt(SweepHandOff.Restarting);
            }

            coordinator = owned.Coordinator;
        }

        var sent = await coordinator.Ask<SweepSent>(new SweepCustomers(customers), timeout).ConfigureAwait(false);
        return new SweepReceipt(SweepHandOff.Sent, coordinator, sent.CoveredBy);
    }

    /// <summary>
    /// Waits until the re-evaluations a sweep hand-off sent (<paramref name="receipt"/>, <see cref="SweepHandOff.Sent"/>)
    /// are durable: the coordinator that took them has completed the checkpoint that covers them (asked for here).
    /// <see cref="SweepSettled.Replaced"/>: that coordinator is gone (the partition restarted from its last checkpoint,
    /// or moved), so re-evaluations it had not saved are lost: sweep those customers again.
    /// </summary>
    /// <exception cref="TimeoutException">Neither within <paramref name="timeout"/> (a checkpoint held up, say): ask again.</exception>
    public async Task<SweepSettled> SettleSweepAsync(int partition, SweepReceipt receipt, TimeSpan timeout)
    {
        if (receipt is not { HandOff: SweepHandOff.Sent, Coordinator: { } coordinator })
        {
            throw new ArgumentException("only a receipt of customers sent can settle", nameof(receipt));
        }

        var deadline = _time.GetTimestamp();
        while (true)
        {
            lock (_partitions)
            {
                if (!_partitions.TryGetValue(partition, out var owned) || !owned.Coordinator.Equals(coordinator))
                {
                    return SweepSettled.Replaced;
                }
            }

            try
            {
                var status = await coordinator.Ask<CoordinatorStatus>(GetPartitionStatus.Instance, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
                if (status.CommittedSeq >= receipt.CoveredBy)
                {
                    return SweepSettled.Durable;
                }
            }
            catch (AskTimeoutException)
            {
                // A coordinator stopping does not answer: the next round finds it replaced.
            }

            if (_time.GetElapsedTime(deadline) > timeout)
            {
                throw new TimeoutException($"partition {partition}: checkpoint {receipt.CoveredBy} not complete within {timeout}");
            }

            coordinator.Tell(CheckpointNow.Instance);
            await Task.Delay(TimeSpan.FromMilliseconds(100), _time).ConfigureAwait(false);
        }
    }

    /// <summary>A new coordinator for partition <paramref name="p"/>, watched by the listener.</summary>
    private IActorRef StartCoordinator(int p)
    {
        var coordinator = _system.ActorOf(PartitionCoordinator.Props(p, _region, _listener!, _rules, _options.Coordinator), $"partition-{p}-{Guid.NewGuid():N}");
        _listener!.Tell(new WatchCoordinator(coordinator));
        return coordinator;
    }

    /// <summary>
    /// Pauses partition <paramref name="p"/> and stops its coordinator (with it, every record waiting in its mailbox);
    /// <see cref="Resume"/> starts the next one after the back-off. <paramref name="stopped"/>: restart only if the
    /// coordinator that stopped is the partition's current one (null: whatever it is).
    /// </summary>
    private void Restart(IConsumer<byte[]?, byte[]?> consumer, int p, IActorRef? stopped, string reason)
    {
        if (!_partitions.TryGetValue(p, out var partition) || (stopped is not null && !partition.Coordinator.Equals(stopped)))
        {
            return;
        }

        if (partition.RestartAt != 0 && (stopped is null || partition.Recovering is null))
        {
            return; // Already restarting, and not the new coordinator failing to recover.
        }

        consumer.Pause(partition.Topics.Select(t => new TopicPartition(t, p)).ToList());
        partition.Paused = true;
        _system.Stop(partition.Coordinator);
        partition.Recovering = null;
        partition.Home = null;
        partition.Restarts++;
        var delay = TimeSpan.FromTicks(Math.Min(_options.MaxRestartDelay.Ticks, _options.RestartDelay.Ticks * (1L << Math.Min(20, partition.Restarts - 1))));
        partition.RestartAt = _time.GetTimestamp() + (long)(delay.TotalSeconds * _time.TimestampFrequency);
        LogRestarting(p, reason, (long)delay.TotalMilliseconds, partition.Restarts);
    }

    /// <summary>
    /// Drives a restarting partition: once its back-off is over, a new coordinator recovers; once it has, the consumer
    /// seeks to the offsets its last checkpoint covers and resumes. A coordinator that stops while recovering (the store
    /// still away) is restarted after a longer back-off.
    /// </summary>
    private void Resume(IConsumer<byte[]?, byte[]?> consumer, int p, Partition partition)
    {
        if (partition.Recovering is null)
        {
            if (_time.GetTimestamp() < partition.RestartAt)
            {
                return;
            }

            partition.Coordinator = StartCoordinator(p);
            partition.Recovering = partition.Coordinator.Ask<CoordinatorStatus>(GetPartitionStatus.Instance, _options.HandOffTimeout);
            return;
        }

        if (!partition.Recovering.IsCompleted || _time.GetTimestamp() < partition.RestartAt || _options.ClusterSettled?.Invoke() == false)
        {
            return;
        }

        if (partition.Allocated is null)
        {
            // Only now is the shard allocated here: the sharding coordinator then moves it from the node that had it. Done
            // while a member is unreachable, that move would wait for the unreachable node's hand-off (Akka's hand-off
            // timeout) and hold the shard's messages meanwhile; done after the split-brain resolver removed it, the dead
            // node's shards are simply reallocated. Records are read after the hand-off grace.
            partition.Allocated = CustomerShards.AssignAsync(_system, [p]);
            partition.RestartAt = _time.GetTimestamp() + (long)(_options.HandOffGrace.TotalSeconds * _time.TimestampFrequency);
            return;
        }

        if (!partition.Allocated.IsCompleted)
        {
            return;
        }

        if (!partition.Allocated.IsCompletedSuccessfully)
        {
            partition.Allocated = null; // asked again at the next pass
            return;
        }

        if (_options.ShardHome is { } shardHome)
        {
            partition.Home ??= shardHome(p);
            if (!partition.Home.IsCompleted)
            {
                return;
            }

            if (!partition.Home.IsCompletedSuccessfully || !partition.Home.Result)
            {
                partition.Home = null;
                partition.RestartAt = _time.GetTimestamp() + _time.TimestampFrequency; // asked again in a second
                return;
            }
        }

        if (!partition.Recovering.IsCompletedSuccessfully)
        {
            Restart(consumer, p, partition.Coordinator, "its coordinator did not recover within " + _options.HandOffTimeout);
            return;
        }

        var status = partition.Recovering.Result;
        TopicPartitionOffset From(string topic) =>
            new(topic, p, status.CommittedOffsets.TryGetValue(topic, out var next) ? new Offset(next) : Offset.Beginning);
        var missing = Topics.Inputs.Where(t => !partition.Topics.Contains(t)).ToList();
        if (missing.Count > 0)
        {
            // Still assigned when the partition came back before DropFollowers ran: sought like the lead topic.
            var assigned = consumer.Assignment.Where(tp => tp.Partition.Value == p).Select(tp => tp.Topic).ToHashSet(StringComparer.Ordinal);
            partition.Topics.UnionWith(missing.Where(assigned.Contains));
        }

        var followers = Topics.Inputs.Where(t => !partition.Topics.Contains(t)).Select(From).ToList();
        if (followers.Count > 0)
        {
            // The other input topics' partition p joins the assignment where the checkpoint ends (after an assignment;
            // a restart finds them assigned, and seeks them with the lead topic's).
            try
            {
                consumer.IncrementalAssign(followers);
                _followRetries = 0;
            }
            catch (KafkaException ex) when (!ex.Error.IsFatal)
            {
                FollowRetry(ex);
                return; // tried again at the next pass
            }

            partition.Topics.UnionWith(followers.Select(f => f.Topic));
        }

        var tps = partition.Topics.Select(t => new TopicPartition(t, p)).ToList();
        foreach (var tp in tps)
        {
            var from = From(tp.Topic);
            if (!followers.Any(f => f.Topic == tp.Topic))
            {
                consumer.Seek(from);
            }

            partition.Sent.Remove(tp.Topic);
            partition.StartedAt[tp.Topic] = from.Offset == Offset.Beginning ? 0 : from.Offset.Value;
        }

        var now = _time.GetTimestamp();
        partition.SinceCheckpoint = 0;
        partition.SinceRequest = 0;
        partition.Requested = null;
        partition.LastCheckpointAt = now;
        partition.LastRecordAt = now;
        partition.RestartAt = 0;
        partition.Recovering = null;
        partition.Paused = false;
        consumer.Resume(tps);
        var offsets = string.Join(", ", status.CommittedOffsets.Select(o => $"{o.Key}@{o.Value}"));
        if (partition.Restarts == 0)
        {
            LogRecovered(p, status.CommittedSeq, offsets);
            _options.PartitionTakenOver?.Invoke(p);
        }
        else
        {
            LogRestarted(p, status.CommittedSeq, offsets);
        }
    }

    private void Post(object message)
    {
        _inbox.Enqueue(message);
        _signal.Release();
    }

    /// <summary>What the ingestion knows of one owned partition (touched by the consumer thread only).</summary>
    private sealed class Partition(IActorRef coordinator, long startedAt)
    {
        public IActorRef Coordinator { get; set; } = coordinator;

        /// <summary>0 while running; while restarting, when the next coordinator may start (<see cref="TimeProvider.GetTimestamp"/>).</summary>
        public long RestartAt { get; set; }

        /// <summary>Restarts since the partition last completed a checkpoint (the back-off doubles with each).</summary>
        public int Restarts { get; set; }

        /// <summary>While restarting: the new coordinator's first status, answered once it has recovered.</summary>
        public Task<CoordinatorStatus>? Recovering { get; set; }

        /// <summary>The update of the external shard allocation that puts this partition's shard on this node (null: not asked yet).</summary>
        public Task? Allocated { get; set; }

        /// <summary>Whether the shard is hosted here yet (<see cref="IngestionOptions.ShardHome"/>; null: not asked since the last restart).</summary>
        public Task<bool>? Home { get; set; }

        public HashSet<string> Topics { get; } = new(StringComparer.Ordinal);

        /// <summary>The next offset per topic sent to the coordinator.</summary>
        public Dictionary<string, long> Sent { get; } = new(StringComparer.Ordinal);

        public long SinceCheckpoint { get; set; }

        public long SinceRequest { get; set; }

        public long LastCheckpointAt { get; set; } = startedAt;

        public long LastRecordAt { get; set; } = startedAt;

        /// <summary>The offset consumption started at per topic (before any record was sent).</summary>
        public Dictionary<string, long> StartedAt { get; } = new(StringComparer.Ordinal);

        public long RequestedAt { get; set; }

        public Dictionary<string, long>? Requested { get; set; }

        public CheckpointCompleted? Completed { get; set; }

        /// <summary>
        /// The latest checkpoint whose offsets the broker refused to commit (e.g. during a rebalance) and no later commit
        /// covered; committed again from <see cref="CommitRetryAt"/> (<see cref="TimeProvider.GetTimestamp"/>). Null: none.
        /// </summary>
        public CheckpointCompleted? Uncommitted { get; set; }

        public long CommitRetryAt { get; set; }

        public bool Paused { get; set; }
    }

    /// <summary>
    /// The coordinators' listener: produces their dead letters (again until the broker acknowledges each), answers a
    /// checkpoint's flush once every dead letter of its partition is acknowledged, and passes checkpoints to the
    /// consumer thread.
    /// </summary>
    private sealed class Listener : UntypedActor, IWithTimers
    {
        private static readonly TimeSpan RetryAfter = TimeSpan.FromMilliseconds(200);
        private readonly ShardedIngestion _owner;
        private readonly Dictionary<int, int> _unacknowledged = [];
        private readonly Dictionary<int, (long Seq, IActorRef Coordinator)> _flushes = [];

        /// <summary>
        /// Checkpoint numbers reserved per write to the counter: one, so the stored number is the last one handed out
        /// (the mirror's resync and catch-up write with it; a partition checkpoint writes its customers anyway).
        /// </summary>
        private const long NumbersPerReservation = 1;

        /// <summary>How often (in checkpoint numbers) the numbers Redis already has are forgotten.</summary>
        private const long NumbersPerPrune = 512;

        /// <summary>The highest checkpoint number reserved.</summary>
        private long _reserved;

        /// <summary>With a mirror: the rule version each owned partition's next checkpoints carry, as of its last completed one.</summary>
        private readonly Dictionary<int, string> _versions = [];

        /// <summary>With a mirror: completed checkpoints waiting for every partition to reach their rule version.</summary>
        private readonly List<CheckpointCompleted> _held = [];

        /// <summary>Checkpoints whose firings the sink has not taken yet (retried), with their coordinator, by partition.</summary>
        private readonly Dictionary<int, (CheckpointCompleted Done, IActorRef Coordinator)> _unstored = [];

        public Listener(ShardedIngestion owner)
        {
            _owner = owner;
            _reserved = owner.CheckpointSeq;
        }

        public ITimerScheduler Timers { get; set; } = null!;

        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case DeadLettered letter:
                    _owner.LogDeadLetter(letter.Topic, letter.Partition, letter.Offset, letter.Code, letter.Detail);
                    _owner._instruments?.DeadLetters.Add(1, new KeyValuePair<string, object?>("reason", letter.Code));
                    _unacknowledged[letter.Partition] = _unacknowledged.GetValueOrDefault(letter.Partition) + 1;
                    Interlocked.Increment(ref _owner._unacknowledged);
                    Produce(letter);
                    break;
                case Delivered delivered when delivered.Error is null:
                    Interlocked.Increment(ref _owner._deadLetters);
                    _unacknowledged[delivered.Letter.Partition] -= 1;
                    Interlocked.Decrement(ref _owner._unacknowledged);
                    AnswerFlush(delivered.Letter.Partition);
                    break;
                case Delivered failed:
                    _owner.LogDeadLetterRetry(failed.Letter.Topic, failed.Letter.Partition, failed.Letter.Offset, failed.Error!);
                    _owner._instruments?.DeadLettersRetried.Add(1);
                    Timers.StartSingleTimer(failed.Letter, new Retry(failed.Letter), RetryAfter);
                    break;
                case Retry retry:
                    Produce(retry.Letter);
                    break;
                case FlushDeadLetters flush:
                    if (_unacknowledged.GetValueOrDefault(flush.Partition) > 0)
                    {
                        // The checkpoint waits for the broker (README "Bad input").
                        _owner._instruments?.CheckpointsDeferred.Add(1);
                    }

                    _flushes[flush.Partition] = (flush.Seq, Sender);
                    AnswerFlush(flush.Partition);
                    break;
                case CheckpointCompleted done:
                    Store(done, Sender);
                    break;
                case PartitionReleased released:
                    _versions.Remove(released.Partition);
                    ReleaseHeld();
                    break;
                case StoreAgain again when _unstored.Remove(again.Partition, out var unstored):
                    Store(unstored.Done, unstored.Coordinator);
                    break;
                case CheckpointFailed or PartitionFailed:
                    _owner.Post(message);
                    break;
                case WatchCoordinator watch:
                    Context.Watch(watch.Coordinator);
                    break;
                case Terminated terminated:
                    _owner.Post(new CoordinatorStopped(terminated.ActorRef));
                    break;
                case StoreAgain:
                    break;
                default:
                    Unhandled(message);
                    break;
            }
        }

        /// <summary>
        /// Hands a checkpoint's firings to the sink, then its offsets to the consumer thread. Until the sink takes them
        /// (retried), nothing is committed and the partition's next checkpoint cannot complete: its flush waits.
        /// </summary>
        private void Store(CheckpointCompleted done, IActorRef coordinator)
        {
            try
            {
                _owner._firings?.Append(done.Firings);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                _owner.LogFiringsRetry(done.Partition, done.Seq, done.Firings.Count, ex.Message);

                // A restarted coordinator's recovered checkpoint that is the one still waiting here was never numbered
                // nor mirrored: it still must be.
                if (done.Recovered && _unstored.TryGetValue(done.Partition, out var waiting) && !waiting.Done.Recovered && waiting.Done.Seq == done.Seq)
                {
                    done = done with { Recovered = false };
                }

                _unstored[done.Partition] = (done, coordinator);
                Timers.StartSingleTimer(("firings", done.Partition), new StoreAgain(done.Partition), RetryAfter);
                return;
            }

            coordinator.Tell(new FiringsStored(done.Partition, done.Seq));
            if (!done.Recovered)
            {
                Number(done);
            }

            _owner.Post(done);
            AnswerFlush(done.Partition);
        }

        /// <summary>
        /// Numbers a completed checkpoint and hands its customers to the mirror. With a mirror, a checkpoint waits while
        /// some partition's last one ran an older rule set (see <see cref="IngestionOptions.Mirror"/>).
        /// </summary>
        private void Number(CheckpointCompleted done)
        {
            if (_owner._options.Mirror is not { } mirror)
            {
                NextNumber();
                return;
            }

            if (mirror.SeqSource == MirrorSeqSource.CustomerVersion)
            {
                // Each customer's version orders its writes: nothing to hold back, and no number to keep for a catch-up.
                mirror.Publish(NextNumber(), done.Projections);
                return;
            }

            // Where the partition is going: once it has passed its switching checkpoint, no older set can come from it.
            _versions[done.Partition] = done.NextRuleVersion is { Length: > 0 } next ? next : done.RuleVersion;
            _held.Add(done);
            ReleaseHeld();
        }

        /// <summary>
        /// Hands on every held checkpoint whose rule set no partition is behind: older sets first (a partition's switching
        /// checkpoint, still under the old set, may arrive after newer ones it released), in arrival order within a set.
        /// </summary>
        private void ReleaseHeld()
        {
            var rules = _owner._rules;
            var oldest = _versions.Count == 0 ? int.MaxValue : _versions.Values.Min(rules.Order);
            var ready = _held.Where(done => rules.Order(done.RuleVersion) <= oldest).OrderBy(done => rules.Order(done.RuleVersion)).ToList();
            foreach (var done in ready)
            {
                _held.Remove(done);
                var number = NextNumber();
                RecordNumber(new CheckpointNumber(done.Partition, done.Seq, number, done.RuleVersion));
                _owner._options.Mirror!.Publish(number, done.Projections);
            }
        }

        /// <summary>
        /// Stores which number a checkpoint got, before the mirror is handed its customers (a crash in between leaves a
        /// number above the mirror's marker, which the catch-up publishes), and now and then forgets what Redis has.
        /// </summary>
        private void RecordNumber(CheckpointNumber number)
        {
            if (_owner._options.Counter is not { } counter)
            {
                return;
            }

            try
            {
                counter.Record(number);
                if (number.Number % NumbersPerPrune == 0)
                {
                    counter.Prune(_owner._options.Mirror!.MirroredSeq);
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // As for a number not reserved: a catch-up after a crash would publish these customers under a new number.
                _owner.LogNumberNotStored(number.Number, ex.Message);
            }
        }

        /// <summary>The node's next checkpoint number, stored in the counter before it is handed out.</summary>
        private long NextNumber()
        {
            var next = Interlocked.Increment(ref _owner._checkpointSeq);
            if (next > _reserved)
            {
                _reserved = next + NumbersPerReservation - 1;
                try
                {
                    _owner._options.Counter?.Reserve(_reserved);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // Not worth stopping the listener (its flushes and dead letters): the number is used anyway. Only a
                    // restart before the next stored one could hand it out again, and the mirror would keep the newer
                    // states it holds until the numbers pass them.
                    _owner.LogNumberNotStored(next, ex.Message);
                }
            }

            return next;
        }

        /// <summary>Answers a waiting flush once the partition's dead letters are acknowledged and its firings stored.</summary>
        private void AnswerFlush(int partition)
        {
            if (_unacknowledged.GetValueOrDefault(partition) == 0 && !_unstored.ContainsKey(partition) && _flushes.Remove(partition, out var waiting))
            {
                waiting.Coordinator.Tell(new DeadLettersFlushed(partition, waiting.Seq));
            }
        }

        private void Produce(DeadLettered letter)
        {
            var headers = new Headers
            {
                { "error", Encoding.UTF8.GetBytes(new DecodeError(letter.Code, letter.Detail).ToString()) },
                { "source-topic", Encoding.UTF8.GetBytes(letter.Topic) },
                { "source-partition", Encoding.UTF8.GetBytes(letter.Partition.ToString(CultureInfo.InvariantCulture)) },
                { "source-offset", Encoding.UTF8.GetBytes(letter.Offset.ToString(CultureInfo.InvariantCulture)) },
            };
            var self = Self;
            try
            {
                _owner._producer!.Produce(
                    Topics.DeadLetters,
                    new Message<byte[]?, byte[]?> { Key = letter.Key, Value = letter.Value, Headers = headers },
                    report => self.Tell(new Delivered(letter, report.Error.IsError ? report.Error.Reason : null)));
            }
            catch (ProduceException<byte[]?, byte[]?> ex)
            {
                self.Tell(new Delivered(letter, ex.Error.Reason));
            }
        }

        private sealed record Delivered(DeadLettered Letter, string? Error);

        private sealed record Retry(DeadLettered Letter);

        private sealed record StoreAgain(int Partition);
    }

    /// <summary>Tells the listener to watch a coordinator: its stop, asked for or not, reaches the consumer thread.</summary>
    private sealed record WatchCoordinator(IActorRef Coordinator);

    /// <summary>This node no longer owns the partition: the mirror stops waiting for it.</summary>
    private sealed record PartitionReleased(int Partition);

    /// <summary>A coordinator stopped (the listener saw it terminate).</summary>
    private sealed record CoordinatorStopped(IActorRef Coordinator);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Partition {Partition}: the offsets of checkpoint {Seq} were not committed ({Code}: {Reason}); its state is durable, and the commit is tried again each second until it or a later checkpoint's commit succeeds")]
    private partial void LogCommitFailed(int partition, long seq, string code, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Partition {Partition}: the offsets of checkpoint {Seq} were committed on a later try")]
    private partial void LogCommitRetried(int partition, long seq);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A rebalance was interrupted ({Code}: {Reason}); the consumer rejoins the group")]
    private partial void LogRebalanceInterrupted(string code, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The other input topics' partitions could not follow the {Lead} assignment yet ({Code}: {Reason}); trying again at the next poll")]
    private partial void LogFollowRetry(string lead, string code, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading {Topic}[{Partition}] failed ({Code}: {Reason}); the consumer keeps trying (logged once per topic and error)")]
    private partial void LogConsumeError(string topic, int partition, string code, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Assigned {Count} topic partitions; coordinators started for partitions [{Partitions}]")]
    private partial void LogAssigned(int count, string partitions);

    [LoggerMessage(Level = LogLevel.Information, Message = "Released partitions [{Partitions}] (checkpointed first: {Checkpointed})")]
    private partial void LogReleased(string partitions, bool checkpointed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Partition {Partition}: no checkpoint covered every record sent before the hand-off deadline; the new owner re-reads them")]
    private partial void LogHandOffTimedOut(int partition);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dead letter from {Topic}[{Partition}]@{Offset}: {Code}: {Detail}")]
    private partial void LogDeadLetter(string topic, int partition, long offset, string code, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dead letter from {Topic}[{Partition}]@{Offset} not delivered ({Reason}); producing it again")]
    private partial void LogDeadLetterRetry(string topic, int partition, long offset, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Partition {Partition}: the {Count} firings of checkpoint {Seq} were not stored ({Reason}); retrying, offsets wait")]
    private partial void LogFiringsRetry(int partition, long seq, int count, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Checkpoint number {Number} could not be stored ({Reason}); used anyway")]
    private partial void LogNumberNotStored(long number, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Partition {Partition} paused: {Reason}; it restarts from its last checkpoint in {DelayMs} ms (restart {Restarts} in a row)")]
    private partial void LogRestarting(int partition, string reason, long delayMs, int restarts);

    [LoggerMessage(Level = LogLevel.Information, Message = "Partition {Partition} assigned here: recovered at checkpoint {Seq}; consuming from [{Offsets}]")]
    private partial void LogRecovered(int partition, long seq, string offsets);

    [LoggerMessage(Level = LogLevel.Information, Message = "Partition {Partition} restarted from its last checkpoint (checkpoint {Seq}); consuming again from [{Offsets}]")]
    private partial void LogRestarted(int partition, long seq, string offsets);

    [LoggerMessage(Level = LogLevel.Error, Message = "Ingestion stopped on an error")]
    private partial void LogFailed(Exception ex);

    [LoggerMessage(Level = LogLevel.Debug, Message = "librdkafka {Level}: {Message}")]
    private partial void LogKafka(string level, string message);
}
