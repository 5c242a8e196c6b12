using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;
using Streaming.Connectors.Telemetry;

namespace Streaming.Connectors.Kafka;

/// <summary>
/// The engine's runtime: a consumer-group member on its own thread, with one <see cref="PartitionHost"/> per assigned
/// partition number. Every record is applied on that thread; every checkpoint interval the changed customers and the
/// offsets they reflect are written in one store transaction, and only then committed to Kafka. A checkpoint waits
/// until the broker has acknowledged every dead letter of the records it covers (failed ones are produced again), and
/// consumption pauses while too many records wait for it. On assignment the consumer seeks to the store's offsets (the
/// store is the truth); on revoke it checkpoints first.
/// </summary>
public sealed partial class KafkaEngine : IStreamingEngine
{
    private readonly EngineOptions _options;
    private readonly IStateStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Dictionary<int, PartitionHost> _hosts = [];
    private readonly HashSet<TopicPartition> _assigned = [];

    /// <summary>Failed wake-ups already logged, per partition host (hosts count from zero when created).</summary>
    private readonly Dictionary<int, long> _reportedWakeUpFailures = [];
    private readonly ConcurrentQueue<Action> _queries = new();
    private readonly Dictionary<TopicPartition, (long At, long High)> _queriedWatermarks = [];
    private readonly List<double> _checkpointMs = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IProducer<byte[]?, byte[]?>? _deadLetterProducer;
    private Thread? _thread;
    private Task<double>? _write;
    private CheckpointBatch? _writeBatch;
    private long _sinceCheckpoint;
    private long _lastCheckpointAt;
    private long _lastStatusAt;

    // Dead letters produced and not yet acknowledged by the broker, those waiting to be produced again included. A
    // checkpoint is written only while this is zero: it covers every record processed so far.
    private long _unacknowledgedDeadLetters;

    // Dead letters whose delivery failed (message timeout, local queue full), with the reason: the engine thread
    // produces them again. They are never dropped; a crash loses them together with the checkpoint they hold back.
    private readonly ConcurrentQueue<(Message<byte[]?, byte[]?> Message, string Reason)> _failedDeadLetters = new();
    private volatile string? _lastDeadLetterFailure;
    private volatile string? _deadLetterFatal;
    private long _lastDeadLetterRetryAt;
    private long _deadLetterRetries;
    private long _checkpointsDeferred;

    // The last checkpoint attempt was deferred (dead letters unacknowledged); the next one is due after this many
    // records since the last written checkpoint, after the interval, or as soon as every dead letter is acknowledged.
    private bool _checkpointDeferred;
    private long _nextCheckpointAfterEvents;

    // Consumption is paused while a deferred checkpoint holds back more than two checkpoints' worth of records.
    private bool _consumptionPaused;
    private int _pausedPartitions;
    private volatile EngineStatus _status = EngineStatus.Empty;
    private readonly Dictionary<int, long> _lastRecordAt = [];
    private volatile RuleSet _rules;
    private volatile RuleSet? _pendingRules;
    private long _lastIdleCheckAt;

    /// <summary>The key under which the active rule set is stored with the checkpoints.</summary>
    public const string RulesSettingKey = "rules";

    private readonly IStateMirror? _mirror;
    private readonly EngineInstruments? _instruments;

    // Records processed by input topic and event type (type 0: dead letter), on the engine thread only.
    private readonly long[,] _eventCounts = new long[Topics.Inputs.Count, 16];
    private long _retiredLoads;
    private long _retiredTimers;
    private long _retiredLate;
    private long _lastCommitAt;
    private volatile EngineMetricsSnapshot _metrics = EngineMetricsSnapshot.Empty;

    public KafkaEngine(EngineOptions options, IStateStore store, TimeProvider time, ILogger logger, RuleSet? rules = null, IStateMirror? mirror = null, EngineInstruments? instruments = null)
    {
        _mirror = mirror;
        _instruments = instruments;
        instruments?.Observe(() => _metrics);
        _options = mirror is null || options.Host.CollectProjections ? options : options with { Host = options.Host with { CollectProjections = true } };

        // occurredAt is bounded by the engine's clock as well as by the broker timestamp (a producer's clock may be wrong).
        _options = _options with { Host = _options.Host with { Decoder = _options.Host.Decoder with { Clock = time } } };
        _store = store;
        _time = time;
        _logger = logger;
        _rules = rules ?? RuleSetLoader.Default;
        _rulesStored = RuleSetStorage.StoredVersion(store, RulesSettingKey) == _rules.Version;
    }

    /// <summary>
    /// Whether the store holds the running rule set. The first checkpoint stores it if not, so a restart can tell the
    /// set the state was evaluated under (and the audit trail records a rule set from the directory only once).
    /// </summary>
    private bool _rulesStored;

    /// <summary>Called on the engine thread after a checkpoint holding firings is durable (the relay's cue).</summary>
    public Action? FiringsCommitted { get; set; }

