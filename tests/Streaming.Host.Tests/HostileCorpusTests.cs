using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Confluent.Kafka;
using Streaming.Host.Tests.Infrastructure;
using Streaming.Tests.Shared;

namespace Streaming.Host.Tests;

/// <summary>
/// The hostile-input corpus (<c>HostileInput/corpus.jsonl</c>: our own records, each with the outcome it must have) is
/// produced through the broker into a running engine. Every record ends exactly as the corpus says (applied, duplicate,
/// or dead-lettered with its code), and the customers the corpus builds read back through the HTTP API with the values
/// in <c>HostileInput/expected-customers.json</c>, written by hand from the records, and under the same ids in the
/// Redis mirror's keys and the CloudEvents <c>subject</c> of their triggers.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed class HostileCorpusTests
{
    /// <summary>One corpus record; <paramref name="Timestamp"/> (Unix ms) is the broker timestamp its producer sets (CreateTime), when given.</summary>
    private sealed record CorpusRecord(string Topic, string? Key, string Value, string Expect, string Why, long? Timestamp = null);

    private static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);

    private static List<CorpusRecord> LoadCorpus() =>
        File.ReadLines(Path.Combine(AppContext.BaseDirectory, "HostileInput", "corpus.jsonl"))
            .Where(l => l.Length > 0)
            .Select(l => JsonSerializer.Deserialize<CorpusRecord>(l, Web)!)
            .ToList();

    /// <summary>A client that sends paths as written (no dot-segment removal, no unescaping), as curl does with --path-as-is.</summary>
    private static async Task<HttpResponseMessage> GetRawAsync(HttpClient http, string pathAndQuery) =>
        await http.GetAsync(new Uri(http.BaseAddress + pathAndQuery.TrimStart('/'), new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true }));

    [Fact]
    public async Task Every_corpus_record_ends_as_expected_and_its_customers_read_back_through_the_api()
    {
        Streaming.Connectors.Kafka.KafkaNative.EnsureLoaded();
        var corpus = LoadCorpus();
        Assert.True(corpus.Count >= 50, $"the corpus has {corpus.Count} records");
        await using var broker = await BrokerProcess.StartAsync(partitions: 4);
        var dataDir = TestEnvironment.NewTempDir("streaming-hostile");
        await using var redis = await RedisTestServer.SharedOrPrivateAsync();
        var prefix = "hostile-" + Guid.NewGuid().ToString("N")[..10] + ":";
        await using var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, new Dictionary<string, string>
        {
            ["Streaming__Redis__Connection"] = redis.Connection,
            ["Streaming__Redis__Prefix"] = prefix,
        });

        // One record at a time, so each customer's records keep their order; the delivery report gives each its offset.
        var at = new Dictionary<(string Topic, int Partition, long Offset), int>();
        using (var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, EnableIdempotence = true }).Build())
        {
            for (var i = 0; i < corpus.Count; i++)
            {
                var r = corpus[i];
                var report = await producer.ProduceAsync(r.Topic, new Message<byte[]?, byte[]?>
                {
                    Key = r.Key is null ? null : Encoding.UTF8.GetBytes(r.Key),
                    Value = r.Value.Length == 0 ? null : Encoding.UTF8.GetBytes(r.Value),
                    Timestamp = r.Timestamp is { } ms ? new Timestamp(ms, TimestampType.CreateTime) : Timestamp.Default,
                });
                at[(report.Topic, report.Partition.Value, report.Offset.Value)] = i;
            }
        }

        var expectedDead = corpus.Count(r => r.Expect.StartsWith("dead-letter:", StringComparison.Ordinal));
        var expectedDuplicates = corpus.Count(r => r.Expect == "duplicate");
        await Eventually.WaitAsync(
            async () => (await engine.StatusAsync()).GetProperty("eventsProcessed").GetInt64() >= corpus.Count,
            TimeSpan.FromSeconds(60),
            () => $"all {corpus.Count} records processed");
        var status = await engine.StatusAsync();
        Assert.Equal(corpus.Count, status.GetProperty("eventsProcessed").GetInt64());
        Assert.Equal(expectedDuplicates, status.GetProperty("duplicates").GetInt64());
        Assert.Equal(expectedDead, status.GetProperty("deadLetters").GetInt64());

        // Dead letters: each one the corpus expects, with its code, and no other record.
        var seen = new Dictionary<int, string>();
        using (var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = broker.BootstrapServers,
            GroupId = "hostile-" + Guid.NewGuid().ToString("N"),
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
        }).Build())
        {
            consumer.Subscribe("dead-letters");
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (seen.Count < expectedDead && DateTime.UtcNow < deadline)
            {
                var result = consumer.Consume(TimeSpan.FromSeconds(1));
                if (result?.Message is not { } m)
                {
                    continue;
                }

                string Header(string name) => Encoding.UTF8.GetString(m.Headers.GetLastBytes(name));
                var key = (Header("source-topic"), int.Parse(Header("source-partition"), CultureInfo.InvariantCulture), long.Parse(Header("source-offset"), CultureInfo.InvariantCulture));
                Assert.True(at.TryGetValue(key, out var index), $"a dead letter for a record that was not produced: {key}");
                seen[index] = Header("error");
                Assert.Equal(corpus[index].Value, m.Value is null ? "" : Encoding.UTF8.GetString(m.Value));
            }

            consumer.Close();
        }

        var failures = new List<string>();
        for (var i = 0; i < corpus.Count; i++)
        {
            var r = corpus[i];
            var dead = seen.TryGetValue(i, out var error);
            var expectedCode = r.Expect.StartsWith("dead-letter:", StringComparison.Ordinal) ? r.Expect["dead-letter:".Length..] : null;
            if (expectedCode is null && dead)
            {
                failures.Add($"#{i} ({r.Why}): expected {r.Expect}, dead-lettered as {error}");
            }
            else if (expectedCode is not null && (!dead || !error!.StartsWith(expectedCode + ": ", StringComparison.Ordinal)))
            {
                failures.Add($"#{i} ({r.Why}): expected {expectedCode}, got {(dead ? error : "no dead letter")}");
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));

        // The metrics count what the corpus says: dead letters by reason, none of them lost or misfiled. No corpus
        // record makes a wake-up fail (the default rules never throw), so that counter exists and stays 0.
        var metrics = await engine.Http.GetStringAsync("/metrics");
        var expectedByReason = corpus
            .Where(r => r.Expect.StartsWith("dead-letter:", StringComparison.Ordinal))
            .GroupBy(r => r.Expect["dead-letter:".Length..])
            .ToDictionary(g => g.Key, g => g.Count());
        foreach (var reason in new[] { "processing-error", "time-in-future", "time-out-of-range", "invalid-field", "missing-field", "invalid-json", "wrong-type" })
        {
            Assert.True(expectedByReason.ContainsKey(reason), $"the corpus has no {reason} record");
        }

        foreach (var (reason, count) in expectedByReason)
        {
            Assert.Equal((double)count, Sample(metrics, $"streaming_dead_letters_total{{reason=\"{reason}\"}}"));
        }

        Assert.Equal((double)expectedDead, metrics.Split('\n').Where(l => l.StartsWith("streaming_dead_letters_total{", StringComparison.Ordinal)).Sum(l => Value(l)));
        Assert.Equal((double)expectedDuplicates, Sample(metrics, "streaming_events_duplicate_total"));
        Assert.Equal(0d, Sample(metrics, "streaming_timers_failed_total"));

        // Routing is case-insensitive and decodes the prefix: every spelling of the prefix decodes the id once.
        foreach (var (path, id) in new[]
        {
            ("/V1/Customers/h%2F1", "h/1"),
            ("/v1/CUSTOMERS/h%252F1", "h%2F1"),
            ("/%761/%63ustomers/h%2F1", "h/1"),
            ("/V1/customers/h%2F1/Triggers", "h/1"),
            ("/v1/Customers/h%252F1/triggers", "h%2F1"),
        })
        {
            using var response = await GetRawAsync(engine.Http, path);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {(int)response.StatusCode} {body}");
            Assert.Equal(id, JsonNode.Parse(body)!["customerId"]!.GetValue<string>());
        }

        using (var page = await GetRawAsync(engine.Http, "/Console/Customers/h%2F1"))
        {
            var html = await page.Content.ReadAsStringAsync();
            Assert.True(page.StatusCode == HttpStatusCode.OK, $"console: {(int)page.StatusCode}");
            Assert.Contains("<title>Customer h/1", html, StringComparison.Ordinal);
        }

        // Dot segments before the id would let the server decode it by its own rules: refused, never another customer.
        using (var dotted = await GetRawAsync(engine.Http, "/v1/x/../customers/h%252F1"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, dotted.StatusCode);
            Assert.Equal("application/problem+json", dotted.Content.Headers.ContentType?.MediaType);
        }

        // The customers, read back by id through the API (each id percent-encoded once).
        var expected = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "HostileInput", "expected-customers.json")))!.AsObject();
        foreach (var (id, checks) in expected)
        {
            using var response = await GetRawAsync(engine.Http, "/v1/customers/" + Uri.EscapeDataString(id));
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"customer '{id}': {(int)response.StatusCode} {body}");
            var profile = JsonNode.Parse(body)!;
            Assert.Equal(id, profile["customerId"]!.GetValue<string>());

            // No record moved a clock: every watermark is within the corpus's own year.
            Assert.True(profile["asOf"]!.GetValue<DateTimeOffset>() < new DateTimeOffset(2012, 1, 1, 0, 0, 0, TimeSpan.Zero), $"customer '{id}' asOf {profile["asOf"]}");
            foreach (var (path, want) in checks!.AsObject())
            {
                var node = path.Split('.').Aggregate<string, JsonNode?>(profile, (n, part) => n?[part]);
                var ok = want!.GetValueKind() switch
                {
                    JsonValueKind.String when node?.GetValueKind() == JsonValueKind.Number => node.GetValue<decimal>() == decimal.Parse(want.GetValue<string>(), CultureInfo.InvariantCulture),
                    _ => JsonNode.DeepEquals(node, want),
                };
                Assert.True(ok, $"customer '{id}' {path}: expected {want.ToJsonString()}, got {node?.ToJsonString() ?? "nothing"}");
            }

            using var triggers = await GetRawAsync(engine.Http, "/v1/customers/" + Uri.EscapeDataString(id) + "/triggers");
            Assert.Equal(HttpStatusCode.OK, triggers.StatusCode);
            Assert.Equal(id, JsonNode.Parse(await triggers.Content.ReadAsStringAsync())!["customerId"]!.GetValue<string>());
        }

        // The same ids in the Redis mirror's keys (the id as it is, after the prefix) and in the CloudEvents subject of
        // the welcome trigger each customer with an order gets.
        using var mirror = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(redis.Connection + ",syncTimeout=15000");
        var db = mirror.GetDatabase();
        var withOrders = expected
            .Where(c => c.Value!["orders.count"] is { } n ? n.GetValue<int>() > 0 : c.Value["orders.grossAmount"] is not null)
            .Select(c => c.Key)
            .ToList();
        await Eventually.WaitAsync(
            async () =>
            {
                foreach (var id in expected.Select(c => c.Key))
                {
                    if (!await db.KeyExistsAsync(prefix + "customer:" + id))
                    {
                        return false;
                    }
                }

                return true;
            },
            TimeSpan.FromSeconds(60),
            () => "every corpus customer mirrored under its own key");
        foreach (var id in withOrders)
        {
            var count = (string?)await db.HashGetAsync(prefix + "customer:" + id, "ordersCount");
            var want = expected[id]!["orders.count"]?.GetValue<int>() ?? 1;
            Assert.True(count == want.ToString(CultureInfo.InvariantCulture), $"Redis hash of '{id}': ordersCount {count ?? "missing"}, expected {want}");
        }

        var subjects = new HashSet<string>(StringComparer.Ordinal);
        using (var triggers = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = broker.BootstrapServers,
            GroupId = "hostile-triggers-" + Guid.NewGuid().ToString("N"),
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
        }).Build())
        {
            triggers.Subscribe("customer-triggers");
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!withOrders.All(subjects.Contains) && DateTime.UtcNow < deadline)
            {
                if (triggers.Consume(TimeSpan.FromSeconds(1))?.Message is { } m)
                {
                    var cloudEvent = JsonNode.Parse(m.Value)!;
                    var subject = cloudEvent["subject"]!.GetValue<string>();
                    Assert.Equal(subject, cloudEvent["data"]!["customerId"]!.GetValue<string>());
                    Assert.Equal(subject, Encoding.UTF8.GetString(m.Key!));
                    subjects.Add(subject);
                }
            }

            triggers.Close();
        }

        var missingSubjects = withOrders.Where(id => !subjects.Contains(id)).ToList();
        Assert.True(missingSubjects.Count == 0, "no trigger with subject " + string.Join(", ", missingSubjects.Select(id => $"'{id}'")));

        // The old opt-in did not re-enable contact: service recovery fired, suppressed by consent.
        var firings = JsonNode.Parse(await engine.Http.GetStringAsync("/v1/customers/h-consent/triggers"))!["firings"]!.AsArray();
        var recovery = Assert.Single(firings, f => f!["rule"]!.GetValue<string>() == "service-recovery");
        Assert.Equal(("suppressed", "consent"), (recovery!["delivery"]!.GetValue<string>(), recovery["suppressedBy"]!.GetValue<string>()));

        // Unknown and invalid ids: problem+json, never an empty body.
        using var unknown = await GetRawAsync(engine.Http, "/v1/customers/nobody%2Fhere");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("application/problem+json", unknown.Content.Headers.ContentType?.MediaType);
        Assert.Contains("nobody/here", await unknown.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var control = await GetRawAsync(engine.Http, "/v1/customers/h%0An");
        Assert.Equal(HttpStatusCode.BadRequest, control.StatusCode);
        Assert.Equal("application/problem+json", control.Content.Headers.ContentType?.MediaType);
        using var tooLong = await GetRawAsync(engine.Http, "/v1/customers/" + new string('x', 257));
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
    }

    /// <summary>The value of the one sample named exactly <paramref name="series"/> (name and labels) in a Prometheus text scrape.</summary>
    private static double Sample(string scrape, string series)
    {
        var line = scrape.Split('\n').SingleOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        Assert.True(line is not null, $"no sample {series} in the scrape");
        return Value(line);
    }

    private static double Value(string line) => double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);

    [Fact]
    public async Task An_engine_that_owns_no_partition_answers_503_and_reports_no_lag()
    {
        // A broker address nobody listens on: the engine starts, but is never assigned a partition.
        var httpPort = TestEnvironment.FreePort();
        var dataDir = TestEnvironment.NewTempDir("streaming-unowned");
        await using var process = CliProcess.Start(["run", "--bootstrap", $"127.0.0.1:{TestEnvironment.FreePort()}", "--data-dir", dataDir, "--urls", $"http://127.0.0.1:{httpPort}"]);
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}/"), Timeout = TimeSpan.FromSeconds(30) };
            await EngineProcess.WaitAnswersAsync(process, http, "healthz", TimeSpan.FromSeconds(90));

            using var customer = await http.GetAsync("v1/customers/anyone");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, customer.StatusCode);
            Assert.Equal("application/problem+json", customer.Content.Headers.ContentType?.MediaType);
            Assert.True(customer.Headers.RetryAfter?.Delta > TimeSpan.Zero, "Retry-After in seconds");
            var detail = JsonNode.Parse(await customer.Content.ReadAsStringAsync())!["detail"]!.GetValue<string>();
            Assert.Equal("this node owns no partition yet (start-up or rebalance); retry later", detail);
            using var triggers = await http.GetAsync("v1/customers/anyone/triggers");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, triggers.StatusCode);
            Assert.Equal(detail, JsonNode.Parse(await triggers.Content.ReadAsStringAsync())!["detail"]!.GetValue<string>());

            var status = JsonNode.Parse(await http.GetStringAsync("v1/status"))!;
            Assert.Equal(JsonValueKind.Null, status["consumerLag"]?.GetValueKind() ?? JsonValueKind.Null);
            Assert.True(status.AsObject().ContainsKey("consumerLag"), "consumerLag is present, as null");
            Assert.False(status["ready"]!.GetValue<bool>());
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await http.GetAsync("readyz")).StatusCode);
        }
    }
}
