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
    private static readonly string[] Parts = ["decode", "apply", "timers", "checkpoint", "other"];
    private static readonly string[] Passes = ["core", "withCheckpoints", "decode", "apply", "applyNoTimers"];

    [Fact]
    public async Task Core_bench_reports_consistent_json_for_the_requested_events()
    {
        var outFile = Path.Combine(TestEnvironment.NewTempDir("streaming-bench-core"), "core.json");
        var cli = await CliProcess.RunAsync(["bench", "--core", "--events", "20000", "--partitions", "4", "--checkpoint-every", "5000", "--out", outFile], TimeSpan.FromMinutes(3));
        Assert.True(cli.ExitCode == 0, $"exit {cli.ExitCode}: {CliProcess.Tail(cli.StandardError)}");

        using var json = JsonDocument.Parse(cli.StandardOutput);
        var r = json.RootElement;
        Assert.Equal(20_000, r.GetProperty("events").GetInt64());
        Assert.Equal(4, r.GetProperty("partitions").GetInt32());
        Assert.True(r.GetProperty("coreEventsPerSec").GetDouble() > 0);
        Assert.True(r.GetProperty("coreWithCheckpointsEventsPerSec").GetDouble() > 0);
        // The demo population's first 20,000 events span months of event time: new customers turn active after 30 days
        // (a wake-up each), so a bench that fired no timer has lost its timers.
        Assert.True(r.GetProperty("timersFired").GetInt64() > 0, "no wake-up fired");
        Assert.Equal(0, r.GetProperty("deadLetters").GetInt64());

        // Every customer ends up in the store, and nothing is passivated: the store and the cache agree.
        // The timed records are the demo population's first 20,000: as many customers as distinct keys among them.
        var customers = r.GetProperty("customers").GetInt64();
        Assert.Equal(DemoPopulation.Read(TestEnvironment.DataDir).Take(20_000).Select(record => record.Key).Distinct(StringComparer.Ordinal).LongCount(), customers);
        Assert.Equal(customers, r.GetProperty("cachedCustomers").GetInt64());

        // A checkpoint every 5,000 events: four of them, the last at the end; each customer written once to four times.
        Assert.Equal(5000, r.GetProperty("checkpointEveryEvents").GetInt32());
        Assert.Equal(4, r.GetProperty("checkpoints").GetInt32());
        Assert.InRange(r.GetProperty("checkpointedStates").GetInt64(), customers, 4 * customers);
        Assert.True(r.GetProperty("stateBytesAvg").GetDouble() > 0);
        var checkpointMs = r.GetProperty("checkpointTotalMs").GetDouble();
        Assert.True(checkpointMs > 0);
        Assert.InRange(r.GetProperty("checkpointMaxMs").GetDouble(), r.GetProperty("checkpointP50Ms").GetDouble(), checkpointMs);

        Assert.True(r.GetProperty("allocatedBytesPerEvent").GetDouble() > 0);
        // Collection counts are reported, not checked against each other: the runtime counts a gen1 or gen2 collection
        // as one of every younger generation too, so their order holds by construction and proves nothing.
        Assert.All(["gen0Collections", "gen1Collections", "gen2Collections"], name => Assert.Equal(JsonValueKind.Number, r.GetProperty(name).ValueKind));
        Assert.True(r.GetProperty("peakWorkingSetMB").GetDouble() > 0);

        // The profile's parts add up to the run with checkpoints (the rest is "other" by construction).
        var profile = r.GetProperty("profile");
        var shares = Parts.Sum(part => profile.GetProperty(part).GetProperty("share").GetDouble());
        Assert.InRange(shares, 0.99, 1.01);
        var passes = profile.GetProperty("passes");
        var withCheckpoints = passes.GetProperty("withCheckpoints").GetProperty("seconds").GetDouble();
        Assert.Equal(20_000 / withCheckpoints, r.GetProperty("coreWithCheckpointsEventsPerSec").GetDouble(), 0.01 * 20_000 / withCheckpoints + 1);
        foreach (var pass in Passes)
        {
            Assert.True(passes.GetProperty(pass).GetProperty("seconds").GetDouble() > 0, pass);
        }

        Assert.Equal(
            profile.GetProperty("checkpoint").GetProperty("nsPerEvent").GetDouble(),
            checkpointMs * 1e6 / 20_000,
            5.0);

        Assert.Equal(cli.StandardOutput.Trim(), (await File.ReadAllTextAsync(outFile)).Trim());
        Assert.Contains("core (decode, apply, timers; no store writes)", cli.StandardError, StringComparison.Ordinal);
        Directory.Delete(Path.GetDirectoryName(outFile)!, recursive: true);
    }

    [Fact]
    public async Task Core_bench_on_the_actor_runtime_applies_every_event_to_its_customers()
    {
        var outFile = Path.Combine(TestEnvironment.NewTempDir("streaming-bench-core-akka"), "core.json");
        var cli = await CliProcess.RunAsync(["bench", "--core", "--runtime", "akka", "--events", "6000", "--partitions", "4", "--checkpoint-every", "500", "--out", outFile], TimeSpan.FromMinutes(4));
        Assert.True(cli.ExitCode == 0, $"exit {cli.ExitCode}: {CliProcess.Tail(cli.StandardError)}");

        using var json = JsonDocument.Parse(cli.StandardOutput);
        var r = json.RootElement;
        Assert.Equal("akka", r.GetProperty("runtime").GetString());
        Assert.Equal(6_000, r.GetProperty("events").GetInt64());
        Assert.True(r.GetProperty("coreEventsPerSec").GetDouble() > 0);
        Assert.True(r.GetProperty("coreWithCheckpointsEventsPerSec").GetDouble() > 0);
        Assert.True(r.GetProperty("allocatedBytesPerEvent").GetDouble() > 0);

        // The pass ends only when a checkpoint of each partition covers its last record (a request that comes while one
        // is running joins it, so there can be fewer than one per 500 records): at least one per partition.
        Assert.True(r.GetProperty("checkpoints").GetInt64() >= 4, "a partition finished without a checkpoint");

        // One entity per customer of the timed records, which are the demo population's first 6,000.
        var customers = DemoPopulation.Read(TestEnvironment.DataDir).Take(6_000).Select(record => record.Key).Distinct(StringComparer.Ordinal).LongCount();
        Assert.Equal(customers, r.GetProperty("cachedCustomers").GetInt64());
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
