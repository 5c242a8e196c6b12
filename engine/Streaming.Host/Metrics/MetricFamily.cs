using System.Buffers;

namespace Streaming.Host.Metrics;

/// <summary>How an instrument's measurements combine into a series value.</summary>
internal enum Aggregation
{
    /// <summary>Measurements are increments (Counter, UpDownCounter).</summary>
    Sum,

    /// <summary>The last measurement is the value (Gauge).</summary>
    LastValue,

    /// <summary>Reported by a callback at each scrape (observable instruments); a series not reported is not shown.</summary>
    Observed,

    /// <summary>Measurements are counted into buckets (Histogram).</summary>
    Histogram,
}

/// <summary>The scrape counter that observed series are stamped with.</summary>
internal sealed class CollectionCycle
{
    private int _current;

    public int Current => Volatile.Read(ref _current);

    public void Advance() => Interlocked.Increment(ref _current);
}

/// <summary>
/// One Prometheus metric family: a name, HELP, TYPE and its series. Instruments of the same Prometheus name, type and
/// aggregation (from any matching meter) share one family and its series.
/// </summary>
internal abstract class MetricFamily
{
    private readonly CollectionCycle _cycle;

    protected MetricFamily(string name, string help, PrometheusType type, Aggregation aggregation, CollectionCycle cycle)
    {
        Name = name;
        Type = type;
        Aggregation = aggregation;
        _cycle = cycle;
        NameUtf8 = ExpositionWriter.Utf8(name);
        var typeName = type switch
        {
            PrometheusType.Counter => "counter",
            PrometheusType.Gauge => "gauge",
            _ => "histogram",
        };
        HeaderUtf8 = ExpositionWriter.Utf8($"# HELP {name} {PrometheusNames.EscapeHelp(help)}\n# TYPE {name} {typeName}\n");
    }

    public string Name { get; }

    public PrometheusType Type { get; }

    public Aggregation Aggregation { get; }

    /// <summary>Instruments currently feeding this family; guarded by the collector's registry lock.</summary>
    public int Instruments { get; set; }

    protected byte[] NameUtf8 { get; }

    protected byte[] HeaderUtf8 { get; }

    protected int CurrentCycle => _cycle.Current;

    public abstract bool Accepts(PrometheusType type, Aggregation aggregation, double[]? bounds);

    public abstract void Record(long value, ReadOnlySpan<KeyValuePair<string, object?>> tags);

    public abstract void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags);

    /// <summary>Writes HELP, TYPE and the samples; nothing when no series is visible.</summary>
    public abstract void Write(IBufferWriter<byte> output);

    protected bool Visible(Series series) => Aggregation != Aggregation.Observed || series.Generation == _cycle.Current;
}

/// <summary>A counter or gauge family.</summary>
internal sealed class ScalarFamily : MetricFamily
{
    private readonly SeriesMap<ScalarSeries> _series;

    public ScalarFamily(string name, string help, PrometheusType type, Aggregation aggregation, CollectionCycle cycle, int maxSeries)
        : base(name, help, type, aggregation, cycle)
    {
        _series = new SeriesMap<ScalarSeries>(static labels => new ScalarSeries(labels), histogram: false, maxSeries);
    }

    public override bool Accepts(PrometheusType type, Aggregation aggregation, double[]? bounds) => type == Type && aggregation == Aggregation;

    public override void Record(long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        switch (Aggregation)
        {
            case Aggregation.Sum:
                // A counter only goes up; a negative increment is a caller's bug and would break rate().
                if (value < 0 && Type == PrometheusType.Counter)
                {
                    return;
                }

                _series.Get(tags).Add(value);
                break;
            case Aggregation.LastValue:
                _series.Get(tags).Set(value);
                break;
            default:
                var observed = _series.Get(tags);
                observed.Set(value);
                observed.Generation = CurrentCycle;
                break;
        }
    }

    public override void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        switch (Aggregation)
        {
            case Aggregation.Sum:
                if (!(value >= 0) && Type == PrometheusType.Counter)
                {
                    return;
                }

                _series.Get(tags).Add(value);
                break;
            case Aggregation.LastValue:
                _series.Get(tags).Set(value);
                break;
            default:
                var observed = _series.Get(tags);
                observed.Set(value);
                observed.Generation = CurrentCycle;
                break;
        }
    }

    public override void Write(IBufferWriter<byte> output)
    {
        var headerWritten = false;
        foreach (var series in _series.All)
        {
            if (!Visible(series))
            {
                continue;
            }

            if (!headerWritten)
            {
                ExpositionWriter.Write(output, HeaderUtf8);
                headerWritten = true;
            }

            var real = series.Real;
            if (BitConverter.DoubleToInt64Bits(real) == 0)
            {
                ExpositionWriter.WriteSample(output, NameUtf8, default, series.LabelsUtf8, default, series.Integer);
            }
            else
            {
                ExpositionWriter.WriteSample(output, NameUtf8, default, series.LabelsUtf8, default, series.Integer + real);
            }
        }
    }
}

/// <summary>A histogram family: cumulative <c>_bucket</c> series, <c>_sum</c> and <c>_count</c>.</summary>
internal sealed class HistogramFamily : MetricFamily
{
    private static readonly byte[] BucketSuffix = "_bucket"u8.ToArray();
    private static readonly byte[] SumSuffix = "_sum"u8.ToArray();
    private static readonly byte[] CountSuffix = "_count"u8.ToArray();

    private readonly double[] _bounds;
    private readonly byte[][] _le;
    private readonly SeriesMap<HistogramSeries> _series;

    public HistogramFamily(string name, string help, double[] bounds, CollectionCycle cycle, int maxSeries)
        : base(name, help, PrometheusType.Histogram, Aggregation.Histogram, cycle)
    {
        _bounds = bounds;
        _le = new byte[bounds.Length + 1][];
        for (var i = 0; i < bounds.Length; i++)
        {
            _le[i] = ExpositionWriter.Utf8($"le=\"{ExpositionWriter.FormatDouble(bounds[i])}\"");
        }

        _le[^1] = ExpositionWriter.Utf8("le=\"+Inf\"");
        _series = new SeriesMap<HistogramSeries>(labels => new HistogramSeries(labels, _bounds), histogram: true, maxSeries);
    }

    public override bool Accepts(PrometheusType type, Aggregation aggregation, double[]? bounds) =>
        type == Type && aggregation == Aggregation && bounds is not null && bounds.AsSpan().SequenceEqual(_bounds);

    public override void Record(long value, ReadOnlySpan<KeyValuePair<string, object?>> tags) => _series.Get(tags).Observe(value);

    public override void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags) => _series.Get(tags).Observe(value);

    public override void Write(IBufferWriter<byte> output)
    {
        var all = _series.All;
        if (all.Length == 0)
        {
            return;
        }

        ExpositionWriter.Write(output, HeaderUtf8);
        foreach (var series in all)
        {
            // Cumulative counts from one read of each bucket, so +Inf and _count agree within the scrape.
            long cumulative = 0;
            for (var i = 0; i < _le.Length; i++)
            {
                cumulative += series.BucketCount(i);
                ExpositionWriter.WriteSample(output, NameUtf8, BucketSuffix, series.LabelsUtf8, _le[i], cumulative);
            }

            ExpositionWriter.WriteSample(output, NameUtf8, SumSuffix, series.LabelsUtf8, default, series.Sum);
            ExpositionWriter.WriteSample(output, NameUtf8, CountSuffix, series.LabelsUtf8, default, cumulative);
        }
    }
}
