using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests.Dashboards;

/// <summary>The Prometheus files of <c>dashboards/prometheus</c>, checked by Prometheus' own <c>promtool</c>.</summary>
public sealed class RuleFileTests
{
    [Fact]
    public async Task Promtool_checks_the_recording_and_alerting_rules()
    {
        var (code, output) = await Promtool.RunAsync(["check", "rules", "recording-rules.yaml", "alerts.yaml"], DashboardFiles.PrometheusDir);
        Assert.True(code == 0, $"promtool check rules exited {code}:\n{output}");
        var rules = DashboardFiles.Rules(DashboardFiles.RecordingRulesFile).AllRules.Count();
        var alerts = DashboardFiles.Rules(DashboardFiles.AlertsFile).AllRules.Count();
        Assert.Contains($"SUCCESS: {rules} rules found", output, StringComparison.Ordinal);
        Assert.Contains($"SUCCESS: {alerts} rules found", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Promtool_unit_tests_of_the_alerts_pass()
    {
        var (code, output) = await Promtool.RunAsync(["test", "rules", "alerts.test.yaml"], DashboardFiles.PrometheusDir);
        Assert.True(code == 0, $"promtool test rules exited {code}:\n{output}");
    }

    [Fact]
    public async Task Promtool_checks_the_example_prometheus_config_with_its_rule_files()
    {
        var (code, output) = await Promtool.RunAsync(["check", "config", "prometheus.yml"], DashboardFiles.PrometheusDir);
        Assert.True(code == 0, $"promtool check config exited {code}:\n{output}");
        Assert.Contains("2 rule files found", output, StringComparison.Ordinal);
    }
}
