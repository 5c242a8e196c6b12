using System.Diagnostics;
using System.Globalization;
using System.Text;
using Streaming.Connectors.Datasets;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Sql;
using Streaming.Engine.Events;
using Streaming.Engine.Runtime;

namespace Streaming.Host.Cli;

/// <summary>
/// <c>streaming bench --core</c>: the engine without a broker. Records of the demo population are encoded as UTF-8 JSON
/// in memory before any timing, then run on one thread through one <see cref="PartitionHost"/> per partition (default
/// rule set, event-time timers on, a real SQLite store). The cost of each part is measured by separate passes over the
/// same records, never by clocks inside the hot loop.
/// </summary>
internal static class CoreBench
{
    /// <summary>Years each further pass over the population is moved forward, so passes follow each other in event time.</summary>
    public const int YearsPerPass = 2;

    /// <summary>Passes whose events still fall before the decoder's upper time limit (2100).</summary>
    public const int MaxPasses = 44;

    public const int MaxWarmupEvents = 200_000;

    public static CoreBenchResult Run(int n, int partitions, int checkpointEvery, string dataDir, Action<string> progress)
    {
        progress($"preparing {n:N0} events from the demo population, encoded as UTF-8 JSON in memory");
        var (records, warmup) = Prepare(n, partitions, dataDir);
        var root = Path.Combine(Path.GetTempPath(), "streaming-bench-core-" + Guid.NewGuid().ToString("N"));
        try
        {
            progress($"warm-up: {warmup.Length:N0} events of other customers through every pass");
            RunPasses(warmup, partitions, checkpointEvery, Path.Combine(root, "warmup"), progress: null);
            return RunPasses(records, partitions, checkpointEvery, Path.Combine(root, "timed"), progress);
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    private static CoreBenchResult RunPasses(Record[] records, int partitions, int checkpointEvery, string dir, Action<string>? progress)
    {
        var n = records.Length;

        // 1. The core: decode, apply, timers; no store writes (the store is read: lookups of new customers, timer pages).
        progress?.Invoke("core pass: decode, apply, timers (no checkpoints)");
        long deadLetters = 0;
        long duplicates = 0;
        long timersFired = 0;
        long cached = 0;
        var core = Measure(() =>
        {
            using var hosts = new Hosts(Path.Combine(dir, "core"), partitions, new PartitionHostOptions());
            (deadLetters, duplicates) = Process(records, hosts.All);
            timersFired = hosts.TimersFired;
            cached = hosts.CachedCustomers;
        });

        // 2. The same with checkpoints on the same thread, as the engine does on revoke and stop.
        progress?.Invoke($"checkpoint pass: the same with a checkpoint every {checkpointEvery:N0} events");
        var checkpoints = new CheckpointStats();
        long customers = 0;
        var withCheckpoints = Measure(() =>
        {
            using var hosts = new Hosts(Path.Combine(dir, "checkpoints"), partitions, new PartitionHostOptions());
            ProcessWithCheckpoints(records, hosts, checkpointEvery, checkpoints);
            customers = hosts.Store.CountCustomers();
        });

        // 3. Decoding alone.
        progress?.Invoke("decode pass");
        var decode = Measure(() => DecodeOnly(records));

        // 4. Applying pre-decoded events, with timers and with the watermark held back (no timer ever fires by time alone).
        progress?.Invoke("apply passes: pre-decoded events with and without partition timers");
        var (events, eventPartitions) = DecodeAll(records);
        var apply = Measure(() =>
        {
            using var hosts = new Hosts(Path.Combine(dir, "apply"), partitions, new PartitionHostOptions());
            Apply(events, eventPartitions, hosts.All);
        });
        var applyNoTimers = Measure(() =>
        {
            using var hosts = new Hosts(Path.Combine(dir, "apply-no-timers"), partitions, new PartitionHostOptions { AllowedLateness = TimeSpan.MaxValue });
            Apply(events, eventPartitions, hosts.All);
        });

        var wallMs = checkpoints.WallMs.ToArray();
        Array.Sort(wallMs);
        var checkpointSeconds = wallMs.Sum() / 1000;
        var total = withCheckpoints.Seconds;
        var totalCpu = withCheckpoints.CpuSeconds;
        return new CoreBenchResult
        {
            Events = n,
            Partitions = partitions,
            CoreEventsPerSec = Math.Round(n / core.Seconds),
            CoreWithCheckpointsEventsPerSec = Math.Round(n / withCheckpoints.Seconds),
            TimersFired = timersFired,
            Customers = customers,
            CachedCustomers = cached,
            DeadLetters = deadLetters,
            Duplicates = duplicates,
            AllocatedBytesPerEvent = Math.Round((double)core.AllocatedBytes / n, 1),
            Gen0Collections = core.Gen0,
            Gen1Collections = core.Gen1,
            Gen2Collections = core.Gen2,
            PeakWorkingSetMB = Math.Round(System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0, 1),
            CheckpointEveryEvents = checkpointEvery,
            Checkpoints = wallMs.Length,
            CheckpointTotalMs = Math.Round(checkpointSeconds * 1000, 1),
            CheckpointCpuMs = Math.Round(checkpoints.CpuSeconds * 1000, 1),
            CheckpointP50Ms = Math.Round(wallMs.Length == 0 ? 0 : wallMs[(wallMs.Length - 1) / 2], 2),
            CheckpointMaxMs = Math.Round(wallMs.Length == 0 ? 0 : wallMs[^1], 2),
            CheckpointedStates = checkpoints.Rows,
            StateBytesAvg = checkpoints.Rows == 0 ? 0 : Math.Round((double)checkpoints.Bytes / checkpoints.Rows),
            Profile = new CoreProfile
            {
                Decode = Part(decode.Seconds, decode.CpuSeconds),
                Apply = Part(applyNoTimers.Seconds, applyNoTimers.CpuSeconds),
                Timers = Part(apply.Seconds - applyNoTimers.Seconds, apply.CpuSeconds - applyNoTimers.CpuSeconds),
                Checkpoint = Part(checkpointSeconds, checkpoints.CpuSeconds),
                Other = Part(
                    total - decode.Seconds - apply.Seconds - checkpointSeconds,
                    totalCpu - decode.CpuSeconds - apply.CpuSeconds - checkpoints.CpuSeconds),
                Passes = new Dictionary<string, PassTimes>
                {
                    ["core"] = core.Times(n),
                    ["withCheckpoints"] = withCheckpoints.Times(n),
                    ["decode"] = decode.Times(n),
                    ["apply"] = apply.Times(n),
                    ["applyNoTimers"] = applyNoTimers.Times(n),
                },
            },
        };

        ProfilePart Part(double seconds, double cpuSeconds) => new()
        {
            Share = Math.Round(seconds / total, 3),
            NsPerEvent = Math.Round(seconds * 1e9 / n, 1),
            CpuShare = totalCpu > 0 ? Math.Round(cpuSeconds / totalCpu, 3) : 0,
            CpuNsPerEvent = Math.Round(cpuSeconds * 1e9 / n, 1),
        };
    }

    /// <summary>The hot loop of the engine thread, minus Kafka: one record after the other into its partition's host.</summary>
    private static (long DeadLetters, long Duplicates) Process(Record[] records, PartitionHost[] hosts)
    {
        long deadLetters = 0;
        long duplicates = 0;
        foreach (var r in records)
        {
            switch (hosts[r.Partition].Process(r.Topic, r.Offset, r.Key, r.Value, out _))
            {
                case RecordOutcome.DeadLetter:
                    deadLetters++;
                    break;
                case RecordOutcome.Duplicate:
                    duplicates++;
                    break;
            }
        }

        return (deadLetters, duplicates);
    }

    private static void ProcessWithCheckpoints(Record[] records, Hosts hosts, int checkpointEvery, CheckpointStats stats)
    {
        var all = hosts.All;
        var since = 0;
        foreach (var r in records)
        {
            all[r.Partition].Process(r.Topic, r.Offset, r.Key, r.Value, out _);
            if (++since == checkpointEvery)
            {
                Checkpoint(hosts, stats);
                since = 0;
            }
        }

        // As the engine does on stop: every processed record is durable at the end.
        if (since > 0)
        {
            Checkpoint(hosts, stats);
        }
    }

    /// <summary>Collect, commit, mark clean: the engine's checkpoint, here on the engine thread (as on revoke and stop).</summary>
    private static void Checkpoint(Hosts hosts, CheckpointStats stats)
    {
        var sched = SchedStat.Read();
        var started = Stopwatch.GetTimestamp();
        var batch = new CheckpointBatch();
        foreach (var host in hosts.All)
        {
            host.CollectCheckpoint(batch);
        }

        hosts.Store.Commit(batch);
        foreach (var host in hosts.All)
        {
            host.MarkClean();
        }

        stats.WallMs.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        stats.CpuSeconds += (SchedStat.Read() - sched).CpuSeconds;
        foreach (var row in batch.States)
        {
            stats.Rows++;
            stats.Bytes += row.State.Length;
        }
    }

    private static long DecodeOnly(Record[] records)
    {
        var decoder = new EventDecoder(new DecoderOptions());
        long decoded = 0;
        foreach (var r in records)
        {
            if (decoder.TryDecode(r.Topic, r.Key, r.Value, out _, out _))
            {
                decoded++;
            }
        }

        return decoded;
    }

    private static (CustomerEvent[] Events, int[] Partitions) DecodeAll(Record[] records)
    {
        var decoder = new EventDecoder(new DecoderOptions());
        var events = new List<CustomerEvent>(records.Length);
        var partitions = new List<int>(records.Length);
        foreach (var r in records)
        {
            if (decoder.TryDecode(r.Topic, r.Key, r.Value, out var evt, out _))
            {
                events.Add(evt!);
                partitions.Add(r.Partition);
            }
        }

        return (events.ToArray(), partitions.ToArray());
    }

    private static void Apply(CustomerEvent[] events, int[] partitions, PartitionHost[] hosts)
    {
        for (var i = 0; i < events.Length; i++)
        {
            hosts[partitions[i]].Apply(events[i]);
        }
    }

    /// <summary>
    /// The timed records: the demo population, then further passes over it with a <c>~k</c> suffix on customer and event
    /// ids and times moved <see cref="YearsPerPass"/>·k years on (so each pass is a new population, later in event time).
    /// The warm-up records are the population's first events with a <c>~w</c> suffix: customers the timed run never sees.
    /// </summary>
    private static (Record[] Records, Record[] Warmup) Prepare(int n, int partitions, string dataDir)
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
        return (Encode(timed, partitions), Encode(warmup, partitions));
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

    private static Measured Measure(Action body)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var gen0 = GC.CollectionCount(0);
        var gen1 = GC.CollectionCount(1);
        var gen2 = GC.CollectionCount(2);
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var sched = SchedStat.Read();
        var started = Stopwatch.GetTimestamp();
        body();
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var used = SchedStat.Read() - sched;
        return new Measured(
            seconds,
            used.CpuSeconds,
            used.WaitSeconds,
            GC.GetAllocatedBytesForCurrentThread() - allocated,
            GC.CollectionCount(0) - gen0,
            GC.CollectionCount(1) - gen1,
            GC.CollectionCount(2) - gen2);
    }

    private static double NsPerEvent(double seconds, int n) => Math.Round(seconds * 1e9 / n, 1);

    private static double Share(double part, double total) => Math.Round(part / total, 3);

    private readonly record struct Record(InputTopic Topic, int Partition, long Offset, byte[] Key, byte[] Value);

    private readonly record struct Measured(double Seconds, double CpuSeconds, double WaitSeconds, long AllocatedBytes, int Gen0, int Gen1, int Gen2)
    {
        public PassTimes Times(int n) => new()
        {
            Seconds = Math.Round(Seconds, 3),
            CpuSeconds = Math.Round(CpuSeconds, 3),
            WaitingForCpuSeconds = Math.Round(WaitSeconds, 3),
            AllocatedBytesPerEvent = Math.Round((double)AllocatedBytes / n, 1),
        };
    }

    /// <summary>
    /// The calling thread's time on a CPU and runnable but waiting for one (Linux <c>/proc/thread-self/schedstat</c>);
    /// zeros where that is not available. On a shared machine, wall time minus both is time blocked (disk, locks).
    /// </summary>
    private readonly record struct SchedStat(long RunNs, long WaitNs)
    {
        public double CpuSeconds => RunNs / 1e9;

        public double WaitSeconds => WaitNs / 1e9;

        public static SchedStat operator -(SchedStat a, SchedStat b) => new(a.RunNs - b.RunNs, a.WaitNs - b.WaitNs);

        public static SchedStat Read()
        {
            try
            {
                var fields = File.ReadAllText("/proc/thread-self/schedstat").Split(' ');
                return new SchedStat(long.Parse(fields[0], CultureInfo.InvariantCulture), long.Parse(fields[1], CultureInfo.InvariantCulture));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                return default;
            }
        }
    }

    private sealed class CheckpointStats
    {
        public List<double> WallMs { get; } = [];
        public double CpuSeconds { get; set; }
        public long Rows { get; set; }
        public long Bytes { get; set; }
    }

    /// <summary>One partition host per partition over one store.</summary>
    private sealed class Hosts : IDisposable
    {
        public Hosts(string dir, int partitions, PartitionHostOptions options)
        {
            Store = SqliteStateStore.OpenDirectory(dir);
            All = new PartitionHost[partitions];
            for (var p = 0; p < partitions; p++)
            {
                All[p] = new PartitionHost(p, Store, options);
            }
        }

        public SqliteStateStore Store { get; }

        public PartitionHost[] All { get; }

        public long TimersFired => All.Sum(h => h.TimersFired);

        public long CachedCustomers => All.Sum(h => (long)h.CachedCustomers);

        public void Dispose() => Store.Dispose();
    }
}

/// <summary>The JSON result of <c>streaming bench --core</c>.</summary>
internal sealed record CoreBenchResult
{
    public long Events { get; init; }
    public int Partitions { get; init; }

