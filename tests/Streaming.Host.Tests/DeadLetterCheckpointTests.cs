using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Streaming.Connectors.Sql;
using Streaming.Host.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Streaming.Host.Tests;

/// <summary>
/// The checkpoint's failure path with dead letters (README "Bad input": the dead letters of a checkpoint are on the
/// broker before the checkpoint is written). Synthetic orders with bad records among them (the datasets have no bad
/// records, so the load is generated here, and the expected state with it) go through a <c>streaming broker</c>. Mid-way
/// the broker takes <c>dead-letters</c> offline (its partitions lose their leader, through the broker's test-only
/// <c>--fault-file</c>; the input topics stay up): the engine goes on, dead-letters bad records it cannot deliver, and
/// must defer its checkpoint. It is then SIGKILLed with those dead letters unacknowledged, and the topic comes back:
/// every bad record that the last stored checkpoint covers must already be on <c>dead-letters</c>; after a restart every
/// bad record is there, with its source partition and offset, and every customer's orders are exact.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed partial class DeadLetterCheckpointTests(ITestOutputHelper output)
{
    private const int Partitions = 8;
    private const int Customers = 2000;
    private const int OrdersPerCustomer = 20;
    private const int BadEvery = 150;
    private const int Reported = 20;
    private static readonly DateTimeOffset T0 = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private sealed record Bad(int Index, string Key, string Value, string Code);

    [Fact]
    public async Task Dead_letters_offline_defer_the_checkpoint_and_a_kill_then_loses_no_dead_letter_and_counts_nothing_twice()
    {
        var total = Stopwatch.StartNew();
        var lines = new List<string>();
        var bad = new List<Bad>();
        var gross = new decimal[Customers];
        var good = Customers * OrdersPerCustomer;
        for (var j = 0; j < good; j++)
        {
            var c = j % Customers;
            var amount = (j % 997) + 0.25m;
            gross[c] += amount;
            lines.Add(Id(c) + "\t" + Order(j, c, amount));
            if (j % BadEvery == BadEvery - 1)
            {
                var b = MakeBad(bad.Count, (j * 7) % Customers);
                bad.Add(b);
                lines.Add(b.Key + "\t" + b.Value);
            }
        }

        await using var broker = await BrokerProcess.StartAsync(Partitions, faults: true);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        var input = Path.Combine(dataDir, "input.txt");
        await File.WriteAllLinesAsync(input, lines);
        var (code, _, err) = await Kcat.RunAsync(["-P", "-b", broker.BootstrapServers, "-t", "orders", "-K", "\t", "-l", input]);
        Assert.True(code == 0, "kcat produce failed: " + err);
        output.WriteLine($"{good} orders and {bad.Count} bad records of {Customers} customers produced in {total.ElapsedMilliseconds} ms");

        // Where each bad record is: its partition as the producer's partitioner puts it, its offset as the broker says.
        var positions = await BadPositionsAsync(broker.BootstrapServers, bad);
        var env = new Dictionary<string, string> { ["Streaming__Engine__CheckpointIntervalMs"] = "250" };
        var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);
        var offline = false;
        try
        {
            await engine.WaitProcessedAsync("orders", lines.Count / 4, TimeSpan.FromMinutes(2));
            await broker.SetDeadLettersOfflineAsync(true);
            offline = true;
            var atPause = await engine.StatusAsync();
            output.WriteLine($"dead-letters offline at {total.ElapsedMilliseconds} ms: eventsProcessed={atPause.GetProperty("eventsProcessed").GetInt64()}, deadLetters={atPause.GetProperty("deadLetters").GetInt64()}, checkpointSeq={atPause.GetProperty("checkpointSeq").GetInt64()}");

            // The engine works on, meets bad records it cannot deliver, and defers.
            long deferred = 0;
            await Eventually.WaitAsync(
                async () => (deferred = Deferred(await engine.Http.GetStringAsync("/metrics"))) >= 1,
                TimeSpan.FromMinutes(2),
                () => $"a deferred checkpoint (streaming_checkpoints_deferred_total); stderr: {CliProcess.Tail(engine.Process.StandardError)}");
            var atDefer = await engine.StatusAsync();
            var storedAtDefer = StoredSeq(dataDir);
            output.WriteLine($"deferred={deferred} at {total.ElapsedMilliseconds} ms: eventsProcessed={atDefer.GetProperty("eventsProcessed").GetInt64()}, deadLetters={atDefer.GetProperty("deadLetters").GetInt64()}, stored checkpoint {storedAtDefer}");
            Assert.True(
                atDefer.GetProperty("deadLetters").GetInt64() > atPause.GetProperty("deadLetters").GetInt64(),
                "no bad record was processed while dead-letters was offline: the test did not exercise the deferral");

            // The dead letters stay unacknowledged, so the next attempt defers again and nothing is stored meanwhile.
            await Eventually.WaitAsync(
                async () => (deferred = Deferred(await engine.Http.GetStringAsync("/metrics"))) >= 2,
                TimeSpan.FromMinutes(2),
                () => $"a second deferred checkpoint; stderr: {CliProcess.Tail(engine.Process.StandardError)}");

            // SIGKILL between those dead letters and their checkpoint; then the topic comes back.
            await engine.Process.KillAsync();
            await engine.DisposeAsync();
            var storedAtKill = StoredSeq(dataDir);
            output.WriteLine($"SIGKILL after deferred={deferred} at {total.ElapsedMilliseconds} ms; stored checkpoint {storedAtKill}");
            Assert.True(storedAtKill == storedAtDefer, $"checkpoints {storedAtDefer + 1}..{storedAtKill} were stored while dead letters were unacknowledged");
            await broker.SetDeadLettersOfflineAsync(false);
            offline = false;
            Dictionary<int, long> stored;
            using (var store = SqliteStateStore.OpenDirectory(dataDir))
            {
                stored = store.LoadOffsets().Where(o => o.Key.Topic == "orders").ToDictionary(o => o.Key.Partition, o => o.Value);
            }

            var covered = bad.Where(b => positions[b.Index].Offset < stored.GetValueOrDefault(positions[b.Index].Partition)).ToList();
            output.WriteLine($"killed; the stored checkpoint covers {covered.Count} of {bad.Count} bad records (next offsets {string.Join(", ", stored.OrderBy(o => o.Key).Select(o => $"{o.Key}:{o.Value}"))})");
            Assert.True(covered.Count > 0 && covered.Count < bad.Count, "the kill should fall between the first and the last bad record");

            // Nobody writes dead letters now: whatever the checkpoint covers must have reached the broker before it.
            var missing = covered;
            try
            {
                await Eventually.WaitAsync(
                    async () =>
                    {
                        if (await ReadDeadLettersAsync(broker.BootstrapServers) is not { } read)
                        {
                            return false;
                        }

                        var values = read.Select(l => l.Value).ToHashSet(StringComparer.Ordinal);
                        missing = covered.Where(b => !values.Contains(b.Value)).ToList();
                        return missing.Count == 0;
                    },
                    TimeSpan.FromSeconds(20),
                    () => "");
            }
            catch (TimeoutException)
            {
                Assert.Fail($"{missing.Count} bad records are covered by the stored checkpoint but not on dead-letters (their dead letters were lost with the process), e.g. {string.Join("; ", missing.Take(Reported).Select(b => $"#{b.Index} {positions[b.Index]}"))}");
            }

            engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);
            await engine.WaitProcessedAsync("orders", lines.Count, TimeSpan.FromMinutes(3));
            output.WriteLine($"restarted and processed everything at {total.ElapsedMilliseconds} ms");

            await AssertDeadLettersAsync(broker.BootstrapServers, bad, positions);
            await AssertOrdersAsync(engine.Http, gross);
            var deferredAfter = Deferred(await engine.Http.GetStringAsync("/metrics"));
            Assert.Equal(0, deferredAfter);

            engine.Process.Terminate();
            await engine.Process.WaitForExitAsync(TimeSpan.FromSeconds(15));
            Assert.Equal(0, engine.Process.ExitCode);
        }
        finally
        {
            if (offline)
            {
                await broker.SetDeadLettersOfflineAsync(false);
            }

            await engine.DisposeAsync();
            Directory.Delete(dataDir, recursive: true);
        }

        output.WriteLine($"total {total.ElapsedMilliseconds} ms");
    }

    /// <summary>The last checkpoint in the store, read as another process would (the engine may be running).</summary>
    private static long StoredSeq(string dataDir)
    {
        using var snapshot = StoreSnapshot.OpenDirectory(dataDir);
        return snapshot.Seq;
    }

    private static string Id(int c) => "dlc-" + c.ToString(CultureInfo.InvariantCulture);

    private static string Order(int j, int c, decimal amount) =>
        $$"""{"eventId":"dlc-e{{j}}","customerId":"{{Id(c)}}","occurredAt":"{{T0.AddSeconds(30L * j):yyyy-MM-dd'T'HH:mm:ss'Z'}}","type":"order_placed","orderId":"dlc-o{{j}}","amount":{{amount.ToString(CultureInfo.InvariantCulture)}},"currency":"EUR","channel":"online"}""";

    /// <summary>Three kinds of bad record in turn, each unique by its index.</summary>
    private static Bad MakeBad(int n, int c) => (n % 3) switch
    {
        0 => new(n, Id(c), $$"""{"eventId":"dlc-bad-{{n}}","customerId":"{{Id(c)}}",""", "invalid-json"),
        1 => new(n, Id(c), $$"""{"eventId":"dlc-bad-{{n}}","customerId":"{{Id(c)}}","occurredAt":"2024-01-02T00:00:00Z","type":"order_placed","orderId":"dlc-bad-{{n}}","amount":"12"}""", "wrong-type"),
        _ => new(n, Id(c), $$"""{"eventId":"dlc-bad-{{n}}","customerId":"{{Id(c)}}","occurredAt":"2024-01-02T00:00:00Z","type":"teleport","orderId":"dlc-bad-{{n}}","amount":1}""", "unknown-type"),
    };

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

    /// <summary>All of <c>dead-letters</c> as kcat reads it, or null when kcat fails (a topic just back online may refuse it at first).</summary>
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

    /// <summary>
    /// Every bad record is on <c>dead-letters</c> with its original bytes and exactly its source topic, partition and
    /// offset, and its error code; a crash may repeat one, only ever identically; nothing else is there.
    /// </summary>
    private async Task AssertDeadLettersAsync(string bootstrap, List<Bad> bad, Dictionary<int, (int Partition, long Offset)> positions)
    {
        List<DeadLetter> letters = [];
        await Eventually.WaitAsync(
            async () => (letters = await ReadDeadLettersAsync(bootstrap) ?? letters).Select(l => l.Value).Distinct(StringComparer.Ordinal).Count() >= bad.Count,
            TimeSpan.FromMinutes(1),
            () => $"{bad.Count} distinct dead letters, have {letters.Select(l => l.Value).Distinct(StringComparer.Ordinal).Count()}");
        var byValue = letters.ToLookup(l => l.Value, StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var b in bad)
        {
            var copies = byValue[b.Value].ToList();
            var (partition, offset) = positions[b.Index];
            if (copies.Count == 0)
            {
                problems.Add($"#{b.Index} ({b.Code} at {partition}/{offset}) missing");
            }
            else if (copies.Any(l => l.Topic != "orders" || l.Partition != partition || l.Offset != offset || !l.Error.StartsWith(b.Code + ":", StringComparison.Ordinal)))
            {
                problems.Add($"#{b.Index} expected {b.Code} at orders/{partition}/{offset}, got {string.Join(" | ", copies.Select(l => $"{l.Error} at {l.Topic}/{l.Partition}/{l.Offset}"))}");
            }
        }

        var strangers = letters.Where(l => !bad.Any(b => b.Value == l.Value)).ToList();
        output.WriteLine($"dead-letters: {letters.Count} records, {byValue.Count} distinct, {letters.Count - byValue.Count} repeated after the crash");
        Assert.True(problems.Count == 0 && strangers.Count == 0, $"{problems.Count} bad records wrong on dead-letters, {strangers.Count} unexpected records; the first {Reported}:\n{string.Join("\n", problems.Take(Reported))}");
    }

    /// <summary>Every customer has exactly its 20 orders: count, gross and net equal the sums of what was produced.</summary>
    private static async Task AssertOrdersAsync(HttpClient http, decimal[] gross)
    {
        var problems = new System.Collections.Concurrent.ConcurrentBag<string>();
        await Parallel.ForEachAsync(Enumerable.Range(0, Customers), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (c, ct) =>
        {
            using var response = await http.GetAsync("/v1/customers/" + Id(c), ct);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                problems.Add($"{Id(c)}: HTTP {(int)response.StatusCode}");
                return;
            }

            var orders = (await response.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("orders");
            var (count, g, net, cancelled) = (orders.GetProperty("count").GetInt32(), orders.GetProperty("grossAmount").GetDecimal(), orders.GetProperty("netAmount").GetDecimal(), orders.GetProperty("cancelledCount").GetInt32());
            if (count != OrdersPerCustomer || g != gross[c] || net != gross[c] || cancelled != 0)
            {
                problems.Add($"{Id(c)}: count {count} gross {g} net {net} cancelled {cancelled}, expected {OrdersPerCustomer} orders of {gross[c]}");
            }
        });
        Assert.True(problems.IsEmpty, $"{problems.Count} customers differ; the first {Reported}:\n{string.Join("\n", problems.Order(StringComparer.Ordinal).Take(Reported))}");
    }

    private static long Deferred(string metrics)
    {
        var match = DeferredMetric().Match(metrics);
        Assert.True(match.Success, "no streaming_checkpoints_deferred_total on /metrics");
        return long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"^streaming_checkpoints_deferred_total(?:\{[^}]*\})? (\d+)", RegexOptions.Multiline)]
    private static partial Regex DeferredMetric();

    /// <summary>kcat prints headers as <c>name=value,…</c>; only the four contract headers are read, and the error's text holds no comma here.</summary>
    [GeneratedRegex(@"(?:^|,)(?<name>error|source-topic|source-partition|source-offset)=(?<value>[^,]*)")]
    private static partial Regex HeaderField();
}