    /// <summary>Outreach counts by channel and state, for metrics (read every few seconds on the engine thread).</summary>
    public Func<IReadOnlyDictionary<(string Channel, string State), long>>? OutreachStats { get; set; }

    private IReadOnlyDictionary<(string Channel, string State), long> _outreachStats = new Dictionary<(string, string), long>();
    private long _outreachStatsAt;

    /// <summary>The rule set every partition evaluates with.</summary>
    public RuleSet ActiveRules => _rules;

    /// <summary>A rule set waiting for the next checkpoint boundary, or null.</summary>
    public RuleSet? PendingRules => _pendingRules;

    /// <summary>
    /// Asks for <paramref name="rules"/> to replace the active set. All partitions switch together at the next
    /// checkpoint boundary (within the checkpoint interval), and the switch is stored with that checkpoint.
    /// </summary>
    public void SwitchRules(RuleSet rules) => _pendingRules = rules;

    public long EventsProcessed => Interlocked.Read(ref _eventsProcessed);

    public long DeadLetters => Interlocked.Read(ref _deadLetters);

    public long Duplicates => Interlocked.Read(ref _duplicates);

    public long Checkpoints => Interlocked.Read(ref _checkpoints);

    /// <summary>Checkpoint attempts put off because dead letters were not yet acknowledged by the broker.</summary>
    public long CheckpointsDeferred => Interlocked.Read(ref _checkpointsDeferred);

    /// <summary>Dead letters produced and not yet acknowledged by the broker (failed ones waiting to be produced again included).</summary>
    public long UnacknowledgedDeadLetters => Interlocked.Read(ref _unacknowledgedDeadLetters);

    /// <summary>Dead letters produced again after a failed delivery (each attempt counts).</summary>
    public long DeadLetterRetries => Interlocked.Read(ref _deadLetterRetries);

    /// <summary>True once partitions are assigned and the engine is consuming.</summary>
    public bool Ready => _status.Partitions.Count > 0;

    /// <summary>A snapshot refreshed by the engine thread about twice a second.</summary>
    public EngineStatus Status => _status;

    /// <summary>Completes when the engine thread has ended (cleanly or by a fatal error).</summary>
    public Task Stopped => _stopped.Task;

    private long _eventsProcessed;
    private long _deadLetters;
    private long _duplicates;
    private long _checkpoints;

    private long _startedAt;

    public void Start()
    {
        _startedAt = _time.GetTimestamp();
        _thread = new Thread(Run) { Name = "streaming-engine", IsBackground = true };
        _thread.Start();
    }

