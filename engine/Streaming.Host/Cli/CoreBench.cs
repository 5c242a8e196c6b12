using System.Diagnostics;
using System.Globalization;
using System.Text;
using Streaming.Connectors.Datasets;
using Streaming.Connectors.Kafka;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Runtime.Local;
using Streaming.Runtime.Partitions;
using PartitionStatus = Streaming.Runtime.Partitions.PartitionStatus;

namespace Streaming.Host.Cli;

/// <summary>
/// <c>streaming bench --core</c>: the engine without a broker or a database. Records of the demo population are encoded
/// as UTF-8 JSON in memory before any timing, with the partitions and offsets a producer would give them; then decoded
/// and sent to each partition's coordinator in a <see cref="LocalEngine"/> (a local actor system that is a cluster of
/// one, the customers' shard region, Akka.Persistence's in-memory journal; default rule set, event-time wake-ups on).
/// Two passes, each on a fresh actor system after a warm-up run on another population (for the JIT) and a first run of
/// the same records (for the heap, reported apart as the cold-heap pass): every record applied without checkpoints, then
/// with a checkpoint of each partition every <c>checkpointEvery</c> of its records, timed until the last checkpoint is
/// complete. Then the <see cref="ShardingBaseline"/> pass: the same records through the actor path alone, Akka.NET's own
/// cost for them.
/// </summary>
internal static class CoreBench
{
    /// <summary>Years each further pass over the population is moved forward, so passes follow each other in event time.</summary>
    public const int YearsPerPass = 2;

    /// <summary>Passes whose events still fall before the decoder's upper time limit (2100).</summary>
    public const int MaxPasses = 44;

    public const int MaxWarmupEvents = 200_000;

    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(10);

    /// <param name="zipfCustomers">
    /// The repeat-customer scenario: the timed events re-keyed onto this many customers (Zipf, exponent 1, fixed seed, as
    /// the Kafka bench's <c>--customers</c>); null: the demo population's own customers, mostly new ones.
    /// </param>
    /// <exception cref="ArgumentException"><paramref name="n"/> exceeds <see cref="MaxPasses"/> passes over the population.</exception>
    public static async Task<CoreBenchResult> RunAsync(int n, int partitions, int checkpointEvery, string dataDir, Action<string> progress, int? zipfCustomers = null)
    {
        progress($"preparing {n:N0} events from the demo population, encoded as UTF-8 JSON in memory" + (zipfCustomers is { } k ? $", re-keyed onto {k:N0} customers (Zipf, exponent 1)" : ""));
        var (records, warmup) = Prepare(n, partitions, dataDir, zipfCustomers);
        progress($"warm-up: {warmup.Length:N0} events of other customers through both passes");
        await PassAsync(warmup, partitions, checkpointEvery: 0).ConfigureAwait(false);
        await PassAsync(warmup, partitions, checkpointEvery).ConfigureAwait(false);

        // The first run of the timed records grows the process's heap to the size they need: each page the heap takes for
        // the first time is a page fault, which the kernel zeroes (a quarter of the CPU samples of such a pass, measured with
        // perf on 2 cores). A running engine's heap is at its size already, so the core pass is the run after this one.
        progress("cold-heap pass: the core pass once in a process whose heap has not grown to its size yet");
        var cold = await PassAsync(records, partitions, checkpointEvery: 0).ConfigureAwait(false);
        progress("core pass: decode, coordinators, customer entities (no checkpoints)");
        var core = await PassAsync(records, partitions, checkpointEvery: 0).ConfigureAwait(false);
        progress($"checkpoint pass: the same with a checkpoint of each partition every {checkpointEvery:N0} of its records (in-memory journal)");
        var withCheckpoints = await PassAsync(records, partitions, checkpointEvery).ConfigureAwait(false);
        progress("baseline pass: the same records through a relay per partition and the shard region to an entity per customer that only answers (no core, no checkpoints)");
        await ShardingBaseline.RunAsync(warmup, partitions, Patience).ConfigureAwait(false);
        var baseline = await ShardingBaseline.RunAsync(records, partitions, Patience).ConfigureAwait(false);
        return new CoreBenchResult
        {
            Events = n,
            Partitions = partitions,
            CoreEventsPerSec = Math.Round(n / core.Seconds),
            CoreWithCheckpointsEventsPerSec = Math.Round(n / withCheckpoints.Seconds),
            CoreColdHeapEventsPerSec = Math.Round(n / cold.Seconds),
            TimersFired = withCheckpoints.Status.Sum(s => s.TimersFired),
            Customers = withCheckpoints.Customers,
            CachedCustomers = core.Status.Sum(s => (long)s.Cached),
            DeadLetters = withCheckpoints.Status.Sum(s => s.DeadLetters),
            Duplicates = withCheckpoints.Status.Sum(s => s.Duplicates),
            AllocatedBytesPerEvent = Math.Round((double)core.AllocatedBytes / n),
            WithCheckpointsAllocatedBytesPerEvent = Math.Round((double)withCheckpoints.AllocatedBytes / n),
            Gen0Collections = core.Gen0,
            Gen1Collections = core.Gen1,
            Gen2Collections = core.Gen2,
            Checkpoints = withCheckpoints.Checkpoints,
            CheckpointEveryEvents = checkpointEvery,
            PeakWorkingSetMB = Math.Round(Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0, 1),
            Scenario = zipfCustomers is null ? "datasets" : "zipf",
            ZipfCustomers = zipfCustomers,
            BaselineEventsPerSec = Math.Round(n / baseline.Seconds),
            BaselineAllocatedBytesPerEvent = Math.Round((double)baseline.AllocatedBytes / n),
            BaselineEntities = baseline.Entities,
        };
    }


