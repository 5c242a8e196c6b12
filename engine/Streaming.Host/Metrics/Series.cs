using System.Text;

namespace Streaming.Host.Metrics;

/// <summary>One time series of a family: its rendered labels and its aggregated value, updated with interlocked operations.</summary>
internal abstract class Series
{
    private int _generation;

    protected Series(string labels)
    {
        Labels = labels;
        LabelsUtf8 = Encoding.UTF8.GetBytes(labels);
    }

    /// <summary>The label pairs as exposition text, sorted by name, without braces (empty when there are none).</summary>
    public string Labels { get; }

    public byte[] LabelsUtf8 { get; }

    /// <summary>The collection cycle in which an observable instrument last reported this series.</summary>
    public int Generation
    {
        get => Volatile.Read(ref _generation);
        set => Volatile.Write(ref _generation, value);
    }

    /// <summary>Adds to a double without a lock.</summary>
    protected static void AddDouble(ref double location, double value)
    {
        var current = Volatile.Read(ref location);
        while (true)
        {
            var seen = Interlocked.CompareExchange(ref location, current + value, current);
            if (BitConverter.DoubleToInt64Bits(seen) == BitConverter.DoubleToInt64Bits(current))
            {
                return;
            }

            current = seen;
        }
    }
}

/// <summary>A counter or gauge: integral measurements add to a long, floating ones to a double; the value is their sum.</summary>
internal sealed class ScalarSeries(string labels) : Series(labels)
{
    private long _integer;
    private double _real;

    public long Integer => Volatile.Read(ref _integer);

    public double Real => Volatile.Read(ref _real);

    public void Add(long value) => Interlocked.Add(ref _integer, value);

    public void Add(double value) => AddDouble(ref _real, value);

    /// <summary>Replaces the value (gauges, observed values).</summary>
    public void Set(double value) => Volatile.Write(ref _real, value);
}

/// <summary>A histogram: per-bucket counts (not cumulative) and the sum; the count is the sum of the buckets.</summary>
internal sealed class HistogramSeries : Series
{
    private readonly double[] _bounds;
    private readonly long[] _counts;
    private double _sum;

    public HistogramSeries(string labels, double[] bounds)
        : base(labels)
    {
        _bounds = bounds;
        _counts = new long[bounds.Length + 1];
    }

    public double Sum => Volatile.Read(ref _sum);

    /// <summary>The count of bucket <paramref name="index"/> alone; the last index is the overflow above every bound.</summary>
    public long BucketCount(int index) => Volatile.Read(ref _counts[index]);

    public void Observe(double value)
    {
        if (double.IsNaN(value))
        {
            return;
        }

        // The first bound >= value: buckets are upper-inclusive, as Prometheus' le.
        int lo = 0, hi = _bounds.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_bounds[mid] < value)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        Interlocked.Increment(ref _counts[lo]);
        AddDouble(ref _sum, value);
    }
}
