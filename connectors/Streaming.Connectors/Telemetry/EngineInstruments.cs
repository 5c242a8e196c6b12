using System.Diagnostics.Metrics;
using Streaming.Connectors.Kafka;
using Streaming.Runtime.Telemetry;

namespace Streaming.Connectors.Telemetry;

/// <summary>Metric names of the engine (meter <see cref="MeterName"/>); the README lists them with their meaning.</summary>
public static class InstrumentNames
{
    public const string MeterName = "Streaming";

    public const string EventsConsumed = "streaming.events.consumed";
    public const string EventsDuplicate = "streaming.events.duplicate";
    public const string DeadLetters = "streaming.dead_letters";
    public const string ProcessingLatency = "streaming.processing.latency";
    public const string ConsumerLag = "streaming.consumer.lag";
    public const string WatermarkDelay = "streaming.watermark.delay";
    public const string CustomersCached = "streaming.customers.cached";
    public const string CustomerLoads = "streaming.customers.loads";
    public const string Passivations = "streaming.customers.passivations";
    public const string Checkpoints = "streaming.checkpoints";
    public const string CheckpointDuration = "streaming.checkpoint.duration";
    public const string CheckpointCustomers = "streaming.checkpoint.customers";
    public const string CheckpointsDeferred = "streaming.checkpoints.deferred";
    public const string DeadLettersUnacknowledged = "streaming.dead_letters.unacknowledged";
    public const string DeadLettersRetried = "streaming.dead_letters.retried";
    public const string ConsumptionPaused = "streaming.consumption.paused";
    public const string LastCheckpointAge = "streaming.checkpoint.age";
    public const string TimersFired = "streaming.timers.fired";
    public const string TimersLate = "streaming.timers.late";
    public const string TimersInMemory = "streaming.timers.in_memory";
    public const string TimersPageIns = "streaming.timers.page_ins";
    public const string TimersFailed = "streaming.timers.failed";
    public const string RulesReloads = "streaming.rules.reloads";
    public const string RulesActive = "streaming.rules.active";
    public const string PopulationCustomers = "streaming.population.customers";
    public const string PopulationTransitions = "streaming.population.transitions";
    public const string TriggerFirings = "streaming.trigger.firings";
    public const string TriggerSuppressions = "streaming.trigger.suppressions";
    public const string TriggerConversions = "streaming.trigger.conversions";
    public const string TriggerLatency = "streaming.trigger.latency";
    public const string TriggersPublished = "streaming.trigger.published";
    public const string OutreachItems = "streaming.outreach.items";
    public const string OutreachLeases = "streaming.outreach.leases";
    public const string OutreachOutcomes = "streaming.outreach.outcomes";
    public const string ActorEntities = "streaming.actors.entities";
    public const string ActorBacklog = "streaming.actors.backlog";
    public const string PersistenceLatency = "streaming.persistence.latency";
    public const string PersistenceRecovery = "streaming.persistence.recovery";
    public const string PersistenceFailures = "streaming.persistence.failures";
}

