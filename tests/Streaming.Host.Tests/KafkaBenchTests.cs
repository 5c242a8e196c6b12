using System.Text.Json;
using Streaming.Connectors.Datasets;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary>
/// <c>streaming bench</c> (the Kafka bench) through the CLI, small: a cold and a timed engine run, the store figures
/// consistent with the events, counted here from the same datasets, and every latency probe's trigger arrives. No timing thresholds.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed class KafkaBenchTests
{
    [Fact]
    public async Task Bench_reports_writes_coalescing_memory_allocation_and_trigger_latency_consistent_with_the_events()
    {
        const int events = 4000;
        var outFile = Path.Combine(TestEnvironment.NewTempDir("streaming-bench-kafka"), "bench.json");
        var cli = await CliProcess.RunAsync(["bench", "--events", events.ToString(System.Globalization.CultureInfo.InvariantCulture), "--partitions", "4", "--out", outFile], TimeSpan.FromMinutes(4));
        Assert.True(cli.ExitCode == 0, $"exit {cli.ExitCode}: {CliProcess.Tail(cli.StandardError)}");

        using var json = JsonDocument.Parse(cli.StandardOutput);
        var r = json.RootElement;
        Assert.Equal(events, r.GetProperty("events").GetInt64());
        // Two engine runs over the same events, the cold one first: both must have applied them all to report a rate.
        Assert.True(r.GetProperty("engineColdEventsPerSec").GetDouble() > 0, "no cold run measured");
        Assert.True(r.GetProperty("engineEventsPerSec").GetDouble() > 0, "no timed run measured");
        Assert.Contains("cold run:", cli.StandardError, StringComparison.Ordinal);

        // The bench's events are the datasets' first records, in Datasets.Names order: as many customers as distinct keys.
        var distinct = FirstRecords(events).Select(record => record.Key).Distinct(StringComparer.Ordinal).LongCount();
        Assert.Equal(distinct, r.GetProperty("customers").GetInt64());
        Assert.Equal(distinct, r.GetProperty("cachedCustomers").GetInt64());

        // Every customer is written at least once and none more often than it has events, so each written customer
        // stands for between one event and events/customers of them.
        var coalescing = r.GetProperty("eventsPerCustomerPerCheckpoint").GetDouble();
        Assert.InRange(coalescing, 1.0, (double)events / distinct + 0.01);
        // A heap difference: with a few thousand customers, what the process frees meanwhile can outweigh them, so only
        // its presence is checked here (300,000 events give several KB per customer, README "Benchmark").
        Assert.Equal(JsonValueKind.Number, r.GetProperty("residentBytesPerCachedCustomer").ValueKind);
        Assert.True(r.GetProperty("allocatedBytesPerEvent").GetDouble() > 0, "no allocation measured");
        // Counted just after the phase: a run this small can end before its first checkpoint, so 0 is possible.
        Assert.Equal(JsonValueKind.Number, r.GetProperty("durableWritesPerSec").ValueKind);

        // The latency phase: half the measured rate, as many events as that rate gives in 10 s (at most the bench's),
        // and every probe's welcome trigger on the topic.
        var latency = r.GetProperty("triggerLatency");
        var rate = latency.GetProperty("rateEventsPerSec").GetDouble();
        Assert.InRange(rate, r.GetProperty("engineEventsPerSec").GetDouble() / 2 - 1, r.GetProperty("engineEventsPerSec").GetDouble() / 2 + 1);
        Assert.Equal((long)Math.Clamp(rate * 10, 1, events), latency.GetProperty("events").GetInt64());
        var probes = latency.GetProperty("probes").GetInt32();
        Assert.True(probes >= 1, "no probe sent");
        Assert.Equal(probes, latency.GetProperty("arrived").GetInt32());
        var p50 = latency.GetProperty("p50Ms").GetDouble();
        var p99 = latency.GetProperty("p99Ms").GetDouble();
        Assert.True(p50 > 0 && p50 <= p99 && p99 <= latency.GetProperty("maxMs").GetDouble(), $"percentiles out of order: {latency}");

        Directory.Delete(Path.GetDirectoryName(outFile)!, recursive: true);
    }

    private static IEnumerable<ReplayRecord> FirstRecords(int n)
    {
        var taken = 0;
        foreach (var name in Datasets.Names)
        {
            using var file = new DatasetFile(Path.Combine(TestEnvironment.DataDir, Datasets.DefaultFile(name)));
            foreach (var record in Datasets.Read(name, file))
            {
                if (taken++ == n)
                {
                    yield break;
                }

                yield return record;
            }
        }
    }
}
