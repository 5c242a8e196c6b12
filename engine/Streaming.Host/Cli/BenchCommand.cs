using System.CommandLine;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using Microsoft.Extensions.Logging.Abstractions;
using Streaming.Connectors.Datasets;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Persistence;
using Streaming.Connectors.Sql;
using Streaming.Connectors.Telemetry;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Host.Hosting;

namespace Streaming.Host.Cli;

/// <summary>
/// <c>streaming bench</c>: in one process and one run, on the same embedded broker and the same events, a consume-only
/// loop (the baseline) and the engine end to end (decode, actors, SQLite checkpoints), twice: a cold run in a process
/// that has not run an engine yet, then the timed run. Reports the timed run's ratio to the baseline. With
/// <c>--core</c>, the engine alone without a broker (<see cref="CoreBench"/>).
/// </summary>
public static class BenchCommand
{
    private const int DefaultKafkaEvents = 300_000;
    private const int DefaultCoreEvents = 1_000_000;
    private const int ZipfSeed = 20261130;

    /// <summary>The consumer group of the engine under test (the latency phase's producer is paced by its lag).</summary>
    internal const string EngineGroup = "bench-engine";

    public static Command Create()
    {
        var events = new Option<int?>("--events") { Description = $"Number of events (default {DefaultKafkaEvents:N0}; {DefaultCoreEvents:N0} with --core)" };
        var output = new Option<string?>("--out") { Description = "Also write the JSON result to this file" };
        var partitions = new Option<int>("--partitions") { Description = "Partitions per topic", DefaultValueFactory = _ => 16 };
        var data = new Option<string?>("--data") { Description = "Directory of the datasets (default ../shared/data)" };
        var core = new Option<bool>("--core") { Description = "The engine alone: no broker, events pre-encoded in memory, the actor runtime on an in-memory journal" };
        var checkpointEvery = new Option<int?>("--checkpoint-every") { Description = "With --core: records of a partition between its checkpoints (default 20,000)" };
        var stateSize = new Option<bool>("--state-size") { Description = "Bytes per customer (encoded and in memory) by event-id window and order count; no broker, no data" };
        var customers = new Option<int?>("--customers")
        {
            Description = "Repeat-customer scenario (also with --core): re-key the events onto this many customers drawn from a Zipf distribution " +
                "(exponent 1, fixed seed: every run the same). Default: the datasets' own customers, mostly new ones",
        };
        var latencySeconds = new Option<int>("--latency-seconds")
        {
            Description = "After the throughput phase, load the engine at half its measured rate for this many seconds and measure " +
                "event -> trigger-on-topic latency with probe orders (0: skip)",
            DefaultValueFactory = _ => 10,
        };
        var command = new Command("bench", "Measure engine throughput against a consume-only baseline on the same broker and data, or the engine alone (--core), or the size of a customer (--state-size)")
        {
            events, output, partitions, data, core, checkpointEvery, stateSize, customers, latencySeconds,
        };
        command.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(stateSize))
            {
                var rows = StateSizeBench.Run(500, Progress);
                var sizes = JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase });
                Console.Out.WriteLine(sizes);
                if (parse.GetValue(output) is { } sizeFile)
                {
                    await File.WriteAllTextAsync(sizeFile, sizes + "\n", ct).ConfigureAwait(false);
                }

                return 0;
            }

            var isCore = parse.GetValue(core);
            var n = parse.GetValue(events) ?? (isCore ? DefaultCoreEvents : DefaultKafkaEvents);
            if ((Invalid(n, parse.GetValue(partitions), isCore, parse.GetValue(checkpointEvery)) ?? InvalidCustomers(parse.GetValue(customers))
                ?? (parse.GetValue(latencySeconds) < 0 ? "--latency-seconds must be 0 or more" : null)) is { } problem)
            {
                await Console.Error.WriteLineAsync("streaming bench: " + problem).ConfigureAwait(false);
                return 2;
            }

            string dataDir;
            try
            {
                dataDir = DataDirectory.Resolve(parse.GetValue(data));
            }
            catch (DirectoryNotFoundException ex)
            {
                await Console.Error.WriteLineAsync("streaming bench: " + ex.Message).ConfigureAwait(false);
                return 2;
            }

            object result;
            if (isCore)
            {
                try
                {
                    var coreResult = await CoreBench.RunAsync(n, parse.GetValue(partitions), parse.GetValue(checkpointEvery) ?? new IngestionOptions { BootstrapServers = "" }.CheckpointEveryRecords, dataDir, Progress, parse.GetValue(customers)).ConfigureAwait(false);
                    Summarize(coreResult);
                    result = coreResult;
                }
                catch (ArgumentException ex)
                {
                    await Console.Error.WriteLineAsync("streaming bench: " + ex.Message).ConfigureAwait(false);
                    return 2;
                }
            }
            else
            {
                result = await RunAsync(n, parse.GetValue(partitions), dataDir, parse.GetValue(customers), TimeSpan.FromSeconds(parse.GetValue(latencySeconds)), ct).ConfigureAwait(false);
            }

            var json = JsonSerializer.Serialize(result, result.GetType(), new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase });
            Console.Out.WriteLine(json);
            if (parse.GetValue(output) is { } file)
            {
                await File.WriteAllTextAsync(file, json + "\n", ct).ConfigureAwait(false);
            }

            return 0;
        });
        return command;
    }

    /// <summary>Why the options cannot run, or null.</summary>
    private static string? Invalid(int events, int partitions, bool core, int? checkpointEvery)
    {
        if (events < 1000)
        {
            return "--events must be at least 1000";
        }

        if (partitions < 1)
        {
            return "--partitions must be at least 1";
        }

        if (checkpointEvery is not null && !core)
        {
            return "--checkpoint-every only applies to --core (the Kafka bench checkpoints as the engine is configured)";
        }

        return checkpointEvery is < 1 ? "--checkpoint-every must be at least 1" : null;
    }

    private static string? InvalidCustomers(int? customers) => customers switch
    {
        null => null,
        < 1 => "--customers must be at least 1",
        _ => null,
    };

    private static void Summarize(CoreBenchResult r)
    {
        Progress($"{r.Events:N0} events, {r.Partitions} partitions, {r.Customers:N0} customers, {r.TimersFired:N0} wake-ups, {r.DeadLetters:N0} dead letters");
        Progress($"core (decode, coordinators, customer entities; no checkpoints): {r.CoreEventsPerSec:N0} events/s ({r.CoreColdHeapEventsPerSec:N0} on a heap not yet grown)");
        Progress($"with a checkpoint every {r.CheckpointEveryEvents:N0} records of a partition (in-memory journal): {r.CoreWithCheckpointsEventsPerSec:N0} events/s, {r.Checkpoints:N0} checkpoints");
        Progress($"baseline (decode, a relay per partition, the shard region, one persistent entity per customer that only answers): {r.BaselineEventsPerSec:N0} events/s, {r.BaselineAllocatedBytesPerEvent:N0} bytes/event; the core pass runs at {r.CoreEventsPerSec / r.BaselineEventsPerSec:P0} of it");
        Progress($"allocated {r.AllocatedBytesPerEvent:N0} bytes/event; collections gen0 {r.Gen0Collections}, gen1 {r.Gen1Collections}, gen2 {r.Gen2Collections}; peak working set {r.PeakWorkingSetMB:N0} MB");
    }

    private static async Task<BenchResult> RunAsync(int n, int partitions, string dataDir, int? zipfCustomers, TimeSpan latencyFor, CancellationToken ct)
    {
        using var cluster = MockCluster.Start();
        cluster.CreateTopics(Topics.All, partitions);

        Progress($"preparing {n:N0} events from the real datasets");
        var records = BuildEvents(n, dataDir);
        if (zipfCustomers is { } population)
        {
            Progress($"re-keying them onto {population:N0} customers (Zipf, exponent 1)");
            records = ZipfRekey(records, population);
        }

        Progress($"producing {n:N0} events to the embedded broker ({partitions} partitions per topic)");
        var produceWatch = Stopwatch.StartNew();
        var produced = new ReplayProducer(new ReplayOptions { BootstrapServers = cluster.BootstrapServers, PaceGroup = null }, TimeProvider.System)
            .Run(records, () => 1, null, null, ct);
        produceWatch.Stop();
        EnsureNothingDropped(cluster.BootstrapServers, partitions);

        Progress("consume-only baseline");
        var consumeOnly = ConsumeOnly(cluster.BootstrapServers, produced, ct);
        Progress("engine end to end, first run in this process (cold: the JIT compiles the engine's code and the heap grows meanwhile)");
        var coldSeconds = await ColdEngineAsync(cluster.BootstrapServers, produced, ct).ConfigureAwait(false);
        Progress($"cold run: {produced / coldSeconds:N0} events/s");
        Progress("engine end to end, timed run (a new engine, consumer group and SQLite store)");
        var stateDir = Path.Combine(Path.GetTempPath(), "streaming-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (engineSeconds, checkpoints, customers, store, latency) = await EngineAsync(cluster.BootstrapServers, partitions, stateDir, produced, records, zipfCustomers is not null, latencyFor, ct).ConfigureAwait(false);
            Array.Sort(checkpoints);
            var consumeRate = produced / consumeOnly;
            var engineRate = produced / engineSeconds;
            return new BenchResult
            {
                Events = produced,
                Partitions = partitions,
                ProduceEventsPerSec = Math.Round(produced / produceWatch.Elapsed.TotalSeconds),
                ConsumeOnlyEventsPerSec = Math.Round(consumeRate),
                EngineEventsPerSec = Math.Round(engineRate),
                EngineColdEventsPerSec = Math.Round(produced / coldSeconds),
                Ratio = Math.Round(engineRate / consumeRate, 3),
                Checkpoints = checkpoints.Length,
                CheckpointP50Ms = Math.Round(Percentile(checkpoints, 0.50), 2),
                CheckpointP99Ms = Math.Round(Percentile(checkpoints, 0.99), 2),
                PeakWorkingSetMB = Math.Round(Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0, 1),
                Customers = customers,
                Scenario = zipfCustomers is null ? "datasets" : "zipf",
                ZipfCustomers = zipfCustomers,
                DurableWritesPerSec = Math.Round(store.DurableWrites / engineSeconds),
                EventsPerCustomerPerCheckpoint = store.CustomersCheckpointed == 0 ? 0 : Math.Round((double)produced / store.CustomersCheckpointed, 2),
                ResidentBytesPerCachedCustomer = store.CachedCustomers == 0 ? 0 : Math.Round((double)store.ResidentBytes / store.CachedCustomers),
                CachedCustomers = store.CachedCustomers,
                AllocatedBytesPerEvent = Math.Round((double)store.AllocatedBytes / produced),
                TriggerLatency = latency,
            };
        }
        finally
        {
            if (Directory.Exists(stateDir))
            {
                Directory.Delete(stateDir, recursive: true);
            }
        }
    }

    /// <summary>
    /// Cycles through the three datasets until <paramref name="n"/> events; from the second cycle on, customer and event
    /// ids get a "~k" suffix so each cycle is a new population with the same shape.
    /// </summary>
    private static List<ReplayRecord> BuildEvents(int n, string dataDir)
    {
        var result = new List<ReplayRecord>(n);
        for (var cycle = 0; result.Count < n; cycle++)
        {
            foreach (var name in Datasets.Names)
            {
                using var file = new DatasetFile(Path.Combine(dataDir, Datasets.DefaultFile(name)));
                foreach (var record in Datasets.Read(name, file))
                {
                    if (result.Count == n)
                    {
                        return result;
                    }

                    var suffix = "~" + cycle.ToString(CultureInfo.InvariantCulture);
                    result.Add(cycle == 0 ? record : RecordRewriter.Rewrite(record, record.Key + suffix, suffix, addYears: 0).Record);
                }
            }
        }

        return result;
    }

    /// <summary>
    /// The repeat-customer scenario: each record goes to customer <c>zipf-k</c>, k drawn from a Zipf distribution over
    /// 1..<paramref name="customers"/> with exponent 1 (MathNet.Numerics; customer k gets a share proportional to 1/k) from
    /// a fixed seed. Event ids get "@index" so that merged customers' ids stay distinct; times are kept.
    /// </summary>
    internal static List<ReplayRecord> ZipfRekey(IReadOnlyList<ReplayRecord> records, int customers)
    {
        var zipf = new MathNet.Numerics.Distributions.Zipf(1.0, customers, new Random(ZipfSeed));
        var result = new List<ReplayRecord>(records.Count);
        for (var i = 0; i < records.Count; i++)
        {
            var customer = "zipf-" + zipf.Sample().ToString(CultureInfo.InvariantCulture);
            result.Add(RecordRewriter.Rewrite(records[i], customer, "@" + i.ToString(CultureInfo.InvariantCulture), addYears: 0).Record);
        }

        return result;
    }

    private static void EnsureNothingDropped(string bootstrap, int partitions)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = bootstrap, GroupId = "bench-check" }).Build();
        foreach (var topic in Topics.Inputs)
        {
            for (var p = 0; p < partitions; p++)
            {
                var w = consumer.QueryWatermarkOffsets(new TopicPartition(topic, p), TimeSpan.FromSeconds(10));
                if (w.Low.Value > 0)
                {
                    throw new InvalidOperationException(
                        $"the embedded broker dropped the oldest records of {topic}[{p}] (low watermark {w.Low.Value}); use more --partitions or fewer --events");
                }
            }
        }
    }

    /// <summary>Reads and discards every record; seconds from the first record to the last.</summary>
    private static double ConsumeOnly(string bootstrap, long expected, CancellationToken ct)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = "bench-consume-only",
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky,
            // The engine's prefetch bound, so both loops are fed alike.
            QueuedMaxMessagesKbytes = new EngineOptions { BootstrapServers = bootstrap }.PrefetchMaxKbytes,
        }).Build();
        consumer.Subscribe(Topics.Inputs);
        long count = 0;
        long bytes = 0;
        var first = 0L;
        while (count < expected)
        {
            ct.ThrowIfCancellationRequested();
            var result = consumer.Consume(100);
            if (result is null || result.IsPartitionEOF)
            {
                continue;
            }

            if (count == 0)
            {
                first = Stopwatch.GetTimestamp();
            }

            bytes += result.Message.Value?.Length ?? 0;
            count++;
        }

        var seconds = Stopwatch.GetElapsedTime(first).TotalSeconds;
        consumer.Close();
        return seconds;
    }

    /// <summary>
    /// The engine phase: the engine consumes the <paramref name="expected"/> records produced, then, unless
    /// <paramref name="latencyFor"/> is zero, runs <see cref="TriggerLatencyBench"/> for that long under half the
    /// measured rate, loaded with <paramref name="load"/>.
    /// </summary>
    private static async Task<(double Seconds, double[] CheckpointsMs, long Customers, StoreFigures Store, TriggerLatency? Latency)> EngineAsync(string bootstrap, int partitions, string stateDir, long expected, IReadOnlyList<ReplayRecord> load, bool sameCustomers, TimeSpan latencyFor, CancellationToken ct)
    {
        using var store = SqliteStateStore.OpenDirectory(stateDir);
        using var meters = new BenchMeters();
        var instruments = new EngineInstruments(meters);
        var baseline = HeapAfterFullCollection();
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: false);
        using var engine = NewEngine(bootstrap, EngineGroup, stateDir, store, instruments);
        engine.Start();
        var seconds = await SecondsToApplyAsync(() => engine.EventsProcessed, engine.Stopped, expected, ct).ConfigureAwait(false);
        Progress($"timed run: {expected / seconds:N0} events/s");
        var allocated = GC.GetTotalAllocatedBytes(precise: false) - allocatedBefore;

        // Every event is applied; the cached customers are what the engine keeps (the broker's copy of the events was in
        // the baseline already).
        var cached = await SettledCachedCustomersAsync(engine, ct).ConfigureAwait(false);
        var resident = HeapAfterFullCollection() - baseline;
        var writes = meters.DurableWrites();

        // Once no checkpoint writes customers any more, every event is covered by exactly one checkpoint.
        var checkpointed = await SettledAsync(() => meters.CustomersCheckpointed, TimeSpan.FromSeconds(3), ct).ConfigureAwait(false);
        var figures = new StoreFigures(writes, checkpointed, cached, resident, allocated);
        var customers = ActorStore.CountCustomers(stateDir);
        var latency = latencyFor > TimeSpan.Zero
            ? await TriggerLatencyBench.RunAsync(bootstrap, partitions, store, engine, load, sameCustomers, Math.Max(1, Math.Round(expected / seconds / 2)), latencyFor, Progress, ct).ConfigureAwait(false)
            : null;
        await engine.StopAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        return (seconds, engine.CheckpointDurationsMs(), customers, figures, latency);
    }

    /// <summary>
    /// The cold run: an engine started in this process for the first time consumes the <paramref name="expected"/>
    /// records under a consumer group of its own, into a SQLite store of its own (deleted after), and stops. It runs the
    /// timed run's code, so the timed run finds it compiled and the heap grown, as in an engine that has been running.
    /// </summary>
    /// <returns>Seconds from its first record applied to its last.</returns>
    private static async Task<double> ColdEngineAsync(string bootstrap, long expected, CancellationToken ct)
    {
        var stateDir = Path.Combine(Path.GetTempPath(), "streaming-bench-cold-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var store = SqliteStateStore.OpenDirectory(stateDir);
            using var meters = new BenchMeters();
            using var engine = NewEngine(bootstrap, EngineGroup + "-cold", stateDir, store, new EngineInstruments(meters));
            engine.Start();
            var seconds = await SecondsToApplyAsync(() => engine.EventsProcessed, engine.Stopped, expected, ct).ConfigureAwait(false);
            await engine.StopAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            return seconds;
        }
        finally
        {
            if (Directory.Exists(stateDir))
            {
                Directory.Delete(stateDir, recursive: true);
            }
        }
    }

    /// <summary>
    /// An engine as the bench runs it: default options, consuming from <paramref name="bootstrap"/> in consumer group
    /// <paramref name="group"/>, its actors' journal in SQLite under <paramref name="stateDir"/> and its firings'
    /// outbox in <paramref name="store"/>, measured through <paramref name="instruments"/>. Not started.
    /// </summary>
    private static ShardedEngine NewEngine(string bootstrap, string group, string stateDir, SqliteStateStore store, EngineInstruments instruments) =>
        new(new EngineOptions { BootstrapServers = bootstrap, GroupId = group }, new ActorStoreOptions { Provider = StoreProvider.Sqlite, DataDir = stateDir }, TimeProvider.System, NullLogger.Instance, RuleSetLoader.Default, store, instruments);

    /// <summary>
    /// Seconds from the first record an engine applied to the <paramref name="expected"/>-th, as its count of applied
    /// events (<paramref name="applied"/>, read every 2 ms) shows them. An engine's count is refreshed about twice a
    /// second, so a run shorter than that can go from none to all in one step: its start is then the last moment the
    /// count was still 0.
    /// </summary>
    /// <param name="applied">The engine's count of applied events (<see cref="IStreamingEngine.EventsProcessed"/>).</param>
    /// <param name="stopped">Completes when the engine stops (<see cref="ShardedEngine.Stopped"/>).</param>
    /// <exception cref="Exception">Whatever stopped the engine before then.</exception>
    /// <exception cref="InvalidOperationException">The engine stopped without an error before then.</exception>
    internal static async Task<double> SecondsToApplyAsync(Func<long> applied, Task stopped, long expected, CancellationToken ct)
    {
        var first = 0L;
        var lastNone = Stopwatch.GetTimestamp();
        while (applied() is var processed && processed < expected)
        {
            if (stopped.IsCompleted)
            {
                await stopped.ConfigureAwait(false);
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"the engine stopped after applying {processed:N0} of {expected:N0} events"));
            }

            if (processed == 0)
            {
                lastNone = Stopwatch.GetTimestamp();
            }
            else if (first == 0)
            {
                first = Stopwatch.GetTimestamp();
            }

            // Sampling every 2 ms bounds the timing error well below the run's length.
            await Task.Delay(2, ct).ConfigureAwait(false);
        }

        return Stopwatch.GetElapsedTime(first == 0 ? lastNone : first).TotalSeconds;
    }

    /// <summary>
    /// The engine's cached customers once its status, refreshed every half second, has caught up with the last event:
    /// the same non-zero count twice, 600 ms apart (at most 10 s).
    /// </summary>
    private static async Task<long> SettledCachedCustomersAsync(IStreamingEngine engine, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        var last = -1L;
        while (true)
        {
            var cached = engine.Status.CachedCustomers;
            if ((cached > 0 && cached == last) || deadline.Elapsed > TimeSpan.FromSeconds(10))
            {
                return cached;
            }

            last = cached;
            await Task.Delay(600, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// <paramref name="read"/> once it has not changed for <paramref name="quiet"/> (read every 200 ms; at most 60 s).
    /// </summary>
    private static async Task<long> SettledAsync(Func<long> read, TimeSpan quiet, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        var last = read();
        var since = Stopwatch.StartNew();
        while (since.Elapsed < quiet && deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(200, ct).ConfigureAwait(false);
            if (read() is var now && now != last)
            {
                last = now;
                since.Restart();
            }
        }

        return last;
    }

    /// <summary>Bytes of the managed heap after a full, compacting, blocking collection.</summary>
    private static long HeapAfterFullCollection()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        return GC.GetTotalMemory(forceFullCollection: false);
    }

    /// <summary>What the engine phase measured besides time: writes, customers per checkpoint, memory, allocation.</summary>
    private sealed record StoreFigures(long DurableWrites, long CustomersCheckpointed, long CachedCustomers, long ResidentBytes, long AllocatedBytes);

    /// <summary>
    /// The bench's own meters (nothing is exported): a listener adds up the customers each checkpoint wrote and, on the
    /// actor runtime, the journal writes of customer entities.
    /// </summary>
    private sealed class BenchMeters : IMeterFactory
    {
        private readonly List<Meter> _meters = [];
        private readonly MeterListener _listener = new();
        private long _customersCheckpointed;
        private long _customerWrites;

        public BenchMeters()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (_meters.Contains(instrument.Meter) && instrument.Name is InstrumentNames.CheckpointCustomers or InstrumentNames.PersistenceLatency)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
            {
                if (instrument.Name == InstrumentNames.CheckpointCustomers)
                {
                    Interlocked.Add(ref _customersCheckpointed, value);
                }
            });
            _listener.SetMeasurementEventCallback<double>((instrument, _, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == "actor" && tag.Value as string == "customer")
                    {
                        Interlocked.Increment(ref _customerWrites);
                    }
                }
            });
            _listener.Start();
        }

        /// <summary>Customers written by checkpoints (the sum of each checkpoint's changed customers).</summary>
        public long CustomersCheckpointed => Interlocked.Read(ref _customersCheckpointed);

        /// <summary>Customer states made durable: the customer entities' journal writes (checkpoints and passivations).</summary>
        public long DurableWrites() => Interlocked.Read(ref _customerWrites);

        public Meter Create(MeterOptions options)
        {
            var meter = new Meter(options);
            lock (_meters)
            {
                _meters.Add(meter);
            }

            return meter;
        }

        public void Dispose()
        {
            _listener.Dispose();
            foreach (var meter in _meters)
            {
                meter.Dispose();
            }
        }
    }

    /// <summary>The <paramref name="q"/> quantile (0–1) of <paramref name="sorted"/> by nearest rank; 0 for none.</summary>
    internal static double Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];

    private static void Progress(string message) => Console.Error.WriteLine("bench: " + message);

    private sealed record BenchResult
    {
        public long Events { get; init; }
        public int Partitions { get; init; }
        public double ProduceEventsPerSec { get; init; }
        public double ConsumeOnlyEventsPerSec { get; init; }

        /// <summary>Events per second of the timed run: an engine started after the cold run, in the same process.</summary>
        public double EngineEventsPerSec { get; init; }

        /// <summary>
        /// Events per second of the cold run: the first engine in the process, its code compiled by the JIT and its heap
        /// grown while it runs (as after a restart).
        /// </summary>
        public double EngineColdEventsPerSec { get; init; }

        public double Ratio { get; init; }
        public int Checkpoints { get; init; }
        public double CheckpointP50Ms { get; init; }
        public double CheckpointP99Ms { get; init; }
        public double PeakWorkingSetMB { get; init; }
        public long Customers { get; init; }

        /// <summary>"datasets" (the datasets' own customers) or "zipf" (<c>--customers</c>).</summary>
        public string Scenario { get; init; } = "datasets";

        /// <summary>The Zipf scenario's customer set; null for "datasets".</summary>
        public int? ZipfCustomers { get; init; }

        /// <summary>
        /// Customer states made durable per second during the engine phase (journal writes of customer entities).
        /// </summary>
        public double DurableWritesPerSec { get; init; }

        /// <summary>
        /// Events per customer written per checkpoint: the events over the sum of each checkpoint's changed customers,
        /// the stop's last checkpoint included (so every event counts once).
        /// </summary>
        public double EventsPerCustomerPerCheckpoint { get; init; }

        /// <summary>Managed heap after the run minus before it (both after a full collection), over the customers cached then.</summary>
        public double ResidentBytesPerCachedCustomer { get; init; }

        /// <summary>Customers in memory when every event was applied.</summary>
        public long CachedCustomers { get; init; }

        /// <summary>Bytes allocated during the engine phase per event (every thread: consumer, engine, store, broker).</summary>
        public double AllocatedBytesPerEvent { get; init; }

        /// <summary>Event -> trigger-on-topic latency at half the measured rate; null with <c>--latency-seconds 0</c>.</summary>
        public TriggerLatency? TriggerLatency { get; init; }
    }
}
