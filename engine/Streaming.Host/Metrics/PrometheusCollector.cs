using System.Buffers;
using System.Diagnostics.Metrics;
using System.Numerics;
using System.Text;

namespace Streaming.Host.Metrics;

/// <summary>Options of <see cref="PrometheusCollector"/>.</summary>
public sealed record PrometheusCollectorOptions
{
    /// <summary>The engine's meter and the .NET runtime's built-in one.</summary>
    public static IReadOnlyList<string> DefaultMeterPrefixes { get; } = [MetricsInstruments.MeterName, "System.Runtime"];

    /// <summary>Instruments of meters whose names start with one of these (ordinal) are exported.</summary>
    public IReadOnlyList<string> MeterPrefixes { get; init; } = DefaultMeterPrefixes;

    /// <summary>Label sets per metric beyond which measurements go to one overflow series.</summary>
    public int MaxSeriesPerMetric { get; init; } = 2000;
}

/// <summary>
/// Aggregates the measurements of <see cref="System.Diagnostics.Metrics"/> instruments through a
/// <see cref="MeterListener"/> and writes them in the Prometheus text exposition format 0.0.4. Counters and observable
/// counters become <c>counter</c>s (<c>_total</c>); up-down counters, gauges and observable gauges <c>gauge</c>s;
/// histograms <c>histogram</c>s with explicit buckets (the instrument's advice, else a default set by unit).
/// Measurements update per-series values with interlocked operations; observable instruments are read at each scrape.
/// </summary>
public sealed partial class PrometheusCollector : IDisposable
{
    /// <summary>The content type of the exposition.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    // Buckets when an instrument gives no advice: the semantic conventions' request durations for seconds, powers of
    // four for sizes, and OpenTelemetry's default (suited to milliseconds and small counts) otherwise.
    internal static readonly double[] SecondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
    internal static readonly double[] BytesBuckets = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
    internal static readonly double[] DefaultBuckets = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

    private readonly string[] _prefixes;
    private readonly int _maxSeries;
    private readonly ILogger _logger;
    private readonly MeterListener _listener;
    private readonly CollectionCycle _cycle = new();
    private readonly Lock _registryLock = new();
    private readonly Dictionary<string, MetricFamily> _byName = new(StringComparer.Ordinal);
    private readonly Lock _scrapeLock = new();
    private readonly ArrayBufferWriter<byte> _buffer = new(16 * 1024);
    private MetricFamily[] _families = [];
    private bool _disposed;

