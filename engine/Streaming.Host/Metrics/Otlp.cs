using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;

namespace Streaming.Host.Metrics;

/// <summary>Pushes the same meters as <c>/metrics</c> to an OTLP/HTTP collector, when one is configured.</summary>
public static class Otlp
{
    /// <summary>
    /// Registers the exporter with the host's services (so it sees the meters of the host's <c>IMeterFactory</c>);
    /// nothing when <paramref name="endpoint"/> (<c>Streaming:Metrics:OtlpEndpoint</c>) is null.
    /// </summary>
    /// <param name="endpoint">The collector's base URL; metrics go to <c>v1/metrics</c> under it.</param>
    /// <param name="intervalMs">Export interval in milliseconds.</param>
    /// <param name="meterPrefixes">The meters exported, each with its sub-meters (<c>prefix.*</c>).</param>
    public static void AddTo(IServiceCollection services, Uri? endpoint, int intervalMs, IReadOnlyList<string> meterPrefixes)
    {
        if (endpoint is null)
        {
            return;
        }

        services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            foreach (var meter in meterPrefixes)
            {
                metrics.AddMeter(meter, meter + ".*");
            }

            metrics.AddOtlpExporter((exporter, reader) =>
            {
                exporter.Protocol = OtlpExportProtocol.HttpProtobuf;
                exporter.Endpoint = new Uri(endpoint, "v1/metrics");
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = intervalMs;
            });
        });
    }
}
