using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Streaming.Host.Tests.Infrastructure;
using Streaming.Host.Tests.Metrics;
using Streaming.Runtime.Serialization;
using Xunit.Abstractions;

namespace Streaming.Host.Tests;

/// <summary>
/// The checkpoint's failure paths with dead letters (README "Bad input": a checkpoint is written only once the dead
/// letters of the records it covers are on the broker). Synthetic orders with bad records among them (the datasets
/// have no bad records, so the load and the expected state are generated here) go through a <c>streaming broker</c>
/// whose test-only fault file makes it refuse every Produce request (retriable <c>NOT_ENOUGH_REPLICAS</c>; reads go on).
/// The engines run with <c>CheckpointEveryEvents</c> 1000 and no interval checkpoint, so where checkpoints fall is known:
/// <list type="number">
/// <item>E1 meets bad records while the broker refuses: its dead letters time out (1 s) and are produced again, the
/// checkpoint is deferred, consumption pauses after 2000 records, and no stored checkpoint covers a bad record.
/// SIGKILL: those dead letters die with the process.</item>
/// <item>E2 restarts from the store while the broker still refuses and pauses the same way; then the broker accepts
/// again: the dead letters go out, the checkpoint goes through, consumption resumes. A last segment leaves records
/// whose dead letters are on the broker but which no checkpoint covers; SIGKILL.</item>
/// <item>E3 re-reads from the store. Every bad record is on <c>dead-letters</c> with its exact source; those E2's last
/// checkpoint covered exactly once, the others exactly twice (delivered, then re-read after the crash: at least once);
/// every customer's orders equal the sums of what was produced.</item>
/// </list>
/// </summary>
[Collection(EndToEnd.Name)]
public sealed partial class DeadLetterCheckpointTests(ITestOutputHelper output)
{
    private const int Partitions = 8;
    private const int Customers = 1000;
    private const int Records = 10_000;
    private const int BadEvery = 40;
    private const int CheckpointEvery = 1000;
    private const int Uncovered = 200; // records of the last segment, at most
    private const int Reported = 20;
    private static readonly DateTimeOffset T0 = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// The settings of run <paramref name="name"/>. Each run joins a consumer group of its own: where a run starts is
    /// decided by the store, not by the group's committed offsets (README "Architecture"), and so no run waits for
    /// the killed one's session to expire.
    /// </summary>
    private static Dictionary<string, string> Settings(string name) => new()
    {
        ["Streaming__Kafka__GroupId"] = "dlc-" + name,
        ["Streaming__Engine__CheckpointIntervalMs"] = "600000",
        ["Streaming__Engine__CheckpointEveryEvents"] = CheckpointEvery.ToString(CultureInfo.InvariantCulture),
        ["Streaming__Engine__DeadLetterTimeoutMs"] = "500",
    };

    private sealed record Bad(int Index, string Key, string Value, string Code);

    private sealed record Stored(long Seq, Dictionary<int, long> Offsets)
    {
        public static readonly Stored Empty = new(0, []);

        public long Sum => Offsets.Values.Sum();

        public override string ToString() => $"checkpoint {Seq} ({string.Join(", ", Offsets.OrderBy(o => o.Key).Select(o => $"{o.Key}:{o.Value}"))})";

        public bool SameAs(Stored other) => Seq == other.Seq && Offsets.Count == other.Offsets.Count && Offsets.All(o => other.Offsets.GetValueOrDefault(o.Key, -1) == o.Value);
    }

    private sealed record Probe(long Processed, long Deferred, long Retried, long Unacknowledged, bool Paused);

