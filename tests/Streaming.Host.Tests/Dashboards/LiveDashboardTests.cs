using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Streaming.Host.Tests.Infrastructure;
using Streaming.Tests.Shared;
using Xunit.Abstractions;

namespace Streaming.Host.Tests.Dashboards;

/// <summary>
/// A real Prometheus server scrapes a real engine every second, with the rule files loaded, while Online Retail is
/// replayed into it; then every expression of the dashboards and rules is evaluated through Prometheus' HTTP API and
/// must return data, except those on metrics that are pending or that only exist after a failure (<see cref="MetricCatalog"/>),
/// which must still be valid queries.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed partial class LiveDashboardTests(ITestOutputHelper output)
{
    private const string RetailFile = "online_retail_2010_2011.csv.gz";
    private const string AdminToken = "dashboards-test-admin-token";
    private const string DialerToken = "dashboards-test-dialer-token";

    [Fact]
    public async Task Every_dashboard_and_rule_expression_returns_data_from_prometheus_scraping_a_replay()
    {
        var clock = Stopwatch.StartNew();
        Promtool.Require("prometheus");
        await using var broker = await BrokerProcess.StartAsync(partitions: 4);
        await using var redis = await RedisTestServer.SharedOrPrivateAsync();
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        try
        {
            var env = new Dictionary<string, string>
            {
                // The mirror's metrics are on the dashboards too.
                ["Streaming__Redis__Connection"] = redis.Connection,
                ["Streaming__Redis__Prefix"] = $"dash{Guid.NewGuid():N}:",
                // Below the 4,372 customers: passivations and loads happen.
                ["Streaming__Engine__MaxCachedCustomers"] = "1000",
                ["Streaming__Auth__Tokens__0__Token"] = AdminToken,
                ["Streaming__Auth__Tokens__0__Scopes__0"] = "admin",
                ["Streaming__Auth__Tokens__1__Token"] = DialerToken,
                ["Streaming__Auth__Tokens__1__Scopes__0"] = "dialer",
            };
            await using var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);
            await using var prometheus = await PrometheusServer.StartAsync(Config(engine.Http.BaseAddress!));
            await WaitForDataAsync(prometheus, "up{job=\"streaming\"} == 1", "the engine scraped");

            // Provoke what a healthy replay does not: dead letters, a rejected and an accepted rule set.
            await Kcat.ProduceAsync(broker.BootstrapServers, "orders", [("dash-1", "not json"), ("dash-2", "{\"eventId\":\"dash-2\"}")]);
            await OfferRulesAsync(engine);
            await CallAndAnswerAsync(broker, engine);

            var replay = CliProcess.Start(["replay", "online-retail", "--file", TestEnvironment.DataFile(RetailFile), "--bootstrap", broker.BootstrapServers, "--rate", "3000"]);
            await engine.WaitProcessedAsync("orders", 5000, TimeSpan.FromMinutes(2));
            await CheckScrapeWithPromtoolAsync(engine);
            await replay.WaitForExitAsync(TimeSpan.FromMinutes(3));
            Assert.True(replay.ExitCode == 0, "replay failed: " + replay.StandardError);
            var producedLine = ProducedLine().Match(replay.StandardOutput);
            Assert.True(producedLine.Success, "no produced=N line in: " + replay.StandardOutput);
            var produced = long.Parse(producedLine.Groups[1].Value, CultureInfo.InvariantCulture);
            await engine.WaitProcessedAsync("orders", produced + 2, TimeSpan.FromMinutes(2));
            await WaitForDataAsync(prometheus, $"sum(streaming_events_consumed_total{{type!=\"invalid\"}}) >= {produced}", "the last events scraped");
            await WaitForDataAsync(prometheus, $"sum(instance:streaming_events_consumed:rate5m) > 0", "the recording rules evaluated");
            output.WriteLine($"replayed {produced} events and scraped them in {clock.Elapsed.TotalSeconds:0}s");

            var failures = new List<string>();
            failures.AddRange(FamiliesNotAsDocumented(await engine.Http.GetStringAsync("/metrics")));
            var dataCount = 0;
            var syntaxOnly = new List<string>();
            foreach (var query in Queries())
            {
                var answer = await prometheus.QueryAsync(query.Expr);
                if (answer.GetProperty("status").GetString() != "success")
                {
                    failures.Add($"{query.Source}: query failed ({answer.GetProperty("error").GetString()}): {query.Expr}");
                }
                else if (query.SyntaxOnlyBecause is { } reason)
                {
                    syntaxOnly.Add($"{query.Source} ({reason})");
                }
                else
                {
                    var samples = PrometheusServer.Samples(answer);
                    if (samples.Count == 0)
                    {
                        failures.Add($"{query.Source}: no data: {query.Expr}");
                    }
                    else if (samples.All(s => double.IsNaN(s.Value)))
                    {
                        failures.Add($"{query.Source}: only NaN: {query.Expr}");
                    }
                    else
                    {
                        dataCount++;
                    }
                }
            }

            failures.AddRange(await RuleHealthFailuresAsync(prometheus));
            output.WriteLine($"{dataCount} expressions returned data; {syntaxOnly.Count} checked for syntax only:\n  {string.Join("\n  ", syntaxOnly)}");
            await ReportAsync(prometheus);
            output.WriteLine($"done in {clock.Elapsed.TotalSeconds:0}s");
            Assert.True(failures.Count == 0, $"{failures.Count} of the dashboards' and rules' expressions failed against a real scrape:\n{string.Join('\n', failures)}");
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }

    /// <summary>One query to evaluate: where it comes from, the PromQL, and why only its syntax counts (null: it must return data).</summary>
    private sealed record Query(string Source, string Expr, string? SyntaxOnlyBecause);

    private static List<Query> Queries()
    {
        var recordingRules = DashboardFiles.Rules(DashboardFiles.RecordingRulesFile).AllRules.ToList();
        var recorded = recordingRules.GroupBy(r => r.Name, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.SelectMany(r => PromQl.MetricNames(r.Expr)).ToHashSet(StringComparer.Ordinal), StringComparer.Ordinal);
        var queries = new List<Query>();

        foreach (var dashboard in DashboardFiles.DashboardNames)
        {
            var pendingDashboard = MetricCatalog.PendingDashboards.GetValueOrDefault(dashboard);
            foreach (var e in DashboardFiles.Expressions(dashboard))
            {
                var expr = PromQl.Substitute(e.Expr);
                queries.Add(new Query($"{dashboard} {e.Where}", expr,
                    pendingDashboard is not null ? "dashboard pending: " + pendingDashboard : SyntaxOnlyBecause(expr, recorded)));
            }
        }

        foreach (var rule in recordingRules)
        {
            queries.Add(new Query($"recording-rules.yaml {rule.Name}", rule.Expr, SyntaxOnlyBecause(rule.Expr, recorded)));
            var selector = rule.Name + "{" + string.Join(',', rule.Labels.Select(l => $"{l.Key}=\"{l.Value}\"")) + "}";
            queries.Add(new Query($"recorded series {selector}", selector, SyntaxOnlyBecause(rule.Expr, recorded)));
        }

        foreach (var alert in DashboardFiles.Rules(DashboardFiles.AlertsFile).AllRules)
        {
            foreach (var part in PromQl.DataParts(alert.Expr))
            {
                queries.Add(new Query($"alerts.yaml {alert.Name}", part, SyntaxOnlyBecause(part, recorded)));
            }
        }

        return queries;
    }

    /// <summary>Why an expression cannot be expected to return data from a healthy replay, or null.</summary>
    private static string? SyntaxOnlyBecause(string expr, IReadOnlyDictionary<string, HashSet<string>> recorded)
    {
        var names = PromQl.MetricNames(expr).SelectMany(n => recorded.TryGetValue(n, out var sources) ? sources : [n]).ToList();
        foreach (var name in names)
        {
            if (MetricCatalog.PendingFeature(name) is { } feature)
            {
                return $"pending: {feature}";
            }

            if (MetricCatalog.OnlyAfterTheFact.TryGetValue(name, out var when))
            {
                return $"{name} exists only after {when}";
            }
        }

        return null;
    }

    private static string Config(Uri engine) => $"""
        global:
          scrape_interval: 1s
          scrape_timeout: 1s
          evaluation_interval: 1s
        rule_files:
          - "{DashboardFiles.RecordingRulesFile}"
          - "{DashboardFiles.AlertsFile}"
        scrape_configs:
          - job_name: streaming
            static_configs:
              - targets: ["{engine.Authority}"]
        """;

    private static async Task WaitForDataAsync(PrometheusServer prometheus, string expr, string what) =>
        await Eventually.WaitAsync(
            async () => (await prometheus.SamplesAsync(expr)).Count > 0,
            TimeSpan.FromSeconds(60),
            () => $"{what} ({expr}); prometheus log:\n{CliProcess.Tail(prometheus.Log)}");

    /// <summary>PUT /v1/rules: a set with an unknown section (rejected), then the default pack renamed (accepted).</summary>
    /// <summary>
    /// A live customer (the replay's are history: their outreach expired long ago): an abandoned call now fires
    /// service-recovery; a dialer leases the item and answers it, so outreach and outcome series carry data. The
    /// customer's zone is chosen so that it is midday there now (outside quiet hours).
    /// </summary>
    private static async Task CallAndAnswerAsync(BrokerProcess broker, EngineProcess engine)
    {
        var now = DateTimeOffset.UtcNow;
        var offset = 12 - now.Hour; // local = UTC + offset is 12:xx; Etc/GMT zones invert the sign
        var zone = offset == 0 ? "Etc/GMT" : $"Etc/GMT{(offset > 0 ? "-" : "+")}{Math.Abs(offset > 12 ? offset - 24 : offset < -12 ? offset + 24 : offset)}";
        var at = now.ToString("O", CultureInfo.InvariantCulture);
        await Kcat.ProduceAsync(broker.BootstrapServers, "customer-updates",
        [
            ("dash-live", $$$"""{"eventId":"dash-live-a","customerId":"dash-live","occurredAt":"{{{at}}}","type":"attributes","attributes":{"timeZone":"{{{zone}}}"}}"""),
            ("dash-live", $$$"""{"eventId":"dash-live-c","customerId":"dash-live","occurredAt":"{{{at}}}","type":"consent","consent":{"voice":true,"sms":true}}"""),
        ]);
        // Topics are consumed independently: the call must not overtake the consent.
        await Eventually.WaitAsync(
            async () =>
            {
                using var response = await engine.Http.GetAsync("/v1/customers/dash-live");
                return response.IsSuccessStatusCode
                    && (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("attributes").GetProperty("consent").GetProperty("voice").ValueKind == JsonValueKind.True;
            },
            TimeSpan.FromSeconds(60),
            () => "dash-live's consent applied");
        await Kcat.ProduceAsync(broker.BootstrapServers, "callcenter",
            [("dash-live", $$"""{"eventId":"dash-live-k","customerId":"dash-live","occurredAt":"{{at}}","type":"call_abandoned","waitSeconds":150}""")]);

        string? outreachId = null;
        await Eventually.WaitAsync(
            async () =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/outreach/lease")
                {
                    Content = JsonContent.Create(new { channel = "voice", max = 1, leaseSeconds = 60, dialer = "dash" }),
                };
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", DialerToken);
                using var response = await engine.Http.SendAsync(request);
                response.EnsureSuccessStatusCode();
                var items = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("items");
                outreachId = items.GetArrayLength() > 0 ? items[0].GetProperty("outreachId").GetString() : null;
                return outreachId is not null;
            },
            TimeSpan.FromSeconds(60),
            () => "a service-recovery item for dash-live to lease");

        using var ack = new HttpRequestMessage(HttpMethod.Post, $"/v1/outreach/{outreachId}/ack") { Content = JsonContent.Create(new { outcome = "answered" }) };
        ack.Headers.Authorization = new AuthenticationHeaderValue("Bearer", DialerToken);
        using var acked = await engine.Http.SendAsync(ack);
        Assert.Equal(HttpStatusCode.NoContent, acked.StatusCode);
    }

    private static async Task OfferRulesAsync(EngineProcess engine)
    {
        var pack = await CliProcess.RunAsync(["rules", "default"], TimeSpan.FromSeconds(60));
        Assert.True(pack.ExitCode == 0, pack.StandardError);
        var renamed = NameLine().Replace(pack.StandardOutput, "name: dashboards-test", 1);
        Assert.NotEqual(pack.StandardOutput, renamed);
        Assert.Equal(HttpStatusCode.BadRequest, await PutRulesAsync(engine, renamed + "\nnotASection: 1\n"));
        Assert.Equal(HttpStatusCode.Accepted, await PutRulesAsync(engine, renamed));
    }

    private static async Task<HttpStatusCode> PutRulesAsync(EngineProcess engine, string yaml)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, "/v1/rules") { Content = new StringContent(yaml, Encoding.UTF8, "application/yaml") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        using var response = await engine.Http.SendAsync(request);
        return response.StatusCode;
    }

    /// <summary>
    /// Every family of the README's Metrics table in a scrape taken after the replay: its <c># TYPE</c> the documented
    /// type, at least one series, and each series with exactly the documented label names (<c>le</c> aside on a
    /// histogram's buckets). This covers the families no dashboard reads.
    /// </summary>
    private List<string> FamiliesNotAsDocumented(string scrape)
    {
        var table = MetricCatalog.Table;
        foreach (var name in new[] { "streaming_timers_failed_total", "streaming_trigger_conversions_total", "streaming_trigger_published_total", "streaming_mirror_writes_total" })
        {
            Assert.Contains(table, m => m.Name == name);
        }

        var lines = scrape.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var failures = new List<string>();
        foreach (var metric in table)
        {
            var prefix = $"# TYPE {metric.Name} ";
            var types = lines.Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).Select(l => l[prefix.Length..]).ToList();
            if (types.Count != 1 || types[0] != metric.Type)
            {
                failures.Add($"README's Metrics table: {metric.Name} is a {metric.Type}; the scrape has TYPE {(types.Count == 0 ? "none" : string.Join(", ", types))}");
                continue;
            }

            string[] names = metric.Type == "histogram" ? [metric.Name + "_bucket", metric.Name + "_count", metric.Name + "_sum"] : [metric.Name];
            var series = lines.Where(l => !l.StartsWith('#') && names.Any(n => l.StartsWith(n + "{", StringComparison.Ordinal) || l.StartsWith(n + " ", StringComparison.Ordinal))).ToList();
            if (series.Count == 0)
            {
                failures.Add($"README's Metrics table: {metric.Name} has no series in the scrape");
                continue;
            }

            var expected = metric.Labels.Order(StringComparer.Ordinal).ToList();
            foreach (var line in series)
            {
                var brace = line.IndexOf('{', StringComparison.Ordinal);
                List<string> labels = brace < 0 || brace > line.IndexOf(' ', StringComparison.Ordinal)
                    ? []
                    : [.. LabelName().Matches(line[brace..(line.LastIndexOf('}') + 1)]).Select(m => m.Groups[1].Value)
                        .Where(l => !(metric.Type == "histogram" && l == "le")).Order(StringComparer.Ordinal)];
                if (!labels.SequenceEqual(expected, StringComparer.Ordinal))
                {
                    failures.Add($"README's Metrics table: {metric.Name} has labels [{string.Join(", ", expected)}]; the scrape has {line}");
                    break;
                }
            }
        }

        output.WriteLine($"{table.Count} families of README's Metrics table checked against a scrape after the replay (type, series, label names)");
        return failures;
    }

    [GeneratedRegex("""([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"[,}]""")]
    private static partial Regex LabelName();

    /// <summary>A scrape taken while the replay is in flight (histograms, population, dead letters) passes promtool.</summary>
    private static async Task CheckScrapeWithPromtoolAsync(EngineProcess engine)
    {
        var file = Path.Combine(Path.GetTempPath(), $"scrape-{Guid.NewGuid():N}.prom");
        try
        {
            var text = await engine.Http.GetStringAsync("/metrics");
            Assert.Contains("streaming_dead_letters_total{reason=\"invalid-json\"}", text, StringComparison.Ordinal);
            await File.WriteAllTextAsync(file, text);
            var (code, promtool) = await Promtool.CheckMetricsAsync(file);
            Assert.True(code == 0, $"promtool check metrics exited {code} on a scrape during the replay:\n{promtool}");
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>Every rule of both files loaded, and evaluated without error.</summary>
    private static async Task<List<string>> RuleHealthFailuresAsync(PrometheusServer prometheus)
    {
        var failures = new List<string>();
        var answer = await prometheus.Http.GetFromJsonAsync<JsonElement>("/api/v1/rules");
        var loaded = 0;
        foreach (var group in answer.GetProperty("data").GetProperty("groups").EnumerateArray())
        {
            foreach (var rule in group.GetProperty("rules").EnumerateArray())
            {
                loaded++;
                if (rule.GetProperty("health").GetString() != "ok")
                {
                    failures.Add($"rule {rule.GetProperty("name").GetString()}: health {rule.GetProperty("health").GetString()}: {(rule.TryGetProperty("lastError", out var e) ? e.GetString() : "")}");
                }
            }
        }

        var expected = DashboardFiles.Rules(DashboardFiles.RecordingRulesFile).AllRules.Count() + DashboardFiles.Rules(DashboardFiles.AlertsFile).AllRules.Count();
        if (loaded != expected)
        {
            failures.Add($"prometheus loaded {loaded} rules, the files hold {expected}");
        }

        return failures;
    }

    /// <summary>For the reader of the test output: alerts active after the replay, and pending metrics that now exist.</summary>
    private async Task ReportAsync(PrometheusServer prometheus)
    {
        var alerts = await prometheus.Http.GetFromJsonAsync<JsonElement>("/api/v1/alerts");
        foreach (var alert in alerts.GetProperty("data").GetProperty("alerts").EnumerateArray())
        {
            output.WriteLine($"alert {alert.GetProperty("labels").GetProperty("alertname").GetString()} is {alert.GetProperty("state").GetString()}: {alert.GetProperty("labels")}");
        }

        if (!MetricCatalog.PendingNames.Any())
        {
            return;
        }

        var pattern = "(" + string.Join('|', MetricCatalog.PendingNames) + ")(_bucket|_sum|_count)?";
        foreach (var (labels, _) in await prometheus.SamplesAsync($"group by (__name__) ({{__name__=~\"{pattern}\"}})"))
        {
            output.WriteLine($"pending metric {labels["__name__"]} is exported now: remove it from MetricCatalog.Pending so that its expressions are evaluated for data");
        }
    }

    [GeneratedRegex(@"^produced=(\d+)$", RegexOptions.Multiline)]
    private static partial Regex ProducedLine();

    [GeneratedRegex(@"^name: .*$", RegexOptions.Multiline)]
    private static partial Regex NameLine();
}
