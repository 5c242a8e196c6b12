using System.Diagnostics.Metrics;
using System.Globalization;
using System.Numerics;
using System.Text;
using Prometheus;

namespace Streaming.Host.Metrics;

/// <summary>Options of <see cref="MeterBridge"/>.</summary>
public sealed record MeterBridgeOptions
{
    /// <summary>The engine's meter and the .NET runtime's built-in one.</summary>
    public static IReadOnlyList<string> DefaultMeterPrefixes { get; } = [MetricsInstruments.MeterName, "System.Runtime"];

    /// <summary>Instruments of meters whose names start with one of these (ordinal) are published.</summary>
    public IReadOnlyList<string> MeterPrefixes { get; init; } = DefaultMeterPrefixes;
}

/// <summary>
/// Publishes <see cref="System.Diagnostics.Metrics"/> instruments as prometheus-net metrics in its own
/// <see cref="CollectorRegistry"/>, under the names the README's metric table documents. prometheus-net's own meter
/// adapter names a metric <c>meter_instrument</c> without unit or <c>_total</c> and exports every counter as a gauge,
/// which would rename every documented metric; this bridge uses prometheus-net's metric API instead, so the library
/// keeps the values and writes the exposition.
/// <list type="bullet">
/// <item>Name: the instrument name with characters outside <c>[a-zA-Z0-9_]</c> as <c>_</c>; unit <c>s</c> appends
/// <c>_seconds</c> and <c>By</c> <c>_bytes</c> unless the name holds that word; counters end in <c>_total</c>; a gauge or
/// histogram that would end in <c>_total</c>, <c>_count</c>, <c>_sum</c> or <c>_bucket</c> gets <c>_value</c>.</item>
/// <item>Type: counters and observable counters are counters (an observed value below the last one is a reset);
/// up-down counters, gauges and their observable forms gauges; histograms histograms, with the instrument's advised
/// bounds, else seconds 0.005…10, bytes 64 B…64 MiB by powers of 4, otherwise 0…10000.</item>
/// <item>Labels: the tag keys of an instrument's first measurement, sorted, with the same character rule (a key
/// starting with a digit or <c>__</c>, or <c>le</c> on a histogram, gets <c>tag_</c> in front); a later measurement
/// without one of them has it empty, extra tags are dropped. Values are invariant text.</item>
/// <item>Observable instruments are read before each collection; their series not reported then are removed.</item>
/// <item>A counter measurement that is negative, NaN or infinite is ignored, never thrown back at the instrument's
/// caller: counted in <see cref="IgnoredMeasurements"/> and logged once per instrument.</item>
/// <item>Series are not capped: the label values come from the engine's own bounded sets (README "Metrics").</item>
/// </list>
/// </summary>
public sealed partial class MeterBridge : IDisposable
{
    internal static readonly double[] SecondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
    internal static readonly double[] BytesBuckets = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
    internal static readonly double[] DefaultBuckets = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

    private static readonly string[] ReservedSuffixes = ["_total", "_count", "_sum", "_bucket"];

    private readonly string[] _prefixes;
    private readonly ILogger _logger;
    private readonly MeterListener _listener;
    private readonly IMetricFactory _factory;
    private readonly List<Bridged> _observables = [];
    private readonly Dictionary<Collector, int> _feeders = [];
    private readonly Lock _gate = new();
    private bool _disposed;
    private long _ignoredMeasurements;

    public MeterBridge(MeterBridgeOptions options, ILogger<MeterBridge> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _prefixes = [.. options.MeterPrefixes];
        _logger = logger;
        Registry = Prometheus.Metrics.NewCustomRegistry();
        _factory = Prometheus.Metrics.WithCustomRegistry(Registry);
        _listener = new MeterListener
        {
            InstrumentPublished = OnInstrumentPublished,
            MeasurementsCompleted = static (_, state) => (state as Bridged)?.Complete(),
        };
        _listener.SetMeasurementEventCallback<byte>(static (_, v, tags, state) => ((Bridged)state!).Record(v, tags));
        _listener.SetMeasurementEventCallback<short>(static (_, v, tags, state) => ((Bridged)state!).Record(v, tags));
        _listener.SetMeasurementEventCallback<int>(static (_, v, tags, state) => ((Bridged)state!).Record(v, tags));
        _listener.SetMeasurementEventCallback<long>(static (_, v, tags, state) => ((Bridged)state!).Record(v, tags));
        _listener.SetMeasurementEventCallback<float>(static (_, v, tags, state) => ((Bridged)state!).Record(v, tags));
        _listener.SetMeasurementEventCallback<double>(static (_, v, tags, state) => ((Bridged)state!).Record(v, tags));
        _listener.SetMeasurementEventCallback<decimal>(static (_, v, tags, state) => ((Bridged)state!).Record((double)v, tags));
        Registry.AddBeforeCollectCallback(ObserveAll);
        _listener.Start();
    }