    [Fact]
    public async Task Dead_letters_hold_back_the_checkpoint_through_a_refusing_broker_and_two_kills_and_none_is_lost()
    {
        var total = Stopwatch.StartNew();
        var bad = new List<Bad>();
        var gross = new decimal[Customers];
        var counts = new int[Customers];
        var next = 0;
        var segmentA = Segment(Records, BadEvery, bad, gross, counts, ref next);

        await using var broker = await BrokerProcess.StartAsync(Partitions, faults: true);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        await ProduceAsync(broker.BootstrapServers, dataDir, segmentA);
        var positions = await BadPositionsAsync(broker.BootstrapServers, bad);
        output.WriteLine($"{segmentA.Count} records ({bad.Count} bad) of {Customers} customers produced at {total.ElapsedMilliseconds} ms");

        await broker.SetProduceRefusedAsync(true);
        var refused = true;
        var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, Settings("e1"));
        try
        {
            // E1: defers, keeps its failed dead letters and produces them again, pauses; nothing stored past them.
            var e1 = await WaitPausedAsync(engine, "E1", dataDir, Stored.Empty);
            var stored1 = ReadStore(dataDir);
            output.WriteLine($"E1 paused at {total.ElapsedMilliseconds} ms: {e1}, stored checkpoint {stored1.Seq} covering {stored1.Sum} records");
            Assert.True(e1.Processed < segmentA.Count, "E1 processed everything: it never paused");
            AssertCoversNoBadRecord(stored1, bad, positions, "E1 while the broker refuses");

            // Another delivery round fails and is produced again; still nothing stored, nothing consumed, nothing on the topic.
            var e1Later = await WaitProbeAsync(engine, p => p.Retried > e1.Retried, "E1 produces its dead letters again after another failed round");
            Assert.Equal(e1.Processed, e1Later.Processed);
            Assert.True(e1Later.Paused && e1Later.Unacknowledged > 0, $"E1 should still hold its dead letters and stay paused: {e1Later}");
            AssertUnchanged(stored1, ReadStore(dataDir), "while E1 retries");
            Assert.Empty(await ReadDeadLettersAsync(broker.BootstrapServers) ?? []);

            // SIGKILL between those dead letters and their checkpoint.
            await engine.Process.KillAsync();
            await engine.DisposeAsync();
            AssertUnchanged(stored1, ReadStore(dataDir), "after E1's kill");
            output.WriteLine($"E1 killed at {total.ElapsedMilliseconds} ms");

            // E2: resumes from the store while the broker still refuses; pauses the same way.
            engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, Settings("e2"));
            var e2 = await WaitPausedAsync(engine, "E2", dataDir, stored1);
            var stored2 = ReadStore(dataDir);
            output.WriteLine($"E2 paused at {total.ElapsedMilliseconds} ms: {e2}, stored checkpoint {stored2.Seq} covering {stored2.Sum} records");
            AssertCoversNoBadRecord(stored2, bad, positions, "E2 while the broker refuses");

            // The broker accepts writes again: the dead letters go out, the deferred checkpoint goes through, E2 goes on.
            await broker.SetProduceRefusedAsync(false);
            refused = false;
            await engine.WaitProcessedAsync("orders", segmentA.Count, TimeSpan.FromMinutes(1));
            var e2Done = await WaitProbeAsync(engine, p => p is { Unacknowledged: 0, Paused: false }, "E2 has every dead letter acknowledged and consumes again");
            await WaitDistinctDeadLettersAsync(broker.BootstrapServers, bad.Count);
            var stored3 = ReadStore(dataDir);
            output.WriteLine($"E2 through segment A at {total.ElapsedMilliseconds} ms: {e2Done}, stored checkpoint {stored3.Seq} covering {stored3.Sum} records");
            Assert.True(stored3.Seq > stored2.Seq, "no checkpoint was written after the broker accepted the dead letters");
            Assert.True(bad.Any(b => Covered(stored3, positions[b.Index])), "the checkpoints after the outage cover no bad record");

            // The records after the last checkpoint and a last segment that stays below the next one (every 1000
            // records; a checkpoint still being written only makes the tail smaller): their dead letters reach the
            // broker, no checkpoint covers them. Then SIGKILL.
            var tail = segmentA.Count - stored3.Sum;
            Assert.InRange(tail, 0, CheckpointEvery - 1);
            var size = (int)Math.Min(Uncovered, CheckpointEvery - 1 - tail);
            var badBefore = bad.Count;
            var segmentC = Segment(size, 10, bad, gross, counts, ref next);
            var records = segmentA.Count + segmentC.Count;
            if (segmentC.Count > 0)
            {
                await ProduceAsync(broker.BootstrapServers, dataDir, segmentC);
                foreach (var (index, position) in await BadPositionsAsync(broker.BootstrapServers, bad))
                {
                    positions[index] = position;
                }

                await engine.WaitProcessedAsync("orders", records, TimeSpan.FromMinutes(1));
                await WaitDistinctDeadLettersAsync(broker.BootstrapServers, bad.Count);
            }

