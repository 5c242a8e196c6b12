using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Json.Schema;
using Streaming.Host.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Streaming.Host.Tests;

/// <summary>
/// <c>GET /openapi/v1.json</c> against README's HTTP table and against real answers: an engine is fed the Online Retail
/// dataset by <c>streaming replay</c>, then every route is called (successes and problem answers; the audit trail and
/// backtests, running, refused, cancelled and done, included) and each body is validated, by JsonSchema.Net (draft
/// 2020-12, as OpenAPI 3.1 uses), against the schema the document gives for that route, status and content type.
/// (<see cref="SecurityEndToEndTests"/> checks that the document's security follows the access switches.)
/// </summary>
[Collection(EndToEnd.Name)]
public sealed partial class OpenApiTests(ITestOutputHelper output)
{
    private const string RetailFile = "online_retail_2010_2011.csv.gz";
    private const string AdminToken = "openapi-test-admin-token-0123";
    private const string DialerToken = "openapi-test-dialer-token-0123";
    private const string ReaderToken = "openapi-test-reader-token-0123";
    private static readonly Uri DocumentUri = new("https://streaming.test/openapi/v1.json");

    [Fact]
    public async Task Document_lists_every_documented_route_and_real_answers_match_its_schemas()
    {
        var clock = Stopwatch.StartNew();
        await using var broker = await BrokerProcess.StartAsync(partitions: 2);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        try
        {
            var env = new Dictionary<string, string>
            {
                ["Streaming__Auth__Tokens__0__Token"] = AdminToken,
                ["Streaming__Auth__Tokens__0__Scopes__0"] = "admin",
                ["Streaming__Auth__Tokens__1__Token"] = DialerToken,
                ["Streaming__Auth__Tokens__1__Scopes__0"] = "dialer",
                ["Streaming__Auth__Tokens__2__Token"] = ReaderToken,
                ["Streaming__Auth__Tokens__2__Scopes__0"] = "read",
                ["Streaming__Backtest__DataDir"] = TestEnvironment.DataDir,
            };
            await using var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);
            var replay = await CliProcess.RunAsync(
                ["replay", "online-retail", "--file", TestEnvironment.DataFile(RetailFile), "--bootstrap", broker.BootstrapServers, "--rate", "max"],
                TimeSpan.FromMinutes(3));
            Assert.True(replay.ExitCode == 0, "replay failed: " + replay.StandardError);
            var produced = long.Parse(ProducedLine().Match(replay.StandardOutput).Groups[1].Value, CultureInfo.InvariantCulture);
            await engine.WaitProcessedAsync("orders", produced, TimeSpan.FromMinutes(2));

            using var documentResponse = await engine.Http.GetAsync("/openapi/v1.json");
            Assert.Equal(HttpStatusCode.OK, documentResponse.StatusCode);
            using var document = JsonDocument.Parse(await documentResponse.Content.ReadAsStringAsync());
            var root = document.RootElement;
            Assert.StartsWith("3.1", root.GetProperty("openapi").GetString(), StringComparison.Ordinal);

            // Every route of README's HTTP table, with its method; path parameters compared by position only.
            var documented = ReadmeRoutes();
            // Rows that list several routes in one cell count each of them.
            foreach (var route in new[] { "GET /console", "GET /console/customers/{}", "GET /console/outreach", "GET /console/backtests/{}", "GET /console/sign-in", "POST /console/sign-in", "POST /console/sign-out", "POST /console/rules/check", "GET /v1/audit" })
            {
                Assert.Contains(route, documented);
            }

            Assert.True(documented.Count >= 25, $"README's HTTP table has {documented.Count} routes: {string.Join(", ", documented)}");
            var listed = root.GetProperty("paths").EnumerateObject()
                .SelectMany(p => p.Value.EnumerateObject().Select(m => $"{m.Name.ToUpperInvariant()} {Shape(p.Name)}"))
                .ToHashSet(StringComparer.Ordinal);
            var missing = documented.Where(r => !listed.Contains(r)).ToList();
            Assert.True(missing.Count == 0, "routes of README missing from the document: " + string.Join(", ", missing));

            // The bearer scheme, and the scope each guarded route needs.
            var scheme = root.GetProperty("components").GetProperty("securitySchemes").GetProperty("bearer");
            Assert.Equal("http", scheme.GetProperty("type").GetString());
            Assert.Equal("bearer", scheme.GetProperty("scheme").GetString());
            Assert.Equal("admin", Scope(root, "/v1/rules", "put"));
            Assert.Equal("dialer", Scope(root, "/v1/outreach/lease", "post"));
            Assert.Equal("dialer", Scope(root, "/v1/outreach/{outreachId}/ack", "post"));
            Assert.Equal("dialer", Scope(root, "/v1/outreach/{outreachId}/release", "post"));

            var registry = new SchemaRegistry();
            registry.Register(DocumentUri, new JsonElementBaseDocument(root.Clone(), DocumentUri));
            var checks = new Checker(root, registry, engine.Http);

            await checks.CallAsync("/v1/status", "get", "/v1/status", HttpStatusCode.OK);
            await checks.CallAsync("/healthz", "get", "/healthz", HttpStatusCode.OK);
            await checks.CallAsync("/readyz", "get", "/readyz", HttpStatusCode.OK);
            await checks.CallAsync("/v1/customers/{customerId}", "get", "/v1/customers/17850", HttpStatusCode.OK);
            await checks.CallAsync("/v1/customers/{customerId}", "get", "/v1/customers/no-such-customer", HttpStatusCode.NotFound);
            await checks.CallAsync("/v1/customers/{customerId}", "get", "/v1/customers/" + new string('x', 300), HttpStatusCode.BadRequest);
            await checks.CallAsync("/v1/customers/{customerId}/triggers", "get", "/v1/customers/17850/triggers", HttpStatusCode.OK);
            await checks.CallAsync("/v1/customers/{customerId}/triggers", "get", "/v1/customers/no-such-customer/triggers", HttpStatusCode.NotFound);
            await checks.CallAsync("/v1/population", "get", "/v1/population", HttpStatusCode.OK);
            await checks.CallAsync("/v1/rules", "get", "/v1/rules", HttpStatusCode.OK);
            var cluster = JsonDocument.Parse(await checks.CallAsync("/v1/cluster", "get", "/v1/cluster", HttpStatusCode.OK)).RootElement;
            var member = Assert.Single(cluster.GetProperty("members").EnumerateArray());
            Assert.Equal(cluster.GetProperty("self").GetString(), member.GetProperty("address").GetString());
            Assert.Equal("up", member.GetProperty("status").GetString());
            Assert.Equal([0, 1], member.GetProperty("partitions").EnumerateArray().Select(p => p.GetInt32()));
            await checks.CallAsync("/v1/rules/{ruleId}/lift", "get", "/v1/rules/win-back/lift", HttpStatusCode.OK);
            await checks.CallAsync("/v1/rules/{ruleId}/lift", "get", "/v1/rules/no-such-rule/lift", HttpStatusCode.NotFound);
            await checks.CallAsync("/v1/outreach/stats", "get", "/v1/outreach/stats", HttpStatusCode.OK);
            await checks.CallAsync("/v1/outreach/lease", "post", "/v1/outreach/lease", HttpStatusCode.OK, Json("""{"channel":"voice","max":5,"leaseSeconds":60,"dialer":"openapi"}"""), DialerToken);
            await checks.CallAsync("/v1/outreach/lease", "post", "/v1/outreach/lease", HttpStatusCode.BadRequest, Json("""{"channel":"fax","dialer":"openapi"}"""), DialerToken);
            await checks.CallAsync("/v1/outreach/lease", "post", "/v1/outreach/lease", HttpStatusCode.Unauthorized, Json("""{"channel":"voice","dialer":"openapi"}"""));
            await checks.CallAsync("/v1/outreach/lease", "post", "/v1/outreach/lease", HttpStatusCode.Forbidden, Json("""{"channel":"voice","dialer":"openapi"}"""), ReaderToken);
            await checks.CallAsync("/v1/outreach/{outreachId}/ack", "post", "/v1/outreach/no-such-item/ack", HttpStatusCode.NotFound, Json("""{"outcome":"answered"}"""), DialerToken);
            await checks.CallAsync("/v1/outreach/{outreachId}/ack", "post", "/v1/outreach/no-such-item/ack", HttpStatusCode.BadRequest, Json("""{"outcome":"maybe"}"""), DialerToken);
            await checks.CallAsync("/v1/outreach/{outreachId}/release", "post", "/v1/outreach/no-such-item/release", HttpStatusCode.Conflict, Json("{}"), DialerToken);
            await checks.CallAsync("/v1/rules", "put", "/v1/rules", HttpStatusCode.BadRequest, new StringContent("name: broken\nladders: [", Encoding.UTF8, "application/yaml"), AdminToken);
            await checks.CallAsync("/v1/rules", "put", "/v1/rules", HttpStatusCode.Unauthorized, new StringContent("name: x\n", Encoding.UTF8, "application/yaml"));
            var defaults = (await CliProcess.RunAsync(["rules", "default"], TimeSpan.FromMinutes(1))).StandardOutput;
            await checks.CallAsync("/v1/rules", "put", "/v1/rules", HttpStatusCode.Accepted, new StringContent(TopLevelName().Replace(defaults, "name: openapi_$1", 1), Encoding.UTF8, "application/yaml"), AdminToken);

            await checks.CallAsync("/console/rules/check", "post", "/console/rules/check", HttpStatusCode.OK, new StringContent(defaults, Encoding.UTF8, "application/yaml"));
            await checks.CallAsync("/console/rules/check", "post", "/console/rules/check", HttpStatusCode.OK, new StringContent("name: broken\nladders: [", Encoding.UTF8, "application/yaml"));

            // The audit trail (admin): the rule set accepted above is on its first page.
            var audit = await checks.CallAsync("/v1/audit", "get", "/v1/audit?limit=5", HttpStatusCode.OK, token: AdminToken);
            Assert.Contains("rules.accepted", audit, StringComparison.Ordinal);
            await checks.CallAsync("/v1/audit", "get", "/v1/audit?limit=0", HttpStatusCode.BadRequest, token: AdminToken);
            await checks.CallAsync("/v1/audit", "get", "/v1/audit", HttpStatusCode.Unauthorized);
            await checks.CallAsync("/v1/audit", "get", "/v1/audit", HttpStatusCode.Forbidden, token: ReaderToken);

            // Backtests: refused, one cancelled while it runs (a second one meanwhile refused), one run to its end.
            var backtestClock = Stopwatch.StartNew();
            await checks.CallAsync("/v1/backtests", "post", "/v1/backtests", HttpStatusCode.Unauthorized, Json("""{"dataset":"online-retail"}"""));
            await checks.CallAsync("/v1/backtests", "post", "/v1/backtests", HttpStatusCode.Forbidden, Json("""{"dataset":"online-retail"}"""), ReaderToken);
            await checks.CallAsync("/v1/backtests", "post", "/v1/backtests", HttpStatusCode.BadRequest, Json("""{"dataset":"no-such-dataset"}"""), AdminToken);
            await checks.CallAsync("/v1/backtests", "post", "/v1/backtests", HttpStatusCode.BadRequest, Json("""{"dataset":"online-retail","rules":"name: broken\nladders: ["}"""), AdminToken);
            await checks.CallAsync("/v1/backtests/{id}", "get", "/v1/backtests/bt-none", HttpStatusCode.NotFound);
            await checks.CallAsync("/v1/backtests/{id}", "delete", "/v1/backtests/bt-none", HttpStatusCode.NotFound, token: AdminToken);
            await checks.CallAsync("/v1/backtests/{id}", "delete", "/v1/backtests/bt-none", HttpStatusCode.Forbidden, token: ReaderToken);
            var long1 = Id(await checks.CallAsync("/v1/backtests", "post", "/v1/backtests", HttpStatusCode.Accepted, Json("""{"dataset":"online-retail"}"""), AdminToken));
            await checks.CallAsync("/v1/backtests", "post", "/v1/backtests", HttpStatusCode.Conflict, Json("""{"dataset":"taobao"}"""), AdminToken);
            await checks.CallAsync("/v1/backtests/{id}", "get", "/v1/backtests/" + long1, HttpStatusCode.OK);
            await checks.CallAsync("/v1/backtests/{id}", "delete", "/v1/backtests/" + long1, HttpStatusCode.Accepted, token: AdminToken);
            await WaitEndedAsync(engine.Http, long1);
            Assert.Contains("\"cancelled\"", await checks.CallAsync("/v1/backtests/{id}", "get", "/v1/backtests/" + long1, HttpStatusCode.OK), StringComparison.Ordinal);
            await checks.CallAsync("/v1/backtests/{id}", "delete", "/v1/backtests/" + long1, HttpStatusCode.Conflict, token: AdminToken);
            var compare = JsonSerializer.Serialize(new { dataset = "bank-callcenter", rules = TopLevelName().Replace(defaults, "name: compared_$1", 1) });
            var done = Id(await checks.CallAsync("/v1/backtests", "post", "/v1/backtests", HttpStatusCode.Accepted, Json(compare), AdminToken));
            await WaitEndedAsync(engine.Http, done);
            var result = await checks.CallAsync("/v1/backtests/{id}", "get", "/v1/backtests/" + done, HttpStatusCode.OK);
            using (var body = JsonDocument.Parse(result))
            {
                Assert.Equal("done", body.RootElement.GetProperty("state").GetString());
                Assert.Equal(2, body.RootElement.GetProperty("ruleVersions").GetArrayLength());
                Assert.Equal(JsonValueKind.Object, body.RootElement.GetProperty("result").ValueKind);
            }

            output.WriteLine($"backtest routes checked in {backtestClock.Elapsed.TotalSeconds:0.0}s");

            using var metrics = await engine.Http.GetAsync("/metrics");
            var metricsContent = root.GetProperty("paths").GetProperty("/metrics").GetProperty("get").GetProperty("responses").GetProperty("200").GetProperty("content");
            Assert.True(metricsContent.TryGetProperty(metrics.Content.Headers.ContentType!.ToString(), out _), "the /metrics content type is the documented one");

            output.WriteLine($"replayed {produced} events, validated {checks.Validated} answers against /openapi/v1.json in {clock.Elapsed.TotalSeconds:0}s");
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }

    private static StringContent Json(string text) => new(text, Encoding.UTF8, "application/json");

    private static string Id(string body)
    {
        using var document = JsonDocument.Parse(body);
        return document.RootElement.GetProperty("id").GetString()!;
    }

    /// <summary>Waits until backtest <paramref name="id"/> is no longer running.</summary>
    private static Task WaitEndedAsync(HttpClient http, string id) => Eventually.WaitAsync(
        async () =>
        {
            using var document = JsonDocument.Parse(await http.GetStringAsync("/v1/backtests/" + id));
            return document.RootElement.GetProperty("state").GetString() != "running";
        },
        TimeSpan.FromMinutes(3),
        () => $"backtest {id} ended");

    /// <summary>A route with its path parameters' names left out: <c>GET /v1/customers/{}</c>.</summary>
    private static string Shape(string path) => PathParameter().Replace(path, "{}");

    private static string Scope(JsonElement root, string path, string method) =>
        Assert.Single(Assert.Single(root.GetProperty("paths").GetProperty(path).GetProperty(method).GetProperty("security").EnumerateArray())
            .GetProperty("bearer").EnumerateArray()).GetString()!;

    /// <summary>
    /// Every route of README's tables whose first cell starts with a method and a path: each backticked route of that
    /// cell, a bare path taking the method written before it (<c>`GET /console`, `/console/rules`</c>).
    /// </summary>
    private static List<string> ReadmeRoutes()
    {
        var routes = new List<string>();
        foreach (var line in File.ReadLines(Path.Combine(TestEnvironment.RepoRoot, "README.md")))
        {
            var cells = line.Split('|');
            if (cells.Length < 3 || cells[0].Length != 0)
            {
                continue;
            }

            var matches = ReadmeRoute().Matches(cells[1]);
            if (matches.Count == 0 || !matches[0].Groups[1].Success)
            {
                continue;
            }

            var method = "";
            foreach (Match m in matches)
            {
                method = m.Groups[1].Success ? m.Groups[1].Value : method;
                routes.Add($"{method} {Shape(m.Groups[2].Value)}");
            }
        }

        return routes;
    }

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex PathParameter();