    /// <summary>Decode, apply and timers from the first record to the last; no store writes.</summary>
    public double CoreEventsPerSec { get; init; }

    /// <summary>The same with checkpoints (collect, SQLite commit, mark clean) on the same thread.</summary>
    public double CoreWithCheckpointsEventsPerSec { get; init; }
    public long TimersFired { get; init; }

    /// <summary>Customers in the store after the run with checkpoints.</summary>
    public long Customers { get; init; }

    /// <summary>Customers in memory at the end of the core pass (equals <see cref="Customers"/>: nothing is passivated).</summary>
    public long CachedCustomers { get; init; }
    public long DeadLetters { get; init; }
    public long Duplicates { get; init; }

    /// <summary>Bytes allocated on the engine thread during the core pass, per event.</summary>
    public double AllocatedBytesPerEvent { get; init; }
    public int Gen0Collections { get; init; }
    public int Gen1Collections { get; init; }
    public int Gen2Collections { get; init; }
    public double PeakWorkingSetMB { get; init; }
    public int CheckpointEveryEvents { get; init; }
    public int Checkpoints { get; init; }
    public double CheckpointTotalMs { get; init; }

    /// <summary>Of <see cref="CheckpointTotalMs"/>, time on a CPU (the rest is mostly waiting for the disk).</summary>
    public double CheckpointCpuMs { get; init; }
    public double CheckpointP50Ms { get; init; }
    public double CheckpointMaxMs { get; init; }