            await engine.Process.KillAsync();
            await engine.DisposeAsync();
            var storedAtKill = ReadStore(dataDir);
            var uncovered = bad.Where(b => !Covered(storedAtKill, positions[b.Index])).Select(b => b.Index).ToHashSet();
            output.WriteLine($"E2 killed at {total.ElapsedMilliseconds} ms: {segmentC.Count} more records ({bad.Count - badBefore} bad); {uncovered.Count} bad records delivered and not covered by checkpoint {storedAtKill.Seq}");
            Assert.True(uncovered.Count > 0, "every bad record is covered by the last checkpoint: the kill did not fall between a dead letter and its checkpoint");

            // E3: re-reads what no checkpoint covers.
            engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, Settings("e3"));
            await engine.WaitProcessedAsync("orders", records, TimeSpan.FromMinutes(1));
            await AssertDeadLettersAsync(broker.BootstrapServers, bad, positions, uncovered);
            await AssertOrdersAsync(engine.Http, gross, counts);

            engine.Process.Terminate();
            await engine.Process.WaitForExitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(0, engine.Process.ExitCode);
        }
        finally
        {
            if (refused)
            {
                await broker.SetProduceRefusedAsync(false);
            }

            await engine.DisposeAsync();
            Directory.Delete(dataDir, recursive: true);
        }

        output.WriteLine($"total {total.ElapsedMilliseconds} ms");
    }

    /// <summary>
    /// Waits until the engine has paused consumption with a deferred checkpoint and has produced at least one failed
    /// dead letter again; checks that it paused exactly one checkpoint's worth of records past the store (a partition
    /// applies none while its checkpoint waits).
    /// </summary>
    private static async Task<Probe> WaitPausedAsync(EngineProcess engine, string name, string dataDir, Stored atStart)
    {
        // The engine pauses each partition on its own, at two of its shares of CheckpointEveryEvents consumed; a
        // partition applies none of them while its checkpoint waits for the broker (the barrier holds its records), so
        // once every partition is paused it has applied exactly one checkpoint's worth past the store.
        const long expected = CheckpointEvery;
        var stored = Stored.Empty;
        long held = 0;
        var probe = await WaitProbeAsync(
            engine,
            p =>
            {
                stored = ReadStore(dataDir);
                held = p.Processed - (stored.Sum - atStart.Sum);
                return p.Paused && p.Retried >= 1 && held >= expected;
            },
            $"{name} pauses with {expected} records held and produces failed dead letters again");
        Assert.True(probe.Deferred >= 1, $"{name} paused without a deferred checkpoint: {probe}");
        Assert.True(probe.Unacknowledged > 0, $"{name} paused with every dead letter acknowledged: {probe}");
        Assert.True(
            held == expected,
            $"{name} paused with {held} records past the store's {stored} (it processed {probe.Processed} since it started at {atStart.Sum}); it should hold back exactly {expected}, no checkpoint having gone through since its first dead letter");
        return probe;
    }

    private static async Task<Probe> WaitProbeAsync(EngineProcess engine, Func<Probe, bool> condition, string what)
    {
        Probe probe = new(0, 0, 0, 0, false);
        await Eventually.WaitAsync(
            async () => condition(probe = await ProbeAsync(engine)),
            TimeSpan.FromSeconds(60),
            () => $"{what}; last {probe}; stderr: {CliProcess.Tail(engine.Process.StandardError)}");
        return probe;
    }

    private static async Task<Probe> ProbeAsync(EngineProcess engine)
    {
        var metrics = Exposition.Parse(await engine.Http.GetStringAsync("/metrics"));
        var status = await engine.StatusAsync();
        long Value(string series) => (long)double.Parse(metrics[series], CultureInfo.InvariantCulture);
        return new(
            status.GetProperty("eventsProcessed").GetInt64(),
            Value("streaming_checkpoints_deferred_total"),
            Value("streaming_dead_letters_retried_total"),
            Value("streaming_dead_letters_unacknowledged"),
            Value("streaming_consumption_paused") == 1);
    }

    /// <summary>No bad record lies below a stored next offset: the store never got past an undelivered dead letter.</summary>
    private static void AssertCoversNoBadRecord(Stored stored, List<Bad> bad, Dictionary<int, (int Partition, long Offset)> positions, string when)
    {
        var covered = bad.Where(b => Covered(stored, positions[b.Index])).ToList();
        Assert.True(covered.Count == 0, $"{when}: checkpoint {stored.Seq} covers {covered.Count} bad records whose dead letters the broker never accepted, e.g. {string.Join("; ", covered.Take(Reported).Select(b => $"#{b.Index} at {positions[b.Index]}"))}");
    }

    private static bool Covered(Stored stored, (int Partition, long Offset) position) =>
        position.Offset < stored.Offsets.GetValueOrDefault(position.Partition);

    private static void AssertUnchanged(Stored before, Stored now, string when) =>
        Assert.True(before.SameAs(now), $"{when}: the store moved from {before} to {now} while dead letters were unacknowledged");

    /// <summary>
    /// The last stored checkpoint and the <c>orders</c> offsets it stored, read as another process would (the engine may
    /// be running). Checkpoints are per partition, in the actor runtime's journal: the number is the sum of every
    /// partition's last one.
    /// </summary>
    private static Stored ReadStore(string dataDir) =>
        File.Exists(Path.Combine(dataDir, "journal.db")) ? ReadJournal(Path.Combine(dataDir, "journal.db")) : Stored.Empty;

    /// <summary>Each partition coordinator's last checkpoint event in the actor runtime's journal (decoded with the runtime's own codec).</summary>
    private static Stored ReadJournal(string path)
    {
        using var connection = ReadOnlySqlite.Open(path);

        using var transaction = connection.BeginTransaction(deferred: true);
        using var last = connection.CreateCommand();
        last.Transaction = transaction;
        last.CommandText =
            "SELECT j.persistence_id, j.message FROM journal j WHERE j.manifest = 'pc1' AND j.deleted = 0 AND j.sequence_number = " +
            "(SELECT MAX(k.sequence_number) FROM journal k WHERE k.persistence_id = j.persistence_id AND k.manifest = 'pc1' AND k.deleted = 0)";
        long seq = 0;
        var offsets = new Dictionary<int, long>();
        using var reader = last.ExecuteReader();
        while (reader.Read())
        {
            var partition = int.Parse(reader.GetString(0)["partition-".Length..], CultureInfo.InvariantCulture);
            var checkpoint = RuntimeSerializer.DecodePartition((byte[])reader.GetValue(1));
            seq += checkpoint.Seq;
            if (checkpoint.NextOffsets.TryGetValue("orders", out var next))
            {
                offsets[partition] = next;
            }
        }

        return new Stored(seq, offsets);
    }

    private static string Id(int c) => "dlc-" + c.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// <paramref name="count"/> records: every <paramref name="badEvery"/>-th a bad one (three kinds in turn, each unique
    /// by its index), the others orders of customers in turn. The expected gross and order count per customer are
    /// added up here, as the records are made.
    /// </summary>
    private static List<string> Segment(int count, int badEvery, List<Bad> bad, decimal[] gross, int[] counts, ref int next)
    {
        var lines = new List<string>(count);
        for (var i = 0; i < count; i++, next++)
        {
            var c = (int)((next * 7L) % Customers);
            if (i % badEvery == badEvery - 1)
            {
                var n = bad.Count;
                Bad b = (n % 3) switch
                {
                    0 => new(n, Id(c), $$"""{"eventId":"dlc-bad-{{n}}","customerId":"{{Id(c)}}",""", "invalid-json"),
                    1 => new(n, Id(c), $$"""{"eventId":"dlc-bad-{{n}}","customerId":"{{Id(c)}}","occurredAt":"2024-01-02T00:00:00Z","type":"order_placed","orderId":"dlc-bad-{{n}}","amount":"12"}""", "wrong-type"),
                    _ => new(n, Id(c), $$"""{"eventId":"dlc-bad-{{n}}","customerId":"{{Id(c)}}","occurredAt":"2024-01-02T00:00:00Z","type":"teleport","orderId":"dlc-bad-{{n}}","amount":1}""", "unknown-type"),
                };
                bad.Add(b);
                lines.Add(b.Key + "\t" + b.Value);
                continue;
            }

            var amount = (next % 997) + 0.25m;
            gross[c] += amount;
            counts[c]++;
            lines.Add(Id(c) + "\t" + $$"""{"eventId":"dlc-e{{next}}","customerId":"{{Id(c)}}","occurredAt":"{{T0.AddSeconds(30L * next):yyyy-MM-dd'T'HH:mm:ss'Z'}}","type":"order_placed","orderId":"dlc-o{{next}}","amount":{{amount.ToString(CultureInfo.InvariantCulture)}},"currency":"EUR","channel":"online"}""");
        }

        return lines;
    }

    private static async Task ProduceAsync(string bootstrap, string dataDir, List<string> lines)
    {
        var input = Path.Combine(dataDir, "input.txt");
        await File.WriteAllLinesAsync(input, lines);
        var (code, _, err) = await Kcat.RunAsync(["-P", "-b", bootstrap, "-t", "orders", "-K", "\t", "-l", input]);
        File.Delete(input);
        Assert.True(code == 0, "kcat produce failed: " + err);
    }

    /// <summary>Each bad record's (partition, offset) on <c>orders</c>, read back with kcat; the partition must be the producer partitioner's.</summary>
    private static async Task<Dictionary<int, (int Partition, long Offset)>> BadPositionsAsync(string bootstrap, List<Bad> bad)
    {
        var (code, stdout, stderr) = await Kcat.RunAsync(["-C", "-b", bootstrap, "-t", "orders", "-o", "beginning", "-e", "-q", "-f", "%p\t%o\t%s\n"]);
        Assert.True(code == 0, "kcat consume failed: " + stderr);
        var byValue = bad.ToDictionary(b => b.Value, StringComparer.Ordinal);
        var result = new Dictionary<int, (int, long)>();
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split('\t', 3);
            if (byValue.TryGetValue(f[2], out var b))
            {
                var partition = int.Parse(f[0], CultureInfo.InvariantCulture);
                Assert.Equal(ProducerPartitioner.PartitionOf(b.Key, Partitions), partition);
                result.Add(b.Index, (partition, long.Parse(f[1], CultureInfo.InvariantCulture)));
            }
        }

        Assert.Equal(bad.Count, result.Count);
        return result;
    }

    private sealed record DeadLetter(string Value, string Error, string Topic, int Partition, long Offset);

    /// <summary>All of <c>dead-letters</c> as kcat reads it, or null when kcat fails.</summary>
    private static async Task<List<DeadLetter>?> ReadDeadLettersAsync(string bootstrap)
    {
        var (code, stdout, _) = await Kcat.RunAsync(["-C", "-b", bootstrap, "-t", "dead-letters", "-o", "beginning", "-e", "-q", "-f", "%h\t%s\n"]);
        if (code != 0)
        {
            return null;
        }

        var result = new List<DeadLetter>();
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split('\t', 2);
            var h = HeaderField().Matches(parts[0]).ToDictionary(m => m.Groups["name"].Value, m => m.Groups["value"].Value, StringComparer.Ordinal);
            result.Add(new(
                parts[1],
                h.GetValueOrDefault("error", ""),
                h.GetValueOrDefault("source-topic", ""),
                int.Parse(h.GetValueOrDefault("source-partition", "-1"), CultureInfo.InvariantCulture),
                long.Parse(h.GetValueOrDefault("source-offset", "-1"), CultureInfo.InvariantCulture)));
        }

        return result;
    }

    private static async Task WaitDistinctDeadLettersAsync(string bootstrap, int count)
    {
        List<DeadLetter> letters = [];
        await Eventually.WaitAsync(
            async () => (letters = await ReadDeadLettersAsync(bootstrap) ?? letters).Select(l => l.Value).Distinct(StringComparer.Ordinal).Count() >= count,
            TimeSpan.FromSeconds(60),
            () => $"{count} distinct dead letters, have {letters.Select(l => l.Value).Distinct(StringComparer.Ordinal).Count()}");
    }

    /// <summary>
    /// Every bad record is on <c>dead-letters</c> with its original bytes, exactly its source topic, partition and offset
    /// and its error code: once if the checkpoint stored before the last kill covered it, twice if not (delivered
    /// before the kill and again after the restart re-read it); nothing else is there.
    /// </summary>
    private async Task AssertDeadLettersAsync(string bootstrap, List<Bad> bad, Dictionary<int, (int Partition, long Offset)> positions, HashSet<int> uncovered)
    {
        var expected = bad.Count + uncovered.Count;
        List<DeadLetter> letters = [];
        await Eventually.WaitAsync(
            async () => (letters = await ReadDeadLettersAsync(bootstrap) ?? letters).Count >= expected,
            TimeSpan.FromSeconds(60),
            () => $"{expected} dead letters ({bad.Count} bad records, {uncovered.Count} of them re-read after the kill), have {letters.Count}");
        var byValue = letters.ToLookup(l => l.Value, StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var b in bad)
        {
            var copies = byValue[b.Value].ToList();
            var (partition, offset) = positions[b.Index];
            var want = uncovered.Contains(b.Index) ? 2 : 1;
            if (copies.Count != want)
            {
                problems.Add($"#{b.Index} ({b.Code} at {partition}/{offset}, {(want == 2 ? "not " : "")}covered by the last checkpoint before the kill): {copies.Count} copies, expected {want}");
            }
            else if (copies.Any(l => l.Topic != "orders" || l.Partition != partition || l.Offset != offset || !l.Error.StartsWith(b.Code + ":", StringComparison.Ordinal)))
            {
                problems.Add($"#{b.Index} expected {b.Code} at orders/{partition}/{offset}, got {string.Join(" | ", copies.Select(l => $"{l.Error} at {l.Topic}/{l.Partition}/{l.Offset}"))}");
            }
        }

        var badValues = bad.Select(b => b.Value).ToHashSet(StringComparer.Ordinal);
        var strangers = letters.Count(l => !badValues.Contains(l.Value));
        output.WriteLine($"dead-letters: {letters.Count} records, {byValue.Count} distinct");
        Assert.True(problems.Count == 0 && strangers == 0 && letters.Count == expected, $"{problems.Count} bad records wrong on dead-letters, {strangers} unexpected records, {letters.Count} records for {expected} expected; the first {Reported}:\n{string.Join("\n", problems.Take(Reported))}");
    }

    /// <summary>
    /// Every customer has exactly the orders produced for it: count, gross and net equal the sums made with the records.
    /// A customer that only ever had bad records is unknown (404): a dead letter creates no customer.
    /// </summary>
    private static async Task AssertOrdersAsync(HttpClient http, decimal[] gross, int[] counts)
    {
        var problems = new System.Collections.Concurrent.ConcurrentBag<string>();
        await Parallel.ForEachAsync(Enumerable.Range(0, Customers), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (c, ct) =>
        {
            using var response = await http.GetAsync("/v1/customers/" + Id(c), ct);
            if (counts[c] == 0)
            {
                if (response.StatusCode != HttpStatusCode.NotFound)
                {
                    problems.Add($"{Id(c)}: only bad records, yet HTTP {(int)response.StatusCode}");
                }

                return;
            }

            if (response.StatusCode != HttpStatusCode.OK)
            {
                problems.Add($"{Id(c)}: HTTP {(int)response.StatusCode}");
                return;
            }

            var orders = (await response.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("orders");
            var (count, g, net, cancelled) = (orders.GetProperty("count").GetInt32(), orders.GetProperty("grossAmount").GetDecimal(), orders.GetProperty("netAmount").GetDecimal(), orders.GetProperty("cancelledCount").GetInt32());
            if (count != counts[c] || g != gross[c] || net != gross[c] || cancelled != 0)
            {
                problems.Add($"{Id(c)}: count {count} gross {g} net {net} cancelled {cancelled}, expected {counts[c]} orders of {gross[c]}");
            }
        });
        Assert.True(problems.IsEmpty, $"{problems.Count} customers differ; the first {Reported}:\n{string.Join("\n", problems.Order(StringComparer.Ordinal).Take(Reported))}");
    }

    /// <summary>kcat prints headers as <c>name=value,…</c>; only the four contract headers are read, and the error's text holds no comma here.</summary>
    [GeneratedRegex(@"(?:^|,)(?<name>error|source-topic|source-partition|source-offset)=(?<value>[^,]*)")]
    private static partial Regex HeaderField();
}
