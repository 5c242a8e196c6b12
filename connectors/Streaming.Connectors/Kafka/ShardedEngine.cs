using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Streams;
using Akka.Streams.Dsl;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Streaming.Connectors.Persistence;
using Streaming.Connectors.Telemetry;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Partitions;
using Streaming.Runtime.Rules;
using Streaming.Runtime.Sharding;
using CoordinatorStatus = Streaming.Runtime.Partitions.PartitionStatus;

namespace Streaming.Connectors.Kafka;

/// <summary>
/// The engine on Akka.NET: customers are Cluster.Sharding entities persisted through Akka.Persistence.Sql, one
/// coordinator per owned Kafka partition, fed by <see cref="ShardedIngestion"/>. This node forms a cluster of one on
/// loopback.
/// </summary>
/// <remarks>
/// Reads ask the customer's entity through the shard region; the customer's shard is its Kafka partition, computed from
/// its id with the producers' partitioner (librdkafka's CRC-32 of the key). Status, counters and metrics come from the
/// coordinators, polled about twice a second.
/// </remarks>
public sealed partial class ShardedEngine : IStreamingEngine
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How long the rule sweep waits before handing customers to a restarting partition again.</summary>
    private static readonly TimeSpan SweepRetryDelay = TimeSpan.FromMilliseconds(500);

    /// <summary>Passes of one sweep at most when partitions keep restarting before saving it (then it is logged as failed).</summary>
    private const int MaxSweepRounds = 5;
    private readonly EngineOptions _options;
    private readonly ActorStoreOptions _store;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RuleBook _book;
    private readonly IFiringOutbox _outbox;
    private readonly EngineInstruments? _instruments;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = new();
    private volatile bool _stopRequested;
    private volatile bool _removed;
    private readonly Dictionary<IActorRef, CoordinatorStatus> _seen = [];

    /// <summary>Orders the storing of a switch asked for and of the set found in force, so the later wins.</summary>
    private readonly Lock _rulesGate = new();
    private volatile RuleSet _rules;
    private volatile RuleSet? _pendingRules;
    private RuleSet? _inForce;
    private string? _sweptVersion;

    /// <summary>Completed to run the status refresh (which also hands a pending rule set to the coordinators) at once.</summary>
    private volatile TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private CancellationTokenSource? _sweep;
    private volatile IReadOnlyDictionary<int, CoordinatorStatus> _coordinators = new Dictionary<int, CoordinatorStatus>();

    /// <summary>Where each partition's shard is allocated (the consumers' assignments, replicated by distributed data), refreshed with the statuses.</summary>
    private volatile IReadOnlyDictionary<string, Address> _owners = new Dictionary<string, Address>();
    private volatile EngineStatus _status = EngineStatus.Empty;
    private EngineMetricsSnapshot _metrics = EngineMetricsSnapshot.Empty;
    private IReadOnlyDictionary<(string Channel, string State), long> _outreachStats = new Dictionary<(string, string), long>();
    private long _outreachStatsAt;
    private ActorSystem? _system;
    private IActorRef? _region;
    private ShardedIngestion? _ingestion;
    private int _partitionCount;
    private long _startedAt;

    // Totals over every coordinator run seen (a coordinator's own counters restart with it).
    private long _applied;
    private long _duplicates;
    private long _checkpoints;
    private long _passivations;
    private long _deadLetters;
    private long _timersFired;
    private long _timersLate;

    /// <summary>An engine over the brokers of <paramref name="options"/>, persisting through <paramref name="store"/>.</summary>
    /// <param name="outbox">Takes each checkpoint's firings before its offsets are committed (the outbox and outreach queue).</param>
    public ShardedEngine(EngineOptions options, ActorStoreOptions store, TimeProvider time, ILogger logger, RuleSet rules, IFiringOutbox outbox, EngineInstruments? instruments = null)
    {
        _options = options;
        _store = store;
        _time = time;
        _logger = logger;
        _rules = rules;
        _book = new RuleBook(rules);
        _outbox = new SignallingOutbox(outbox, this);
        _instruments = instruments;
        instruments?.Observe(() => _metrics);
    }

    /// <inheritdoc />
    public RuleSet ActiveRules => _rules;

    /// <inheritdoc />
    public RuleSet? PendingRules => _pendingRules;

    /// <inheritdoc />
    public long EventsProcessed => Interlocked.Read(ref _applied) + Interlocked.Read(ref _duplicates) + Interlocked.Read(ref _deadLetters);

    /// <inheritdoc />
    public long DeadLetters => Interlocked.Read(ref _deadLetters);

    /// <inheritdoc />
    public long Duplicates => Interlocked.Read(ref _duplicates);

    /// <inheritdoc />
    public long Checkpoints => Interlocked.Read(ref _checkpoints);

    /// <inheritdoc />
    public long Passivations => Interlocked.Read(ref _passivations);

    /// <inheritdoc />
    /// <remarks>
    /// In a cluster a node that Kafka gave no partition (more nodes than partitions) is ready too once its consumer has
    /// joined the group: it answers for any customer through the shard region.
    /// </remarks>
    public bool Ready => _status.Partitions.Count > 0 || (_options.IsCluster && _ingestion?.Joined == true);

    /// <inheritdoc />
    public EngineStatus Status => _status;

    /// <inheritdoc />
    public Task Stopped => _stopped.Task;

    /// <inheritdoc />
    public ClusterMembership Membership
    {
        get
        {
            if (_system is not { } system || _region is null)
            {
                return ClusterMembership.Empty;
            }

            var state = Cluster.Get(system).State;
            var self = Cluster.Get(system).SelfAddress;
            var unreachable = state.Unreachable.Select(m => m.Address).ToHashSet();
            var owned = _coordinators.Keys.ToHashSet();
            var others = _owners
                .Where(o => !o.Value.Equals(self) && int.TryParse(o.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                .ToLookup(o => o.Value, o => int.Parse(o.Key, NumberStyles.None, CultureInfo.InvariantCulture));
            var members = state.Members
                .Select(m => new ClusterMemberView(
                    HostPort(m.Address),
                    m.Status.ToString().ToLowerInvariant(),
                    !unreachable.Contains(m.Address),
                    [.. (m.Address.Equals(self) ? owned : others[m.Address].Where(p => !owned.Contains(p))).Distinct().Order()]))
                .OrderBy(m => m.Address, StringComparer.Ordinal)
                .ToList();
            return new ClusterMembership(HostPort(self), members);
        }
    }

    private static string HostPort(Address address) => $"{address.Host}:{address.Port?.ToString(CultureInfo.InvariantCulture)}";

    /// <inheritdoc />
    public Action? FiringsCommitted { get; set; }

    /// <summary>
    /// In a cluster (<see cref="EngineOptions.IsCluster"/>): called with true when the trigger relay's cluster singleton
    /// (<see cref="RelaySingleton"/>) starts on this node and with false when it stops here, so that one node publishes
    /// the shared outbox. Never called on a single node, whose relay always publishes.
    /// </summary>
    public Action<bool>? RelayLeadership { get; set; }

    /// <inheritdoc />
    public Func<IReadOnlyDictionary<(string Channel, string State), long>>? OutreachStats { get; set; }

    /// <summary>
    /// Called with the set a restart must start from: when a switch is asked for (before any partition can checkpoint
    /// under it, so a restart never goes back to an older set than a checkpoint carries) and once every owned partition
    /// runs a set (at start, and after each switch). The host stores it.
    /// </summary>
    public Action<RuleSet>? RulesInForce { get; set; }

    /// <summary>The host setting that holds <see cref="SweptVersion"/>.</summary>
    public const string SweptSettingKey = "runtime.swept-rules";

    /// <summary>
    /// The rule version whose sweep last completed (stored by the host, <see cref="Swept"/>): at start, customers not in
    /// memory are swept only when the set in force differs from it.
    /// </summary>
    public string? SweptVersion { get; init; }

    /// <summary>Called with the version once a sweep has re-evaluated every stored customer under it.</summary>
    public Action<string>? Swept { get; init; }

    /// <summary>Receives the customers each checkpoint saved (the Redis mirror); null: none.</summary>
    public IStateMirror? Mirror { get; init; }

    /// <summary>Keeps the node's checkpoint numbering across restarts (null: it restarts from 1).</summary>
    public ICheckpointCounter? Counter { get; init; }

    /// <summary>See <see cref="IngestionOptions.PartitionTakenOver"/> (the cluster's mirror catch-up); null: nobody is told.</summary>
    public Action<int>? PartitionTakenOver { get; init; }

    /// <summary>
    /// The actor system to run in, owned by its host (Akka.Hosting's <c>AddAkka</c>, configured with
    /// <see cref="NodeConfig"/> and <see cref="ActorStore.WithActorStore"/>): the engine joins it to itself and starts its
    /// shard region and ingestion there, and leaves its shutdown to the host. Null: the engine creates its own system and
    /// terminates it when it stops (tools and tests).
    /// </summary>
    public ActorSystem? System { get; init; }

    /// <summary>
    /// This node's actor-system configuration on loopback, any free port: see <see cref="NodeConfigFor"/>.
    /// </summary>
    public static Akka.Configuration.Config NodeConfig { get; } = NodeConfigFor("127.0.0.1", 0);

    /// <summary>The actor system's name, part of every node address (<c>akka.tcp://streaming@host:port</c>).</summary>
    public const string SystemName = "streaming";

    /// <summary>
    /// A node's actor-system configuration: a cluster member reached at <paramref name="hostname"/>:<paramref name="port"/>
    /// (0: any free port), shards moved to the node Kafka gave their partition within a second (the sharding
    /// coordinator's rebalance interval; Akka's default of 10 s left a new owner's records going to the old node; a hand-off
    /// that does not complete gives up after 10 s, not 60 s), Akka's split-brain resolver with <c>keep-majority</c> (after
    /// <paramref name="stableAfter"/> of stable membership, 20 s by default, the side with more nodes downs the other; a
    /// node that finds itself in the minority downs itself and stops serving), warnings and errors logged, and the
    /// process's exit left to its host.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A port outside 0 to 65535, or <paramref name="stableAfter"/> under a second.</exception>
    /// <remarks>Keep-majority: Akka.NET's documented default strategy; with the Kafka session timeout (6 s here) a lost node's partitions are served again well within the 60 s of CONTRACTS §8.</remarks>
    public static Akka.Configuration.Config NodeConfigFor(string hostname, int port, TimeSpan? stableAfter = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(hostname);
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        var stable = stableAfter ?? TimeSpan.FromSeconds(20);
        ArgumentOutOfRangeException.ThrowIfLessThan(stable, TimeSpan.FromSeconds(1), nameof(stableAfter));
        return ConfigurationFactory.ParseString($$"""
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp.hostname = "{{hostname}}"
            akka.remote.dot-netty.tcp.port = {{port.ToString(global::System.Globalization.CultureInfo.InvariantCulture)}}
            akka.cluster.downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
            akka.cluster.split-brain-resolver.active-strategy = keep-majority
            akka.cluster.split-brain-resolver.stable-after = {{((long)stable.TotalMilliseconds).ToString(global::System.Globalization.CultureInfo.InvariantCulture)}}ms
            akka.cluster.sharding.rebalance-interval = 1s
            akka.cluster.sharding.handoff-timeout = 10s
            akka.loglevel = WARNING
            akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
            akka.coordinated-shutdown.exit-clr = off
            """)
            // Sharding's and distributed data's serializers from the start: a joining node receives their messages
            // before the extensions would add them.
            .WithFallback(Akka.Cluster.Sharding.ClusterSharding.DefaultConfig())
            .WithFallback(Akka.DistributedData.DistributedData.DefaultConfig());
    }

    /// <summary>The Akka address of a seed node given as <c>host:port</c>.</summary>
    /// <exception cref="FormatException">Not <c>host:port</c> with a port from 1 to 65535.</exception>
    public static Address SeedAddress(string seed)
    {
        ArgumentNullException.ThrowIfNull(seed);
        var colon = seed.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(seed.AsSpan(colon + 1), global::System.Globalization.NumberStyles.None, global::System.Globalization.CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new FormatException($"seed node '{seed}' must be host:port, e.g. 10.0.0.5:4053");
        }

        return new Address("akka.tcp", SystemName, seed[..colon], port);
    }

    /// <summary>Checkpoint durations so far, from request to commit, in milliseconds (for the benchmark).</summary>
    public double[] CheckpointDurationsMs() => _ingestion?.CheckpointDurationsMs() ?? [];

    /// <inheritdoc />
    public void Start()
    {
        _startedAt = _time.GetTimestamp();
        _ = Task.Run(RunAsync);
    }

    private async Task RunAsync()
    {
        try
        {
            _partitionCount = InputPartitionCount();
            // Without a host, Akka logs to standard error: standard output may carry a command's JSON (bench).
            _system = System ?? ActorSystem.Create(SystemName, ActorStore.Setup(_store, NodeConfig.WithFallback(ConfigurationFactory.ParseString(Streaming.Runtime.Telemetry.StandardErrorLogger.Hocon))));
            var cluster = Cluster.Get(_system);
            // With seed nodes the node joins the first that answers (a node listed first forms the cluster when it is
            // the first up); with Cluster Bootstrap the host's bootstrap joins it; without either, it forms a cluster of
            // its own.
            var join = _options.ClusterBootstrap ? MemberUpAsync(cluster)
                : _options.SeedNodes.Count == 0 ? cluster.JoinAsync(cluster.SelfAddress)
                : cluster.JoinSeedNodesAsync(_options.SeedNodes.Select(SeedAddress));
            await join.WaitAsync(TimeSpan.FromSeconds(_options.IsCluster ? 120 : 30)).ConfigureAwait(false);

            // Removed without being asked to stop: downed by the split-brain resolver (cut off in a minority, or the
            // others saw it unreachable for 20 s) or by an operator. Its actor system is ending, so it cannot serve nor
            // write again: the engine fails, the process exits 1 and its supervisor starts it again, to join anew.
            cluster.RegisterOnMemberRemoved(() =>
            {
                if (!_stopRequested)
                {
                    _removed = true;
                    LogRemovedFromCluster(cluster.SelfAddress.ToString());
                    _stopped.TrySetException(new EngineRemovedFromClusterException(cluster.SelfAddress.ToString()));
                    _stop.Cancel();
                }
            });
            var known = new KnownCustomerRegistry();
            _region = await CustomerShards.StartAsync(_system, new CustomerEntityOptions
            {
                Actor = _options.Actor,
                Known = known,
                Persistence = _instruments,
                Time = _time,

                // Hand-offs and passivations save outside checkpoints: with customer versions the mirror takes them as
                // they come (with checkpoint numbers it cannot: they would carry no number of their own).
                SavedOutsideCheckpoint = Mirror is { SeqSource: MirrorSeqSource.CustomerVersion } mirror ? p => mirror.Publish(mirror.MirroredSeq, [p]) : null,
            }, _book).ConfigureAwait(false);

            // Started by ClusterSharding.StartAsync (Akka.Hosting's WithShardRegion takes no allocation strategy), then
            // registered in the system's ActorRegistry under typeof(CustomerShards) for the host's other actors and services.
            ActorRegistry.For(_system).TryRegister(typeof(CustomerShards), _region, overwrite: true);

            // Other nodes ask this one for the clocks of its partitions when they read its customers.
            _system.ActorOf(PartitionClocks.Props(() => _coordinators.ToDictionary(c => c.Key, c => c.Value.WatermarkTicks)), PartitionClocks.Name);
            if (_options.IsCluster && RelayLeadership is { } lead)
            {
                RelaySingleton.Start(_system, lead);
            }

            _ingestion = new ShardedIngestion(
                _system,
                _region,
                _book,
                new IngestionOptions
                {
                    BootstrapServers = _options.BootstrapServers,
                    GroupId = _options.GroupId,
                    CheckpointEveryRecords = Math.Max(1, _options.CheckpointEveryEvents / Math.Max(1, _partitionCount)),
                    CheckpointInterval = _options.CheckpointInterval,
                    // In a cluster rebalances happen while nodes are busy: a longer session keeps a slow member in the group,
                    // and a dead node is still noticed in 10 s.
                    SessionTimeoutMs = _options.SessionTimeoutMs ?? (_options.IsCluster ? 10_000 : 6000),
                    HandOffGrace = _options.IsCluster ? TimeSpan.FromSeconds(2) : TimeSpan.Zero,
                    ClusterSettled = _options.IsCluster ? () => cluster.State.Unreachable.IsEmpty : null,
                    ShardHome = _options.IsCluster ? p => CustomerShards.IsHomeAsync(_system, p, TimeSpan.FromSeconds(2)) : null,
                    Decoder = _options.Decoder with { Clock = _options.Decoder.Clock ?? _time },
                    IdleAfter = _options.TimeMode == TimeMode.Hybrid ? _options.IdleAfter : null,
                    PrefetchMaxKbytes = _options.PrefetchMaxKbytes,
                    DeadLetterTimeout = _options.DeadLetterTimeout,
                    Mirror = Mirror,
                    Counter = Counter,
                    PartitionTakenOver = PartitionTakenOver,
                    Coordinator = new PartitionCoordinatorOptions
                    {
                        Known = known,
                        AllowedLateness = _options.AllowedLateness,
                        QuietCheckpointAfter = _options.CheckpointInterval * 2,
                        MaxCachedCustomers = Math.Max(1, _options.MaxCachedCustomers / Math.Max(1, _partitionCount)),
                        MaxWakeUpsInMemory = _options.MaxWakeUpsInMemory,
                        StoredCustomers = StoredCustomersAsync,
                        CollectProjections = Mirror is not null,

                        // In a cluster, records sent towards a node that died before it was removed are lost: the
                        // partition restarts when its customers stop answering (two checks 30 s apart).
                        UnansweredTimeout = _options.IsCluster ? TimeSpan.FromSeconds(30) : null,
                    },
                },
                _logger,
                _time,
                _outbox,
                _instruments);
            _ingestion.Start();
            LogStarted(cluster.SelfAddress.ToString(), cluster.State.Members.Count, _partitionCount);
            while (!_stop.IsCancellationRequested && !_ingestion.Stopped.IsCompleted)
            {
                var wake = _wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                try
                {
                    await RefreshAsync().ConfigureAwait(false);
                }
                catch (System.Data.Common.DbException ex)
                {
                    // The store is away (a cut link, a restarting server): the refresh is tried again in half a second;
                    // the partitions pause on their own checkpoints meanwhile. It never stops the runtime.
                    LogRefreshFailed(ex.Message);
                }

                await Task.WhenAny(Task.Delay(TimeSpan.FromMilliseconds(500), _time, _stop.Token), _ingestion.Stopped, wake.Task).ConfigureAwait(false);
            }

            await _ingestion.Stopped.ConfigureAwait(false);
            _stopped.TrySetResult();
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !_stop.IsCancellationRequested)
        {
            LogFailed(ex);
            _stopped.TrySetException(ex);
        }
        catch (OperationCanceledException)
        {
            _stopped.TrySetResult();
        }
    }

    /// <summary>Completes once this node is an <c>Up</c> member (joined by the host's Cluster Bootstrap).</summary>
    private static Task MemberUpAsync(Cluster cluster)
    {
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        return up.Task;
    }

    /// <summary>The partition count of the input topics (customers' shards are partitions of that count).</summary>
    private int InputPartitionCount()
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = _options.BootstrapServers }).SetLogHandler((_, _) => { }).Build();
        var reported = false;
        while (true)
        {
            _stop.Token.ThrowIfCancellationRequested();
            string reason;
            try
            {
                var metadata = admin.GetMetadata(ShardedIngestion.LeadTopic, TimeSpan.FromSeconds(5));
                if (metadata.Topics.FirstOrDefault(t => t.Error.Code == ErrorCode.NoError && t.Partitions.Count > 0) is { } topic)
                {
                    // Partition p of every input topic goes to the owner of the lead topic's partition p: a topic with
                    // another count breaks that (its customers' records would reach the wrong partition's customers).
                    foreach (var other in Topics.Inputs.Where(t => t != ShardedIngestion.LeadTopic))
                    {
                        var found = admin.GetMetadata(other, TimeSpan.FromSeconds(5)).Topics.FirstOrDefault(t => t.Error.Code == ErrorCode.NoError);
                        if (found is not null && found.Partitions.Count != topic.Partitions.Count)
                        {
                            LogPartitionCountMismatch(other, found.Partitions.Count, ShardedIngestion.LeadTopic, topic.Partitions.Count);
                        }
                    }

                    return topic.Partitions.Count;
                }

                reason = $"the topic {ShardedIngestion.LeadTopic} does not exist yet";
            }
            catch (KafkaException ex)
            {
                reason = ex.Error.Reason;
            }

            // Not ready meanwhile (/readyz answers 503); the brokers or the topic may come later.
            if (!reported)
            {
                LogWaitingForTopics(_options.BootstrapServers, reason);
                reported = true;
            }

            _stop.Token.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>Asks every coordinator for its status; sums counters, builds the status and the metrics snapshot.</summary>
    private async Task RefreshAsync()
    {
        if (_ingestion is not { } ingestion)
        {
            return;
        }

        // A rule switch waiting (or a partition recovered under another set): the coordinators are told, again until all
        // run it (the message is idempotent); each switches at its next checkpoint boundary.
        var pending = _pendingRules;
        var target = pending ?? _rules;
        var answers = await AskCoordinatorsAsync(ingestion).ConfigureAwait(false);
        foreach (var (_, actor, status) in answers)
        {
            if (status is not null && status.RuleVersion != target.Version)
            {
                actor.Tell(new SwitchRules(target.Version));
            }
        }

        var coordinators = answers.Select(a => a.Actor).ToHashSet();
        var statuses = new Dictionary<int, CoordinatorStatus>();
        foreach (var (partition, actor, status) in answers)
        {
            if (status is null)
            {
                // Busy past the ask timeout: still this node's partition, shown as last seen (other nodes ask this node
                // for its partitions' clocks, and a gap would answer them "no owner").
                if (_seen.GetValueOrDefault(actor) is { } last)
                {
                    statuses[partition] = last;
                }

                continue;
            }

            statuses[partition] = status;
            var before = _seen.GetValueOrDefault(actor);
            Interlocked.Add(ref _applied, status.Applied - (before?.Applied ?? 0));
            Interlocked.Add(ref _duplicates, status.Duplicates - (before?.Duplicates ?? 0));
            Interlocked.Add(ref _checkpoints, status.Checkpoints - (before?.Checkpoints ?? 0));
            Interlocked.Add(ref _passivations, status.Passivations - (before?.Passivations ?? 0));
            Interlocked.Add(ref _deadLetters, status.DeadLetters - (before?.DeadLetters ?? 0));
            Interlocked.Add(ref _timersFired, status.TimersFired - (before?.TimersFired ?? 0));
            Interlocked.Add(ref _timersLate, status.LateTimersFired - (before?.LateTimersFired ?? 0));
            if (status.FailedWakeUps - (before?.FailedWakeUps ?? 0) is > 0 and var failed)
            {
                _instruments?.WakeUpFailures.Add(failed);
            }

            _seen[actor] = status;
        }

        foreach (var gone in _seen.Keys.Where(a => !coordinators.Contains(a)).ToList())
        {
            _seen.Remove(gone);
        }

        _coordinators = statuses;
        await RefreshOwnersAsync().ConfigureAwait(false);
        if (statuses.Count > 0 && statuses.Count == answers.Count && statuses.Values.All(s => s.RuleVersion == target.Version) && !ReferenceEquals(_inForce, target))
        {
            if (pending is not null)
            {
                LogRulesSwitched(_rules.Version, pending.Version);
                _rules = pending;
                Interlocked.CompareExchange(ref _pendingRules, null, pending);
            }

            _inForce = target;

            // Not over a switch asked for while this refresh ran: that set is stored already, and a restart must start
            // from it.
            lock (_rulesGate)
            {
                if (_pendingRules is null || ReferenceEquals(_pendingRules, target))
                {
                    RulesInForce?.Invoke(target);
                }
            }

            if (target.Version != (_sweptVersion ??= SweptVersion))
            {
                StartSweep(target.Version);
            }
        }

        // Offsets are what the partition's state reflects (applied, saved or not), as the status contract says.
        var rows = ingestion.Positions
            .Select(p =>
            {
                statuses.TryGetValue(p.Partition, out var s);
                var processed = s is not null && s.ProcessedOffsets.TryGetValue(p.Topic, out var next) ? next : Math.Max(0, p.Next);
                return new PartitionStatus(
                    p.Topic,
                    p.Partition,
                    processed,
                    p.High < 0 ? 0 : Math.Max(0, p.High - processed),
                    s is { WatermarkTicks: > 0 } ? new DateTimeOffset(s.WatermarkTicks, TimeSpan.Zero) : null);
            })
            .ToList();
        var cached = statuses.Values.Sum(s => (long)s.Cached);
        _status = new EngineStatus(rows, rows.Count == 0 ? null : rows.Sum(r => r.Lag), cached, ingestion.CheckpointSeq, statuses.Values.Sum(s => (long)s.PendingFirings));
        if (_instruments is not null)
        {
            _metrics = Snapshot(ingestion, rows, statuses, cached, await EntitiesPerShardAsync().ConfigureAwait(false));
        }
    }

    /// <summary>Every owned partition's coordinator status (those not answering in time left out), each told <paramref name="first"/> before.</summary>
    private static async Task<List<(int Partition, IActorRef Actor, CoordinatorStatus? Status)>> AskCoordinatorsAsync(ShardedIngestion ingestion, object? first = null)
    {
        var answers = await Task.WhenAll(ingestion.Coordinators.Select(async c =>
        {
            try
            {
                if (first is not null)
                {
                    c.Value.Tell(first);
                }

                return (c.Key, c.Value, (CoordinatorStatus?)await c.Value.Ask<CoordinatorStatus>(GetPartitionStatus.Instance, AskTimeout).ConfigureAwait(false));
            }
            catch (Exception ex) when (ex is AskTimeoutException or TaskCanceledException)
            {
                return (c.Key, c.Value, null);
            }
        })).ConfigureAwait(false);
        return [.. answers];
    }

    /// <summary>The statuses of the owned partitions now.</summary>
    /// <exception cref="EngineStoppedException">The engine is not running.</exception>
    private async Task<List<CoordinatorStatus>> CurrentAsync()
    {
        if (_stopped.Task.IsCompleted)
        {
            throw new EngineStoppedException();
        }

        if (_ingestion is not { } ingestion)
        {
            return []; // Still starting (or waiting for the brokers): no partition yet.
        }

        return [.. (await AskCoordinatorsAsync(ingestion).ConfigureAwait(false)).Select(a => a.Status).OfType<CoordinatorStatus>()];
    }

    /// <summary>
    /// Entities per shard of this node's region, as Akka.Cluster.Sharding counts them (<c>GetShardRegionStats</c>: counts
    /// only, no entity ids); null when the region does not answer in time.
    /// </summary>
    private async Task<IImmutableDictionary<string, int>?> EntitiesPerShardAsync()
    {
        if (_region is not { } region)
        {
            return null;
        }

        try
        {
            return (await region.Ask<ShardRegionStats>(GetShardRegionStats.Instance, AskTimeout).ConfigureAwait(false)).Stats;
        }
        catch (Exception ex) when (ex is AskTimeoutException or TaskCanceledException)
        {
            return null;
        }
    }

    private EngineMetricsSnapshot Snapshot(ShardedIngestion ingestion, List<PartitionStatus> rows, Dictionary<int, CoordinatorStatus> statuses, long cached, IImmutableDictionary<string, int>? entities)
    {
        if (OutreachStats is { } stats && (_outreachStatsAt == 0 || _time.GetElapsedTime(_outreachStatsAt) >= TimeSpan.FromSeconds(5)))
        {
            _outreachStatsAt = _time.GetTimestamp();
            _outreachStats = stats();
        }

        var lastCommit = ingestion.LastCommitAt;
        return new EngineMetricsSnapshot
        {
            Events = ingestion.EventCounts(),
            Duplicates = Duplicates,
            Partitions = rows,
            Watermarks = statuses.Values.Where(s => s.WatermarkTicks > 0).ToDictionary(s => s.Partition, s => new DateTimeOffset(s.WatermarkTicks, TimeSpan.Zero)),
            WallClock = _time.GetUtcNow(),
            CachedCustomers = cached,
            Passivations = Passivations,
            Checkpoints = Checkpoints,
            ConsumptionPaused = ingestion.Paused,
            DeadLettersUnacknowledged = ingestion.DeadLettersUnacknowledged,
            SecondsSinceCheckpoint = _time.GetElapsedTime(lastCommit == 0 ? _startedAt : lastCommit).TotalSeconds,
            TimersFired = Interlocked.Read(ref _timersFired),
            TimersLate = Interlocked.Read(ref _timersLate),
            TimersInMemory = statuses.Values.Sum(s => (long)s.Timers),
            TimersPageIns = statuses.Values.Sum(s => s.WakeUpPageIns),
            RuleVersion = _rules.Version,
            Population = Sum(statuses.Values.Select(s => s.Counts)),
            Transitions = Sum(statuses.Values.Select(s => s.Transitions)),
            RuleCounters = Sum(statuses.Values.Select(s => s.RuleCounters)),
            Outreach = _outreachStats,
            Shards = [.. statuses.Values.OrderBy(s => s.Partition).Select(s => new ShardMetrics(
                s.Partition,
                entities is null ? s.Cached : entities.GetValueOrDefault(s.Partition.ToString(CultureInfo.InvariantCulture)),
                s.InFlight,
                s.Waiting))],
        };
    }

    private static Dictionary<TKey, long> Sum<TKey>(IEnumerable<IReadOnlyDictionary<TKey, long>> parts)
        where TKey : notnull
    {
        var sum = new Dictionary<TKey, long>();
        foreach (var part in parts)
        {
            foreach (var (key, n) in part)
            {
                sum[key] = sum.GetValueOrDefault(key) + n;
            }
        }

        return sum;
    }

    /// <inheritdoc />
    public async Task StopAsync(TimeSpan timeout)
    {
        _stopRequested = true;
        var deadline = _time.GetTimestamp();
        if (_ingestion is { } ingestion)
        {
            // A node removed from the cluster has no actors left to checkpoint: it stops as if it had crashed.
            await ingestion.StopAsync(timeout, checkpoint: !_removed).ConfigureAwait(false);
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        if (_system is { } system && System is null)
        {
            var left = timeout - _time.GetElapsedTime(deadline);
            await system.Terminate().WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        }

        _stopped.TrySetResult();
    }

    /// <inheritdoc />
    public void SwitchRules(RuleSet rules)
    {
        // Stored first: a switch whose storing fails changes nothing (the caller hears of it).
        lock (_rulesGate)
        {
            RulesInForce?.Invoke(rules);
            _book.Add(rules);
            _pendingRules = rules;
        }

        // The coordinators hear of it at the next refresh: now rather than within half a second.
        _wake.TrySetResult();
    }

    /// <inheritdoc />
    public async Task<CustomerLookup> LookupAsync(string customerId, CancellationToken cancellationToken)
    {
        if (_stopped.Task.IsCompleted)
        {
            throw new EngineStoppedException();
        }

        var coordinators = _coordinators;
        if (_region is not { } region || _partitionCount == 0 || coordinators.Count == 0)
        {
            return new CustomerLookup(false, null, -1, 0, _rules) { NotServedReason = "this node owns no partition yet (start-up or rebalance)" };
        }

        var partition = KeyPartitioner.Partition(Encoding.UTF8.GetBytes(customerId), _partitionCount);
        long watermark;
        if (coordinators.TryGetValue(partition, out var status))
        {
            watermark = status.WatermarkTicks;
        }
        else
        {
            // Another node of the cluster owns the partition: the region asks its customer there. The allocation is read
            // about twice a second and may lag a move just made: it is read again once before answering "no owner".
            var remote = await OwnerWatermarkAsync(partition, cancellationToken).ConfigureAwait(false);
            if (remote is null && await RefreshOwnersAsync().ConfigureAwait(false))
            {
                remote = await OwnerWatermarkAsync(partition, cancellationToken).ConfigureAwait(false);
            }

            if (remote is not { } owned)
            {
                return new CustomerLookup(false, null, partition, 0, _rules)
                {
                    NotServedReason = string.Create(CultureInfo.InvariantCulture, $"no node of the cluster owns partition {partition} now (start-up or rebalance), or its owner did not answer within {AskTimeout.TotalSeconds:0} s"),
                };
            }

            watermark = owned;
        }

        CustomerFound found;
        try
        {
            found = await region.Ask<CustomerFound>(new GetCustomer(customerId, partition), AskTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (AskTimeoutException)
        {
            // The customer's node did not answer in time (overloaded, or its shard is moving): not served now, which
            // the API answers with 503 (retry), as for a partition without an owner, rather than an error.
            return new CustomerLookup(false, null, partition, 0, _rules)
            {
                NotServedReason = string.Create(CultureInfo.InvariantCulture, $"the node hosting partition {partition}'s customers did not answer within {AskTimeout.TotalSeconds:0} s (overloaded, or the shard is moving)"),
            };
        }

        // A customer saved under a set this node never loaded (stored before a restart that came up with a newer one,
        // and not re-evaluated by the sweep yet) is shown with the set in force, as a partition's current set would be.
        var rules = found.State is { RuleVersion: { Length: > 0 } version } && _book.Contains(version) ? _book.Get(version) : _rules;
        return new CustomerLookup(true, found.State, partition, watermark, rules);
    }

    /// <summary>
    /// Reads the shard locations into <see cref="_owners"/> when the cluster has other members (kept as they were if the
    /// read fails). True when they were read.
    /// </summary>
    private async Task<bool> RefreshOwnersAsync()
    {
        var system = _system!;
        if (Cluster.Get(system).State.Members.Count < 2)
        {
            return false;
        }

        try
        {
            var locations = await Akka.Cluster.Sharding.External.ExternalShardAllocation.Get(system).ClientFor(CustomerShards.TypeName).ShardLocations().ConfigureAwait(false);
            _owners = locations.Locations.ToDictionary(l => l.Key, l => l.Value.Address);
            return true;
        }
        catch (Akka.Cluster.Sharding.External.ClientTimeoutException)
        {
            // Asked again at the next refresh.
            return false;
        }
    }

    /// <summary>
    /// The watermark of <paramref name="partition"/> as the node its shard is allocated to reports it; null when no other
    /// node owns it now (not allocated, allocated here, or that node no longer runs it).
    /// </summary>
    private async Task<long?> OwnerWatermarkAsync(int partition, CancellationToken cancellationToken)
    {
        var system = _system!;
        if (!_owners.TryGetValue(Streaming.Runtime.Sharding.PartitionMessageExtractor.ShardOf(partition), out var owner) || owner.Equals(Cluster.Get(system).SelfAddress))
        {
            return null;
        }

        try
        {
            var answer = await system.ActorSelection(PartitionClocks.Path(owner)).Ask<PartitionWatermark>(new GetPartitionWatermark(partition), AskTimeout, cancellationToken).ConfigureAwait(false);
            return answer.Owned ? answer.WatermarkTicks : null;
        }
        catch (AskTimeoutException)
        {
            // The owner does not answer (leaving, unreachable): as if the partition had no owner yet.
            return null;
        }
    }

    /// <inheritdoc />
    public async Task<PopulationView> PopulationAsync(CancellationToken cancellationToken)
    {
        var statuses = await CurrentAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        return new PopulationView(
            Sum(statuses.Select(s => s.Counts)),
            Sum(statuses.Select(s => s.Transitions)),
            _rules.Version,
            statuses.Sum(s => s.TimersFired),
            statuses.Sum(s => s.LateTimersFired));
    }

    /// <inheritdoc />
    public async Task<IReadOnlyDictionary<(string Rule, string Counter, string Group), long>> RuleCountersAsync(CancellationToken cancellationToken) =>
        Sum((await CurrentAsync().WaitAsync(cancellationToken).ConfigureAwait(false)).Select(s => s.RuleCounters));

    /// <inheritdoc />
    public void Dispose()
    {
        _stop.Cancel();
        _ingestion?.Dispose();
        if (System is null)
        {
            _system?.Terminate().Wait(TimeSpan.FromSeconds(10));
            _system?.Dispose();
        }

        _stop.Dispose();
    }

    /// <summary>The outbox, then the relay's cue.</summary>
    private sealed class SignallingOutbox(IFiringOutbox inner, ShardedEngine engine) : IFiringOutbox
    {
        public void Append(IReadOnlyList<TriggerFiring> firings)
        {
            inner.Append(firings);
            if (firings.Count > 0)
            {
                try
                {
                    engine.FiringsCommitted?.Invoke();
                }
                catch (ObjectDisposedException)
                {
                    // The relay already stopped (shutdown): the firings wait in the outbox for the next start.
                }
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "This node ({Address}) was removed from the Akka cluster without being asked to stop (downed by the split-brain resolver: cut off from the majority, or unreachable to it for 20 s; or downed by an operator); the engine stops with exit code 1, to be started again and join anew")]
    private partial void LogRemovedFromCluster(string address);

    [LoggerMessage(Level = LogLevel.Information, Message = "Actor runtime up: member {Address} of a cluster of {Members}; customers sharded over {Partitions} partitions")]
    private partial void LogStarted(string address, int members, int partitions);

    /// <summary>
    /// Re-evaluates, in the background, every stored customer under <paramref name="version"/> (the one now in force on
    /// every owned partition): the customers' ids from the journal (Akka.Persistence.Query's current persistence ids),
    /// 500 at a time, each batch handed to the coordinators of their partitions, which send the re-evaluations within
    /// their in-flight bound after their records. It is recorded as done (<see cref="Swept"/>) once the checkpoints
    /// covering every hand-off are durable; a pass in which a partition restarted before that runs again. A later switch
    /// cancels it and starts its own.
    /// </summary>
    private void StartSweep(string version)
    {
        _sweep?.Cancel();
        var cancel = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        _sweep = cancel;
        _ = Task.Run(() => SweepAsync(version, cancel.Token));
    }

    private async Task SweepAsync(string version, CancellationToken ct)
    {
        var started = _time.GetTimestamp();
        long customers = 0;
        try
        {
            // A coordinator that restarts before the checkpoint covering its re-evaluations loses them: the round's
            // customers of that partition are not saved. The sweep then runs again (re-evaluating a customer already on
            // the version changes nothing), so it is recorded as done only when every hand-off is durable.
            for (var round = 1; ; round++)
            {
                var (count, replaced) = await SweepRoundAsync(ct).ConfigureAwait(false);
                customers = count;
                if (replaced.Count == 0)
                {
                    break;
                }

                if (round == MaxSweepRounds)
                {
                    throw new InvalidOperationException($"partitions [{string.Join(",", replaced)}] restarted before saving the sweep in {round} rounds");
                }

                LogSweepAgain(version, string.Join(",", replaced));
            }

            _sweptVersion = version;
            Swept?.Invoke(version);
            LogSwept(version, customers, _time.GetElapsedTime(started).TotalSeconds);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // A newer switch or the stop.
        }
#pragma warning disable CA1031 // A failed sweep leaves customers to be re-derived when next touched; the engine goes on.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogSweepFailed(version, customers, ex);
        }
    }

    /// <summary>
    /// The stored customers of <paramref name="partition"/>, for a coordinator's wake-up page-in: the customers' ids from
    /// the journal (Akka.Persistence.Query's current persistence ids), those whose key falls in the partition.
    /// </summary>
    private async IAsyncEnumerable<string> StoredCustomersAsync(int partition, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var system = _system ?? throw new InvalidOperationException("the actor system is not running");
        var journal = Akka.Persistence.Query.PersistenceQuery.Get(system).ReadJournalFor<Akka.Persistence.Sql.Query.SqlReadJournal>(Akka.Persistence.Sql.Query.SqlReadJournal.Identifier);
        var partitions = _partitionCount;
        var ids = journal.CurrentPersistenceIds()
            .Where(id => id.StartsWith(CustomerEntity.PersistencePrefix, StringComparison.Ordinal))
            .Select(id => id[CustomerEntity.PersistencePrefix.Length..])
            .Where(id => KeyPartitioner.Partition(Encoding.UTF8.GetBytes(id), partitions) == partition)
            .ViaMaterialized(KillSwitches.Single<string>(), Keep.Right)
            .ToMaterialized(Sink.Queue<string>(), Keep.Both)
            .Run(system.Materializer());
        try
        {
            while (await ids.Item2.PullAsync().WaitAsync(ct).ConfigureAwait(false) is { HasValue: true } next)
            {
                yield return next.Value;
            }
        }
        finally
        {
            // Abandoned (the coordinator stopped or listed again): the query stops.
            ids.Item1.Shutdown();
        }
    }

    /// <summary>
    /// One pass over every stored customer: hands each partition its customers, then waits until each hand-off is
    /// durable. Returns the customers handed over and the partitions whose coordinator was replaced meanwhile.
    /// </summary>
    private async Task<(long Customers, SortedSet<int> Replaced)> SweepRoundAsync(CancellationToken ct)
    {
        var system = _system!;
        var ingestion = _ingestion!;
        long customers = 0;
        var receipts = new Dictionary<int, List<SweepReceipt>>();
        var journal = Akka.Persistence.Query.PersistenceQuery.Get(system).ReadJournalFor<Akka.Persistence.Sql.Query.SqlReadJournal>(Akka.Persistence.Sql.Query.SqlReadJournal.Identifier);
        var ids = journal.CurrentPersistenceIds()
            .Where(id => id.StartsWith(CustomerEntity.PersistencePrefix, StringComparison.Ordinal))
            .Select(id => id[CustomerEntity.PersistencePrefix.Length..])
            .Grouped(500)
            .RunWith(Sink.Queue<IEnumerable<string>>(), system.Materializer());
        while (await ids.PullAsync().ConfigureAwait(false) is { HasValue: true } next)
        {
            foreach (var group in next.Value.GroupBy(id => KeyPartitioner.Partition(Encoding.UTF8.GetBytes(id), _partitionCount)))
            {
                var list = group.ToList();
                while (true)
                {
                    ct.ThrowIfCancellationRequested();
                    try
                    {
                        // A restarting partition would lose them: wait for its new coordinator (the sweep must not
                        // be recorded as done with a partition left out).
                        var receipt = await ingestion.SweepAsync(group.Key, list, TimeSpan.FromMinutes(1)).ConfigureAwait(false);
                        if (receipt.HandOff == SweepHandOff.Sent)
                        {
                            (receipts.TryGetValue(group.Key, out var held) ? held : receipts[group.Key] = []).Add(receipt);
                        }

                        if (receipt.HandOff != SweepHandOff.Restarting)
                        {
                            break;
                        }

                        await Task.Delay(SweepRetryDelay, _time, ct).ConfigureAwait(false);
                    }
                    catch (AskTimeoutException)
                    {
                        // The partition is held (a checkpoint waiting for the broker, say): try again.
                    }
                }

                customers += list.Count;
            }
        }

        var replaced = new SortedSet<int>();
        foreach (var (partition, held) in receipts)
        {
            // Every hand-off of the partition went to the coordinator of the last one, which saves them all with the
            // checkpoint covering the last (its checkpoints are in order); else some went to one that is gone.
            var last = held[^1];
            if (held.Any(r => !r.Coordinator!.Equals(last.Coordinator)))
            {
                replaced.Add(partition);
                continue;
            }

            while (true)
            {
                ct.ThrowIfCancellationRequested();
                try
                {
                    if (await ingestion.SettleSweepAsync(partition, last, TimeSpan.FromSeconds(30)).ConfigureAwait(false) == SweepSettled.Replaced)
                    {
                        replaced.Add(partition);
                    }

                    break;
                }
                catch (TimeoutException)
                {
                    // Its checkpoint is held (the broker or the store away): wait on.
                }
            }
        }

        return (customers, replaced);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rule sweep under {Version}: partitions [{Partitions}] restarted before saving it; sweeping again")]
    private partial void LogSweepAgain(string version, string partitions);

    [LoggerMessage(Level = LogLevel.Information, Message = "Rule sweep under {Version} done: {Customers} stored customers in {Seconds:0.0} s")]
    private partial void LogSwept(string version, long customers, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rule sweep under {Version} stopped after {Customers} customers; the others are re-derived when next touched")]
    private partial void LogSweepFailed(string version, long customers, Exception ex);

    [LoggerMessage(Level = LogLevel.Information, Message = "Rules switched from {From} to {To} on every owned partition")]
    private partial void LogRulesSwitched(string from, string to);

    [LoggerMessage(Level = LogLevel.Error, Message = "The input topic {Topic} has {Count} partitions and {Lead} has {LeadCount}: the input topics must have equal partition counts (co-partitioned by customer id), or customers' records reach the wrong partition")]
    private partial void LogPartitionCountMismatch(string topic, int count, string lead, int leadCount);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Waiting for the input topics on {Bootstrap}: {Reason}")]
    private partial void LogWaitingForTopics(string bootstrap, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "The actor runtime stopped on an error")]
    private partial void LogFailed(Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refreshing the partitions' status failed on the store ({Reason}); trying again")]
    private partial void LogRefreshFailed(string reason);
}
