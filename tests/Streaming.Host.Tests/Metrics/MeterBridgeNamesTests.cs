using Streaming.Host.Metrics;

namespace Streaming.Host.Tests.Metrics;

/// <summary>.NET instrument names, units and tag keys to the Prometheus names <see cref="MeterBridge"/> publishes (the README's table and the dashboards depend on them).</summary>
public sealed class MeterBridgeNamesTests
{
    [Theory]
    [InlineData("http.server.request.duration", "s", false, "http_server_request_duration_seconds")]
    [InlineData("dotnet.gc.heap.total_allocated", "By", true, "dotnet_gc_heap_total_allocated_bytes_total")]
    [InlineData("dotnet.process.cpu.time", "s", true, "dotnet_process_cpu_time_seconds_total")]
    [InlineData("engine.checkpoint.seconds", "s", false, "engine_checkpoint_seconds")]
    [InlineData("payload.bytes.in", "By", false, "payload_bytes_in")]
    [InlineData("queue-depth", "{item}", false, "queue_depth")]
    [InlineData("checkpoint.duration", "ms", false, "checkpoint_duration")]
    [InlineData("events.processed", null, true, "events_processed_total")]
    [InlineData("requests.total", "", true, "requests_total")]
    [InlineData("wait.total", "s", true, "wait_seconds_total")]
    [InlineData("dotnet.timer.count", "{timer}", false, "dotnet_timer_count_value")]
    [InlineData("customers.total", null, false, "customers_total_value")]
    [InlineData("rule.sum", null, false, "rule_sum_value")]
    [InlineData("lag.bucket", null, false, "lag_bucket_value")]
    [InlineData("threads.count", null, true, "threads_count_total")]
    [InlineData("3d.views", null, false, "_3d_views")]
    [InlineData("a:b/c d", null, false, "a_b_c_d")]
    [InlineData("Streaming.Bytes", "By", false, "Streaming_Bytes_bytes")]
    public void Metric_names(string instrument, string? unit, bool counter, string expected)
    {
        Assert.Equal(expected, MeterBridge.MetricName(instrument, unit, counter));
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
        Assert.Equal(expected, MeterBridge.LabelName(tagKey, histogram));
    }
}
