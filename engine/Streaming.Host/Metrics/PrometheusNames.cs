using System.Globalization;
using System.Text;

namespace Streaming.Host.Metrics;

/// <summary>The Prometheus metric type of a family in the text exposition.</summary>
public enum PrometheusType
{
    Counter,
    Gauge,
    Histogram,
}

/// <summary>
/// Turns .NET instrument names, tag keys and tag values into valid Prometheus names and escaped exposition text.
/// </summary>
public static class PrometheusNames
{
    private const string ValueSuffix = "_value";
    private const string TagPrefix = "tag_";

    // Suffixes Prometheus gives the series of other metric types; a gauge or histogram family must not end in them,
    // or its series would collide with (or be read as) a counter's or histogram's.
    private static readonly string[] ReservedSuffixes = ["_total", "_count", "_sum", "_bucket"];

    /// <summary>
    /// The family name of an instrument: characters outside <c>[a-zA-Z0-9_]</c> (dots, dashes, …) become <c>_</c>;
    /// unit <c>s</c> appends <c>_seconds</c> and unit <c>By</c> <c>_bytes</c> unless the name already has that word;
    /// counters end in <c>_total</c>; a gauge or histogram whose name would end in a suffix reserved for other types
    /// (<c>_total</c>, <c>_count</c>, <c>_sum</c>, <c>_bucket</c>) gets <c>_value</c> appended.
    /// </summary>
    public static string MetricName(string instrumentName, string? unit, PrometheusType type)
    {
        var name = Sanitize(instrumentName, "_");
        if (type == PrometheusType.Counter && name.EndsWith("_total", StringComparison.Ordinal) && name.Length > "_total".Length)
        {
            name = name[..^"_total".Length];
        }

        var unitWord = unit switch
        {
            "s" => "seconds",
            "By" => "bytes",
            _ => null,
        };
        if (unitWord is not null && !HasWord(name, unitWord))
        {
            name += "_" + unitWord;
        }

        if (type == PrometheusType.Counter)
        {
            return name + "_total";
        }

        foreach (var suffix in ReservedSuffixes)
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal))
            {
                return name + ValueSuffix;
            }
        }

        return name;
    }

    /// <summary>
    /// The label name of a tag key: characters outside <c>[a-zA-Z0-9_]</c> become <c>_</c>; a name that would start with
    /// a digit or <c>__</c> (reserved by Prometheus), or be <c>le</c> on a histogram, is prefixed with <c>tag_</c>.
    /// </summary>
    public static string LabelName(string tagKey, bool histogram)
    {
        var name = Sanitize(tagKey, TagPrefix);
        if (name.StartsWith("__", StringComparison.Ordinal) || (histogram && name == "le"))
        {
            return TagPrefix + name;
        }

        return name;
    }

    /// <summary>A tag value as label text: strings as they are, booleans lower-case, numbers and other formattables invariantly.</summary>
    public static string LabelValue(object? value) => value switch
    {
        null => string.Empty,
        string s => s,
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };

    /// <summary>Appends a label value escaped for the exposition: <c>\</c>, <c>"</c> and line feed.</summary>
    public static void AppendEscapedLabelValue(StringBuilder sb, string value)
    {
        foreach (var c in value)
        {
            switch (c)
            {
                case '\\':
                    sb.Append(@"\\");
                    break;
                case '"':
                    sb.Append("\\\"");
                    break;
                case '\n':
                    sb.Append(@"\n");
                    break;
                default:
                    sb.Append(c);
                    break;
            }
        }
    }

    /// <summary>HELP text escaped for the exposition: <c>\</c> and line feed.</summary>
    public static string EscapeHelp(string help)
    {
        if (help.AsSpan().IndexOfAny('\\', '\n') < 0)
        {
            return help;
        }

        var sb = new StringBuilder(help.Length + 8);
        foreach (var c in help)
        {
            switch (c)
            {
                case '\\':
                    sb.Append(@"\\");
                    break;
                case '\n':
                    sb.Append(@"\n");
                    break;
                default:
                    sb.Append(c);
                    break;
            }
        }

        return sb.ToString();
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

    private static bool HasWord(string name, string word) =>
        name == word
        || name.StartsWith(word + "_", StringComparison.Ordinal)
        || name.EndsWith("_" + word, StringComparison.Ordinal)
        || name.Contains("_" + word + "_", StringComparison.Ordinal);
}
