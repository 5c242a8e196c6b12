using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests.Metrics;

/// <summary><c>GET /metrics</c> of a running engine, as Prometheus would scrape it.</summary>
[Collection(EndToEnd.Name)]
public sealed class MetricsEndpointTests
{
    [Fact]
    public async Task Engine_serves_an_exposition_that_promtool_accepts()
    {
        await using var broker = await BrokerProcess.StartAsync(partitions: 2);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        var file = Path.Combine(dataDir, "metrics.prom");
        try
        {
            await using var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir);
            using (var first = await engine.Http.GetAsync("/metrics"))
            {
                Assert.Equal(200, (int)first.StatusCode);
            }

            // The second scrape also shows the first one's duration.
            using var response = await engine.Http.GetAsync("/metrics");
            Assert.Equal(200, (int)response.StatusCode);
            Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType?.ToString());
            var text = await response.Content.ReadAsStringAsync();
            await File.WriteAllTextAsync(file, text);

            var exposition = Exposition.Parse(text);
            Assert.Equal(1, exposition.CountComments("# TYPE dotnet_process_cpu_time_seconds_total counter"));
            Assert.Equal(1, exposition.CountComments("# TYPE streaming_metrics_scrape_duration_seconds histogram"));
            Assert.True(long.Parse(exposition["streaming_metrics_scrape_duration_seconds_count"], System.Globalization.CultureInfo.InvariantCulture) >= 1);

            var (exitCode, output) = await Promtool.CheckMetricsAsync(file);
            Assert.True(exitCode == 0, $"promtool check metrics exited {exitCode}:\n{output}\nexposition:\n{text}");

            // The other routes are unchanged.
            using var status = await engine.Http.GetAsync("/v1/status");
            Assert.Equal(200, (int)status.StatusCode);
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }
}
