using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Streaming.Host.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Streaming.Host.Tests;

/// <summary>
/// Each real dataset replayed in full through separate <c>streaming broker</c>, <c>streaming replay</c> and
/// <c>streaming run</c> processes; then every customer's model fields (CONTRACTS.md §6) must equal the independent
/// batch computation <see cref="ModelBatch"/>. The instant they are evaluated at is computed here, not taken from the
/// engine: each customer's partition is the one a librdkafka producer picks (<see cref="ProducerPartitioner"/>), and
/// the partition's clock ends at its latest event time minus the allowed lateness; every profile's <c>partition</c>
/// and <c>asOf</c> must be exactly that, so a wrong clock cannot move the expectation with it.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed partial class ModelReplayTests(ITestOutputHelper output)
{
    private const int ReportedMismatches = 20;
    private const int Partitions = 16;
    private static readonly TimeSpan Lateness = TimeSpan.FromSeconds(300);

    /// <summary>A cache far smaller than a dataset's population: constant passivation and reload.</summary>
    internal const int PassivatingCache = 200;

    /// <summary>
    /// With a cache of 200 customers for 4,372: customers are passivated after nearly every checkpoint and reloaded from
    /// the store on their next order, wake-up or query, so every compared value went through the store at least once.
    /// </summary>
    [Fact]
    public Task Online_retail_profiles_match_the_batch_model_and_the_restarted_engine_serves_the_same_orders() =>
        ReplayAndCompareAsync(
            "online-retail",
            "online_retail_2010_2011.csv.gz",
            ModelBatch.LoadOnlineRetail,
            expectedEvents: h => h.Placed.Count + h.Cancelled.Count,
            cacheBound: PassivatingCache,
            afterRestart: http => ProfileAssert.OrdersMatchAsync(http, OnlineRetailBatch.Compute(TestEnvironment.DataFile("online_retail_2010_2011.csv.gz")), "after SIGTERM and restart"));

    /// <summary>Buys are orders of amount 0: monetary and points stay 0, recency, frequency, stages and risk move.</summary>
    [Fact]
    public Task Taobao_profiles_match_the_batch_model() =>
        ReplayAndCompareAsync("taobao", "taobao_userbehavior_814_users.csv.gz", ModelBatch.LoadTaobao, expectedEvents: null);

    /// <summary>Calls only: every caller is a prospect without recency, and the churn risk is the service part alone.</summary>
    [Fact]
    public Task Bank_callcenter_profiles_match_the_batch_model() =>
        ReplayAndCompareAsync("bank-callcenter", "anonymous_bank_callcenter_1999_jan_feb.tsv.gz", ModelBatch.LoadBankCallcenter, expectedEvents: h => h.Calls.Count);

    /// <param name="expectedEvents">Events per customer the replay must produce, when the batch knows them all.</param>
    /// <param name="cacheBound">The engine's <c>MaxCachedCustomers</c>; null for the default (250,000: nobody is passivated).</param>
    /// <param name="afterRestart">Checks run against the engine started again on the same state after its SIGTERM (none by default).</param>
    private async Task ReplayAndCompareAsync(
        string dataset,
        string file,
        Func<string, IReadOnlyDictionary<string, CustomerHistory>> load,
        Func<CustomerHistory, int>? expectedEvents,
        int? cacheBound = null,
        Func<HttpClient, Task>? afterRestart = null)
    {
        var total = Stopwatch.StartNew();
        var path = TestEnvironment.DataFile(file);
        var histories = load(path);
        var watermarks = ProducerPartitioner.ExpectedWatermarks(histories.Values.Select(h => (h.CustomerId, h.LastEventAt!.Value)), Partitions, Lateness);
        output.WriteLine($"{dataset}: batch loaded {histories.Count} customers in {total.ElapsedMilliseconds} ms; expected watermarks: {string.Join(", ", watermarks.OrderBy(w => w.Key).Select(w => $"{w.Key}={w.Value:O}"))}");

        await using var broker = await BrokerProcess.StartAsync(partitions: Partitions);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        try
        {
            var environment = cacheBound is { } bound
                ? new Dictionary<string, string> { ["Streaming__Engine__MaxCachedCustomers"] = bound.ToString(CultureInfo.InvariantCulture) }
                : null;
            await using (var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, environment))
            {
                var phase = Stopwatch.StartNew();
                var replay = await CliProcess.RunAsync(["replay", dataset, "--file", path, "--bootstrap", broker.BootstrapServers], TimeSpan.FromMinutes(5));
                Assert.True(replay.ExitCode == 0, "replay failed: " + replay.StandardError);
                var produced = Produced(replay);
                if (expectedEvents is not null)
                {
                    Assert.Equal(histories.Values.Sum(expectedEvents), produced);
                }

                // A fresh broker: the partitions' next offsets, summed over every input topic, count the records processed.
                await Eventually.WaitAsync(
                    async () => await ProcessedAllTopicsAsync(engine) >= produced,
                    TimeSpan.FromMinutes(3),
                    () => $"{produced} records processed; stderr: {CliProcess.Tail(engine.Process.StandardError)}");
                output.WriteLine($"{dataset}: produced={produced}, replayed and processed in {phase.ElapsedMilliseconds} ms");

                var status = await engine.StatusAsync();
                Assert.Equal(0, status.GetProperty("deadLetters").GetInt64());
                Assert.Equal(0, status.GetProperty("duplicates").GetInt64());
                output.WriteLine($"{dataset}: status duplicates={status.GetProperty("duplicates").GetInt64()}");

                phase.Restart();
                var result = await CompareAllAsync(engine.Http, histories, watermarks);
                output.WriteLine($"{dataset}: compared {histories.Count} profiles in {phase.ElapsedMilliseconds} ms; asOf values: {string.Join(", ", result.AsOfs.Order().Select(t => t.ToString("O", CultureInfo.InvariantCulture)))}");
                output.WriteLine($"{dataset}: batch coverage: {string.Join(", ", result.Coverage.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}={c.Value}"))}");
                output.WriteLine($"{dataset}: {result.Mismatches.Count} mismatches" + ByField(result.Mismatches));
                Assert.True(result.Mismatches.IsEmpty, Report(dataset, histories.Count, result.Mismatches));

                // The population counts, kept incrementally by the engine, equal the batch's stage counts.
                var population = await engine.Http.GetFromJsonAsync<JsonElement>("/v1/population");
                var counted = population.GetProperty("lifecycle").EnumerateObject().ToDictionary(p => "stage " + p.Name, p => p.Value.GetInt64());
                var expectedStages = result.Coverage.Where(c => c.Key.StartsWith("stage ", StringComparison.Ordinal)).ToDictionary(c => c.Key, c => (long)c.Value);
                Assert.Equal(expectedStages.OrderBy(c => c.Key, StringComparer.Ordinal), counted.OrderBy(c => c.Key, StringComparer.Ordinal));
                Assert.Equal(histories.Count, population.GetProperty("customers").GetInt64());

                status = await engine.StatusAsync();
                var passivations = status.GetProperty("passivations").GetInt64();
                output.WriteLine($"{dataset}: cache bound {cacheBound?.ToString(CultureInfo.InvariantCulture) ?? "default"}, passivations={passivations}");
                if (cacheBound is { } limit)
                {
                    // Far more passivations than the population: customers went out and came back again and again.
                    Assert.True(passivations > histories.Count - limit, $"only {passivations} passivations with a cache of {limit} for {histories.Count} customers");
                }
                else
                {
                    // No customer beyond the batch's: with the default cache bound (250,000) nobody is passivated, so the
                    // cache holds every customer the engine created.
                    Assert.Equal(0, passivations);
                    Assert.Equal(histories.Count, status.GetProperty("cachedCustomers").GetInt64());
                }

                engine.Process.Terminate();
                await engine.Process.WaitForExitAsync(TimeSpan.FromSeconds(15));
                Assert.Equal(0, engine.Process.ExitCode);
            }

            // The shutdown checkpoint stored exactly the batch's customers (in the actor runtime's journal).
            Assert.Equal(histories.Count, Streaming.Connectors.Persistence.ActorStore.CountCustomers(dataDir));
            if (afterRestart is not null)
            {
                // Started again on the same state: it serves the same customers from the store.
                await using var restarted = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, environment);
                await afterRestart(restarted.Http);
            }

            output.WriteLine($"{dataset}: total {total.ElapsedMilliseconds} ms");
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }

    private sealed record Mismatch(string CustomerId, string Field, string Expected, string Actual, DateTimeOffset? AsOf);

    /// <param name="Coverage">How many customers the batch put in each lifecycle stage, projected tier and risk band.</param>
    private sealed record Comparison(ConcurrentBag<Mismatch> Mismatches, ConcurrentDictionary<DateTimeOffset, bool> AsOfSet, ConcurrentDictionary<string, int> Coverage)
    {
        public IEnumerable<DateTimeOffset> AsOfs => AsOfSet.Keys;
    }

    /// <summary>
    /// Fetches every batch customer's profile (8 requests at a time): its partition and asOf must be the ones computed
    /// here, and its model the batch model at that instant.
    /// </summary>
    private static async Task<Comparison> CompareAllAsync(HttpClient http, IReadOnlyDictionary<string, CustomerHistory> histories, Dictionary<int, DateTimeOffset> watermarks)
    {
        var result = new Comparison([], new(), new(StringComparer.Ordinal));
        await Parallel.ForEachAsync(histories.Values, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (history, ct) =>
        {
            var id = history.CustomerId;
            using var response = await http.GetAsync("/v1/customers/" + Uri.EscapeDataString(id), ct);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                result.Mismatches.Add(new(id, "HTTP status", "200", ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture), null));
                return;
            }

            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
            var p = doc.RootElement;
            if (p.GetProperty("asOf").ValueKind == JsonValueKind.Null)
            {
                result.Mismatches.Add(new(id, "asOf", "a time", "null", null));
                return;
            }

            var engineAsOf = p.GetProperty("asOf").GetDateTimeOffset();
            result.AsOfSet.TryAdd(engineAsOf, true);
            var partition = ProducerPartitioner.PartitionOf(id, Partitions);
            var asOf = watermarks[partition];
            if (p.GetProperty("partition").GetInt32() != partition)
            {
                result.Mismatches.Add(new(id, "partition", partition.ToString(CultureInfo.InvariantCulture), p.GetProperty("partition").GetRawText(), asOf));
            }

            if (engineAsOf != asOf)
            {
                result.Mismatches.Add(new(id, "asOf", asOf.ToString("O", CultureInfo.InvariantCulture), engineAsOf.ToString("O", CultureInfo.InvariantCulture), asOf));
            }

            var want = ModelBatch.Evaluate(history, asOf);
            result.Coverage.AddOrUpdate("stage " + want.LifecycleStage, 1, (_, n) => n + 1);
            result.Coverage.AddOrUpdate("tier " + want.ProjectedTier, 1, (_, n) => n + 1);
            result.Coverage.AddOrUpdate("churnRisk " + (want.ChurnRisk == 0 ? "0" : want.ChurnRisk < 50 ? "1-49" : "50+"), 1, (_, n) => n + 1);
            var rfm = p.GetProperty("rfm");
            var tier = p.GetProperty("tier");
            var calls = p.GetProperty("calls");

            void Check<T>(string field, T expected, T actual)
            {
                if (!EqualityComparer<T>.Default.Equals(expected, actual))
                {
                    result.Mismatches.Add(new(id, field, Show(expected), Show(actual), asOf));
                }
            }

            Check("rfm.recencyDays", want.RecencyDays, NullableInt(rfm.GetProperty("recencyDays")));
            Check("rfm.frequency", want.Frequency, rfm.GetProperty("frequency").GetInt32());
            Check("rfm.monetary", want.Monetary, rfm.GetProperty("monetary").GetDecimal());
            Check("lifecycle.stage", want.LifecycleStage, p.GetProperty("lifecycle") is { ValueKind: JsonValueKind.Object } l ? l.GetProperty("stage").GetString() : null);
            Check("churnRisk", want.ChurnRisk, p.GetProperty("churnRisk").GetInt32());
            Check("tier.points", want.Points, tier.GetProperty("points").GetInt64());
            Check("tier.projected", want.ProjectedTier, tier.GetProperty("projected").GetString());
            Check("calls.total", history.Calls.Count, calls.GetProperty("total").GetInt32());
            Check("calls.abandoned", history.Calls.Count(c => c.Abandoned), calls.GetProperty("abandoned").GetInt32());
        });
        return result;
    }

    private static int? NullableInt(JsonElement e) => e.ValueKind == JsonValueKind.Null ? null : e.GetInt32();

    private static string Show<T>(T value) => value switch
    {
        null => "null",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "null",
    };

    private static string ByField(IEnumerable<Mismatch> mismatches)
    {
        var byField = mismatches.GroupBy(m => m.Field).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} {g.Count()}").ToList();
        return byField.Count == 0 ? "" : " (by field: " + string.Join(", ", byField) + ")";
    }

    private static string Report(string dataset, int customers, ConcurrentBag<Mismatch> mismatches)
    {
        var list = mismatches.OrderBy(m => m.CustomerId, StringComparer.Ordinal).ThenBy(m => m.Field, StringComparer.Ordinal).ToList();
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{dataset}: {list.Count} mismatches in {list.Select(m => m.CustomerId).Distinct().Count()} of {customers} customers{ByField(list)}; the first {Math.Min(ReportedMismatches, list.Count)}:");
        foreach (var m in list.Take(ReportedMismatches))
        {
            text.Append(CultureInfo.InvariantCulture, $"\n  {m.CustomerId} {m.Field}: expected {m.Expected}, actual {m.Actual} (asOf {m.AsOf?.ToString("O", CultureInfo.InvariantCulture) ?? "-"})");
        }

        return text.ToString();
    }

    private static async Task<long> ProcessedAllTopicsAsync(EngineProcess engine)
    {
        var status = await engine.StatusAsync();
        long sum = 0;
        foreach (var p in status.GetProperty("partitions").EnumerateArray())
        {
            sum += p.GetProperty("offset").GetInt64();
        }

        return sum;
    }

    private static long Produced(CliProcess replay)
    {
        var match = ProducedLine().Match(replay.StandardOutput);
        Assert.True(match.Success, "no produced=N line in: " + replay.StandardOutput);
        return long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"^produced=(\d+)$", RegexOptions.Multiline)]
    private static partial Regex ProducedLine();
}