    /// <summary>The registry <c>GET /metrics</c> serves.</summary>
    public CollectorRegistry Registry { get; }

    /// <summary>
    /// Counter measurements dropped because they were negative, NaN or infinite (a counter only grows). Each such
    /// instrument is logged once, at its first; the caller never sees an exception.
    /// </summary>
    public long IgnoredMeasurements => Interlocked.Read(ref _ignoredMeasurements);

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
        }

        _listener.Dispose();
    }

    /// <summary>The metric name of an instrument (see the type's summary).</summary>
    public static string MetricName(string instrumentName, string? unit, bool counter)
    {
        var name = Sanitize(instrumentName, "_");
        if (counter && name.EndsWith("_total", StringComparison.Ordinal) && name.Length > "_total".Length)
        {
            name = name[..^"_total".Length];
        }

        var unitWord = unit switch
        {
            "s" => "seconds",
            "By" => "bytes",
            _ => null,
        };
        if (unitWord is not null && !$"_{name}_".Contains($"_{unitWord}_", StringComparison.Ordinal))
        {
            name += "_" + unitWord;
        }

        if (counter)
        {
            return name + "_total";
        }

        return ReservedSuffixes.Any(s => name.EndsWith(s, StringComparison.Ordinal)) ? name + "_value" : name;
    }

    /// <summary>The label name of a tag key (see the type's summary).</summary>
    public static string LabelName(string tagKey, bool histogram)
    {
        var name = Sanitize(tagKey, "tag_");
        return name.StartsWith("__", StringComparison.Ordinal) || (histogram && name == "le")
            ? "tag_" + name
            : name;
    }

    private static string Sanitize(string raw, string digitPrefix)
    {
        if (raw.Length == 0)
        {
            return "_";
        }

        var sb = new StringBuilder(raw.Length + digitPrefix.Length);
        if (char.IsAsciiDigit(raw[0]))
        {
            sb.Append(digitPrefix);
        }

        foreach (var c in raw)
        {
            sb.Append(char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_');
        }

        return sb.ToString();
    }

    private static string LabelValue(object? value) => value switch
    {
        null => string.Empty,
        string s => s,
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };

    private void OnInstrumentPublished(Instrument instrument, MeterListener listener)
    {
        if (!_prefixes.Any(p => instrument.Meter.Name.StartsWith(p, StringComparison.Ordinal)))
        {
            return;
        }

        var definition = instrument.GetType().GetGenericTypeDefinition();
        Kind? kind = definition == typeof(Counter<>) ? Kind.Counter
            : definition == typeof(ObservableCounter<>) ? Kind.ObservedCounter
            : definition == typeof(UpDownCounter<>) ? Kind.GaugeAdd
            : definition == typeof(Gauge<>) ? Kind.GaugeSet
            : definition == typeof(ObservableUpDownCounter<>) || definition == typeof(ObservableGauge<>) ? Kind.ObservedGauge
            : definition == typeof(Histogram<>) ? Kind.Histogram
            : null;
        if (kind is not { } k)
        {
            return;
        }

        var bridged = new Bridged(this, instrument, k);
        if (instrument.IsObservable)
        {
            lock (_gate)
            {
                _observables.Add(bridged);
            }
        }

        listener.EnableMeasurementEvents(instrument, bridged);
    }

    /// <summary>Before each collection: reads the observable instruments and drops their series that were not reported.</summary>
    private void ObserveAll()
    {
        Bridged[] observables;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            observables = [.. _observables];
        }

        foreach (var o in observables)
        {
            o.BeginObservation();
        }

        try
        {
            _listener.RecordObservableInstruments();
        }
#pragma warning disable CA1031 // A failing callback must not fail the scrape; its series are left as they were.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogObservationFailed(_logger, ex);
            return;
        }

        foreach (var o in observables)
        {
            o.EndObservation();
        }
    }

    private enum Kind
    {
        Counter,
        ObservedCounter,
        GaugeAdd,
        GaugeSet,
        ObservedGauge,
        Histogram,
    }

    /// <summary>One instrument and the prometheus-net metric it feeds, created at its first measurement.</summary>
    private sealed class Bridged(MeterBridge bridge, Instrument instrument, Kind kind)
    {
        private readonly Lock _gate = new();
        private Collector? _metric;
        private string[] _tagKeys = [];
        private bool _failed;
        private int _ignored;
        private HashSet<string>? _seen;

        private bool IsCounter => kind is Kind.Counter or Kind.ObservedCounter;

        public void Record<T>(T measurement, ReadOnlySpan<KeyValuePair<string, object?>> tags)
            where T : struct, INumberBase<T>
        {
            var value = double.CreateSaturating(measurement);
            var metric = _metric ?? Create(tags);
            if (metric is null)
            {
                return;
            }

            if (IsCounter && !(value >= 0 && double.IsFinite(value)))
            {
                // A counter only grows: prometheus-net's Inc throws on a negative increment, and a NaN or infinite one
                // would spoil the series for good. The measurement is dropped, counted, and logged once per instrument.
                Ignored();
                return;
            }

            var labels = _tagKeys.Length == 0 ? [] : Labels(tags);
            switch (metric)
            {
                case Counter counter when kind == Kind.Counter:
                    (labels.Length == 0 ? (ICounter)counter : counter.WithLabels(labels)).Inc(value);
                    break;
                case Counter counter:
                    Observed(labels);
                    var child = labels.Length == 0 ? (ICounter)counter : counter.WithLabels(labels);
                    if (value < child.Value && labels.Length > 0)
                    {
                        // The source restarted its count (a partition moved): a counter reset, as Prometheus knows it.
                        counter.RemoveLabelled(labels);
                        child = counter.WithLabels(labels);
                    }

                    child.IncTo(value);
                    break;
                case Gauge gauge when kind == Kind.GaugeAdd:
                    (labels.Length == 0 ? (IGauge)gauge : gauge.WithLabels(labels)).Inc(value);
                    break;
                case Gauge gauge:
                    if (kind == Kind.ObservedGauge)
                    {
                        Observed(labels);
                    }

                    (labels.Length == 0 ? (IGauge)gauge : gauge.WithLabels(labels)).Set(value);
                    break;
                case Histogram histogram:
                    (labels.Length == 0 ? (IHistogram)histogram : histogram.WithLabels(labels)).Observe(value);
                    break;
            }
        }

        /// <summary>
        /// The instrument's meter was disposed: it is no longer observed, and once no live instrument feeds its metric
        /// (instruments of one name share it), the metric's series leave the exposition.
        /// </summary>
        public void Complete()
        {
            Collector? metric;
            lock (_gate)
            {
                metric = _metric;
            }

            lock (bridge._gate)
            {
                bridge._observables.Remove(this);
                if (metric is null || !bridge._feeders.TryGetValue(metric, out var feeders))
                {
                    return;
                }

                if (feeders > 1)
                {
                    bridge._feeders[metric] = feeders - 1;
                    return;
                }

                bridge._feeders.Remove(metric);
            }

            switch (metric)
            {
                case Counter counter:
                    Clear(counter);
                    break;
                case Gauge gauge:
                    Clear(gauge);
                    break;
                case Histogram histogram:
                    Clear(histogram);
                    break;
            }
        }

        private static void Clear<TChild>(Collector<TChild> collector)
            where TChild : ChildBase, ICollectorChild
        {
            foreach (var values in collector.GetAllLabelValues().ToList())
            {
                if (values.Length > 0)
                {
                    collector.RemoveLabelled(values);
                }
            }

            if (collector.LabelNames.Length == 0)
            {
                ((ICollector<TChild>)collector).Unlabelled.Unpublish();
            }
        }

        private void Ignored()
        {
            Interlocked.Increment(ref bridge._ignoredMeasurements);
            if (Interlocked.Increment(ref _ignored) == 1)
            {
                LogIgnoredMeasurement(bridge._logger, instrument.Name, instrument.Meter.Name);
            }
        }

        public void BeginObservation()
        {
            lock (_gate)
            {
                _seen = new HashSet<string>(StringComparer.Ordinal);
            }
        }

        public void EndObservation()
        {
            HashSet<string>? seen;
            lock (_gate)
            {
                seen = _seen;
                _seen = null;
            }

            if (seen is null || _tagKeys.Length == 0)
            {
                return;
            }

            switch (_metric)
            {
                case Counter counter:
                    Prune(seen, counter.GetAllLabelValues(), counter.RemoveLabelled);
                    break;
                case Gauge gauge:
                    Prune(seen, gauge.GetAllLabelValues(), gauge.RemoveLabelled);
                    break;
            }
        }

        private static void Prune(HashSet<string> seen, IEnumerable<string[]> present, Action<string[]> remove)
        {
            foreach (var values in present.ToList())
            {
                if (!seen.Contains(Key(values)))
                {
                    remove(values);
                }
            }
        }

        private void Observed(string[] labels)
        {
            if (labels.Length == 0)
            {
                return;
            }

            lock (_gate)
            {
                _seen?.Add(Key(labels));
            }
        }

        private static string Key(string[] values) => string.Join('\u0001', values);

        private string[] Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var values = new string[_tagKeys.Length];
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = string.Empty;
                foreach (var tag in tags)
                {
                    if (tag.Key == _tagKeys[i])
                    {
                        values[i] = LabelValue(tag.Value);
                        break;
                    }
                }
            }

            return values;
        }

        private Collector? Create(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            lock (_gate)
            {
                if (_metric is not null || _failed)
                {
                    return _metric;
                }

                var histogram = kind == Kind.Histogram;
                var keys = new List<(string Label, string Key)>(tags.Length);
                foreach (var tag in tags)
                {
                    var label = LabelName(tag.Key, histogram);
                    if (!keys.Exists(k => k.Label == label))
                    {
                        keys.Add((label, tag.Key));
                    }
                }

                keys.Sort((a, b) => string.CompareOrdinal(a.Label, b.Label));
                var labelNames = keys.Select(k => k.Label).ToArray();
                var name = MetricName(instrument.Name, instrument.Unit, IsCounter);
                // prometheus-net writes HELP text as given: escape backslash and line feed as the text format wants.
                var help = (string.IsNullOrEmpty(instrument.Description) ? $"{instrument.Name} of meter {instrument.Meter.Name}" : instrument.Description)
                    .Replace("\\", "\\\\", StringComparison.Ordinal)
                    .Replace("\n", "\\n", StringComparison.Ordinal);
                try
                {
                    Collector metric = kind switch
                    {
                        Kind.Counter or Kind.ObservedCounter => bridge._factory.CreateCounter(name, help, new CounterConfiguration { LabelNames = labelNames, SuppressInitialValue = true }),
                        Kind.Histogram => bridge._factory.CreateHistogram(name, help, new HistogramConfiguration { LabelNames = labelNames, Buckets = Buckets(instrument), SuppressInitialValue = true }),
                        _ => bridge._factory.CreateGauge(name, help, new GaugeConfiguration { LabelNames = labelNames, SuppressInitialValue = true }),
                    };
                    _tagKeys = keys.Select(k => k.Key).ToArray();
                    _metric = metric;
                    lock (bridge._gate)
                    {
                        bridge._feeders[metric] = bridge._feeders.GetValueOrDefault(metric) + 1;
                    }
                }
                catch (InvalidOperationException ex)
                {
                    _failed = true;
                    LogNameConflict(bridge._logger, instrument.Name, instrument.Meter.Name, name, ex.Message);
                }
                catch (ArgumentException ex)
                {
                    _failed = true;
                    LogNameConflict(bridge._logger, instrument.Name, instrument.Meter.Name, name, ex.Message);
                }

                return _metric;
            }
        }
    }

    private static double[] Buckets(Instrument instrument)
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

        return bounds.Count == 0 ? null : [.. bounds];
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "An observable instrument's callback failed before a metrics scrape; observable series keep their previous values")]
    private static partial void LogObservationFailed(ILogger logger, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Counter {Instrument} of meter {Meter} was given a negative, NaN or infinite increment; such measurements are ignored (logged once per instrument)")]
    private static partial void LogIgnoredMeasurement(ILogger logger, string instrument, string meter);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Instrument {Instrument} of meter {Meter} is not exported as {Name}: {Reason}")]
    private static partial void LogNameConflict(ILogger logger, string instrument, string meter, string name, string reason);
}
