namespace Streaming.Host.Metrics;

public sealed partial class PrometheusCollector
{
    [LoggerMessage(Level = LogLevel.Warning, Message = "An observable instrument's callback failed during a metrics scrape; its series are left out of this scrape")]
    private static partial void LogObservationFailed(ILogger logger, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Instrument {Instrument} of meter {Meter} is not exported: metric {Name} already exists with another type, aggregation or buckets")]
    private static partial void LogNameConflict(ILogger logger, string instrument, string meter, string name);
}
