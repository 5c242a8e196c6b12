using System.Text.Json;
using Streaming.Connectors.Datasets;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary>
/// <c>streaming bench --core</c> through the CLI: the JSON has the documented shape and is consistent with itself. No
/// timing thresholds: the numbers depend on the machine and on what else runs on it.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed class CoreBenchTests
{
    /// <summary>
    /// <c>bench --core</c>: every timed event reaches its customer (one entity per distinct key of the demo population's
    /// first 20,000 records, counted here), wake-ups fire (new customers turn active after 30 days of event time, which
    /// those records span), no record is a dead letter, each partition checkpoints at least once, and the baseline pass
    /// starts one entity per customer too.
    /// </summary>
    [Fact]
    public async Task Core_bench_applies_every_event_to_its_customers_and_reports_consistent_json()
    {
        var outFile = Path.Combine(TestEnvironment.NewTempDir("streaming-bench-core"), "core.json");
        var cli = await CliProcess.RunAsync(["bench", "--core", "--events", "20000", "--partitions", "4", "--checkpoint-every", "500", "--out", outFile], TimeSpan.FromMinutes(4));
        Assert.True(cli.ExitCode == 0, $"exit {cli.ExitCode}: {CliProcess.Tail(cli.StandardError)}");

        using var json = JsonDocument.Parse(cli.StandardOutput);
        var r = json.RootElement;
        Assert.Equal("akka", r.GetProperty("runtime").GetString());
        Assert.Equal(20_000, r.GetProperty("events").GetInt64());
        Assert.Equal(4, r.GetProperty("partitions").GetInt32());
        Assert.True(r.GetProperty("coreEventsPerSec").GetDouble() > 0);
        Assert.True(r.GetProperty("coreWithCheckpointsEventsPerSec").GetDouble() > 0);
        Assert.True(r.GetProperty("coreColdHeapEventsPerSec").GetDouble() > 0);
        Assert.True(r.GetProperty("allocatedBytesPerEvent").GetDouble() > 0);
        Assert.True(r.GetProperty("timersFired").GetInt64() > 0, "no wake-up fired");
        Assert.Equal(0, r.GetProperty("deadLetters").GetInt64());
        Assert.Equal(JsonValueKind.Number, r.GetProperty("duplicates").ValueKind);
        Assert.All(["gen0Collections", "gen1Collections", "gen2Collections"], name => Assert.Equal(JsonValueKind.Number, r.GetProperty(name).ValueKind));
        Assert.True(r.GetProperty("peakWorkingSetMB").GetDouble() > 0);
        Assert.Equal(500, r.GetProperty("checkpointEveryEvents").GetInt32());

        // The pass ends only when a checkpoint of each partition covers its last record (a request that comes while one
        // is running joins it, so there can be fewer than one per 500 records): at least one per partition.
        Assert.True(r.GetProperty("checkpoints").GetInt64() >= 4, "a partition finished without a checkpoint");

        // One entity per customer of the timed records, which are the demo population's first 20,000; every one changed.
        var customers = DemoPopulation.Read(TestEnvironment.DataDir).Take(20_000).Select(record => record.Key).Distinct(StringComparer.Ordinal).LongCount();
        Assert.Equal(customers, r.GetProperty("cachedCustomers").GetInt64());
        Assert.Equal(customers, r.GetProperty("customers").GetInt64());

        // The baseline pass sends the same records through the actor path with no product logic: one entity per customer.
        Assert.Equal(customers, r.GetProperty("baselineEntities").GetInt64());
        Assert.True(r.GetProperty("baselineEventsPerSec").GetDouble() > 0);
        Assert.True(r.GetProperty("baselineAllocatedBytesPerEvent").GetDouble() > 0);

        Assert.Equal("datasets", r.GetProperty("scenario").GetString());
        Assert.Equal(JsonValueKind.Null, r.GetProperty("zipfCustomers").ValueKind);
        Assert.Equal(cli.StandardOutput.Trim(), (await File.ReadAllTextAsync(outFile)).Trim());
        Assert.Contains("core (decode, coordinators, customer entities; no checkpoints)", cli.StandardError, StringComparison.Ordinal);
        Assert.Contains("cold-heap pass", cli.StandardError, StringComparison.Ordinal);
        Assert.Contains("baseline (decode, a relay per partition, the shard region, one persistent entity per customer that only answers)", cli.StandardError, StringComparison.Ordinal);
        Directory.Delete(Path.GetDirectoryName(outFile)!, recursive: true);
    }

    [Fact]
    public async Task Checkpoint_every_without_core_is_refused_with_a_clear_message()
    {
        var cli = await CliProcess.RunAsync(["bench", "--checkpoint-every", "1000"], TimeSpan.FromMinutes(1));
        Assert.Equal(2, cli.ExitCode);
        Assert.Contains("--checkpoint-every only applies to --core", cli.StandardError, StringComparison.Ordinal);
        Assert.Equal("", cli.StandardOutput.Trim());
    }
}
