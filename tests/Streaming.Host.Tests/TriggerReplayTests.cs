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
/// Triggers end to end: Online Retail replayed through separate <c>streaming broker</c>, <c>streaming replay</c> and
/// <c>streaming run</c> processes, then all of <c>customer-triggers</c> read back with kcat. Each record must be a
/// CloudEvent as CONTRACTS.md §3 describes it, and the win-back firings must equal a batch computation written here
/// from the raw file (<see cref="ModelBatch.LoadOnlineRetail"/> for the per-customer placed orders): the default rule
/// <c>orders.count &gt;= 1 &amp;&amp; days_since(orders.lastAt) &gt; 90</c> is a state trigger, so it fires once per
/// lapse, at the instant the lapse reaches 91 whole days. The rules the batch can also tell exactly (welcome,
/// first-repeat, vip) are compared too, and every rule's published firings against the engine's own counters.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed partial class TriggerReplayTests(ITestOutputHelper output)
{
    internal const string RetailFile = "online_retail_2010_2011.csv.gz";
    private const string TypePrefix = "streaming.trigger.";
    private const string WinBack = "win-back";
    private const string WinBackDays = "days_since(orders.lastAt)";
    private const int Reported = 20;
    private const int Partitions = 16;
    private static readonly TimeSpan Lateness = TimeSpan.FromSeconds(300);
    private static readonly long LapseTicks = TimeSpan.FromDays(91).Ticks;
    private static readonly string[] s_deliveries = ["queued", "suppressed", "holdout", "notify"];
    private static readonly string[] s_channels = ["voice", "sms", "email", "notify"];
    internal static readonly Lazy<IReadOnlyDictionary<string, CustomerHistory>> s_histories =
        new(() => ModelBatch.LoadOnlineRetail(TestEnvironment.DataFile(RetailFile)));

    /// <summary>Wake-ups held per partition in the clean replay: about a seventh of its customers.</summary>
    private const int WakeUpBound = 40;

    [Fact]
    public async Task Online_retail_replay_publishes_one_win_back_per_lapse()
    {
        var total = Stopwatch.StartNew();
        var histories = s_histories.Value;
        var invoices = histories.Values.Sum(h => h.Placed.Count + h.Cancelled.Count);
        await using var broker = await BrokerProcess.StartAsync(partitions: Partitions);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        try
        {
            // A cache far smaller than the 4,372 customers: the win-back wake-ups of passivated customers fire on states
            // reloaded from the store. And at most 40 wake-ups held per partition (of about 270 customers each): the
            // coordinators page the later ones in from the customers, stored ones mostly, as the watermark reaches them.
            var environment = new Dictionary<string, string>
            {
                ["Streaming__Engine__MaxCachedCustomers"] = ModelReplayTests.PassivatingCache.ToString(CultureInfo.InvariantCulture),
                ["Streaming__Engine__MaxWakeUpsInMemory"] = WakeUpBound.ToString(CultureInfo.InvariantCulture),
            };
            await using var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, environment);
            var replay = await CliProcess.RunAsync(["replay", "online-retail", "--file", TestEnvironment.DataFile(RetailFile), "--bootstrap", broker.BootstrapServers], TimeSpan.FromMinutes(5));
            Assert.True(replay.ExitCode == 0, "replay failed: " + replay.StandardError);
            Assert.Equal(invoices, Produced(replay));
            var status = await WaitDrainedAsync(engine, new() { ["orders"] = invoices });
            Assert.Equal(0, status.GetProperty("deadLetters").GetInt64());
            var passivations = status.GetProperty("passivations").GetInt64();
            output.WriteLine($"passivations={passivations} with a cache of {ModelReplayTests.PassivatingCache}");
            Assert.True(passivations > histories.Count - ModelReplayTests.PassivatingCache, $"only {passivations} passivations");
            var metrics = Metrics.Exposition.Parse(await engine.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative)));
            var pageIns = double.Parse(metrics["streaming_timers_page_ins_total"], CultureInfo.InvariantCulture);
            var held = double.Parse(metrics["streaming_timers_in_memory"], CultureInfo.InvariantCulture);
            // (Held may exceed the bound where more customers than a tenth of it are due at one instant, a UTC midnight say.)
            output.WriteLine($"wake-up page-ins={pageIns}, held={held} with a bound of {WakeUpBound} per partition");
            Assert.True(pageIns >= Partitions, $"only {pageIns} wake-up page-ins");
            output.WriteLine($"replayed {invoices} invoices, processed and drained after {total.ElapsedMilliseconds} ms; status triggersPublished={status.GetProperty("triggersPublished").GetInt64()}");

            var published = await ReadTriggersAsync(broker.BootstrapServers);
            output.WriteLine($"customer-triggers: {published.Count} records; by type: {ByType(published)}");
            AssertEnvelopes(published);

            // A clean run publishes each firing once: no id twice, and the relay counted exactly what is on the topic.
            var repeated = published.GroupBy(p => p.Id).Where(g => g.Count() > 1).ToList();
            Assert.True(repeated.Count == 0, $"{repeated.Count} CloudEvent ids appear more than once, e.g. {string.Join(", ", repeated.Take(Reported).Select(g => $"{g.Key} x{g.Count()}"))}");
            Assert.Equal(published.Count, status.GetProperty("triggersPublished").GetInt64());

            var asOf = await AsOfAsync(engine.Http, histories);
            AssertWinBacks(histories, asOf, published, "clean replay");
            AssertOrderRules(histories, published);
            await AssertCountersMatchAsync(engine.Http, published);
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }

        output.WriteLine($"total {total.ElapsedMilliseconds} ms");
    }

    /// <summary>
    /// The engine checkpoints every 250 ms and is SIGKILLed twice while the replay runs; each time it restarts on the
    /// same data directory. Every customer first gets voice and SMS consent (online retail has none, and without it no
    /// voice or SMS firing queues an outreach item), so the queue has items to lose or duplicate. At the end every
    /// customer's orders equal the batch computation (nothing counted twice), and the firings and the outreach queue are
    /// checked as in the clean replay.
    /// </summary>
    [Fact]
    public async Task Engine_killed_twice_mid_replay_counts_every_order_once_loses_no_firing_and_duplicates_no_outreach_item()
    {
        var expected = Task.Run(() => OnlineRetailBatch.Compute(TestEnvironment.DataFile(RetailFile)));
        var total = Stopwatch.StartNew();
        var seed = Environment.TickCount;
        var random = new Random(seed);
        output.WriteLine($"seed {seed}");
        var histories = s_histories.Value;
        var invoices = histories.Values.Sum(h => h.Placed.Count + h.Cancelled.Count);
        await using var broker = await BrokerProcess.StartAsync(partitions: Partitions);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        var env = new Dictionary<string, string> { ["Streaming__Engine__CheckpointIntervalMs"] = "250" };
        var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);
        List<Published> published;
        try
        {
            // Consent before any order (and processed before the replay starts, so every run sees the same history).
            var consent = histories.Keys.Select(id => (id, $$$"""{"eventId":"consent-seed:{{{id}}}","customerId":"{{{id}}}","occurredAt":"2010-11-30T00:00:00Z","type":"consent","consent":{"voice":true,"sms":true}}"""));
            await Kcat.ProduceAsync(broker.BootstrapServers, "customer-updates", consent);
            await engine.WaitProcessedAsync("customer-updates", histories.Count, TimeSpan.FromMinutes(1));

            var replay = CliProcess.Start(["replay", "online-retail", "--file", TestEnvironment.DataFile(RetailFile), "--bootstrap", broker.BootstrapServers, "--rate", "2500"]);
            double[] killAt = [0.1 + (random.NextDouble() * 0.3), 0.5 + (random.NextDouble() * 0.4)];
            foreach (var share in killAt)
            {
                var target = (long)(invoices * share);
                await engine.WaitProcessedAsync("orders", target, TimeSpan.FromMinutes(3));
                var status = await engine.StatusAsync();
                output.WriteLine($"SIGKILL at >= {target} orders processed ({share:P0}; seed {seed}): checkpointSeq={status.GetProperty("checkpointSeq").GetInt64()}, firingsPending={status.GetProperty("firingsPending").GetInt64()}, outboxBacklog={status.GetProperty("outboxBacklog").GetInt64()}, triggersPublished={status.GetProperty("triggersPublished").GetInt64()}, at {total.ElapsedMilliseconds} ms");
                await engine.Process.KillAsync();
                await engine.DisposeAsync();
                engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);
                output.WriteLine($"restarted at {total.ElapsedMilliseconds} ms");
            }

            await replay.WaitForExitAsync(TimeSpan.FromMinutes(5));
            Assert.True(replay.ExitCode == 0, "replay failed: " + replay.StandardError);
            Assert.Equal(invoices, Produced(replay));
            var drained = await WaitDrainedAsync(engine, new() { ["orders"] = invoices, ["customer-updates"] = histories.Count });
            Assert.Equal(0, drained.GetProperty("deadLetters").GetInt64());
            output.WriteLine($"processed and drained after {total.ElapsedMilliseconds} ms");

            published = await ReadTriggersAsync(broker.BootstrapServers);
            AssertEnvelopes(published);

            // At-least-once publishing after a crash: an id may come again, but only as the very same CloudEvent.
            var byId = published.GroupBy(p => p.Id).ToList();
            var repeats = byId.Where(g => g.Count() > 1).ToList();
            var differing = repeats.Where(g => g.Select(p => p.Raw).Distinct().Count() > 1).ToList();
            output.WriteLine($"customer-triggers: {published.Count} records, {byId.Count} distinct ids, {published.Count - byId.Count} repeated records ({repeats.Count} ids); by type: {ByType(published)}");
            Assert.True(differing.Count == 0, $"{differing.Count} ids were published with different contents, e.g.\n{string.Join("\n", differing.Take(5).SelectMany(g => g.Select(p => "  " + p.Raw)))}");
            var distinct = byId.Select(g => g.First()).ToList();

            // Every customer's orders, counted exactly once across the two kills, equal the batch computation.
            await ProfileAssert.OrdersMatchAsync(engine.Http, await expected, $"after two SIGKILLs (seed {seed})");

            var asOf = await AsOfAsync(engine.Http, histories);
            AssertWinBacks(histories, asOf, distinct, $"after two SIGKILLs (seed {seed})");
            AssertOrderRules(histories, distinct);
            await AssertCountersMatchAsync(engine.Http, distinct);
            await AssertStateFiringsMatchAsync(engine.Http, histories.Keys, distinct);

            engine.Process.Terminate();
            await engine.Process.WaitForExitAsync(TimeSpan.FromSeconds(15));
            Assert.Equal(0, engine.Process.ExitCode);
        }
        finally
        {
            await engine.DisposeAsync();
        }

        try
        {
            AssertOutreachQueue(dataDir, published.GroupBy(p => p.Id).Select(g => g.First()).ToList());
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }

        output.WriteLine($"total {total.ElapsedMilliseconds} ms");
    }

    /// <summary>One record of <c>customer-triggers</c>: its key, its text and the CloudEvent's fields (null when absent).</summary>
    internal sealed record Published(string Key, string Raw, JsonElement Root)
    {
        public string Id => Text(Root, "id") ?? "";

        public string? Type => Text(Root, "type");

        public string? Rule => Type is { } t && t.StartsWith(TypePrefix, StringComparison.Ordinal) ? t[TypePrefix.Length..] : null;

        public string? Subject => Text(Root, "subject");

        public long TimeTicks => Text(Root, "time") is { } t && DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.None, out var at) ? at.UtcTicks : 0;

        public JsonElement Data => Root.TryGetProperty("data", out var d) ? d : default;

        public string? Delivery => Data.ValueKind == JsonValueKind.Object ? Text(Data, "delivery") : null;

        public string? OutreachId => Data.ValueKind == JsonValueKind.Object ? Text(Data, "outreachId") : null;

        public static string? Text(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
    }

    /// <summary>
    /// Waits until every input record is processed, no firing waits for a checkpoint and the outbox is empty: then every
    /// firing of the replay is on <c>customer-triggers</c>. Returns the status that showed it.
    /// </summary>
    private static async Task<JsonElement> WaitDrainedAsync(EngineProcess engine, Dictionary<string, long> expectedPerTopic)
    {
        JsonElement status = default;
        await Eventually.WaitAsync(
            async () =>
            {
                status = await engine.StatusAsync();
                var processed = new Dictionary<string, long>(StringComparer.Ordinal);
                foreach (var p in status.GetProperty("partitions").EnumerateArray())
                {
                    var topic = p.GetProperty("topic").GetString()!;
                    processed[topic] = processed.GetValueOrDefault(topic) + p.GetProperty("offset").GetInt64();
                }

                return expectedPerTopic.All(e => processed.GetValueOrDefault(e.Key) >= e.Value)
                    && status.GetProperty("consumerLag").GetInt64() == 0
                    && status.GetProperty("firingsPending").GetInt64() == 0
                    && status.GetProperty("outboxBacklog").GetInt64() == 0;
            },
            TimeSpan.FromMinutes(3),
            () => $"all processed and the outbox drained; last status {status}; stderr: {CliProcess.Tail(engine.Process.StandardError)}");
        return status;
    }

    /// <summary>All of <c>customer-triggers</c>, from the beginning, as an external consumer (kcat) reads it.</summary>
    internal static async Task<List<Published>> ReadTriggersAsync(string bootstrap)
    {
        var (code, stdout, stderr) = await Kcat.RunAsync(["-C", "-b", bootstrap, "-t", "customer-triggers", "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n"]);
        Assert.True(code == 0, "kcat consume failed: " + stderr);
        var result = new List<Published>();
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var tab = line.IndexOf('\t', StringComparison.Ordinal);
            Assert.True(tab > 0, "a record without key: " + line);
            var value = line[(tab + 1)..];
            JsonElement root;
            try
            {
                using var doc = JsonDocument.Parse(value);
                root = doc.RootElement.Clone();
            }
            catch (JsonException ex)
            {
                throw new Xunit.Sdk.XunitException($"not JSON ({ex.Message}): {value}");
            }

            result.Add(new Published(line[..tab], value, root));
        }

        return result;
    }

    /// <summary>Every record is a structured-mode CloudEvent with the attributes and data of CONTRACTS.md §3.</summary>
    internal static void AssertEnvelopes(List<Published> published)
    {
        var problems = new List<string>();
        foreach (var p in published)
        {
            foreach (var problem in EnvelopeProblems(p))
            {
                problems.Add($"{problem} in {p.Raw}");
            }
        }

        Assert.True(problems.Count == 0, $"{problems.Count} CloudEvent problems in {published.Count} records; the first {Math.Min(Reported, problems.Count)}:\n{string.Join("\n", problems.Take(Reported))}");
    }

    private static IEnumerable<string> EnvelopeProblems(Published p)
    {
        var e = p.Root;
        if (e.ValueKind != JsonValueKind.Object)
        {
            yield return "not an object";
            yield break;
        }

        if (Published.Text(e, "specversion") != "1.0")
        {
            yield return "specversion is not \"1.0\"";
        }

        if (string.IsNullOrEmpty(Published.Text(e, "id")))
        {
            yield return "no id";
        }

        if (Published.Text(e, "source") != "streaming")
        {
            yield return "source is not \"streaming\"";
        }

        if (string.IsNullOrEmpty(p.Rule))
        {
            yield return $"type '{p.Type}' is not streaming.trigger.<rule-id>";
        }

        if (p.Subject is null || p.Subject != p.Key)
        {
            yield return $"subject '{p.Subject}' is not the record key '{p.Key}'";
        }

        if (Published.Text(e, "time") is not { } time || !Rfc3339().IsMatch(time) || p.TimeTicks == 0)
        {
            yield return "time is not an RFC 3339 instant";
        }

        if (Published.Text(e, "datacontenttype") != "application/json")
        {
            yield return "datacontenttype is not application/json";
        }

        var d = p.Data;
        if (d.ValueKind != JsonValueKind.Object)
        {
            yield return "data is not an object";
            yield break;
        }

        if (Published.Text(d, "customerId") != p.Subject)
        {
            yield return "data.customerId is not the subject";
        }

        if (Published.Text(d, "rule") != p.Rule)
        {
            yield return "data.rule is not the type's rule id";
        }

        if (string.IsNullOrEmpty(Published.Text(d, "ruleVersion")))
        {
            yield return "no data.ruleVersion";
        }

        if (!s_channels.Contains(Published.Text(d, "channel")))
        {
            yield return "data.channel is not voice, sms, email or notify";
        }

        if (!d.TryGetProperty("priority", out var priority) || priority.ValueKind != JsonValueKind.Number)
        {
            yield return "data.priority is not a number";
        }

        if (!d.TryGetProperty("reason", out var reason) || reason.ValueKind != JsonValueKind.Object || !reason.EnumerateObject().Any())
        {
            yield return "data.reason is not a non-empty object";
        }
        else if (reason.EnumerateObject().Any(r => r.Value.ValueKind != JsonValueKind.String))
        {
            yield return "data.reason holds a value that is not text";
        }

        var delivery = p.Delivery;
        if (!s_deliveries.Contains(delivery))
        {
            yield return $"data.delivery '{delivery}' is not queued, suppressed, holdout or notify";
        }

        var suppressedBy = Published.Text(d, "suppressedBy");
        if ((delivery == "suppressed") != !string.IsNullOrEmpty(suppressedBy))
        {
            yield return $"data.suppressedBy '{suppressedBy}' with delivery {delivery}";
        }

        if ((delivery == "queued") != !string.IsNullOrEmpty(p.OutreachId))
        {
            yield return $"data.outreachId '{p.OutreachId}' with delivery {delivery}";
        }

        if (!d.TryGetProperty("profile", out var profile) || profile.ValueKind != JsonValueKind.Object)
        {
            yield return "data.profile is not an object";
        }
    }

    /// <summary>
    /// Each batch customer's partition clock when the replay is done, computed here rather than read from the engine:
    /// its partition is the one a librdkafka producer picks (<see cref="ProducerPartitioner"/>), and the partition's
    /// watermark is its latest event time minus the allowed lateness (300 s). Every profile's <c>partition</c> and
    /// <c>asOf</c> must be exactly these; the win-back expectation is then evaluated at the computed instants.
    /// </summary>
    internal async Task<Dictionary<string, long>> AsOfAsync(HttpClient http, IReadOnlyDictionary<string, CustomerHistory> histories, int partitions = Partitions)
    {
        var watermarks = ProducerPartitioner.ExpectedWatermarks(histories.Values.Select(h => (h.CustomerId, h.LastEventAt!.Value)), partitions, Lateness);
        var expected = histories.Keys.ToDictionary(id => id, id => watermarks[ProducerPartitioner.PartitionOf(id, partitions)].UtcTicks, StringComparer.Ordinal);
        var problems = new System.Collections.Concurrent.ConcurrentBag<string>();
        await Parallel.ForEachAsync(histories.Keys, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (id, ct) =>
        {
            var profile = await http.GetFromJsonAsync<JsonElement>("/v1/customers/" + Uri.EscapeDataString(id), ct);
            var partition = ProducerPartitioner.PartitionOf(id, partitions);
            var asOf = profile.GetProperty("asOf").GetDateTimeOffset().UtcTicks;
            if (profile.GetProperty("partition").GetInt32() != partition || asOf != expected[id])
            {
                problems.Add($"  {id}: partition {profile.GetProperty("partition").GetInt32()} asOf {Show(asOf)}, expected partition {partition} asOf {Show(expected[id])}");
            }
        });
        output.WriteLine($"partition clocks: {string.Join(", ", watermarks.OrderBy(w => w.Key).Select(w => $"{w.Key}={Show(w.Value.UtcTicks)}"))}");
        Assert.True(problems.IsEmpty, $"{problems.Count} profiles are not at their partition's computed clock; the first {Math.Min(Reported, problems.Count)}:\n{string.Join("\n", problems.Order(StringComparer.Ordinal).Take(Reported))}");
        return expected;
    }

    /// <summary>
    /// The batch expectation of win-back: per customer, for each pair of consecutive placed orders whose gap is more
    /// than 90 whole days, a firing at the earlier order + 91 days; and for the last order, a firing at + 91 days if
    /// time reached that instant: the partition watermark (computed by <see cref="AsOfAsync"/>) or, within the allowed lateness, one of
    /// the customer's own later events (its wake-ups due by an event's time fire before the event).
    /// </summary>
    private static Dictionary<string, List<long>> ExpectedWinBacks(IReadOnlyDictionary<string, CustomerHistory> histories, Dictionary<string, long> asOf, out int byOwnEvent)
    {
        byOwnEvent = 0;
        var result = new Dictionary<string, List<long>>(StringComparer.Ordinal);
        foreach (var history in histories.Values)
        {
            var placed = history.Placed.Select(p => p.At.UtcTicks).Order().ToList();
            if (placed.Count == 0)
            {
                continue;
            }

            var times = new List<long>();
            for (var i = 0; i + 1 < placed.Count; i++)
            {
                if ((placed[i + 1] - placed[i]) / TimeSpan.TicksPerDay > 90)
                {
                    times.Add(placed[i] + LapseTicks);
                }
            }

            var last = placed[^1] + LapseTicks;
            var ownLatest = history.Placed.Concat(history.Cancelled).Max(o => o.At.UtcTicks);
            if (last <= asOf[history.CustomerId])
            {
                times.Add(last);
            }
            else if (last <= ownLatest)
            {
                times.Add(last);
                byOwnEvent++;
            }

            if (times.Count > 0)
            {
                result[history.CustomerId] = times;
            }
        }

        return result;
    }

    /// <summary>
    /// Win-back firings (one record per firing) equal the batch expectation per customer as multisets of instants;
    /// each says why (91 days since the last order); about a tenth of them are holdouts.
    /// </summary>
    internal void AssertWinBacks(IReadOnlyDictionary<string, CustomerHistory> histories, Dictionary<string, long> asOf, List<Published> firings, string context)
    {
        var expected = ExpectedWinBacks(histories, asOf, out var byOwnEvent);
        var winBacks = firings.Where(p => p.Rule == WinBack).ToList();
        var actual = winBacks.GroupBy(p => p.Subject!, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Select(p => p.TimeTicks).ToList(), StringComparer.Ordinal);
        var expectedCount = expected.Values.Sum(t => t.Count);
        output.WriteLine($"{context}: win-back expected {expectedCount} firings for {expected.Count} customers ({byOwnEvent} reached by the customer's own event within the allowed lateness), published {winBacks.Count} for {actual.Count} customers");

        var mismatches = new List<string>();
        int missing = 0, extra = 0;
        foreach (var id in expected.Keys.Union(actual.Keys).Order(StringComparer.Ordinal))
        {
            var want = expected.GetValueOrDefault(id) ?? [];
            var got = actual.GetValueOrDefault(id) ?? [];
            var lacking = MultisetMinus(want, got);
            var surplus = MultisetMinus(got, want);
            if (lacking.Count + surplus.Count == 0)
            {
                continue;
            }

            missing += lacking.Count;
            extra += surplus.Count;
            var placed = histories.TryGetValue(id, out var h) ? string.Join(" ", h.Placed.Select(p => p.At.UtcTicks).Order().Select(Show)) : "(not a batch customer)";
            mismatches.Add($"  {id}: missing [{string.Join(", ", lacking.Select(Show))}], unexpected [{string.Join(", ", surplus.Select(Show))}]; asOf {(asOf.TryGetValue(id, out var a) ? Show(a) : "-")}; placed orders {placed}");
        }

        Assert.True(
            mismatches.Count == 0,
            $"{context}: win-back firings differ from the batch for {mismatches.Count} customers: {missing} missing and {extra} unexpected of {expectedCount} expected ({winBacks.Count} published); the first {Math.Min(Reported, mismatches.Count)}:\n{string.Join("\n", mismatches.Take(Reported))}");

        var badReasons = winBacks.Where(p => !p.Data.TryGetProperty("reason", out var r) || Published.Text(r, WinBackDays) != "91").ToList();
        Assert.True(badReasons.Count == 0, $"{badReasons.Count} win-back firings without reason {WinBackDays} = \"91\", e.g. {string.Join("\n", badReasons.Take(5).Select(p => p.Raw))}");

        var byDelivery = winBacks.GroupBy(p => p.Delivery ?? "-").ToDictionary(g => g.Key, g => g.Count());
        var holdout = (double)byDelivery.GetValueOrDefault("holdout") / Math.Max(1, winBacks.Count);
        output.WriteLine($"{context}: win-back by delivery: {string.Join(", ", byDelivery.OrderBy(d => d.Key, StringComparer.Ordinal).Select(d => $"{d.Key}={d.Value}"))}; holdout share {holdout:P1}");
        Assert.InRange(holdout, 0.05, 0.15);
    }

    /// <summary>
    /// Three more rules the batch knows exactly: <c>welcome</c> (orders.count &gt;= 1) fires once, at the first placed
    /// order; <c>first-repeat</c> (orders.count &gt;= 2) once, at the second; <c>vip</c> (the tag <c>orders.net &gt;= 5000</c>)
    /// at each order event that lifts the net amount from below 5000 to 5000 or more. The batch keeps placed and
    /// cancelled orders apart, so where a placed and a cancelled order of a customer share an instant their order in
    /// the stream is unknown here: either order is accepted there.
    /// </summary>
    internal void AssertOrderRules(IReadOnlyDictionary<string, CustomerHistory> histories, List<Published> firings)
    {
        var rules = new (string Rule, Func<CustomerHistory, List<List<long>>> Expected)[]
        {
            ("welcome", h => [h.Placed.Select(p => p.At.UtcTicks).Order().Take(1).ToList()]),
            ("first-repeat", h => [h.Placed.Select(p => p.At.UtcTicks).Order().Skip(1).Take(1).ToList()]),
            ("vip", h => [VipCrossings(h, placedFirst: true), VipCrossings(h, placedFirst: false)]),
        };
        foreach (var (rule, expectedOf) in rules)
        {
            var actual = firings.Where(p => p.Rule == rule).GroupBy(p => p.Subject!, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Select(p => p.TimeTicks).Order().ToList(), StringComparer.Ordinal);
            var mismatches = new List<string>();
            int expectedCount = 0, ambiguous = 0;
            foreach (var id in histories.Keys.Union(actual.Keys).Order(StringComparer.Ordinal))
            {
                var variants = histories.TryGetValue(id, out var h) ? expectedOf(h).Select(v => v.Order().ToList()).ToList() : [[]];
                var got = actual.GetValueOrDefault(id) ?? [];
                expectedCount += variants[0].Count;
                if (variants.Skip(1).Any(v => !v.SequenceEqual(variants[0])))
                {
                    ambiguous++;
                }

                if (!variants.Any(v => v.SequenceEqual(got)))
                {
                    mismatches.Add($"  {id}: expected [{string.Join(" or ", variants.Distinct(ListComparer.Instance).Select(v => string.Join(", ", v.Select(Show))))}], published [{string.Join(", ", got.Select(Show))}]");
                }
            }

            output.WriteLine($"{rule}: expected {expectedCount}{(ambiguous > 0 ? $" ({ambiguous} customers with an order-dependent tie)" : "")}, published {actual.Values.Sum(t => t.Count)}");
            Assert.True(mismatches.Count == 0, $"{rule}: {mismatches.Count} customers differ from the batch; the first {Math.Min(Reported, mismatches.Count)}:\n{string.Join("\n", mismatches.Take(Reported))}");
        }
    }

    /// <summary>The instants at which the net amount (placed minus refunded) rises from below 5000 to 5000 or more.</summary>
    private static List<long> VipCrossings(CustomerHistory h, bool placedFirst)
    {
        var events = h.Placed.Select(p => (At: p.At.UtcTicks, Amount: p.Amount, Placed: true))
            .Concat(h.Cancelled.Select(c => (At: c.At.UtcTicks, Amount: -c.Amount, Placed: false)))
            .OrderBy(e => e.At)
            .ThenBy(e => e.Placed == placedFirst ? 0 : 1);
        var result = new List<long>();
        var net = 0m;
        var vip = false;
        foreach (var e in events)
        {
            net += e.Amount;
            if (net >= 5000m && !vip)
            {
                result.Add(e.At);
            }

            vip = net >= 5000m;
        }

        return result;
    }

    private sealed class ListComparer : IEqualityComparer<List<long>>
    {
        public static readonly ListComparer Instance = new();

        public bool Equals(List<long>? x, List<long>? y) => x is not null && y is not null && x.SequenceEqual(y);

        public int GetHashCode(List<long> obj) => obj.Count == 0 ? 0 : HashCode.Combine(obj.Count, obj[0]);
    }

    /// <summary>
    /// The engine's own count of firings by rule and delivery (kept with the partitions' population, in the checkpoints)
    /// equals the distinct firings on the topic, for every rule. Several nodes of a cluster: the sum of their counts
    /// (each counts its own partitions).
    /// </summary>
    internal async Task AssertCountersMatchAsync(HttpClient http, List<Published> distinct) => await AssertCountersMatchAsync([http], distinct);

    internal async Task AssertCountersMatchAsync(IReadOnlyList<HttpClient> nodes, List<Published> distinct)
    {
        var counted = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var http in nodes)
        {
            var text = await http.GetStringAsync("/metrics");
            foreach (Match m in FiringsMetric().Matches(text))
            {
                var labels = m.Groups["labels"].Value;
                var key = $"{Label(labels, "rule")}/{Label(labels, "delivery")}";
                counted[key] = counted.GetValueOrDefault(key) + long.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
            }
        }

        var onTopic = distinct.GroupBy(p => $"{p.Rule}/{p.Delivery}").ToDictionary(g => g.Key, g => (long)g.Count(), StringComparer.Ordinal);
        output.WriteLine($"firings by rule/delivery (distinct on the topic): {string.Join(", ", onTopic.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}={c.Value}"))}");
        var differences = onTopic.Keys.Union(counted.Keys).Order(StringComparer.Ordinal)
            .Where(k => onTopic.GetValueOrDefault(k) != counted.GetValueOrDefault(k))
            .Select(k => $"{k}: engine counted {counted.GetValueOrDefault(k)}, topic {onTopic.GetValueOrDefault(k)}")
            .ToList();
        Assert.True(counted.Count > 0, "no streaming_trigger_firings_total series on /metrics");
        Assert.True(differences.Count == 0, "the engine's firing counters differ from the topic: " + string.Join("; ", differences));

        static string Label(string labels, string name) => Regex.Match(labels, name + "=\"([^\"]*)\"").Groups[1].Value;
    }

    /// <summary>
    /// Every rule: the firings each customer's state remembers (the last <c>RecentFiringsKept</c> = 20, through
    /// <c>GET /v1/customers/{id}/triggers</c>) are on the topic with the same rule, instant and delivery, and the topic
    /// holds no firing of the customer after the oldest remembered one that the state does not know.
    /// </summary>
    internal async Task AssertStateFiringsMatchAsync(HttpClient http, IEnumerable<string> customers, List<Published> distinct)
    {
        const int kept = 20;
        var topic = distinct.ToLookup(p => p.Subject!, StringComparer.Ordinal);
        var problems = new System.Collections.Concurrent.ConcurrentBag<string>();
        var remembered = 0L;
        await Parallel.ForEachAsync(customers, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (id, ct) =>
        {
            using var response = await http.GetAsync($"/v1/customers/{Uri.EscapeDataString(id)}/triggers", ct);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                problems.Add($"  {id}: HTTP {(int)response.StatusCode}");
                return;
            }

            var body = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
            var state = body.GetProperty("firings").EnumerateArray()
                .Select(f => (Id: f.GetProperty("id").GetString()!, Rule: f.GetProperty("rule").GetString(), At: f.GetProperty("at").GetDateTimeOffset().UtcTicks, Delivery: f.GetProperty("delivery").GetString()))
                .ToList();
            Interlocked.Add(ref remembered, state.Count);
            var published = topic[id].ToDictionary(p => p.Id, StringComparer.Ordinal);
            foreach (var f in state)
            {
                if (!published.TryGetValue(f.Id, out var p))
                {
                    problems.Add($"  {id}: {f.Rule} at {Show(f.At)} ({f.Delivery}, id {f.Id}) is in the state but not on the topic");
                }
                else if (p.Rule != f.Rule || p.TimeTicks != f.At || p.Delivery != f.Delivery)
                {
                    problems.Add($"  {id}: id {f.Id} is {f.Rule} at {Show(f.At)} ({f.Delivery}) in the state, {p.Rule} at {Show(p.TimeTicks)} ({p.Delivery}) on the topic");
                }
            }

            var known = state.Select(f => f.Id).ToHashSet(StringComparer.Ordinal);
            var horizon = state.Count < kept ? long.MinValue : state.Min(f => f.At);
            foreach (var p in published.Values.Where(p => p.TimeTicks > horizon && !known.Contains(p.Id)))
            {
                problems.Add($"  {id}: {p.Rule} at {Show(p.TimeTicks)} ({p.Delivery}, id {p.Id}) is on the topic but not in the state");
            }
        });
        output.WriteLine($"state: {remembered} remembered firings compared with the topic");
        Assert.True(problems.IsEmpty, $"{problems.Count} differences between the customers' remembered firings and the topic; the first {Math.Min(Reported, problems.Count)}:\n{string.Join("\n", problems.Order(StringComparer.Ordinal).Take(Reported))}");
    }

    /// <summary>
    /// The stopped engine's outreach queue holds exactly one item per queued firing on the topic (same id, customer and
    /// rule), and no two items for the same customer, rule and firing instant.
    /// </summary>
    internal void AssertOutreachQueue(string dataDir, List<Published> distinct)
    {
        using var store = SqliteStateStore.OpenDirectory(dataDir);
        AssertOutreachQueue(store.ListOutreach(), distinct);
    }

    /// <summary>The same for the items of a store read directly (a cluster's PostgreSQL).</summary>
    internal void AssertOutreachQueue(IReadOnlyList<Streaming.Connectors.Triggers.OutreachItem> items, List<Published> distinct)
    {
        var queued = distinct.Where(p => p.Delivery == "queued").ToDictionary(p => p.OutreachId!, StringComparer.Ordinal);
        var twins = items.GroupBy(i => (i.CustomerId, i.Rule, FiredAt: JsonDocument.Parse(i.Context).RootElement.GetProperty("firedAt").GetString()))
            .Where(g => g.Count() > 1)
            .ToList();
        output.WriteLine($"outreach: {items.Count} items ({string.Join(", ", items.GroupBy(i => i.Rule).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key}={g.Count()}"))}); {queued.Count} distinct queued firings on the topic; {twins.Count} duplicated (customer, rule, instant)");
        Assert.True(queued.Count > 0, "no queued firing: the consent seeding did not take, so the queue was not exercised");
        Assert.True(twins.Count == 0, $"{twins.Count} outreach items duplicated, e.g. {string.Join("; ", twins.Take(Reported).Select(g => $"{g.Key} x{g.Count()}: {string.Join(", ", g.Select(i => i.OutreachId))}"))}");
        Assert.Equal(items.Count, items.Select(i => i.OutreachId).Distinct(StringComparer.Ordinal).Count());

        var byId = items.ToDictionary(i => i.OutreachId, StringComparer.Ordinal);
        var lacking = queued.Keys.Where(id => !byId.ContainsKey(id)).ToList();
        var unpublished = byId.Keys.Where(id => !queued.ContainsKey(id)).ToList();
        var different = queued.Values.Where(p => byId.TryGetValue(p.OutreachId!, out var i) && (i.CustomerId != p.Subject || i.Rule != p.Rule || i.Attempt != 1)).ToList();
        Assert.True(
            lacking.Count + unpublished.Count + different.Count == 0,
            $"outreach queue vs queued firings: {lacking.Count} firings without item (e.g. {string.Join(", ", lacking.Take(Reported))}), {unpublished.Count} items without firing (e.g. {string.Join(", ", unpublished.Take(Reported))}), {different.Count} items for another customer or rule");
        Assert.Equal(queued.Count, items.Count);
    }

    private static List<long> MultisetMinus(List<long> a, List<long> b)
    {
        var rest = b.GroupBy(t => t).ToDictionary(g => g.Key, g => g.Count());
        var result = new List<long>();
        foreach (var t in a.Order())
        {
            if (rest.TryGetValue(t, out var n) && n > 0)
            {
                rest[t] = n - 1;
            }
            else
            {
                result.Add(t);
            }
        }

        return result;
    }

    internal static string ByType(List<Published> published) =>
        string.Join(", ", published.GroupBy(p => p.Rule ?? p.Type ?? "-").OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key}={g.Count()}"));

    private static string Show(long ticks) => new DateTime(ticks, DateTimeKind.Utc).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    internal static long Produced(CliProcess replay)
    {
        var match = ProducedLine().Match(replay.StandardOutput);
        Assert.True(match.Success, "no produced=N line in: " + replay.StandardOutput);
        return long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"^produced=(\d+)$", RegexOptions.Multiline)]
    private static partial Regex ProducedLine();

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")]
    private static partial Regex Rfc3339();

    [GeneratedRegex(@"^streaming_trigger_firings_total\{(?<labels>[^}]*)\} (?<value>\d+)", RegexOptions.Multiline)]
    private static partial Regex FiringsMetric();
}