    /// <summary>Customer states written by all checkpoints, and their average encoded size.</summary>
    public long CheckpointedStates { get; init; }
    public double StateBytesAvg { get; init; }
    public required CoreProfile Profile { get; init; }
}

/// <summary>
/// Where the time of the run with checkpoints goes, from separate passes over the same records: decoding alone; applying
/// pre-decoded events with the watermark held back (actor and rules; a customer's own wake-ups due before its next
/// event are still evaluated there); timers = applying with the watermark moving minus that; checkpoints as timed in the
/// run; other = the rest (routing, offsets, cache effects, noise). Shares are of the run with checkpoints, by wall time
/// and by the engine thread's CPU time (which a busy machine disturbs less).
/// </summary>
internal sealed record CoreProfile
{
    public required ProfilePart Decode { get; init; }
    public required ProfilePart Apply { get; init; }
    public required ProfilePart Timers { get; init; }
    public required ProfilePart Checkpoint { get; init; }
    public required ProfilePart Other { get; init; }

    /// <summary>Each pass as measured.</summary>
    public required Dictionary<string, PassTimes> Passes { get; init; }
}

/// <summary>One part of the profile.</summary>
internal sealed record ProfilePart
{
    public double Share { get; init; }
    public double NsPerEvent { get; init; }
    public double CpuShare { get; init; }
    public double CpuNsPerEvent { get; init; }
}

/// <summary>One measured pass: wall time, the engine thread's CPU time and its time waiting for a CPU, allocation.</summary>
internal sealed record PassTimes
{
    public double Seconds { get; init; }
    public double CpuSeconds { get; init; }
    public double WaitingForCpuSeconds { get; init; }
    public double AllocatedBytesPerEvent { get; init; }
}