    [GeneratedRegex(@"`(?:(GET|POST|PUT|DELETE|PATCH) )?(/[^`\s]*)`")]
    private static partial Regex ReadmeRoute();

    [GeneratedRegex(@"^name: (.*)$", RegexOptions.Multiline)]
    private static partial Regex TopLevelName();

    [GeneratedRegex(@"produced=(\d+)")]
    private static partial Regex ProducedLine();

    /// <summary>Calls a route and validates the answer's body against the document's schema for its status and type.</summary>
    private sealed class Checker(JsonElement root, SchemaRegistry registry, HttpClient http)
    {
        public int Validated { get; private set; }

        /// <summary>Calls <paramref name="url"/>, checks the status and validates the body; returns the body's text.</summary>
        public async Task<string> CallAsync(string path, string method, string url, HttpStatusCode expected, HttpContent? body = null, string? token = null)
        {
            using var request = new HttpRequestMessage(new HttpMethod(method.ToUpperInvariant()), url) { Content = body };
            if (token is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }

            using var response = await http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(expected == response.StatusCode, $"{method} {url}: {(int)response.StatusCode}, expected {(int)expected}: {text}");

            var code = ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);
            Assert.True(
                root.GetProperty("paths").GetProperty(path).GetProperty(method).GetProperty("responses").TryGetProperty(code, out var documented),
                $"{method} {path} answered {code}, which the document does not list");
            if (response.StatusCode == HttpStatusCode.NoContent || text.Length == 0)
            {
                return text;
            }