    private static async Task<Pass> PassAsync(Record[] records, int partitions, int checkpointEvery)
    {
        var customers = new HashSet<string>(StringComparer.Ordinal);
        // Without checkpoints means none: a coordinator otherwise checkpoints changes a second after they happen when no
        // checkpoint was asked for (QuietCheckpointAfter), which made the pass save every partition once a second.
        var options = new PartitionCoordinatorOptions { MaxCachedCustomers = int.MaxValue };
        if (checkpointEvery == 0)
        {
            options = options with { QuietCheckpointAfter = Patience * 2 };
        }

        await using var engine = await LocalEngine.StartAsync("bench-core", partitions, RuleSetLoader.Default, options, done =>
        {
            lock (customers)
            {
                customers.UnionWith(done.ChangedCustomers);
            }
        }, Patience).ConfigureAwait(false);

        // The last offset sent per partition and topic: the pass ends when each is processed (or checkpointed).
        var last = new Dictionary<(int Partition, string Topic), long>();
        var since = new int[partitions];
        var decoder = new EventDecoder();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var (gen0, gen1, gen2) = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
        var allocated = GC.GetTotalAllocatedBytes(precise: false);
        var started = Stopwatch.GetTimestamp();
        foreach (var r in records)
        {
            var topic = Topics.Inputs[(int)r.Topic];
            var record = decoder.TryDecode(r.Topic, r.Key, r.Value, out var evt, out var error)
                ? new PartitionRecord(topic, r.Offset, evt) { Key = r.Key, Value = r.Value }
                : new PartitionRecord(topic, r.Offset, null, error) { Key = r.Key, Value = r.Value };
            engine.Send(r.Partition, record);
            last[(r.Partition, topic)] = r.Offset;
            if (checkpointEvery > 0 && ++since[r.Partition] == checkpointEvery)
            {
                engine.Checkpoint(r.Partition);
                since[r.Partition] = 0;
            }
        }

        if (checkpointEvery > 0)
        {
            await engine.CheckpointThroughAsync(last, Patience).ConfigureAwait(false);
        }
        else
        {
            await engine.ProcessedThroughAsync(last, Patience).ConfigureAwait(false);
        }

        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var allocatedBytes = GC.GetTotalAllocatedBytes(precise: false) - allocated;
        var collections = (GC.CollectionCount(0) - gen0, GC.CollectionCount(1) - gen1, GC.CollectionCount(2) - gen2);
        var status = await engine.StatusAsync(Patience).ConfigureAwait(false);
        int customerCount;
        lock (customers)
        {
            customerCount = customers.Count;
        }

        return new Pass(seconds, allocatedBytes, collections.Item1, collections.Item2, collections.Item3, engine.Checkpoints, customerCount, status);
    }

    private readonly record struct Pass(double Seconds, long AllocatedBytes, int Gen0, int Gen1, int Gen2, long Checkpoints, long Customers, PartitionStatus[] Status);

    /// <summary>
    /// The timed records: the demo population, then further passes over it with a <c>~k</c> suffix on customer and event
    /// ids and times moved <see cref="YearsPerPass"/>·k years on (so each pass is a new population, later in event time).
    /// The warm-up records are the population's first events with a <c>~w</c> suffix: customers the timed run never sees.
    /// With <paramref name="zipfCustomers"/>, the timed records are then re-keyed as <see cref="BenchCommand.ZipfRekey"/> does.
    /// </summary>
    internal static (Record[] Records, Record[] Warmup) Prepare(int n, int partitions, string dataDir, int? zipfCustomers = null)
    {
        var population = DemoPopulation.Read(dataDir).ToList();
        if ((long)n > (long)population.Count * MaxPasses)
        {
            throw new ArgumentException($"--events {n} exceeds {MaxPasses} passes over the demo population ({population.Count:N0} events)");
        }

        var timed = new List<ReplayRecord>(n);
        for (var pass = 0; timed.Count < n; pass++)
        {
            var suffix = "~" + pass.ToString(CultureInfo.InvariantCulture);
            foreach (var record in population)
            {
                if (timed.Count == n)
                {
                    break;
                }

                timed.Add(pass == 0 ? record : RecordRewriter.Rewrite(record, record.Key + suffix, suffix, pass * YearsPerPass).Record);
            }
        }

        var warmup = population.Take(Math.Min(n, MaxWarmupEvents)).Select(r => RecordRewriter.Rewrite(r, r.Key + "~w", "~w", 0).Record);
        return (Encode(zipfCustomers is { } k ? BenchCommand.ZipfRekey(timed, k) : timed, partitions), Encode(warmup, partitions));
    }

