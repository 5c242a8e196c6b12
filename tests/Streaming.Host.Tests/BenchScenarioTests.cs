using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Streaming.Connectors.Datasets;
using Streaming.Host.Cli;

namespace Streaming.Host.Tests;

/// <summary>
/// The bench's repeat-customer scenario (<c>bench --customers N</c>): records re-keyed onto N customers with Zipf
/// shares (customer k gets a share proportional to 1/k), the shares checked against the harmonic number computed here.
/// </summary>
public sealed class BenchScenarioTests
{
    [Fact]
    public void Zipf_rekeying_gives_customer_k_a_share_of_one_over_k_times_the_harmonic_number_and_keeps_every_event()
    {
        const int customers = 100;
        const int n = 30_000;
        var records = Enumerable.Range(0, n).Select(i => new ReplayRecord(
            "orders",
            "c" + (i % 7).ToString(CultureInfo.InvariantCulture),
            Encoding.UTF8.GetBytes($$"""{"eventId":"e{{i % 50}}","customerId":"c{{i % 7}}","occurredAt":"2024-03-01T12:00:00Z","type":"order_placed"}"""))).ToList();

        var rekeyed = BenchCommand.ZipfRekey(records, customers);

        Assert.Equal(n, rekeyed.Count);
        var counts = new int[customers + 1];
        var eventIds = new HashSet<string>();
        foreach (var record in rekeyed)
        {
            var json = JsonNode.Parse(record.Value)!.AsObject();
            Assert.Equal(record.Key, json["customerId"]!.GetValue<string>());
            Assert.StartsWith("zipf-", record.Key, StringComparison.Ordinal);
            var k = int.Parse(record.Key["zipf-".Length..], CultureInfo.InvariantCulture);
            Assert.InRange(k, 1, customers);
            counts[k]++;
            Assert.True(eventIds.Add(json["eventId"]!.GetValue<string>()), "event ids stay distinct after the merge");
        }

        // Share of customer k = (1/k) / H_N; binomial standard deviation at n = 30,000 is under 0.0023 for k = 1.
        var harmonic = Enumerable.Range(1, customers).Sum(k => 1.0 / k);
        foreach (var k in new[] { 1, 2, 10 })
        {
            Assert.InRange(counts[k] / (double)n, (1.0 / k / harmonic) - 0.012, (1.0 / k / harmonic) + 0.012);
        }

        // The seed is fixed: every run gets the same population.
        Assert.Equal(rekeyed.Select(r => r.Key), BenchCommand.ZipfRekey(records, customers).Select(r => r.Key));
    }

    /// <summary>
    /// <c>bench --core --customers 50</c>: the timed records are the demo population's re-keyed onto 50 customers. The
    /// rarest has a share of (1/50)/H(50) ≈ 0.445% of the 3,000 draws, so the chance that any of the 50 is never drawn is
    /// below 50·(1 − 0.00445)^3000 ≈ 8·10⁻⁵ (and the seed is fixed): all 50 appear. Each record sits on the partition
    /// its key hashes to, at the next offset of its topic there; the warm-up keeps customers of its own.
    /// </summary>
    [Fact]
    public void Core_bench_with_customers_times_records_of_that_many_repeat_customers()
    {
        const int n = 3_000;
        const int partitions = 4;
        var (records, warmup) = CoreBench.Prepare(n, partitions, Infrastructure.TestEnvironment.DataDir, zipfCustomers: 50);

        Assert.Equal(n, records.Length);
        var keys = records.Select(r => Encoding.UTF8.GetString(r.Key)).ToList();
        Assert.Equal(Enumerable.Range(1, 50).Select(k => "zipf-" + k.ToString(CultureInfo.InvariantCulture)).Order(StringComparer.Ordinal), keys.Distinct().Order(StringComparer.Ordinal));
        var next = new Dictionary<(Streaming.Engine.Events.InputTopic, int), long>();
        foreach (var (record, key) in records.Zip(keys))
        {
            Assert.Equal(Streaming.Connectors.Kafka.KeyPartitioner.Partition(record.Key, partitions), record.Partition);
            Assert.Equal(key, JsonNode.Parse(record.Value)!["customerId"]!.GetValue<string>());
            var at = next.GetValueOrDefault((record.Topic, record.Partition));
            Assert.Equal(at, record.Offset);
            next[(record.Topic, record.Partition)] = at + 1;
        }

        Assert.All(warmup, r => Assert.EndsWith("~w", Encoding.UTF8.GetString(r.Key), StringComparison.Ordinal));
    }
}
