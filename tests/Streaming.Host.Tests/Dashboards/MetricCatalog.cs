using System.Text.RegularExpressions;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests.Dashboards;

/// <summary>
/// Which metric names the dashboards and rules may use, and which of them a replay is expected to produce. A name is
/// documented when the README's Metrics table lists it, or when it is pending below; .NET runtime names (<c>dotnet_*</c>)
/// are checked against a real scrape only.
/// </summary>
public static partial class MetricCatalog
{
    /// <summary>
    /// Metrics being built elsewhere, by feature: expressions on them are checked for their names and their syntax (by
    /// Prometheus), not for data. When a feature lands, delete its entry (and its dashboards from
    /// <see cref="PendingDashboards"/>): the live test then evaluates every expression on them for data.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string[]> Pending = new Dictionary<string, string[]>();

    /// <summary>Dashboards written against one pending feature: their panels may use only its metrics.</summary>
    public static readonly IReadOnlyDictionary<string, string> PendingDashboards = new Dictionary<string, string>();

    /// <summary>
    /// Metrics that exist only once the event they count has happened, which a healthy replay does not provoke:
    /// checked for syntax, not for data.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> OnlyAfterTheFact = new Dictionary<string, string>
    {
        ["dotnet_exceptions_total"] = "the first exception thrown in the process (its series are per exception type)",
    };

    private static readonly string[] HistogramSuffixes = ["_bucket", "_sum", "_count"];

    /// <summary>The metrics the README's Metrics table lists.</summary>
    public static IReadOnlySet<string> Documented { get; } = ReadReadme();

    /// <summary>The README's Metrics table: each family's name, type and label names (as written, in order).</summary>
    public static IReadOnlyList<DocumentedMetric> Table { get; } = ReadTable();

    public static IEnumerable<string> PendingNames => Pending.Values.SelectMany(names => names);

    /// <summary>The exported name of a histogram's series (<c>x_bucket</c>, <c>x_sum</c>, <c>x_count</c>) is its family's.</summary>
    public static string Family(string name, IReadOnlySet<string> known)
    {
        foreach (var suffix in HistogramSuffixes)
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal) && known.Contains(name[..^suffix.Length]))
            {
                return name[..^suffix.Length];
            }
        }

        return name;
    }

    /// <summary>The pending feature <paramref name="metric"/> (a family or a series name) belongs to, if any.</summary>
    public static string? PendingFeature(string metric)
    {
        var family = Family(metric, PendingNames.ToHashSet(StringComparer.Ordinal));
        return Pending.FirstOrDefault(p => p.Value.Contains(family, StringComparer.Ordinal)).Key;
    }

    private static HashSet<string> ReadReadme()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(Path.Combine(TestEnvironment.RepoRoot, "README.md")))
        {
            var match = MetricRow().Match(line);
            if (match.Success)
            {
                names.Add(match.Groups[1].Value);
            }
        }

        return names;
    }

    private static List<DocumentedMetric> ReadTable()
    {
        var table = new List<DocumentedMetric>();
        foreach (var line in File.ReadLines(Path.Combine(TestEnvironment.RepoRoot, "README.md")))
        {
            if (!MetricRow().IsMatch(line))
            {
                continue;
            }

            var cells = line.Split('|');
            Assert.True(cells.Length >= 5, "a metric row without name, type and labels: " + line);
            table.Add(new DocumentedMetric(
                cells[1].Trim().Trim('`'),
                cells[2].Trim(),
                [.. Backticked().Matches(cells[3]).Select(m => m.Groups[1].Value)]));
        }

        return table;
    }

    [GeneratedRegex(@"^\|\s*`(streaming_[a-z0-9_]+)`\s*\|")]
    private static partial Regex MetricRow();

    [GeneratedRegex(@"`([^`]+)`")]
    private static partial Regex Backticked();
}

/// <summary>One row of the README's Metrics table.</summary>
public sealed record DocumentedMetric(string Name, string Type, IReadOnlyList<string> Labels);