    /// <summary>Checkpoints, commits and leaves the group; waits at most <paramref name="timeout"/>.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _stopped.Task.WaitAsync(timeout).ConfigureAwait(false);
    }

    /// <summary>Runs <paramref name="query"/> on the engine thread, which owns all customer state.</summary>
    public Task<T> QueryAsync<T>(Func<EngineView, T> query, CancellationToken cancellationToken)
    {
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_stopped.Task.IsCompleted)
        {
            tcs.SetException(new EngineStoppedException());
            return tcs.Task;
        }

        _queries.Enqueue(() =>
        {
            try
            {
                tcs.TrySetResult(query(new EngineView(this)));
            }
            catch (Exception ex)
            {
                tcs.TrySetException(ex);
            }
        });
        return tcs.Task.WaitAsync(cancellationToken);
    }

    /// <inheritdoc />
    public Task<CustomerLookup> LookupAsync(string customerId, CancellationToken cancellationToken) =>
        QueryAsync(view => view.Lookup(customerId), cancellationToken);

    /// <inheritdoc />
    public Task<PopulationView> PopulationAsync(CancellationToken cancellationToken) =>
        QueryAsync(view => view.Population(), cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyDictionary<(string Rule, string Counter, string Group), long>> RuleCountersAsync(CancellationToken cancellationToken) =>
        QueryAsync<IReadOnlyDictionary<(string Rule, string Counter, string Group), long>>(view => view.RuleCounters(), cancellationToken);

    /// <summary>Checkpoint durations so far, in milliseconds (for the benchmark).</summary>
    public double[] CheckpointDurationsMs()
    {
        lock (_checkpointMs)
        {
            return [.. _checkpointMs];
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _thread?.Join(TimeSpan.FromSeconds(15));
        _stop.Dispose();
    }

    private void Run()
    {
        try
        {
            _deadLetterProducer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig
            {
                BootstrapServers = _options.BootstrapServers,
                EnableIdempotence = true,
                Acks = Acks.All,
                LingerMs = 5,
                CompressionType = CompressionType.Lz4,
                ClientId = "streaming-engine-dlq",
                MessageTimeoutMs = (int)_options.DeadLetterTimeout.TotalMilliseconds,
            })
            .SetLogHandler((_, m) => LogKafka(m))
            .SetErrorHandler((_, e) =>
            {
                // A fatal producer error (e.g. the idempotent producer lost its sequence) would fail every dead letter
                // from now on and hold back every checkpoint: end the engine loudly instead.
                if (e.IsFatal)
                {
                    _deadLetterFatal = e.Reason;
                }
            })
            .Build();
            _nextCheckpointAfterEvents = _options.CheckpointEveryEvents;

            using var consumer = BuildConsumer();
            consumer.Subscribe(Topics.Inputs);
            _lastCheckpointAt = _time.GetTimestamp();
            while (!_stop.IsCancellationRequested)
            {
                if (_deadLetterFatal is { } fatal)
                {
                    throw new InvalidOperationException("the dead-letter producer failed fatally: " + fatal);
                }

                ConsumeResult<byte[]?, byte[]?>? result;
                try
                {
                    // A short timeout bounds how long an HTTP query waits for this thread when no records flow.
                    result = consumer.Consume(5);
                }
                catch (ConsumeException ex) when (!ex.Error.IsFatal)
                {
                    LogConsumeError(ex.Error.Reason);
                    continue;
                }

                if (result is { IsPartitionEOF: false, Message: not null })
                {
                    Handle(result);
                }

                DrainQueries();
                ProduceFailedDeadLetters(force: false);
                if (_write is { IsCompleted: true })
                {
                    FinishWrite(consumer);
                }

                var now = _time.GetTimestamp();
                if (_sinceCheckpoint >= _nextCheckpointAfterEvents
                    || _time.GetElapsedTime(_lastCheckpointAt, now) >= _options.CheckpointInterval
                    || (_checkpointDeferred && Interlocked.Read(ref _unacknowledgedDeadLetters) == 0))
                {
                    if (_write is null)
                    {
                        StartCheckpoint(background: true);
                    }
                    else if (_sinceCheckpoint >= 2L * _options.CheckpointEveryEvents)
                    {
                        // The writer falls behind: wait for it rather than let unsaved changes pile up.
                        FinishWrite(consumer);
                    }
                }

                ApplyBackpressure(consumer);
                if (_time.GetElapsedTime(_lastStatusAt, now) >= TimeSpan.FromMilliseconds(500))
                {
                    RefreshStatus(consumer);
                }

                foreach (var host in _hosts.Values)
                {
                    if (host.Sweeping)
                    {
                        host.SweepStep(256);
                    }
                }

                if (_options.TimeMode == TimeMode.Hybrid && _time.GetElapsedTime(_lastIdleCheckAt, now) >= TimeSpan.FromSeconds(1))
                {
                    AdvanceIdlePartitions(now);
                }
            }

            Checkpoint(consumer);
            LogStopping(_store.LastCheckpointSeq);
            consumer.Close();
            _stopped.TrySetResult();
        }
        catch (Exception ex)
        {
            LogFatal(ex);
            _stopped.TrySetException(ex);
        }
        finally
        {
            // Bounded so that a stop stays within the host's 8 s: dead letters still unacknowledged now are not lost,
            // since no checkpoint covers their records (the final one was deferred), which are re-read at the next start.
            _deadLetterProducer?.Flush(TimeSpan.FromSeconds(2));
            _deadLetterProducer?.Dispose();

            // Answer queries that arrived while stopping, so no HTTP request waits for a thread that is gone.
            DrainQueries();
        }
    }

    private IConsumer<byte[]?, byte[]?> BuildConsumer() =>
        new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = _options.BootstrapServers,
            GroupId = _options.GroupId,
            ClientId = "streaming-engine",
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky,
            SessionTimeoutMs = _options.SessionTimeoutMs,
            HeartbeatIntervalMs = Math.Max(500, _options.SessionTimeoutMs / 4),
            EnablePartitionEof = false,
            // librdkafka's own prefetch threshold (queued.min.messages) is kept: the 1,000,000 this engine set for
            // librdkafka 2.0.2, where a consumer slower than its fetcher starved, gains nothing measurable on 2.16 and
            // held about 110 MB more at peak (bench, three runs each, 2026-11-30).
            QueuedMaxMessagesKbytes = _options.PrefetchMaxKbytes,
        })
        .SetLogHandler((_, m) => LogKafka(m))
        .SetErrorHandler((_, e) =>
        {
            if (e.IsFatal)
            {
                throw new KafkaException(e);
            }

            LogConsumeError(e.Reason);
        })
        .SetPartitionsAssignedHandler(OnAssigned)
        .SetPartitionsRevokedHandler(OnRevoked)
        .SetPartitionsLostHandler(OnLost)
        .Build();

    private void Handle(ConsumeResult<byte[]?, byte[]?> result)
    {
        if (!Topics.TryParseInput(result.Topic, out var topic))
        {
            return;
        }

        var partition = result.Partition.Value;
        if (!_hosts.TryGetValue(partition, out var host))
        {
            // A record of a partition we no longer own (revoked between fetch and delivery): the new owner reads it.
            return;
        }

        if (_options.TimeMode == TimeMode.Hybrid)
        {
            _lastRecordAt[partition] = _time.GetTimestamp();
        }

        var message = result.Message;
        RecordOutcome outcome;
        DecodeError error;
        if (BrokerTime.TryGet(message.Timestamp, out var brokerTime))
        {
            outcome = host.Process(topic, result.Offset.Value, message.Key, message.Value, brokerTime, out error);
        }
        else
        {
            outcome = host.Refuse(topic, result.Offset.Value);
            error = BrokerTime.OutOfRange(message.Timestamp);
        }

        _eventCounts[(int)topic, outcome == RecordOutcome.DeadLetter ? 0 : (int)host.LastEventType]++;
        if (_instruments is { } instruments && brokerTime is { } appended)
        {
            instruments.ProcessingLatency.Record((_time.GetUtcNow() - appended).TotalSeconds);
        }

        _sinceCheckpoint++;
        Interlocked.Increment(ref _eventsProcessed);
        switch (outcome)
        {
            case RecordOutcome.Duplicate:
                Interlocked.Increment(ref _duplicates);
                break;
            case RecordOutcome.DeadLetter:
                DeadLetter(result, error);
                break;
        }
    }

    private void DeadLetter(ConsumeResult<byte[]?, byte[]?> result, DecodeError error)
    {
        Interlocked.Increment(ref _deadLetters);
        _instruments?.DeadLetters.Add(1, new KeyValuePair<string, object?>("reason", error.Code));
        LogDeadLetter(result.Topic, result.Partition.Value, result.Offset.Value, error.Code, error.Detail);
        var headers = new Headers
        {
            { "error", Encoding.UTF8.GetBytes(error.ToString()) },
            { "source-topic", Encoding.UTF8.GetBytes(result.Topic) },
            { "source-partition", Encoding.UTF8.GetBytes(result.Partition.Value.ToString(CultureInfo.InvariantCulture)) },
            { "source-offset", Encoding.UTF8.GetBytes(result.Offset.Value.ToString(CultureInfo.InvariantCulture)) },
        };
        Interlocked.Increment(ref _unacknowledgedDeadLetters);
        ProduceDeadLetter(new Message<byte[]?, byte[]?> { Key = result.Message.Key, Value = result.Message.Value, Headers = headers });
    }

    /// <summary>
    /// Hands a dead letter to the producer. It counts as unacknowledged until the broker acknowledges it; a failed
    /// delivery (after the producer's own retries, at its message timeout) or a full local queue puts it on
    /// <see cref="_failedDeadLetters"/> to be produced again.
    /// </summary>
    private void ProduceDeadLetter(Message<byte[]?, byte[]?> message)
    {
        try
        {
            _deadLetterProducer!.Produce(
                Topics.DeadLetters,
                message,
                report =>
                {
                    if (report.Error.IsError)
                    {
                        _lastDeadLetterFailure = report.Error.Reason;
                        _failedDeadLetters.Enqueue((message, report.Error.Reason));
                    }
                    else
                    {
                        Interlocked.Decrement(ref _unacknowledgedDeadLetters);
                    }
                });
        }
        catch (ProduceException<byte[]?, byte[]?> ex) when (ex.Error.Code == ErrorCode.Local_QueueFull)
        {
            _lastDeadLetterFailure = ex.Error.Reason;
            _failedDeadLetters.Enqueue((message, ex.Error.Reason));
        }
    }

    /// <summary>Produces again the dead letters whose delivery failed (at most every 100 ms unless <paramref name="force"/>).</summary>
    private void ProduceFailedDeadLetters(bool force)
    {
        if (_failedDeadLetters.IsEmpty || (!force && _time.GetElapsedTime(_lastDeadLetterRetryAt) < TimeSpan.FromMilliseconds(100)))
        {
            return;
        }

        _lastDeadLetterRetryAt = _time.GetTimestamp();

        // Only those failed so far: one that fails again at once (a full queue) waits for the next round.
        var count = _failedDeadLetters.Count;
        var produced = 0;
        var reason = "";
        while (produced < count && _failedDeadLetters.TryDequeue(out var failed))
        {
            reason = failed.Reason;
            ProduceDeadLetter(failed.Message);
            produced++;
        }

        Interlocked.Add(ref _deadLetterRetries, produced);
        _instruments?.DeadLettersRetried.Add(produced);
        LogDeadLettersRetried(produced, reason);
    }

    /// <summary>
    /// Pauses consumption while a deferred checkpoint holds back two checkpoints' worth of records (memory stays bounded
    /// while the broker refuses dead letters), and resumes it once a checkpoint went through. The consumer keeps
    /// polling meanwhile, so the group membership and HTTP queries go on.
    /// </summary>
    private void ApplyBackpressure(IConsumer<byte[]?, byte[]?> consumer)
    {
        var hold = _checkpointDeferred && _sinceCheckpoint >= 2L * _options.CheckpointEveryEvents;
        if (hold)
        {
            var assignment = consumer.Assignment;
            if (!_consumptionPaused || assignment.Count != _pausedPartitions)
            {
                // Again after an assignment changed: newly assigned partitions start unpaused.
                consumer.Pause(assignment);
                if (!_consumptionPaused)
                {
                    LogConsumptionPaused(_sinceCheckpoint, Interlocked.Read(ref _unacknowledgedDeadLetters));
                }

                _consumptionPaused = true;
                _pausedPartitions = assignment.Count;
            }
        }
        else if (_consumptionPaused)
        {
            consumer.Resume(consumer.Assignment);
            _consumptionPaused = false;
            LogConsumptionResumed();
        }
    }

    /// <summary>Waits for any write in flight, then writes the current changes before returning (revoke, stop).</summary>
    private void Checkpoint(IConsumer<byte[]?, byte[]?> consumer)
    {
        FinishWrite(consumer);
        ProduceFailedDeadLetters(force: true);
        StartCheckpoint(background: false);
        FinishWrite(consumer);
    }

    /// <summary>
    /// Snapshots the changes of every host with the offsets they reflect and writes them in one store transaction, on
    /// a background thread when <paramref name="background"/> (the engine thread goes on consuming meanwhile).
    /// </summary>
    private void StartCheckpoint(bool background)
    {
        _lastCheckpointAt = _time.GetTimestamp();

        // The dead letters of the records this checkpoint covers (every record processed so far) must be on the broker
        // before their offsets are stored. They normally are within milliseconds; the wait is bounded so that an
        // outage of the broker does not hold the engine thread (queries, membership) for longer.
        if (Interlocked.Read(ref _unacknowledgedDeadLetters) > 0)
        {
            _deadLetterProducer!.Flush(background ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(3));
        }

        if (Interlocked.Read(ref _unacknowledgedDeadLetters) is var unacknowledged and > 0)
        {
            // Nothing is collected: the changes stay with their hosts and go into the next checkpoint, which is tried
            // again after the interval, after another CheckpointEveryEvents records, or as soon as all are acknowledged.
            _checkpointDeferred = true;
            _nextCheckpointAfterEvents = _sinceCheckpoint + _options.CheckpointEveryEvents;
            Interlocked.Increment(ref _checkpointsDeferred);
            _instruments?.CheckpointsDeferred.Add(1);
            LogCheckpointDeferred(unacknowledged, _lastDeadLetterFailure ?? "in flight");
            return;
        }

        _checkpointDeferred = false;
        _nextCheckpointAfterEvents = _options.CheckpointEveryEvents;

        var batch = new CheckpointBatch();
        foreach (var host in _hosts.Values)
        {
            host.CollectCheckpoint(batch);
        }

        // The boundary: everything collected above was evaluated with the old rules; all partitions switch now.
        if (Interlocked.Exchange(ref _pendingRules, null) is { } rules)
        {
            var previous = _rules;
            _rules = rules;
            foreach (var host in _hosts.Values)
            {
                host.SwitchRules(rules);
            }

            batch.Settings[RulesSettingKey] = RuleSetStorage.Serialize(rules);
            _rulesStored = true;
            LogRulesSwitched(previous.Version, rules.Version, _store.LastCheckpointSeq + 1);
        }
        else if (!_rulesStored)
        {
            batch.Settings[RulesSettingKey] = RuleSetStorage.Serialize(_rules);
            _rulesStored = true;
        }

        _sinceCheckpoint = 0;
        if (batch.States.Count == 0 && batch.Offsets.Count == 0 && batch.Settings.Count == 0)
        {
            return;
        }

        _writeBatch = batch;
        _write = background ? Task.Factory.StartNew(() => Write(batch), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default) : Task.FromResult(Write(batch));
    }

    private double Write(CheckpointBatch batch)
    {
        var started = _time.GetTimestamp();
        _store.Commit(batch);
        return _time.GetElapsedTime(started).TotalMilliseconds;
    }

    /// <summary>Waits for the write in flight; once durable, its customers may be passivated and its offsets go to Kafka.</summary>
    /// <exception cref="Exception">The store failed: fatal, the engine thread ends and the process restarts from the store.</exception>
    private void FinishWrite(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (_write is not { } write)
        {
            return;
        }

        var elapsed = write.GetAwaiter().GetResult();
        var batch = _writeBatch!;
        _write = null;
        _writeBatch = null;
        foreach (var host in _hosts.Values)
        {
            host.MarkClean();
        }

        Interlocked.Increment(ref _checkpoints);
        _lastCommitAt = _time.GetTimestamp();
        _instruments?.CheckpointDuration.Record(elapsed / 1000);
        _instruments?.CheckpointCustomers.Record(batch.States.Count);
        lock (_checkpointMs)
        {
            _checkpointMs.Add(elapsed);
        }

        // Durable now: the mirror may show it (never earlier, so it never shows a state a crash could take back). A
        // checkpoint without customer changes is published too, so the mirror knows which checkpoint it is at.
        _mirror?.Publish(_store.LastCheckpointSeq, batch.Projections);

        if (batch.Firings.Count > 0)
        {
            FiringsCommitted?.Invoke();
        }

        CommitToKafka(consumer, batch);
        Passivate();
    }

    private void CommitToKafka(IConsumer<byte[]?, byte[]?> consumer, CheckpointBatch batch)
    {
        var offsets = new List<TopicPartitionOffset>(batch.Offsets.Count);
        foreach (var row in batch.Offsets)
        {
            var tp = new TopicPartition(row.Topic, row.Partition);
            if (_assigned.Contains(tp))
            {
                offsets.Add(new TopicPartitionOffset(tp, row.NextOffset));
            }
        }

        if (offsets.Count == 0)
        {
            return;
        }

        try
        {
            // Kafka's committed offsets only inform lag monitoring and producer pacing; the store stays the truth.
            consumer.Commit(offsets);
        }
        catch (KafkaException ex)
        {
            LogCommitFailed(ex.Error.Reason);
        }
    }

    /// <summary>One of the partitions' population counters, summed over the partitions this node owns.</summary>
    private Dictionary<TKey, long> SumPopulation<TKey>(Func<Population, IReadOnlyDictionary<TKey, long>> counters)
        where TKey : notnull
    {
        var sum = new Dictionary<TKey, long>();
        foreach (var host in _hosts.Values)
        {
            foreach (var (key, n) in counters(host.Population))
            {
                sum[key] = sum.GetValueOrDefault(key) + n;
            }
        }

        return sum;
    }

    /// <summary>Hybrid time: partitions without records for a while follow the wall clock so their timers fire.</summary>
    private void AdvanceIdlePartitions(long now)
    {
        _lastIdleCheckAt = now;
        var wall = _time.GetUtcNow().UtcTicks;
        foreach (var host in _hosts.Values)
        {
            if (!_lastRecordAt.TryGetValue(host.Partition, out var last) || _time.GetElapsedTime(last, now) >= _options.IdleAfter)
            {
                host.AdvanceIdle(wall);
            }
        }
    }

    private void Passivate()
    {
        long total = 0;
        foreach (var host in _hosts.Values)
        {
            total += host.CachedCustomers;
        }

        if (total <= _options.MaxCachedCustomers)
        {
            return;
        }

        var keepShare = _options.MaxCachedCustomers * 0.9 / total;
        var touches = new List<long>();
        var evicted = 0;
        foreach (var host in _hosts.Values)
        {
            var evict = host.CachedCustomers - (int)(host.CachedCustomers * keepShare);
            if (evict <= 0)
            {
                continue;
            }

            touches.Clear();
            host.CollectCleanTouches(touches);
            if (touches.Count == 0)
            {
                continue;
            }

            touches.Sort();
            var cut = touches[Math.Min(evict, touches.Count) - 1] + 1;
            evicted += host.Passivate(cut);
        }

        Interlocked.Add(ref _passivations, evicted);
        LogPassivated(evicted, total);
    }

    private long _passivations;

    public long Passivations => Interlocked.Read(ref _passivations);

    private IEnumerable<TopicPartitionOffset> OnAssigned(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> partitions)
    {
        var stored = _store.LoadOffsets();
        var result = new List<TopicPartitionOffset>(partitions.Count);
        foreach (var tp in partitions)
        {
            if (!_hosts.TryGetValue(tp.Partition.Value, out var host))
            {
                host = new PartitionHost(tp.Partition.Value, _store, _options.Host, _rules);
                _hosts.Add(tp.Partition.Value, host);

                // Timers that fell due while nobody owned the partition (an outage) fire now, in due order.
                host.FireDueTimers();
            }

            _assigned.Add(tp);
            if (stored.TryGetValue(new TopicPartitionKey(tp.Topic, tp.Partition.Value), out var next))
            {
                host.SetNextOffset(tp.Topic, next);
                result.Add(new TopicPartitionOffset(tp, next));
            }
            else
            {
                result.Add(new TopicPartitionOffset(tp, Offset.Beginning));
            }
        }

        LogAssigned(partitions.Count, _assigned.Count);
        RefreshStatus(consumer);
        return result;
    }

    private void OnRevoked(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> partitions)
    {
        Checkpoint(consumer);
        Release(partitions);
        LogRevoked(partitions.Count, _assigned.Count);
        RefreshStatus(consumer);
    }

    private void OnLost(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> partitions)
    {
        // Another member may already own them: whatever was not checkpointed is re-read by the new owner. A write in
        // flight still lands first, so this node never reloads state older than it wrote.
        FinishWrite(consumer);
        Release(partitions);
        LogLost(partitions.Count);
        RefreshStatus(consumer);
    }

    private void Release(List<TopicPartitionOffset> partitions)
    {
        foreach (var tpo in partitions)
        {
            _assigned.Remove(tpo.TopicPartition);
            if (_hosts.TryGetValue(tpo.Partition.Value, out var host))
            {
                host.ForgetTopic(tpo.Topic);
                if (host.NextOffsets.Count == 0 && !HasAnyTopic(tpo.Partition.Value))
                {
                    // Keep the counters' totals monotonic when a host goes.
                    _retiredLoads += host.CustomerLoads;
                    _retiredTimers += host.TimersFired;
                    _retiredLate += host.LateTimersFired;
                    _hosts.Remove(tpo.Partition.Value);
                }
            }
        }
    }

    /// <summary>Logs and counts wake-ups and re-evaluations that failed since the last report (the hosts only count them).</summary>
    private void ReportFailedWakeUps()
    {
        foreach (var host in _hosts.Values)
        {
            var failed = host.FailedWakeUps;
            _reportedWakeUpFailures.TryGetValue(host.Partition, out var reported);
            if (failed > reported)
            {
                _reportedWakeUpFailures[host.Partition] = failed;
                _instruments?.WakeUpFailures.Add(failed - reported);
                LogWakeUpsFailed(host.Partition, failed - reported, host.LastWakeUpFailure ?? "");
            }
        }
    }

    private bool HasAnyTopic(int partition)
    {
        foreach (var tp in _assigned)
        {
            if (tp.Partition.Value == partition)
            {
                return true;
            }
        }

        return false;
    }

    private void RefreshStatus(IConsumer<byte[]?, byte[]?> consumer)
    {
        _lastStatusAt = _time.GetTimestamp();
        var rows = new List<PartitionStatus>(_assigned.Count);
        long totalLag = 0;
        long cached = 0;
        foreach (var host in _hosts.Values)
        {
            cached += host.CachedCustomers;
        }

        foreach (var tp in _assigned)
        {
            var host = _hosts[tp.Partition.Value];
            var next = host.NextOffsets.TryGetValue(tp.Topic, out var n) ? n : 0;
            var watermarks = consumer.GetWatermarkOffsets(tp);
            var high = watermarks.High.Value;
            if (high < 0)
            {
                high = QueriedHighWatermark(consumer, tp);
            }

            var lag = high < 0 ? 0 : Math.Max(0, high - next);
            totalLag += lag;
            rows.Add(new PartitionStatus(tp.Topic, tp.Partition.Value, next, lag, host.WatermarkTicks == 0 ? null : new DateTimeOffset(host.WatermarkTicks, TimeSpan.Zero)));
        }

        rows.Sort(static (a, b) => a.Topic == b.Topic ? a.Partition.CompareTo(b.Partition) : string.CompareOrdinal(a.Topic, b.Topic));

        // Firings not yet durable: still with their hosts, or in the checkpoint being written. They reach the outbox
        // with that checkpoint; taken in the same snapshot as the offsets, so 0 here means every firing of the
        // records processed so far is in the outbox or already published.
        long pendingFirings = _writeBatch?.Firings.Count ?? 0;
        foreach (var host in _hosts.Values)
        {
            pendingFirings += host.PendingFirings.Count;
        }

        _status = new EngineStatus(rows, rows.Count == 0 ? null : totalLag, cached, _store.LastCheckpointSeq, pendingFirings);
        ReportFailedWakeUps();
        if (_instruments is not null)
        {
            _metrics = MetricsSnapshot(rows, cached);
        }
    }

    private EngineMetricsSnapshot MetricsSnapshot(List<PartitionStatus> rows, long cached)
    {
        var events = new Dictionary<(string, string), long>();
        for (var t = 0; t < _eventCounts.GetLength(0); t++)
        {
            for (var e = 0; e < _eventCounts.GetLength(1); e++)
            {
                if (_eventCounts[t, e] > 0)
                {
                    events[(Topics.Inputs[t], e == 0 ? "invalid" : EventTypes.Name((EventType)e))] = _eventCounts[t, e];
                }
            }
        }

        if (OutreachStats is { } stats && (_outreachStatsAt == 0 || _time.GetElapsedTime(_outreachStatsAt) >= TimeSpan.FromSeconds(5)))
        {
            _outreachStatsAt = _time.GetTimestamp();
            _outreachStats = stats();
        }

        var watermarks = new Dictionary<int, DateTimeOffset>();
        long loads = _retiredLoads, timers = _retiredTimers, late = _retiredLate, inMemory = 0;
        foreach (var host in _hosts.Values)
        {
            if (host.WatermarkTicks > 0)
            {
                watermarks[host.Partition] = new DateTimeOffset(host.WatermarkTicks, TimeSpan.Zero);
            }

            loads += host.CustomerLoads;
            timers += host.TimersFired;
            late += host.LateTimersFired;
            inMemory += host.TimersInMemory;
        }

        return new EngineMetricsSnapshot
        {
            Events = events,
            Duplicates = Duplicates,
            Partitions = rows,
            Watermarks = watermarks,
            WallClock = _time.GetUtcNow(),
            CachedCustomers = cached,
            CustomerLoads = loads,
            Passivations = Passivations,
            Checkpoints = Checkpoints,
            DeadLettersUnacknowledged = UnacknowledgedDeadLetters,
            ConsumptionPaused = _consumptionPaused,
            SecondsSinceCheckpoint = _time.GetElapsedTime(_lastCommitAt == 0 ? _startedAt : _lastCommitAt).TotalSeconds,
            TimersFired = timers,
            TimersLate = late,
            TimersInMemory = inMemory,
            RuleVersion = _rules.Version,
            Population = SumPopulation(p => p.Counts),
            Transitions = SumPopulation(p => p.Transitions),
            RuleCounters = SumPopulation(p => p.RuleCounters),
            Outreach = _outreachStats,
        };
    }

    /// <summary>
    /// The log end of a partition the consumer has no fetch data for yet (e.g. an empty topic), asked of the broker at
    /// most every 10 s per partition, since the call blocks this thread.
    /// </summary>
    private long QueriedHighWatermark(IConsumer<byte[]?, byte[]?> consumer, TopicPartition tp)
    {
        var now = _time.GetTimestamp();
        if (_queriedWatermarks.TryGetValue(tp, out var known) && _time.GetElapsedTime(known.At, now) < TimeSpan.FromSeconds(10))
        {
            return known.High;
        }

        long high;
        try
        {
            high = consumer.QueryWatermarkOffsets(tp, TimeSpan.FromMilliseconds(200)).High.Value;
        }
        catch (KafkaException)
        {
            high = -1;
        }

        _queriedWatermarks[tp] = (now, high);
        return high;
    }

    private void DrainQueries()
    {
        while (_queries.TryDequeue(out var query))
        {
            query();
        }
    }

    private void LogKafka(LogMessage m)
    {
        if (m.Level <= SyslogLevel.Warning)
        {
            LogKafkaClient(m.Name, m.Facility, m.Message);
        }
    }

    /// <summary>Read access to the engine's state, valid only inside <see cref="QueryAsync{T}"/>.</summary>
    public readonly struct EngineView
    {
        private readonly KafkaEngine _engine;

        internal EngineView(KafkaEngine engine)
        {
            _engine = engine;
        }

        /// <summary>The customer's live profile, or null if no owned partition knows it.</summary>
        public CustomerProfile? FindCustomer(string customerId) =>
            FindState(customerId) is var (state, host) ? CustomerProfile.From(state, host.Partition, host.WatermarkTicks, host.Rules) : null;

        /// <summary>The live state of a customer this node owns (valid only inside the query), or null.</summary>
        public (CustomerState State, PartitionHost Host)? FindState(string customerId)
        {
            foreach (var host in _engine._hosts.Values)
            {
                if (host.TryGetCached(customerId) is not null && host.Find(customerId) is { } cached)
                {
                    return (cached, host);
                }
            }

            var partition = _engine._store.FindPartition(customerId);
            if (partition is { } p && _engine._hosts.TryGetValue(p, out var owner) && owner.Find(customerId) is { } loaded)
            {
                return (loaded, owner);
            }

            return null;
        }

        /// <summary>A copy of the customer's state and what its profile needs (see <see cref="IStreamingEngine.LookupAsync"/>).</summary>
        public CustomerLookup Lookup(string customerId)
        {
            if (FindState(customerId) is not var (state, host))
            {
                return new CustomerLookup(Serves(customerId), null, -1, 0, _engine._rules);
            }

            var copy = new CustomerState(customerId);
            copy.CopyFrom(state);
            return new CustomerLookup(true, copy, host.Partition, host.WatermarkTicks, host.Rules);
        }

        /// <summary>
        /// Whether this node answers for the customer now: it owns a partition, and the customer's partition as far as
        /// the store knows it. False means "ask again later" (start-up, rebalance), never "no such customer".
        /// </summary>
        public bool Serves(string customerId)
        {
            if (_engine._hosts.Count == 0)
            {
                return false;
            }

            return _engine._store.FindPartition(customerId) is not { } p || _engine._hosts.ContainsKey(p);
        }

        /// <summary>Per-rule counters (fired, suppressed, converted) of the partitions this node owns, summed.</summary>
        public Dictionary<(string Rule, string Counter, string Group), long> RuleCounters() => _engine.SumPopulation(p => p.RuleCounters);

        /// <summary>The population of the partitions this node owns, summed.</summary>
        public PopulationView Population()
        {
            long timers = 0, late = 0;
            foreach (var host in _engine._hosts.Values)
            {
                timers += host.TimersFired;
                late += host.LateTimersFired;
            }

            return new PopulationView(_engine.SumPopulation(p => p.Counts), _engine.SumPopulation(p => p.Transitions), _engine._rules.Version, timers, late);
        }
    }
}

/// <summary>A query reached an engine whose thread has ended (stopping, or failed).</summary>
public sealed class EngineStoppedException() : InvalidOperationException("the engine is not running");

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