            var contentType = response.Content.Headers.ContentType!.MediaType!;
            Assert.True(
                documented.GetProperty("content").TryGetProperty(contentType, out _),
                $"{method} {path} {code} answered {contentType}, the document lists {documented.GetProperty("content")}");
            var pointer = string.Join('/', "#", "paths", Escape(path), method, "responses", code, "content", Escape(contentType), "schema");
            var schema = JsonSchema.FromText(
                $$"""{"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "{{DocumentUri}}{{pointer}}"}""",
                new BuildOptions { SchemaRegistry = registry });
            using var instance = JsonDocument.Parse(text);
            var result = schema.Evaluate(instance.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
            Assert.True(result.IsValid, $"{method} {url} {code}: the body does not match the schema {pointer}:\n{Errors(result)}\nbody: {text[..Math.Min(text.Length, 2000)]}");
            Validated++;
            return text;
        }

        /// <summary>A JSON pointer token (<c>~</c>, <c>/</c>) in a URI fragment (percent-encoded: <c>{</c>, <c>+</c>, …).</summary>
        private static string Escape(string token) =>
            Uri.EscapeDataString(token.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal));

        private static string Errors(EvaluationResults result) =>
            string.Join('\n', (result.Details ?? []).Where(d => d.Errors is { Count: > 0 })
                .SelectMany(d => d.Errors!.Select(e => $"  {d.InstanceLocation}: {e.Key}: {e.Value}")).Take(20));
    }
}
