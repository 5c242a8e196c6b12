using System.Collections.Concurrent;
using System.Text;

namespace Streaming.Host.Metrics;

/// <summary>
/// The series of one family, found by a measurement's tag span: a lock-free dictionary read on the hot path; a lock only
/// when a tag set is seen for the first time. Tag sets that render to the same labels share one series; past the
/// series limit, new label sets go to one overflow series labelled <c>otel_metric_overflow="true"</c>.
/// </summary>
internal sealed class SeriesMap<TSeries>
    where TSeries : Series
{
    public const string OverflowLabels = "otel_metric_overflow=\"true\"";

    private readonly Func<string, TSeries> _create;
    private readonly bool _histogram;
    private readonly int _maxSeries;
    private readonly int _maxKeys;
    private readonly ConcurrentDictionary<TagSetKey, TSeries> _byTags = new(TagSetComparer.Instance);
    private readonly ConcurrentDictionary<TagSetKey, TSeries>.AlternateLookup<ReadOnlySpan<KeyValuePair<string, object?>>> _byTagSpan;
    private readonly Dictionary<string, TSeries> _byLabels = new(StringComparer.Ordinal);
    private readonly Lock _sync = new();
    private TSeries? _untagged;
    private TSeries? _overflow;
    private TSeries[] _all = [];
    private int _keys;

    public SeriesMap(Func<string, TSeries> create, bool histogram, int maxSeries)
    {
        _create = create;
        _histogram = histogram;
        _maxSeries = maxSeries;
        // Tag values that are equal as text but not as objects (5 and 5L, fresh arrays) give several keys for one
        // series; the key count is bounded so such callers cost a slow lookup, never unbounded memory.
        _maxKeys = Math.Max(64, maxSeries * 4);
        _byTagSpan = _byTags.GetAlternateLookup<ReadOnlySpan<KeyValuePair<string, object?>>>();
    }

    /// <summary>Every series, in the order they were created.</summary>
    public TSeries[] All => Volatile.Read(ref _all);

    public TSeries Get(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.IsEmpty)
        {
            return Volatile.Read(ref _untagged) ?? GetSlow(tags);
        }

        return _byTagSpan.TryGetValue(tags, out var series) ? series : GetSlow(tags);
    }

    private TSeries GetSlow(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        lock (_sync)
        {
            if (tags.IsEmpty && _untagged is not null)
            {
                return _untagged;
            }

            if (!tags.IsEmpty && _byTagSpan.TryGetValue(tags, out var found))
            {
                return found;
            }

            var labels = RenderLabels(tags, _histogram);
            if (!_byLabels.TryGetValue(labels, out var series))
            {
                if (_byLabels.Count >= _maxSeries)
                {
                    series = _overflow ??= Add(OverflowLabels);
                }
                else
                {
                    series = Add(labels);
                    _byLabels.Add(labels, series);
                }
            }

            if (tags.IsEmpty)
            {
                Volatile.Write(ref _untagged, series);
            }
            else if (_keys < _maxKeys && _byTags.TryAdd(TagSetComparer.Instance.Create(tags), series))
            {
                _keys++;
            }

            return series;
        }
    }

    private TSeries Add(string labels)
    {
        var series = _create(labels);
        Volatile.Write(ref _all, [.. _all, series]);
        return series;
    }

    /// <summary>
    /// Labels sorted by name; tags whose keys map to one label name are joined with <c>;</c> in value order; empty values
    /// are left out (Prometheus reads an empty label as an absent one).
    /// </summary>
    internal static string RenderLabels(ReadOnlySpan<KeyValuePair<string, object?>> tags, bool histogram)
    {
        if (tags.IsEmpty)
        {
            return string.Empty;
        }

        var pairs = new List<(string Name, string Value)>(tags.Length);
        foreach (var tag in tags)
        {
            var value = PrometheusNames.LabelValue(tag.Value);
            if (value.Length > 0)
            {
                pairs.Add((PrometheusNames.LabelName(tag.Key, histogram), value));
            }
        }

        pairs.Sort(static (a, b) =>
        {
            var byName = string.CompareOrdinal(a.Name, b.Name);
            return byName != 0 ? byName : string.CompareOrdinal(a.Value, b.Value);
        });

        var sb = new StringBuilder();
        for (var i = 0; i < pairs.Count; i++)
        {
            var (name, value) = pairs[i];
            if (i > 0 && pairs[i - 1].Name == name)
            {
                // Same label name as the previous pair: drop the closing quote and append.
                sb.Length--;
                sb.Append(';');
            }
            else
            {
                if (sb.Length > 0)
                {
                    sb.Append(',');
                }

                sb.Append(name).Append("=\"");
            }

            PrometheusNames.AppendEscapedLabelValue(sb, value);
            sb.Append('"');
        }

        return sb.ToString();
    }
}
