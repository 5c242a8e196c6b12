using Streaming.Host.Metrics;

namespace Streaming.Host.Tests.Metrics;

/// <summary>.NET instrument names, units and tag keys to Prometheus names.</summary>
public sealed class PrometheusNamesTests
{
    [Theory]
    [InlineData("http.server.request.duration", "s", PrometheusType.Histogram, "http_server_request_duration_seconds")]
    [InlineData("dotnet.gc.heap.total_allocated", "By", PrometheusType.Counter, "dotnet_gc_heap_total_allocated_bytes_total")]
    [InlineData("dotnet.process.cpu.time", "s", PrometheusType.Counter, "dotnet_process_cpu_time_seconds_total")]
    [InlineData("engine.checkpoint.seconds", "s", PrometheusType.Histogram, "engine_checkpoint_seconds")]
    [InlineData("payload.bytes.in", "By", PrometheusType.Gauge, "payload_bytes_in")]
    [InlineData("queue-depth", "{item}", PrometheusType.Gauge, "queue_depth")]
    [InlineData("checkpoint.duration", "ms", PrometheusType.Histogram, "checkpoint_duration")]
    [InlineData("events.processed", null, PrometheusType.Counter, "events_processed_total")]
    [InlineData("requests.total", "", PrometheusType.Counter, "requests_total")]
    [InlineData("wait.total", "s", PrometheusType.Counter, "wait_seconds_total")]
    [InlineData("dotnet.timer.count", "{timer}", PrometheusType.Gauge, "dotnet_timer_count_value")]
    [InlineData("customers.total", null, PrometheusType.Gauge, "customers_total_value")]
    [InlineData("rule.sum", null, PrometheusType.Gauge, "rule_sum_value")]
    [InlineData("lag.bucket", null, PrometheusType.Histogram, "lag_bucket_value")]
    [InlineData("threads.count", null, PrometheusType.Counter, "threads_count_total")]
    [InlineData("3d.views", null, PrometheusType.Gauge, "_3d_views")]
    [InlineData("a:b/c d", null, PrometheusType.Gauge, "a_b_c_d")]
    [InlineData("Streaming.Bytes", "By", PrometheusType.Gauge, "Streaming_Bytes_bytes")]
    public void Metric_names(string instrument, string? unit, PrometheusType type, string expected)
    {
        Assert.Equal(expected, PrometheusNames.MetricName(instrument, unit, type));
    }

    [Theory]
    [InlineData("http.route", false, "http_route")]
    [InlineData("error-type", false, "error_type")]
    [InlineData("1st", false, "tag_1st")]
    [InlineData("__name__", false, "tag___name__")]
    [InlineData("le", true, "tag_le")]
    [InlineData("le", false, "le")]
    [InlineData("", false, "_")]
    public void Label_names(string tagKey, bool histogram, string expected)
    {
        Assert.Equal(expected, PrometheusNames.LabelName(tagKey, histogram));
    }

    [Fact]
    public void Help_escapes_backslash_and_line_feed_only()
    {
        Assert.Equal("a \\\\ \"b\" \\n c", PrometheusNames.EscapeHelp("a \\ \"b\" \n c"));
    }
}
