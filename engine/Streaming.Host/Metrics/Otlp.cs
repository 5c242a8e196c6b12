using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using Streaming.Host.Hosting;

namespace Streaming.Host.Metrics;

/// <summary>Pushes the same meters as <c>/metrics</c> to an OTLP/HTTP collector, when one is configured.</summary>
public static class Otlp
{
    /// <summary>
    /// Registers the exporter with the host's services (so it sees the meters of the host's <c>IMeterFactory</c>);
    /// nothing when <see cref="StreamingSettings.OtlpEndpoint"/> is not set.
    /// </summary>
    public static void AddTo(IServiceCollection services, StreamingSettings settings)
    {
        if (settings.OtlpEndpoint is not { } endpoint)
        {
            return;
        }

        services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            foreach (var meter in settings.MetricsMeterPrefixes)
            {
                metrics.AddMeter(meter, meter + ".*");
            }

            metrics.AddOtlpExporter((exporter, reader) =>
            {
                exporter.Protocol = OtlpExportProtocol.HttpProtobuf;
                exporter.Endpoint = new Uri(endpoint, "v1/metrics");
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = settings.OtlpIntervalMs;
            });
        });
    }
}
