using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using Streaming.Host.Metrics;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests.Metrics;

/// <summary>
/// Expositions that prometheus-net writes from <see cref="MeterBridge"/>, with the .NET runtime's metrics, checked by
/// Prometheus' own <c>promtool check metrics</c>.
/// </summary>
public sealed class PromtoolTests
{
    [Fact]
    public async Task Exposition_of_every_instrument_kind_and_the_runtime_passes_promtool()
    {
        using var meter = new Meter("Test.Metrics." + Guid.NewGuid().ToString("N"));
        using var bridge = new MeterBridge(new MeterBridgeOptions { MeterPrefixes = [meter.Name, "System.Runtime"] }, NullLogger<MeterBridge>.Instance);
        meter.CreateCounter<long>("events.processed", description: "Events applied.").Add(3, new("topic", "orders"), new("partition", 1));
        meter.CreateCounter<double>("engine.busy.time", unit: "s", description: "Busy time.").Add(0.25);
        meter.CreateUpDownCounter<int>("queue.depth", description: "Queued.").Add(-2, new KeyValuePair<string, object?>("queue", "voice"));
        meter.CreateGauge<double>("rule.score", description: "Score.").Record(double.NaN);
        meter.CreateObservableGauge("consumer.lag", () => new Measurement<long>(12, new KeyValuePair<string, object?>("topic", "clickstream")), description: "Lag.");
        meter.CreateObservableCounter("records.read", () => 99L, description: "Read.");
        meter.CreateObservableUpDownCounter("customers.count", () => 5, description: "Customers cached.");
        var histogram = meter.CreateHistogram("checkpoint.duration", unit: "s", description: "Checkpoint \\ time\nper store.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.1, 1] });
        histogram.Record(0.05, new KeyValuePair<string, object?>("store", "sql\"ite\\\n x"));
        meter.CreateHistogram<double>("tagged.duration", unit: "s").Record(3, new KeyValuePair<string, object?>("le", "tag"));
        meter.CreateHistogram<long>("record.size", unit: "By", description: "Record sizes.").Record(70_000);

        var file = Path.Combine(Path.GetTempPath(), $"exposition-{Guid.NewGuid():N}.prom");
        try
        {
            await using (var stream = File.Create(file))
            {
                await bridge.Registry.CollectAndExportAsTextAsync(stream);
            }

            var exposition = Exposition.Parse(await File.ReadAllTextAsync(file));
            Assert.Contains("dotnet_gc_collections_total", exposition.Text, StringComparison.Ordinal);
            Assert.Contains("record_size_bytes_bucket{le=\"65536\"} 0", exposition.Text, StringComparison.Ordinal);
            Assert.Equal("1", exposition["tagged_duration_seconds_bucket{tag_le=\"tag\",le=\"+Inf\"}"]);
            Assert.Equal("1", exposition["checkpoint_duration_seconds_bucket{store=\"sql\\\"ite\\\\\\n x\",le=\"0.1\"}"]);
            Assert.Equal("3", exposition["events_processed_total{partition=\"1\",topic=\"orders\"}"]);
            Assert.Equal("-2", exposition["queue_depth{queue=\"voice\"}"]);
            Assert.Equal("99", exposition["records_read_total"]);
            Assert.Contains("# TYPE records_read_total counter", exposition.Comments);
            Assert.Contains("# TYPE customers_count_value gauge", exposition.Comments);
            Assert.Contains("# HELP checkpoint_duration_seconds Checkpoint \\\\ time\\nper store.", exposition.Comments);

            var (exitCode, output) = await Promtool.CheckMetricsAsync(file);
            Assert.True(exitCode == 0, $"promtool check metrics exited {exitCode}:\n{output}\nexposition:\n{exposition.Text}");
        }
        finally
        {
            File.Delete(file);
        }
    }
}
