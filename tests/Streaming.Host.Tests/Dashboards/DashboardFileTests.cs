using System.Text.Json;
using YamlDotNet.RepresentationModel;

namespace Streaming.Host.Tests.Dashboards;

/// <summary>The files of <c>dashboards/</c> read as data: Grafana JSON, rule files, the runbook, the provisioning files.</summary>
public sealed class DashboardFileTests
{
    private static readonly string[] RequiredAlerts =
    [
        "ConsumerLagGrowing", "InputStalled", "DeadLetterSpike", "CheckpointsFailing", "ProcessingLatencyHigh",
        "MirrorLagHigh", "MirrorErrors", "TriggerLatencyP99High", "OutreachBacklog",
    ];

    private static readonly string[] RequiredDashboards = ["engine-health.json", "customer-population.json", "triggers-outreach.json"];

    [Fact]
    public void Dashboards_parse_with_unique_uids_panel_ids_and_the_datasource_variable_everywhere()
    {
        Assert.Subset(DashboardFiles.DashboardNames.ToHashSet(), RequiredDashboards.ToHashSet());
        var failures = new List<string>();
        var uids = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in DashboardFiles.DashboardNames)
        {
            using var doc = DashboardFiles.Dashboard(name);
            var root = doc.RootElement;
            var uid = root.GetProperty("uid").GetString() ?? "";
            if (uid.Length == 0 || !uids.TryAdd(uid, name))
            {
                failures.Add($"{name}: uid '{uid}' empty or also used by {uids.GetValueOrDefault(uid)}");
            }

            if (root.GetProperty("schemaVersion").GetInt32() < 36 || string.IsNullOrWhiteSpace(root.GetProperty("title").GetString()))
            {
                failures.Add($"{name}: schemaVersion below 36 or no title");
            }

            var variables = root.GetProperty("templating").GetProperty("list").EnumerateArray().ToList();
            if (!variables.Any(v => v.GetProperty("name").GetString() == "datasource" && v.GetProperty("type").GetString() == "datasource"
                                    && v.GetProperty("query").GetString() == "prometheus"))
            {
                failures.Add($"{name}: no variable 'datasource' of type datasource for prometheus");
            }

            foreach (var variable in variables.Where(v => v.TryGetProperty("datasource", out _)))
            {
                CheckDatasource(variable, $"{name}: variable {variable.GetProperty("name").GetString()}", failures);
            }

            var ids = new HashSet<int>();
            foreach (var panel in DashboardFiles.Panels(root))
            {
                var title = panel.GetProperty("title").GetString();
                var where = $"{name}: panel \"{title}\"";
                if (!ids.Add(panel.GetProperty("id").GetInt32()))
                {
                    failures.Add($"{where}: id {panel.GetProperty("id").GetInt32()} is not unique");
                }

                var grid = panel.GetProperty("gridPos");
                if (grid.GetProperty("x").GetInt32() + grid.GetProperty("w").GetInt32() > 24 || grid.GetProperty("h").GetInt32() < 1)
                {
                    failures.Add($"{where}: gridPos {grid} is outside the 24 columns");
                }

                var type = panel.GetProperty("type").GetString();
                if (type == "row")
                {
                    continue;
                }

                CheckDatasource(panel, where, failures);
                if (!panel.TryGetProperty("targets", out var targets) || targets.GetArrayLength() == 0)
                {
                    failures.Add($"{where}: no targets");
                    continue;
                }

                if (type is "timeseries" or "stat" or "bargauge"
                    && (!panel.GetProperty("fieldConfig").GetProperty("defaults").TryGetProperty("unit", out var unit) || string.IsNullOrEmpty(unit.GetString())))
                {
                    failures.Add($"{where}: no unit");
                }

                foreach (var target in targets.EnumerateArray())
                {
                    var refId = target.GetProperty("refId").GetString();
                    CheckDatasource(target, $"{where} {refId}", failures);
                    if (string.IsNullOrWhiteSpace(target.TryGetProperty("expr", out var expr) ? expr.GetString() : null))
                    {
                        failures.Add($"{where} {refId}: empty expr");
                    }

                    if (type == "timeseries" && string.IsNullOrWhiteSpace(target.TryGetProperty("legendFormat", out var legend) ? legend.GetString() : null))
                    {
                        failures.Add($"{where} {refId}: no legend");
                    }
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public void Every_expression_reads_documented_metrics_or_recorded_series_and_known_variables()
    {
        var recorded = DashboardFiles.Rules(DashboardFiles.RecordingRulesFile).AllRules.Select(r => r.Name).ToHashSet(StringComparer.Ordinal);
        var known = MetricCatalog.Documented.Concat(MetricCatalog.PendingNames).ToHashSet(StringComparer.Ordinal);
        var failures = new List<string>();
        foreach (var e in AllExpressions())
        {
            string expr;
            try
            {
                expr = PromQl.Substitute(e.Expr);
            }
            catch (InvalidOperationException ex)
            {
                failures.Add($"{e.File} {e.Where}: {ex.Message}");
                continue;
            }

            var names = PromQl.MetricNames(expr);
            if (names.Count == 0)
            {
                failures.Add($"{e.File} {e.Where}: reads no metric: {expr}");
            }

            foreach (var name in names)
            {
                var ok = name.Contains(':', StringComparison.Ordinal) ? recorded.Contains(name)
                    : name.StartsWith("dotnet_", StringComparison.Ordinal) || name == "up" || known.Contains(MetricCatalog.Family(name, known));
                if (!ok)
                {
                    failures.Add($"{e.File} {e.Where}: '{name}' is neither in the README's Metrics table, nor pending, nor recorded: {PromQl.OneLine(expr)}");
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public void Pending_dashboards_use_only_the_documented_metrics_of_their_feature()
    {
        var failures = new List<string>();
        foreach (var (dashboard, feature) in MetricCatalog.PendingDashboards)
        {
            foreach (var e in DashboardFiles.Expressions(dashboard).Where(e => e.Where.StartsWith("panel", StringComparison.Ordinal)))
            {
                foreach (var name in PromQl.MetricNames(PromQl.Substitute(e.Expr)))
                {
                    if (MetricCatalog.PendingFeature(name) != feature)
                    {
                        failures.Add($"{dashboard} {e.Where}: '{name}' is not a metric of {feature}");
                    }
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public void Every_alert_has_a_severity_a_summary_a_description_and_a_runbook_section()
    {
        var alerts = DashboardFiles.Rules(DashboardFiles.AlertsFile).AllRules.ToList();
        Assert.Subset(alerts.Select(a => a.Name).ToHashSet(), RequiredAlerts.ToHashSet());
        var anchors = DashboardFiles.RunbookAnchors();
        var failures = new List<string>();
        foreach (var alert in alerts)
        {
            if (alert.Alert is null)
            {
                failures.Add($"alerts.yaml holds a recording rule {alert.Record}");
                continue;
            }

            if (alert.Labels.GetValueOrDefault("severity") is not ("critical" or "warning" or "info"))
            {
                failures.Add($"{alert.Alert}: severity label is '{alert.Labels.GetValueOrDefault("severity")}'");
            }

            foreach (var key in new[] { "summary", "description", "runbook_url" })
            {
                if (string.IsNullOrWhiteSpace(alert.Annotations.GetValueOrDefault(key)))
                {
                    failures.Add($"{alert.Alert}: no {key} annotation");
                }
            }

            var anchor = alert.Alert.ToLowerInvariant();
            if (alert.Annotations.GetValueOrDefault("runbook_url") != "dashboards/RUNBOOK.md#" + anchor || !anchors.Contains(anchor))
            {
                failures.Add($"{alert.Alert}: runbook_url should be dashboards/RUNBOOK.md#{anchor}, a section of RUNBOOK.md (sections: {string.Join(", ", anchors)})");
            }

            if (PromQl.DataParts(alert.Expr).Count == 0)
            {
                failures.Add($"{alert.Alert}: no data parts in {alert.Expr}");
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public void Grafana_provisioning_loads_the_dashboards_from_files_and_a_prometheus_datasource()
    {
        var provisioning = Path.Combine(DashboardFiles.GrafanaDir, "provisioning");
        var dashboards = Yaml(Path.Combine(provisioning, "dashboards", "streaming.yaml"));
        var provider = (YamlMappingNode)((YamlSequenceNode)dashboards["providers"])[0];
        Assert.Equal("file", provider["type"].ToString());
        Assert.False(string.IsNullOrEmpty(((YamlMappingNode)provider["options"])["path"].ToString()));

        var datasources = Yaml(Path.Combine(provisioning, "datasources", "prometheus.yaml"));
        var datasource = (YamlMappingNode)((YamlSequenceNode)datasources["datasources"])[0];
        Assert.Equal("prometheus", datasource["type"].ToString());
        Assert.StartsWith("http", datasource["url"].ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("up{job=\"streaming\"} == 0", "up{job=\"streaming\"}")]
    [InlineData("a:b:c{quantile=\"0.99\"} > 5", "a:b:c{quantile=\"0.99\"}")]
    [InlineData("x > 0 unless on (job, instance) y > 0", "x|y")]
    [InlineData("sum by (job) (increase(d[5m])) >= 3 or on (job) (m > 120 and on (job) sum by (job) (increase(e[2m])) > 0)",
        "sum by (job) (increase(d[5m]))|m|sum by (job) (increase(e[2m]))")]
    [InlineData("sum without (state) (s{state=\"due\"}) > 1000 or (s > 0 unless on (job, channel) r > 0)", "sum without (state) (s{state=\"due\"})|s|r")]
    [InlineData("changes(a[2m]) == 0", "changes(a[2m])")]
    [InlineData("rate(a[5m]) / rate(b[5m])", "rate(a[5m]) / rate(b[5m])")]
    [InlineData("a > b", "a > b")]
    public void Alert_data_parts_are_the_operands_without_their_thresholds(string expr, string expected) =>
        Assert.Equal(expected.Split('|'), PromQl.DataParts(expr));

    [Fact]
    public void Metric_names_are_read_outside_labels_groupings_ranges_and_functions()
    {
        var names = PromQl.MetricNames(
            "histogram_quantile(0.99, sum by (le) (rate(m_bucket{instance=~\"a|b\", x=\"or\"}[5m]))) / on (job) group_left sum without (state) (rec:name:sum) and bool_x offset 5m");
        Assert.Equal(["bool_x", "m_bucket", "rec:name:sum"], names.Order(StringComparer.Ordinal));
    }

    private static void CheckDatasource(JsonElement element, string where, List<string> failures)
    {
        if (!element.TryGetProperty("datasource", out var ds) || ds.ValueKind != JsonValueKind.Object
            || ds.GetProperty("type").GetString() != "prometheus" || ds.GetProperty("uid").GetString() != "${datasource}")
        {
            failures.Add($"{where}: datasource is not {{type: prometheus, uid: ${{datasource}}}}");
        }
    }

    private static IEnumerable<Expression> AllExpressions()
    {
        foreach (var name in DashboardFiles.DashboardNames)
        {
            foreach (var e in DashboardFiles.Expressions(name))
            {
                yield return e;
            }
        }

        foreach (var file in new[] { DashboardFiles.RecordingRulesFile, DashboardFiles.AlertsFile })
        {
            foreach (var rule in DashboardFiles.Rules(file).AllRules)
            {
                yield return new Expression(Path.GetFileName(file), rule.Name, rule.Expr);
            }
        }
    }

    private static YamlMappingNode Yaml(string path)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(path);
        stream.Load(reader);
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }
}
