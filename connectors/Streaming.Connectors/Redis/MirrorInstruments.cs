using System.Diagnostics.Metrics;

namespace Streaming.Connectors.Redis;

/// <summary>The mirror's instruments on the engine's meter <c>Streaming</c>: no customer ids in labels.</summary>
public sealed class MirrorInstruments : IDisposable
{
    public const string MeterName = "Streaming";
    public const string PendingName = "streaming.mirror.pending";
    public const string LagName = "streaming.mirror.lag";
    public const string ErrorsName = "streaming.mirror.errors";
    public const string WritesName = "streaming.mirror.writes";

    private readonly Meter? _owned;

    public MirrorInstruments(IMeterFactory? meterFactory, Func<int> pending, Func<long> lag)
    {
        Meter meter;
        if (meterFactory is null)
        {
            meter = _owned = new Meter(MeterName);
        }
        else
        {
            meter = meterFactory.Create(MeterName);
        }

        meter.CreateObservableGauge(PendingName, pending, unit: "{customer}", description: "Customers changed but not yet written to Redis.");
        meter.CreateObservableGauge(LagName, lag, unit: "{checkpoint}", description: "Checkpoints published to the Redis mirror but not yet all written.");
        Errors = meter.CreateCounter<long>(ErrorsName, unit: "{attempt}", description: "Failed Redis mirror attempts (a batch or a connection probe).");
        Writes = meter.CreateCounter<long>(WritesName, unit: "{customer}", description: "Customer writes Redis acknowledged.");

        // Start at zero, so rates and alerts see 0 rather than "no data" before the first error.
        Errors.Add(0);
        Writes.Add(0);
    }

    public Counter<long> Errors { get; }

    public Counter<long> Writes { get; }

    public void Dispose() => _owned?.Dispose();
}