/// <summary>
/// The engine's instruments, on one meter from <see cref="IMeterFactory"/>. Hot-path values (latency, dead letters)
/// are recorded directly; everything else is observed at scrape time from a snapshot the engine thread refreshes every
/// half second, so scrapes never touch the engine's structures. Labels are low-cardinality: topic, type, partition,
/// reason, stage names; never customer ids.
/// </summary>
public sealed class EngineInstruments : IPersistenceObserver
{
    private static readonly double[] LatencyBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
    private static readonly double[] DurationBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    private static readonly long[] SizeBuckets = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];

    private Func<EngineMetricsSnapshot> _snapshot = () => EngineMetricsSnapshot.Empty;

    public EngineInstruments(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(InstrumentNames.MeterName);

        DeadLetters = meter.CreateCounter<long>(InstrumentNames.DeadLetters, description: "Input records sent to the dead-letters topic, by reason.");
        ProcessingLatency = meter.CreateHistogram<double>(
            InstrumentNames.ProcessingLatency, unit: "s", description: "From the record's broker timestamp to its state being applied.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        CheckpointDuration = meter.CreateHistogram<double>(
            InstrumentNames.CheckpointDuration, unit: "s", description: "Time to write one checkpoint transaction.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        CheckpointCustomers = meter.CreateHistogram<long>(
            InstrumentNames.CheckpointCustomers, description: "Customers written by one checkpoint.",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = SizeBuckets });
        CheckpointsDeferred = meter.CreateCounter<long>(InstrumentNames.CheckpointsDeferred, description: "Checkpoints put off because dead letters were not acknowledged by the broker.");
        DeadLettersRetried = meter.CreateCounter<long>(InstrumentNames.DeadLettersRetried, description: "Dead letters produced again after a failed delivery (each attempt counts).");
        WakeUpFailures = meter.CreateCounter<long>(InstrumentNames.TimersFailed, description: "Wake-ups whose evaluation failed (a rule that throws, an overflow): dropped, the customer kept its state.");
        RulesReloads = meter.CreateCounter<long>(InstrumentNames.RulesReloads, description: "Rule sets offered to the engine, by result (accepted, rejected).");
        TriggerLatency = meter.CreateHistogram<double>(
            InstrumentNames.TriggerLatency, unit: "s", description: "From a firing being written with its checkpoint to the broker acknowledging it on customer-triggers.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        TriggersPublished = meter.CreateCounter<long>(InstrumentNames.TriggersPublished, description: "Firings published on customer-triggers.");
        OutreachLeases = meter.CreateCounter<long>(InstrumentNames.OutreachLeases, description: "Outreach items leased by dialers, by channel.");
        OutreachOutcomes = meter.CreateCounter<long>(InstrumentNames.OutreachOutcomes, description: "Outcomes reported by dialers, by channel and outcome.");
        PersistenceLatency = meter.CreateHistogram<double>(
            InstrumentNames.PersistenceLatency, unit: "s", description: "Actor runtime: from a persistent actor asking the journal to write to the write being durable, by actor (customer, partition).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        PersistenceRecovery = meter.CreateHistogram<double>(
            InstrumentNames.PersistenceRecovery, unit: "s", description: "Actor runtime: from a persistent actor starting to its recovery from the journal completing, by actor (customer, partition).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        PersistenceFailures = meter.CreateCounter<long>(InstrumentNames.PersistenceFailures, description: "Actor runtime: journal writes that failed (the actor stops) or were rejected, by actor and outcome.");
        // Counters of rare events start at zero for every known label value, so rates and alerts see 0, not "no data".
        foreach (var code in Streaming.Engine.Events.DecodeError.Codes)
        {
            DeadLetters.Add(0, new KeyValuePair<string, object?>("reason", code));
        }

        CheckpointsDeferred.Add(0);
        DeadLettersRetried.Add(0);
        WakeUpFailures.Add(0);
        RulesReloads.Add(0, new KeyValuePair<string, object?>("result", "accepted"));
        RulesReloads.Add(0, new KeyValuePair<string, object?>("result", "rejected"));
        TriggersPublished.Add(0);
        foreach (var actor in new[] { PersistentActorKind.Customer, PersistentActorKind.Partition })
        {
            foreach (var failure in new[] { PersistenceFailure.Failed, PersistenceFailure.Rejected })
            {
                PersistenceFailures.Add(0, Label(actor), Label(failure));
            }
        }
        foreach (var channel in new[] { "voice", "sms" })
        {
            OutreachLeases.Add(0, new KeyValuePair<string, object?>("channel", channel));
            foreach (var outcome in Triggers.OutreachService.Outcomes)
            {
                OutreachOutcomes.Add(0, new KeyValuePair<string, object?>("channel", channel), new KeyValuePair<string, object?>("outcome", outcome));
            }
        }

        meter.CreateObservableCounter(InstrumentNames.TriggerFirings, () => RuleCounters("fired", "delivery"), description: "Trigger firings by rule and delivery (queued, suppressed, holdout, notify), on this node.");
        meter.CreateObservableCounter(InstrumentNames.TriggerSuppressions, () => RuleCounters("suppressed", "check"), description: "Suppressed firings by rule and the check that stopped them.");
        meter.CreateObservableCounter(InstrumentNames.TriggerConversions, () => RuleCounters("converted", "delivery"), description: "Orders within a rule's attribution window after a firing, by rule and delivery.");
        meter.CreateObservableGauge(InstrumentNames.ActorEntities, ObserveEntities, description: "Actor runtime: customer entities in memory per shard (shard id = Kafka partition).");
        meter.CreateObservableGauge(InstrumentNames.ActorBacklog, ObserveBacklog, description: "Actor runtime: records a partition's coordinator has sent to customers and not had answered (state in_flight, bounded by back-pressure) and records waiting behind that bound or a checkpoint barrier (state waiting).");
        meter.CreateObservableGauge(InstrumentNames.OutreachItems, ObserveOutreach, description: "Outreach items by channel and state (due, leased, done, dropped, expired).");

        meter.CreateObservableCounter(InstrumentNames.EventsConsumed, ObserveEvents, description: "Input records processed, by topic and event type (type 'invalid' for dead letters).");
        meter.CreateObservableCounter(InstrumentNames.EventsDuplicate, () => _snapshot().Duplicates, description: "Records ignored as duplicates: a record its customer already applied (a Kafka redelivery after a restart, by offset), an eventId among the customer's recent ones (Streaming:Engine:RecentEventIds), or an order_placed whose orderId the customer placed before.");
        meter.CreateObservableGauge(InstrumentNames.ConsumerLag, ObserveLag, description: "Records behind the log end, per input topic partition.");
        meter.CreateObservableGauge(InstrumentNames.WatermarkDelay, ObserveWatermarkDelay, unit: "s", description: "Wall clock minus the partition's event-time watermark.");
        meter.CreateObservableGauge(InstrumentNames.CustomersCached, () => _snapshot().CachedCustomers, description: "Customers held in memory.");
        meter.CreateObservableCounter(InstrumentNames.CustomerLoads, () => _snapshot().CustomerLoads, description: "Customers loaded from the store (after passivation or a restart).");
        meter.CreateObservableCounter(InstrumentNames.Passivations, () => _snapshot().Passivations, description: "Idle customers dropped from memory.");
        meter.CreateObservableCounter(InstrumentNames.Checkpoints, () => _snapshot().Checkpoints, description: "Checkpoints committed.");
        meter.CreateObservableGauge(InstrumentNames.LastCheckpointAge, () => _snapshot().SecondsSinceCheckpoint, unit: "s", description: "Seconds since the last committed checkpoint (grows while checkpoints fail or are deferred).");
        meter.CreateObservableGauge(InstrumentNames.DeadLettersUnacknowledged, () => _snapshot().DeadLettersUnacknowledged, description: "Dead letters produced and not yet acknowledged by the broker; checkpoints wait while there are any.");
        meter.CreateObservableGauge(InstrumentNames.ConsumptionPaused, () => _snapshot().ConsumptionPaused ? 1 : 0, description: "1 while input consumption is paused because a deferred checkpoint holds back too many records.");
        meter.CreateObservableCounter(InstrumentNames.TimersFired, () => _snapshot().TimersFired, description: "Timer wake-ups evaluated (customers moved by time alone).");
        meter.CreateObservableCounter(InstrumentNames.TimersLate, () => _snapshot().TimersLate, description: "Wake-ups that fired more than an hour after they were due (after an outage).");
        meter.CreateObservableGauge(InstrumentNames.TimersInMemory, () => _snapshot().TimersInMemory, description: "Wake-ups held in memory (the rest are paged from the store).");
        meter.CreateObservableCounter(InstrumentNames.TimersPageIns, () => _snapshot().TimersPageIns, description: "Wake-up page-ins completed by the partition coordinators (each asked its partition's customers for their wake-ups).");
        meter.CreateObservableGauge(InstrumentNames.RulesActive, ObserveRules, description: "1 for the rule-set version in force (label version).");
        meter.CreateObservableGauge(InstrumentNames.PopulationCustomers, ObservePopulation, description: "Customers per dimension (lifecycle, aarrr, ladder, tier, rfmSegment) and value, on this node.");
        meter.CreateObservableCounter(InstrumentNames.PopulationTransitions, ObserveTransitions, description: "Customers moving between values of a dimension, by from and to.");
    }

    public Counter<long> DeadLetters { get; }

    public Histogram<double> ProcessingLatency { get; }

    public Histogram<double> CheckpointDuration { get; }

    public Histogram<long> CheckpointCustomers { get; }

    public Counter<long> CheckpointsDeferred { get; }

    /// <summary>Dead letters produced again after a failed delivery (<see cref="InstrumentNames.DeadLettersRetried"/>).</summary>
    public Counter<long> DeadLettersRetried { get; }

    public Counter<long> RulesReloads { get; }

    /// <summary>Wake-ups and re-evaluations that failed (<see cref="InstrumentNames.TimersFailed"/>).</summary>
    public Counter<long> WakeUpFailures { get; }

    public Histogram<double> TriggerLatency { get; }

    public Counter<long> TriggersPublished { get; }

    public Counter<long> OutreachLeases { get; }

    public Counter<long> OutreachOutcomes { get; }

    /// <summary>Journal write latency of the actor runtime's persistent actors (<see cref="InstrumentNames.PersistenceLatency"/>).</summary>
    public Histogram<double> PersistenceLatency { get; }

    /// <summary>Recovery duration of the actor runtime's persistent actors (<see cref="InstrumentNames.PersistenceRecovery"/>).</summary>
    public Histogram<double> PersistenceRecovery { get; }

    /// <summary>Failed and rejected journal writes (<see cref="InstrumentNames.PersistenceFailures"/>).</summary>
    public Counter<long> PersistenceFailures { get; }

    /// <inheritdoc />
    public void Persisted(PersistentActorKind actor, TimeSpan latency) => PersistenceLatency.Record(latency.TotalSeconds, Label(actor));

    /// <inheritdoc />
    public void Recovered(PersistentActorKind actor, TimeSpan duration) => PersistenceRecovery.Record(duration.TotalSeconds, Label(actor));

    /// <inheritdoc />
    public void Failed(PersistentActorKind actor, PersistenceFailure failure) => PersistenceFailures.Add(1, Label(actor), Label(failure));

    private static KeyValuePair<string, object?> Label(PersistentActorKind actor) =>
        new("actor", actor == PersistentActorKind.Customer ? "customer" : "partition");

    private static KeyValuePair<string, object?> Label(PersistenceFailure failure) =>
        new("outcome", failure == PersistenceFailure.Failed ? "failed" : "rejected");

    private IEnumerable<Measurement<long>> ObserveEntities()
    {
        foreach (var shard in _snapshot().Shards)
        {
            yield return new Measurement<long>(shard.Entities, new KeyValuePair<string, object?>("partition", shard.Partition));
        }
    }

    private IEnumerable<Measurement<long>> ObserveBacklog()
    {
        foreach (var shard in _snapshot().Shards)
        {
            yield return new Measurement<long>(shard.InFlight, new("partition", shard.Partition), new("state", "in_flight"));
            yield return new Measurement<long>(shard.Waiting, new("partition", shard.Partition), new("state", "waiting"));
        }
    }

    private IEnumerable<Measurement<long>> RuleCounters(string counter, string label)
    {
        foreach (var (key, count) in _snapshot().RuleCounters)
        {
            if (key.Counter == counter)
            {
                yield return new Measurement<long>(count, new("rule", key.Rule), new(label, key.Group));
            }
        }
    }

    private IEnumerable<Measurement<long>> ObserveOutreach()
    {
        // Every channel and state, zeros included: an empty queue is a value, not a gap.
        var outreach = _snapshot().Outreach;
        foreach (var channel in new[] { "voice", "sms" })
        {
            foreach (var state in Triggers.OutreachStates.All)
            {
                yield return new Measurement<long>(outreach.GetValueOrDefault((channel, state)), new("channel", channel), new("state", state));
            }
        }
    }

    /// <summary>Where observable instruments read from (the engine's latest snapshot).</summary>
    public void Observe(Func<EngineMetricsSnapshot> snapshot) => _snapshot = snapshot;

    private IEnumerable<Measurement<long>> ObserveEvents()
    {
        foreach (var (key, count) in _snapshot().Events)
        {
            yield return new Measurement<long>(count, new("topic", key.Topic), new("type", key.Type));
        }
    }

    private IEnumerable<Measurement<long>> ObserveLag()
    {
        foreach (var p in _snapshot().Partitions)
        {
            yield return new Measurement<long>(p.Lag, new("topic", p.Topic), new("partition", p.Partition));
        }
    }

    private IEnumerable<Measurement<double>> ObserveWatermarkDelay()
    {
        var snapshot = _snapshot();
        foreach (var (partition, watermark) in snapshot.Watermarks)
        {
            yield return new Measurement<double>((snapshot.WallClock - watermark).TotalSeconds, new KeyValuePair<string, object?>("partition", partition));
        }
    }

    private IEnumerable<Measurement<int>> ObserveRules()
    {
        yield return new Measurement<int>(1, new KeyValuePair<string, object?>("version", _snapshot().RuleVersion));
    }

    private IEnumerable<Measurement<long>> ObservePopulation()
    {
        foreach (var (key, count) in _snapshot().Population)
        {
            yield return new Measurement<long>(count, new("dimension", key.Dimension), new("value", key.Value));
        }
    }

    private IEnumerable<Measurement<long>> ObserveTransitions()
    {
        foreach (var (key, count) in _snapshot().Transitions)
        {
            yield return new Measurement<long>(count, new("dimension", key.Dimension), new("from", key.From), new("to", key.To));
        }
    }
}

