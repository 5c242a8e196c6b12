using System.Text.Json;
using System.Text.RegularExpressions;
using Streaming.Host.Tests.Infrastructure;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace Streaming.Host.Tests.Dashboards;

/// <summary>One PromQL expression of a dashboard or a rule file, and where it comes from (for messages).</summary>
public sealed record Expression(string File, string Where, string Expr);

/// <summary>The files of <c>dashboards/</c>: Grafana dashboards, Prometheus rule files, the runbook.</summary>
public static partial class DashboardFiles
{
    public static string Dir { get; } = Path.Combine(TestEnvironment.RepoRoot, "dashboards");

    public static string GrafanaDir => Path.Combine(Dir, "grafana");

    public static string PrometheusDir => Path.Combine(Dir, "prometheus");

    public static string RecordingRulesFile => Path.Combine(PrometheusDir, "recording-rules.yaml");

    public static string AlertsFile => Path.Combine(PrometheusDir, "alerts.yaml");

    public static IReadOnlyList<string> DashboardNames { get; } =
        [.. Directory.EnumerateFiles(GrafanaDir, "*.json").Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal)];

    public static JsonDocument Dashboard(string name) => JsonDocument.Parse(File.ReadAllText(Path.Combine(GrafanaDir, name)));

    /// <summary>Every panel, rows' nested panels included.</summary>
    public static IEnumerable<JsonElement> Panels(JsonElement dashboard)
    {
        foreach (var panel in dashboard.GetProperty("panels").EnumerateArray())
        {
            yield return panel;
            if (panel.TryGetProperty("panels", out var nested))
            {
                foreach (var inner in nested.EnumerateArray())
                {
                    yield return inner;
                }
            }
        }
    }

    /// <summary>The expressions of a dashboard's panel targets and of its query variables (<c>label_values(M, l)</c> reads M).</summary>
    public static IEnumerable<Expression> Expressions(string name)
    {
        using var doc = Dashboard(name);
        var list = new List<Expression>();
        foreach (var panel in Panels(doc.RootElement))
        {
            if (!panel.TryGetProperty("targets", out var targets))
            {
                continue;
            }

            foreach (var target in targets.EnumerateArray())
            {
                list.Add(new Expression(name, $"panel \"{panel.GetProperty("title").GetString()}\" {target.GetProperty("refId").GetString()}", target.GetProperty("expr").GetString() ?? ""));
            }
        }

        foreach (var variable in doc.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray())
        {
            if (variable.GetProperty("type").GetString() == "query")
            {
                var definition = variable.GetProperty("definition").GetString() ?? "";
                var match = LabelValues().Match(definition);
                list.Add(new Expression(name, $"variable {variable.GetProperty("name").GetString()}", match.Success ? match.Groups[1].Value : definition));
            }
        }

        return list;
    }

    public static RuleFile Rules(string path) =>
        new DeserializerBuilder().WithNamingConvention(CamelCaseNamingConvention.Instance).IgnoreUnmatchedProperties().Build().Deserialize<RuleFile>(File.ReadAllText(path));

    /// <summary>The runbook's section anchors, as GitHub renders them (lower case, spaces to dashes, punctuation dropped).</summary>
    public static IReadOnlySet<string> RunbookAnchors()
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(Path.Combine(Dir, "RUNBOOK.md")))
        {
            if (line.StartsWith('#'))
            {
                var title = line.TrimStart('#').Trim().ToLowerInvariant();
                anchors.Add(AnchorDrop().Replace(title, string.Empty).Replace(' ', '-'));
            }
        }

        return anchors;
    }

    [GeneratedRegex(@"^\s*label_values\(\s*(.+)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$")]
    private static partial Regex LabelValues();

    [GeneratedRegex(@"[^a-z0-9 _-]")]
    private static partial Regex AnchorDrop();
}

/// <summary>A Prometheus rule file (recording and alerting rules).</summary>
public sealed class RuleFile
{
    public List<RuleGroup> Groups { get; set; } = [];

    public IEnumerable<Rule> AllRules => Groups.SelectMany(g => g.Rules);
}

public sealed class RuleGroup
{
    public string Name { get; set; } = "";

    public List<Rule> Rules { get; set; } = [];
}

public sealed class Rule
{
    public string? Record { get; set; }

    public string? Alert { get; set; }

    public string Expr { get; set; } = "";

    public string? For { get; set; }

    public Dictionary<string, string> Labels { get; set; } = [];

    public Dictionary<string, string> Annotations { get; set; } = [];

    public string Name => Record ?? Alert ?? "";
}