    public PrometheusCollector(PrometheusCollectorOptions options, ILogger<PrometheusCollector> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxSeriesPerMetric, 1);
        _prefixes = [.. options.MeterPrefixes];
        _maxSeries = options.MaxSeriesPerMetric;
        _logger = logger;
        _listener = new MeterListener
        {
            InstrumentPublished = OnInstrumentPublished,
            MeasurementsCompleted = OnMeasurementsCompleted,
        };
        _listener.SetMeasurementEventCallback<byte>(static (_, value, tags, state) => ((MetricFamily)state!).Record((long)value, tags));
        _listener.SetMeasurementEventCallback<short>(static (_, value, tags, state) => ((MetricFamily)state!).Record((long)value, tags));
        _listener.SetMeasurementEventCallback<int>(static (_, value, tags, state) => ((MetricFamily)state!).Record((long)value, tags));
        _listener.SetMeasurementEventCallback<long>(static (_, value, tags, state) => ((MetricFamily)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<float>(static (_, value, tags, state) => ((MetricFamily)state!).Record((double)value, tags));
        _listener.SetMeasurementEventCallback<double>(static (_, value, tags, state) => ((MetricFamily)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<decimal>(static (_, value, tags, state) => ((MetricFamily)state!).Record((double)value, tags));
        _listener.Start();
    }

    /// <summary>Reads the observable instruments and writes the exposition to <paramref name="output"/>.</summary>
    public void Collect(IBufferWriter<byte> output)
    {
        lock (_scrapeLock)
        {
            CollectLocked(output);
        }
    }

    /// <summary>Collects into a reused buffer, then writes to <paramref name="destination"/> without holding the scrape lock.</summary>
    public async Task WriteAsync(Stream destination, CancellationToken cancellationToken)
    {
        byte[] rented;
        int length;
        lock (_scrapeLock)
        {
            _buffer.ResetWrittenCount();
            CollectLocked(_buffer);
            length = _buffer.WrittenCount;
            rented = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
            _buffer.WrittenSpan.CopyTo(rented);
        }

        try
        {
            await destination.WriteAsync(rented.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>The exposition as a string.</summary>
    public string Scrape()
    {
        var buffer = new ArrayBufferWriter<byte>(16 * 1024);
        Collect(buffer);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public void Dispose()
    {
        lock (_scrapeLock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _listener.Dispose();
        }
    }

    private void CollectLocked(IBufferWriter<byte> output)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _cycle.Advance();
        try
        {
            _listener.RecordObservableInstruments();
        }
        catch (AggregateException ex)
        {
            // The other callbacks have run; the failed ones' series are left out of this scrape.
            LogObservationFailed(_logger, ex);
        }

        foreach (var family in Volatile.Read(ref _families))
        {
            family.Write(output);
        }
    }

    private void OnInstrumentPublished(Instrument instrument, MeterListener listener)
    {
        if (!Exported(instrument.Meter.Name) || Classify(instrument) is not { } kind)
        {
            return;
        }

        var (type, aggregation) = kind;
        var bounds = type == PrometheusType.Histogram ? HistogramBuckets(instrument) : null;
        var name = PrometheusNames.MetricName(instrument.Name, instrument.Unit, type);
        MetricFamily family;
        lock (_registryLock)
        {
            if (_byName.TryGetValue(name, out var existing))
            {
                if (!existing.Accepts(type, aggregation, bounds))
                {
                    LogNameConflict(_logger, instrument.Name, instrument.Meter.Name, name);
                    return;
                }

                family = existing;
            }
            else
            {
                var help = string.IsNullOrWhiteSpace(instrument.Description)
                    ? $"{instrument.Name} of meter {instrument.Meter.Name}"
                    : instrument.Description;
                family = bounds is not null
                    ? new HistogramFamily(name, help, bounds, _cycle, _maxSeries)
                    : new ScalarFamily(name, help, type, aggregation, _cycle, _maxSeries);
                _byName.Add(name, family);
                PublishFamilies();
            }

            family.Instruments++;
        }

        listener.EnableMeasurementEvents(instrument, family);
    }

    private void OnMeasurementsCompleted(Instrument instrument, object? state)
    {
        if (state is not MetricFamily family)
        {
            return;
        }

        lock (_registryLock)
        {
            family.Instruments--;
            if (family.Instruments == 0 && _byName.TryGetValue(family.Name, out var current) && ReferenceEquals(current, family))
            {
                _byName.Remove(family.Name);
                PublishFamilies();
            }
        }
    }

    /// <summary>A sorted snapshot for scrapes, which read it without the registry lock.</summary>
    private void PublishFamilies()
    {
        var families = _byName.Values.ToArray();
        Array.Sort(families, static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        Volatile.Write(ref _families, families);
    }

    private bool Exported(string meterName)
    {
        foreach (var prefix in _prefixes)
        {
            if (meterName.StartsWith(prefix, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private static (PrometheusType Type, Aggregation Aggregation)? Classify(Instrument instrument)
    {
        var type = instrument.GetType();
        if (!type.IsGenericType)
        {
            return null;
        }

        var definition = type.GetGenericTypeDefinition();
        return definition == typeof(Counter<>) ? (PrometheusType.Counter, Aggregation.Sum)
            : definition == typeof(ObservableCounter<>) ? (PrometheusType.Counter, Aggregation.Observed)
            : definition == typeof(UpDownCounter<>) ? (PrometheusType.Gauge, Aggregation.Sum)
            : definition == typeof(ObservableUpDownCounter<>) ? (PrometheusType.Gauge, Aggregation.Observed)
            : definition == typeof(ObservableGauge<>) ? (PrometheusType.Gauge, Aggregation.Observed)
            : definition == typeof(Gauge<>) ? (PrometheusType.Gauge, Aggregation.LastValue)
            : definition == typeof(Histogram<>) ? (PrometheusType.Histogram, Aggregation.Histogram)
            : null;
    }

    private static double[] HistogramBuckets(Instrument instrument)
    {
        var advised = instrument switch
        {
            Instrument<byte> i => Advised(i),
            Instrument<short> i => Advised(i),
            Instrument<int> i => Advised(i),
            Instrument<long> i => Advised(i),
            Instrument<float> i => Advised(i),
            Instrument<double> i => Advised(i),
            Instrument<decimal> i => Advised(i),
            _ => null,
        };
        return advised ?? instrument.Unit switch
        {
            "s" => SecondsBuckets,
            "By" => BytesBuckets,
            _ => DefaultBuckets,
        };
    }

    /// <summary>The advised bucket bounds, finite and strictly increasing; null without advice.</summary>
    private static double[]? Advised<T>(Instrument<T> instrument)
        where T : struct, INumberBase<T>
    {
        if (instrument.Advice?.HistogramBucketBoundaries is not { } advised)
        {
            return null;
        }

        var bounds = new List<double>(advised.Count);
        foreach (var bound in advised)
        {
            var value = double.CreateSaturating(bound);
            if (double.IsFinite(value) && (bounds.Count == 0 || value > bounds[^1]))
            {
                bounds.Add(value);
            }
        }

        return [.. bounds];
    }
}