/// <summary>What the engine thread last published for observable instruments (immutable once published).</summary>
public sealed record EngineMetricsSnapshot
{
    public static readonly EngineMetricsSnapshot Empty = new();

    public IReadOnlyDictionary<(string Topic, string Type), long> Events { get; init; } = new Dictionary<(string, string), long>();
    public long Duplicates { get; init; }
    public IReadOnlyList<PartitionStatus> Partitions { get; init; } = [];
    public IReadOnlyDictionary<int, DateTimeOffset> Watermarks { get; init; } = new Dictionary<int, DateTimeOffset>();
    public DateTimeOffset WallClock { get; init; }
    public long CachedCustomers { get; init; }
    public long CustomerLoads { get; init; }
    public long Passivations { get; init; }
    public long Checkpoints { get; init; }
    public long DeadLettersUnacknowledged { get; init; }
    public bool ConsumptionPaused { get; init; }
    public double SecondsSinceCheckpoint { get; init; }
    public long TimersFired { get; init; }
    public long TimersLate { get; init; }
    public long TimersInMemory { get; init; }

    /// <summary>Wake-up page-ins the running coordinators completed (a restarted coordinator counts from 0 again).</summary>
    public long TimersPageIns { get; init; }
    public string RuleVersion { get; init; } = "";
    public IReadOnlyDictionary<(string Dimension, string Value), long> Population { get; init; } = new Dictionary<(string, string), long>();
    public IReadOnlyDictionary<(string Dimension, string From, string To), long> Transitions { get; init; } = new Dictionary<(string, string, string), long>();
    public IReadOnlyDictionary<(string Rule, string Counter, string Group), long> RuleCounters { get; init; } = new Dictionary<(string, string, string), long>();
    public IReadOnlyDictionary<(string Channel, string State), long> Outreach { get; init; } = new Dictionary<(string, string), long>();

    /// <summary>Actor runtime: per owned shard (Kafka partition), its entities in memory and its coordinator's backlog. Empty on the partition host.</summary>
    public IReadOnlyList<ShardMetrics> Shards { get; init; } = [];
}

/// <summary>One shard of the actor runtime: customer entities in memory, records in flight to them and records waiting.</summary>
public sealed record ShardMetrics(int Partition, long Entities, long InFlight, long Waiting);
