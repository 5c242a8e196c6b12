using System.Diagnostics.Metrics;

namespace Streaming.Host.Metrics;

/// <summary>The instruments of the metrics endpoint itself, on the engine's meter (from <see cref="IMeterFactory"/>).</summary>
public sealed class MetricsInstruments
{
    /// <summary>The engine's meter; <see cref="IMeterFactory"/> hands every caller of this name the same one.</summary>
    public const string MeterName = "Streaming";

    public const string ScrapeDurationName = "streaming.metrics.scrape.duration";

    public MetricsInstruments(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(MeterName);
        ScrapeDuration = meter.CreateHistogram<double>(ScrapeDurationName, unit: "s", description: "Time to collect and write one /metrics exposition.");
    }

    public Histogram<double> ScrapeDuration { get; }
}