    /// <summary>Key bytes, value bytes, the partition the producer would pick and the offset the record would get there.</summary>
    private static Record[] Encode(IEnumerable<ReplayRecord> records, int partitions)
    {
        var nextOffsets = new long[Topics.Inputs.Count * partitions];
        var result = new List<Record>();
        foreach (var record in records)
        {
            if (!Topics.TryParseInput(record.Topic, out var topic))
            {
                throw new InvalidOperationException($"the demo population produced a record for {record.Topic}, not an input topic");
            }

            var key = Encoding.UTF8.GetBytes(record.Key);
            var partition = KeyPartitioner.Partition(key, partitions);
            var offset = nextOffsets[(int)topic * partitions + partition]++;
            result.Add(new Record(topic, partition, offset, key, record.Value));
        }

        return result.ToArray();
    }

    internal readonly record struct Record(InputTopic Topic, int Partition, long Offset, byte[] Key, byte[] Value);
}

/// <summary>The JSON result of <c>streaming bench --core</c>.</summary>
internal sealed record CoreBenchResult
{
    /// <summary>The runtime measured (the actor runtime; kept so results from earlier versions can be told apart).</summary>
    public string Runtime { get; init; } = "akka";

    public long Events { get; init; }
    public int Partitions { get; init; }

    /// <summary>Events per second from the first record sent to the last one applied, without checkpoints.</summary>
    public double CoreEventsPerSec { get; init; }

    /// <summary>Events per second until the last checkpoint (every changed customer saved, the partition's checkpoint persisted, in memory) is complete.</summary>
    public double CoreWithCheckpointsEventsPerSec { get; init; }

    /// <summary>
    /// Events per second of the same pass as <see cref="CoreEventsPerSec"/> run first, in a process whose heap has not yet
    /// grown to the size the records need (the JIT warmed up, the pages not yet taken from the kernel).
    /// </summary>
    public double CoreColdHeapEventsPerSec { get; init; }

    /// <summary>Wake-ups run in the pass with checkpoints (all partitions).</summary>
    public long TimersFired { get; init; }

    /// <summary>Distinct customers changed in the pass with checkpoints (every customer of the timed records).</summary>
    public long Customers { get; init; }

    /// <summary>Customer entities the coordinators keep in memory at the end of the core pass (nothing is passivated).</summary>
    public long CachedCustomers { get; init; }
    public long DeadLetters { get; init; }

    /// <summary>Records their customer already had (by offset or event id).</summary>
    public long Duplicates { get; init; }

    /// <summary>Bytes allocated per event in the core pass, every thread included.</summary>
    public double AllocatedBytesPerEvent { get; init; }

    /// <summary>Bytes allocated per event in the pass with checkpoints, every thread included.</summary>
    public double WithCheckpointsAllocatedBytesPerEvent { get; init; }

    /// <summary>Garbage collections during the core pass, per generation (the runtime counts an older one as one of each younger too).</summary>
    public int Gen0Collections { get; init; }
    public int Gen1Collections { get; init; }
    public int Gen2Collections { get; init; }
    public long Checkpoints { get; init; }
    public int CheckpointEveryEvents { get; init; }
    public double PeakWorkingSetMB { get; init; }

    /// <summary>"datasets" (the demo population's own customers, mostly new) or "zipf" (<c>--customers</c>).</summary>
    public string Scenario { get; init; } = "datasets";

    /// <summary>The Zipf scenario's customer set; null for "datasets".</summary>
    public int? ZipfCustomers { get; init; }

    /// <summary>Events per second of the baseline pass (<see cref="ShardingBaseline"/>): Akka's own cost of the runtime's actor path, no product logic.</summary>
    public double BaselineEventsPerSec { get; init; }

    /// <summary>Bytes allocated per event in the baseline pass, every thread included.</summary>
    public double BaselineAllocatedBytesPerEvent { get; init; }

    /// <summary>Entities the baseline pass started: one per distinct customer of the timed records.</summary>
    public long BaselineEntities { get; init; }
}
