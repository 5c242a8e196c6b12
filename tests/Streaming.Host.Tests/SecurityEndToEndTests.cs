using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Streaming.Host.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Streaming.Host.Tests;

/// <summary>
/// Access, audit, personal data, TLS and rate limits (CONTRACTS.md §7.1), against real engine processes (each with its
/// embedded broker). Expected answers come from the contract's table of scopes, written out below.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed partial class SecurityEndToEndTests(ITestOutputHelper output)
{
    private const string Admin = "admin-token-for-security-tests-0001";
    private const string Dialer = "dialer-token-for-security-tests-001";
    private const string Reader = "reader-token-for-security-tests-001";
    private const string Scraper = "scraper-token-for-security-tests-01";
    private const string Burst = "burst-admin-token-for-security-test";

    private static readonly Dictionary<string, string> Tokens = new()
    {
        ["Streaming__Auth__Tokens__0__Name"] = "ops-alice",
        ["Streaming__Auth__Tokens__0__Token"] = Admin,
        ["Streaming__Auth__Tokens__0__Scopes__0"] = "admin",
        ["Streaming__Auth__Tokens__1__Name"] = "dialer-bob",
        ["Streaming__Auth__Tokens__1__Token"] = Dialer,
        ["Streaming__Auth__Tokens__1__Scopes__0"] = "dialer",
        ["Streaming__Auth__Tokens__2__Name"] = "analyst-carol",
        ["Streaming__Auth__Tokens__2__Token"] = Reader,
        ["Streaming__Auth__Tokens__2__Scopes__0"] = "read",
        ["Streaming__Auth__Tokens__3__Name"] = "prometheus",
        ["Streaming__Auth__Tokens__3__Token"] = Scraper,
        ["Streaming__Auth__Tokens__3__Scopes__0"] = "metrics",
        ["Streaming__Auth__Tokens__4__Name"] = "ops-burst",
        ["Streaming__Auth__Tokens__4__Token"] = Burst,
        ["Streaming__Auth__Tokens__4__Scopes__0"] = "admin",
        ["Streaming__RateLimits__RuleUploads__PermitLimit"] = "3",
        ["Streaming__RateLimits__RuleUploads__WindowSeconds"] = "600",
    };

    /// <summary>
    /// A route, the scope it needs with the switches off and on (null: open), a request that passes validation, and the
    /// statuses its handler answers that request with on an engine fed nothing (anything else is a failure).
    /// </summary>
    private sealed record Route(string Method, string Path, string? ScopeOff, string? ScopeOn, string? Body = null, int[]? Answers = null)
    {
        public int[] Expected => Answers ?? [200];
    }

    private static readonly Route[] Routes =
    [
        new("GET", "/healthz", null, null),
        new("GET", "/readyz", null, null),
        new("GET", "/metrics", null, "metrics"),
        new("GET", "/openapi/v1.json", null, null),
        new("GET", "/v1/status", null, "read"),
        new("GET", "/v1/customers/someone", null, "read", Answers: [404]),
        new("GET", "/v1/customers/someone/triggers", null, "read", Answers: [404]),
        new("GET", "/v1/population", null, "read"),
        new("GET", "/v1/rules", null, "read"),
        new("GET", "/v1/cluster", null, "read"),
        new("GET", "/v1/outreach/stats", null, "read"),
        new("GET", "/v1/rules/win-back/lift", null, "read"),
        new("GET", "/v1/audit", "admin", "admin"),
        new("PUT", "/v1/rules", "admin", "admin", "name: [broken", [400]),
        new("POST", "/v1/outreach/lease", "dialer", "dialer", """{"channel":"voice","max":1,"leaseSeconds":60,"dialer":"d"}"""),
        new("POST", "/v1/outreach/no-such-item/ack", "dialer", "dialer", """{"outcome":"answered"}""", [404]),
        new("POST", "/v1/outreach/no-such-item/release", "dialer", "dialer", "{}", [409]),
        new("POST", "/v1/backtests", "admin", "admin", """{"dataset":"no-such-dataset"}""", [400]),
        new("GET", "/v1/backtests/bt-none", null, "read", Answers: [404]),
        new("DELETE", "/v1/backtests/bt-none", "admin", "admin", Answers: [404]),
        new("GET", "/console", null, "read"),
        new("GET", "/console/customers", null, "read"),
        new("GET", "/console/customers/someone", null, "read", Answers: [404]),
        new("GET", "/console/rules", null, "read"),
        new("GET", "/console/outreach", null, "read"),
        new("GET", "/console/backtests/bt-none", null, "read", Answers: [404]),
        new("POST", "/console/rules/check", null, "read", "name: [broken"),
        new("GET", "/console/assets/console.css", null, null),
        new("GET", "/console/sign-in", null, null),
        // The form's token, not the header, decides: the read token signs in (a redirect, its cookie not kept here).
        new("POST", "/console/sign-in", null, null, $"token={Reader}&next=%2Fconsole", [302]),
        new("POST", "/console/sign-out", null, null, Answers: [302]),
    ];

    /// <summary>A configured token that lacks <paramref name="scope"/>.</summary>
    private static string Without(string scope) => scope switch
    {
        "read" or "admin" or "metrics" => Dialer,
        _ => Reader,
    };

    private static string With(string scope) => scope switch
    {
        "read" => Reader,
        "dialer" => Dialer,
        "metrics" => Scraper,
        _ => Admin,
    };

    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, Route route, string? token)
    {
        using var request = new HttpRequestMessage(new HttpMethod(route.Method), route.Path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (route.Body is not null)
        {
            var type = route.Method == "PUT" ? "application/yaml" : route.Path == "/console/sign-in" ? "application/x-www-form-urlencoded" : "application/json";
            request.Content = new StringContent(route.Body, Encoding.UTF8, type);
        }

        return await http.SendAsync(request);
    }

    /// <summary>An engine with its embedded broker, ready (partitions assigned).</summary>
    private static async Task<CliProcess> StartEngineAsync(string dataDir, int httpPort, Dictionary<string, string> environment)
    {
        var process = CliProcess.Start(["run", "--data-dir", dataDir, "--urls", $"http://127.0.0.1:{httpPort}"], environment);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}/") };
        await EngineProcess.WaitAnswersAsync(process, http, "readyz", TimeSpan.FromSeconds(90));
        return process;
    }

    /// <summary>
    /// Every route of <see cref="Routes"/> × {no token, unknown token, token without the scope, token with it, admin} on
    /// the engine at <paramref name="port"/>, started with the given switches; returns what differs from the table. A
    /// client of its own: no cookies kept, no redirects followed.
    /// </summary>
    private static async Task<List<string>> CheckScopeTableAsync(int port, bool requireRead, bool protectMetrics)
    {
        var failures = new List<string>();
        using var handler = new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false };
        using var http = new HttpClient(handler) { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
        var switches = $"RequireReadScope {(requireRead ? "on" : "off")}, ProtectMetrics {(protectMetrics ? "on" : "off")}";
        foreach (var route in Routes)
        {
            var scope = (route.ScopeOn, route.ScopeOff) switch
            {
                ("read", _) => requireRead ? "read" : route.ScopeOff,
                ("metrics", _) => protectMetrics ? "metrics" : route.ScopeOff,
                _ => route.ScopeOff,
            };
            var callers = new (string Who, string? Token, string Expect)[]
            {
                ("no token", null, scope is null ? "allowed" : "401"),
                ("unknown token", "not-a-configured-token-0000000", scope is null ? "allowed" : "401 invalid_token"),
                ("token without the scope", scope is null ? Reader : Without(scope), scope is null ? "allowed" : "403"),
                ("token with the scope", scope is null ? Reader : With(scope), "allowed"),
                ("admin token", Admin, "allowed"),
            };
            foreach (var (who, token, expect) in callers)
            {
                using var response = await SendAsync(http, route, token);
                var status = (int)response.StatusCode;
                var challenge = response.Headers.WwwAuthenticate.ToString();
                var problem = response.Content.Headers.ContentType?.MediaType == "application/problem+json";
                var got = status switch
                {
                    401 when challenge == "Bearer" && problem => "401",
                    401 when challenge == "Bearer error=\"invalid_token\"" && problem => "401 invalid_token",
                    403 when problem => "403",
                    _ when route.Expected.Contains(status) => "allowed",
                    _ => $"{status} (WWW-Authenticate '{challenge}', problem+json {problem}; the handler answers {string.Join(" or ", route.Expected)})",
                };
                if (got != expect)
                {
                    failures.Add($"{switches}: {route.Method} {route.Path} with {who}: expected {expect}, got {got}");
                }
            }
        }

        return failures;
    }

    /// <summary>Where <c>/openapi/v1.json</c> disagrees with <see cref="Routes"/> on a route's scope or its 401 and 403 answers.</summary>
    private static IEnumerable<string> DocumentedAccessFailures(JsonElement root, bool switches)
    {
        var paths = root.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToList();
        foreach (var route in Routes)
        {
            var where = $"switches {(switches ? "on" : "off")}: /openapi/v1.json, {route.Method} {route.Path}";
            var segments = route.Path.Split('/');
            var template = paths.FirstOrDefault(p => p == route.Path) ?? paths.FirstOrDefault(p =>
            {
                var parts = p.Split('/');
                return parts.Length == segments.Length && parts.Zip(segments, (part, segment) => part == segment || part.StartsWith('{')).All(same => same);
            });
            if (template is null || !root.GetProperty("paths").GetProperty(template).TryGetProperty(route.Method.ToLowerInvariant(), out var operation))
            {
                yield return $"{where}: not in the document";
                continue;
            }

            var expected = switches ? route.ScopeOn : route.ScopeOff;
            var requirements = operation.TryGetProperty("security", out var security) ? security.EnumerateArray().ToList() : [];
            if (expected is null)
            {
                if (requirements.Count != 0)
                {
                    yield return $"{where}: open, but the document asks for {security}";
                }

                continue;
            }

            var scopes = requirements.Count == 1 && requirements[0].TryGetProperty("bearer", out var bearer)
                ? bearer.EnumerateArray().Select(e => e.GetString()).ToList()
                : [];
            if (scopes.Count != 1 || scopes[0] != expected)
            {
                yield return $"{where}: needs {expected}, the document says {(requirements.Count == 0 ? "nothing" : string.Join(", ", requirements))}";
            }

            var responses = operation.GetProperty("responses");
            foreach (var status in new[] { "401", "403" })
            {
                if (!responses.TryGetProperty(status, out var answer) || !answer.TryGetProperty("content", out var content) || !content.TryGetProperty("application/problem+json", out _))
                {
                    yield return $"{where}: no {status} problem+json answer";
                }
            }
        }
    }

    /// <summary>
    /// The scope table with both switches off and both on, here; with RequireReadScope alone on in the audit test's
    /// restarted engine and ProtectMetrics alone on in the burst test's (no engine started for them alone).
    /// </summary>
    [Fact]
    public async Task Every_route_answers_each_kind_of_caller_as_the_scope_table_says_with_the_switches_off_and_on()
    {
        var failures = new List<string>();
        foreach (var switches in new[] { false, true })
        {
            var port = TestEnvironment.FreePort();
            var environment = new Dictionary<string, string>(Tokens)
            {
                ["Streaming__Auth__RequireReadScope"] = switches ? "true" : "false",
                ["Streaming__Auth__ProtectMetrics"] = switches ? "true" : "false",
            };
            await using var engine = await StartEngineAsync(TestEnvironment.NewTempDir("streaming-access"), port, environment);
            failures.AddRange(await CheckScopeTableAsync(port, switches, switches));

            // The OpenAPI document says the same: the scope of each route as configured, with its 401 and 403 answers.
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
            using (var document = JsonDocument.Parse(await http.GetStringAsync("openapi/v1.json")))
            {
                failures.AddRange(DocumentedAccessFailures(document.RootElement, switches));
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    /// <summary>
    /// Rule sets, an outreach item leased, released, leased again and acked, refused ack and release, a backtest started
    /// and cancelled: the audit trail names each, pages through <c>before</c>/<c>next</c>, survives a restart and has
    /// one log line per entry. The engine reads with <c>RequireReadScope</c> alone on, and its restarted self is checked
    /// against the scope table with those switches.
    /// </summary>
    [Fact]
    public async Task Rule_changes_and_outreach_acks_are_audited_durably_and_personal_data_stays_out_of_logs_metrics_and_dead_letters()
    {
        var dataDir = TestEnvironment.NewTempDir("streaming-audit");
        var port = TestEnvironment.FreePort();
        var environment = new Dictionary<string, string>(Tokens)
        {
            ["Streaming__Auth__RequireReadScope"] = "true",
            ["Streaming__Auth__ProtectMetrics"] = "false",
            ["Streaming__Backtest__DataDir"] = TestEnvironment.DataDir,
        };
        var engine = await StartEngineAsync(dataDir, port, environment);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Reader); // requests that name no token
            var bootstrap = (await http.GetFromJsonAsync<JsonElement>("v1/status")).GetProperty("kafka").GetProperty("bootstrapServers").GetString()!;

            // Rule sets: one rejected, one accepted, by ops-alice.
            var rules = await http.GetFromJsonAsync<JsonElement>("v1/rules");
            var valid = rules.GetProperty("files")[0].GetProperty("text").GetString()!.Replace("name: default", "name: audited", StringComparison.Ordinal);
            using (var rejected = await SendAsync(http, new Route("PUT", "/v1/rules", "admin", "admin", "name: [broken"), Admin))
            {
                Assert.Equal(HttpStatusCode.BadRequest, rejected.StatusCode);
            }

            using (var accepted = await SendAsync(http, new Route("PUT", "/v1/rules", "admin", "admin", valid), Admin))
            {
                Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
            }

            var version = (await http.GetFromJsonAsync<JsonElement>("v1/rules")).GetProperty("pending").GetString()
                ?? (await http.GetFromJsonAsync<JsonElement>("v1/rules")).GetProperty("version").GetString()!;

            // Personal data planted in updates (and in records that are dead-lettered), then an outreach item acked by dialer-bob.
            const string Phone = "+44 7700 900461";
            const string Email = "planted.person@example.org";
            const string Birthday = "1966-06-16";
            var now = DateTimeOffset.UtcNow;
            var offset = ((14 - now.UtcDateTime.Hour) % 24 + 24) % 24;
            offset = offset > 14 ? offset - 24 : offset;
            var zone = offset == 0 ? "Etc/GMT" : offset > 0 ? $"Etc/GMT-{offset}" : $"Etc/GMT+{-offset}";
            string Event(string id, string type, string fields, string customer = "pii-1") =>
                $$"""{"eventId":"{{id}}","customerId":"{{customer}}","occurredAt":"{{now.AddMinutes(-1):O}}","type":"{{type}}"{{fields}}}""";
            await Kcat.ProduceAsync(bootstrap, "customer-updates",
            [
                ("pii-1", Event("a-1", "attributes", $$""","attributes":{"birthday":"{{Birthday}}","timeZone":"{{zone}}","phone":"{{Phone}}","email":"{{Email}}"}""")),
                ("pii-1", Event("c-1", "consent", ""","consent":{"voice":true,"sms":true,"email":true}""")),
                ("pii-2", Event("a-2", "attributes", $$""","attributes":{"birthday":"{{Birthday}}x","phone":"{{Phone}}","email":"{{Email}}"}""", "pii-2")),
                ("pii-3", Event("a-3", "consent", $$""","consent":{"voice":"{{Email}}","sms":"{{Phone}}"}""", "pii-3")),
                ("someone-else", Event("a-4", "attributes", $$""","attributes":{"email":"{{Email}}"}""", "pii-4")),
            ]);
            // Topics are consumed independently: the call goes in once the consent is applied, so it is not suppressed.
            await Eventually.WaitAsync(
                async () =>
                {
                    using var profile = await http.GetAsync("v1/customers/pii-1");
                    return profile.IsSuccessStatusCode
                        && (await profile.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("attributes").GetProperty("consent").GetProperty("voice").ValueKind == JsonValueKind.True;
                },
                TimeSpan.FromSeconds(30),
                () => "pii-1's consent applied");
            await Kcat.ProduceAsync(bootstrap, "callcenter", [("pii-1", Event("k-1", "call_abandoned", ""","waitSeconds":300""").Replace(now.AddMinutes(-1).ToString("O"), now.ToString("O"), StringComparison.Ordinal))]);

            JsonElement item = default;
            await Eventually.WaitAsync(
                async () =>
                {
                    using var lease = await SendAsync(http, new Route("POST", "/v1/outreach/lease", null, null, """{"channel":"voice","max":1,"leaseSeconds":60,"dialer":"bob"}"""), Dialer);
                    var items = (await lease.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("items");
                    if (items.GetArrayLength() == 0)
                    {
                        return false;
                    }

                    item = items[0];
                    return true;
                },
                TimeSpan.FromSeconds(60),
                () => "service-recovery call queued for pii-1; engine: " + CliProcess.Tail(engine.StandardError, 15));
            var outreachId = item.GetProperty("outreachId").GetString()!;

            // Given back by bob, leased again, acked; then a release and an ack that are refused.
            using (var release = await SendAsync(http, new Route("POST", $"/v1/outreach/{outreachId}/release", null, null, """{"dialer":"bob"}"""), Dialer))
            {
                Assert.Equal(HttpStatusCode.NoContent, release.StatusCode);
            }

            using (var again = await SendAsync(http, new Route("POST", "/v1/outreach/lease", null, null, """{"channel":"voice","max":1,"leaseSeconds":60,"dialer":"bob"}"""), Dialer))
            {
                var items = (await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("items");
                Assert.Equal(outreachId, Assert.Single(items.EnumerateArray()).GetProperty("outreachId").GetString());
            }

            using (var ack = await SendAsync(http, new Route("POST", $"/v1/outreach/{outreachId}/ack", null, null, """{"outcome":"answered"}"""), Dialer))
            {
                Assert.Equal(HttpStatusCode.NoContent, ack.StatusCode);
            }

            using (var late = await SendAsync(http, new Route("POST", $"/v1/outreach/{outreachId}/release", null, null, """{"dialer":"bob"}"""), Dialer))
            {
                Assert.Equal(HttpStatusCode.Conflict, late.StatusCode);
            }

            using (var unknown = await SendAsync(http, new Route("POST", "/v1/outreach/no-such-item/ack", null, null, """{"outcome":"failed"}"""), Dialer))
            {
                Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
            }

            // A backtest started and cancelled by ops-alice (Online Retail takes far longer than the cancel).
            string backtest;
            using (var started = await SendAsync(http, new Route("POST", "/v1/backtests", null, null, """{"dataset":"online-retail"}"""), Admin))
            {
                Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
                backtest = (await started.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            }

            using (var cancelled = await SendAsync(http, new Route("DELETE", $"/v1/backtests/{backtest}", null, null), Admin))
            {
                Assert.Equal(HttpStatusCode.Accepted, cancelled.StatusCode);
            }

            async Task<(List<(long Seq, string Actor, string Action, string Detail)> Entries, long? Next)> AuditAsync(string query)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, "v1/audit?" + query);
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Admin);
                using var response = await http.SendAsync(request);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var body = await response.Content.ReadFromJsonAsync<JsonElement>();
                var entries = body.GetProperty("entries").EnumerateArray()
                    .Select(e => (e.GetProperty("seq").GetInt64(), e.GetProperty("actor").GetString()!, e.GetProperty("action").GetString()!, e.GetProperty("detail").GetString()!))
                    .ToList();
                return (entries, body.GetProperty("next").ValueKind == JsonValueKind.Null ? null : body.GetProperty("next").GetInt64());
            }

            void AssertAudit(List<(long Seq, string Actor, string Action, string Detail)> entries)
            {
                // Newest first.
                Assert.Equal(
                    [
                        ("ops-alice", "backtest.cancelled", $"backtest {backtest}"),
                        ("ops-alice", "backtest.started", $"backtest {backtest} of {version} on online-retail"),
                        ("dialer-bob", "outreach.ack_refused", "outreach no-such-item: failed; 404 no such outreach item; dialer none"),
                        ("dialer-bob", "outreach.release_refused", $"outreach {outreachId}: not leased by bob"),
                        ("dialer-bob", "outreach.ack", $"outreach {outreachId}: answered; dialer bob"),
                        ("dialer-bob", "outreach.release", $"outreach {outreachId}; dialer bob"),
                        ("ops-alice", "rules.accepted", $"version {version} from api"),
                    ],
                    entries.Take(7).Select(e => (e.Actor, e.Action, e.Detail)));
                Assert.Equal(("ops-alice", "rules.rejected"), (entries[7].Actor, entries[7].Action));
                Assert.Matches(@"^1 error\(s\) from api; first at rules\.yaml:\d+:\d+$", entries[7].Detail);
                Assert.Equal(8, entries.Count);
            }

            var all = (await AuditAsync("limit=50")).Entries;
            AssertAudit(all);

            // Pages of 3 through next/before: 3, 3, 2 entries, the last with no next, together the whole trail in order.
            var paged = new List<(long Seq, string Actor, string Action, string Detail)>();
            var sizes = new List<int>();
            long? before = null;
            do
            {
                var (page, next) = await AuditAsync("limit=3" + (before is null ? "" : $"&before={before}"));
                paged.AddRange(page);
                sizes.Add(page.Count);
                Assert.Equal(page.Count == 3 ? page[^1].Seq : null, next);
                before = next;
            }
            while (before is not null && sizes.Count < 10);
            Assert.Equal([3, 3, 2], sizes);
            Assert.Equal(all, paged);

            // The scan: the engine's whole log, /metrics and the dead letters' headers hold none of the planted values.
            await Eventually.WaitAsync(async () => (await http.GetFromJsonAsync<JsonElement>("v1/status")).GetProperty("deadLetters").GetInt64() >= 3, TimeSpan.FromSeconds(30), () => "three dead letters");
            var metrics = await http.GetStringAsync("metrics");
            var (code, headers, err) = await Kcat.RunAsync(["-C", "-b", bootstrap, "-t", "dead-letters", "-o", "beginning", "-e", "-q", "-f", "%h\n"]);
            Assert.True(code == 0, err);
            Assert.Equal(3, headers.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);

            // Restart on the same state: the audit trail is still there. Then the scope table with RequireReadScope alone
            // on (its refused acks and releases and rejected uploads add entries, read back before the engine stops).
            await engine.DisposeAsync();
            var log = engine.StandardError + engine.StandardOutput;
            engine = await StartEngineAsync(dataDir, port, environment);
            List<(long Seq, string Actor, string Action, string Detail)> final;
            await using (engine)
            {
                AssertAudit((await AuditAsync("limit=50")).Entries);
                var failures = await CheckScopeTableAsync(port, requireRead: true, protectMetrics: false);
                Assert.True(failures.Count == 0, string.Join('\n', failures));
                final = (await AuditAsync("limit=500")).Entries;
                Assert.True(final.Count > all.Count, "the scope table's refused acks and rejected uploads are audited too");
            }

            // One structured log line per entry, over both runs: each entry's line once, and no other.
            log += engine.StandardError + engine.StandardOutput;
            var lines = log.Split('\n').Select(l => AuditLine().Match(l)).Where(m => m.Success).Select(m => m.Groups[1].Value.TrimEnd()).ToList();
            var expectedLines = final.Select(e => $"Audit {e.Seq}: {e.Action} by {e.Actor}: {e.Detail}").Reverse().ToList();
            Assert.Equal(expectedLines, lines);

            foreach (var planted in new[] { Phone, Email, Birthday, "1966-06-16x", "900461" })
            {
                Assert.False(log.Contains(planted, StringComparison.Ordinal), $"log contains '{planted}'");
                Assert.False(metrics.Contains(planted, StringComparison.Ordinal), $"/metrics contains '{planted}'");
                Assert.False(headers.Contains(planted, StringComparison.Ordinal), $"dead-letter headers contain '{planted}'");
            }

            output.WriteLine($"scanned {log.Length:N0} characters of log, {metrics.Length:N0} of metrics, {headers.Length:N0} of dead-letter headers; {final.Count} audit entries, {lines.Count} audit lines");
        }
        finally
        {
            await engine.DisposeAsync(); // a failure must not leave the engine running (a second dispose does nothing)
        }
    }

    [GeneratedRegex(@"(Audit \d+: .*)$")]
    private static partial Regex AuditLine();

    /// <summary>
    /// Rule uploads (3 per 600 s here) and leases (3 per 600 s here) beyond their limits: 429 problem+json with
    /// <c>Retry-After</c>, per caller. The same engine, with ProtectMetrics alone on, is first checked against the
    /// scope table (its two admin uploads and one lease each of dialer-bob and ops-alice stay within the limits).
    /// </summary>
    [Fact]
    public async Task A_burst_of_rule_uploads_is_limited_per_caller_with_429_and_retry_after()
    {
        var port = TestEnvironment.FreePort();
        var environment = new Dictionary<string, string>(Tokens)
        {
            ["Streaming__Auth__ProtectMetrics"] = "true",
            ["Streaming__RateLimits__Leases__PermitLimit"] = "3",
            ["Streaming__RateLimits__Leases__WindowSeconds"] = "600",
        };
        await using var engine = await StartEngineAsync(TestEnvironment.NewTempDir("streaming-burst"), port, environment);
        var failures = await CheckScopeTableAsync(port, requireRead: false, protectMetrics: true);
        Assert.True(failures.Count == 0, string.Join('\n', failures));

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
        async Task<List<HttpStatusCode>> BurstAsync(Route route, string token, int count)
        {
            var statuses = new List<HttpStatusCode>();
            for (var i = 0; i < count; i++)
            {
                using var response = await SendAsync(http, route, token);
                statuses.Add(response.StatusCode);
                if (response.StatusCode == HttpStatusCode.TooManyRequests)
                {
                    Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                    Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero, "Retry-After in seconds");
                }
            }

            return statuses;
        }

        // The configured limit is 3 per 600 s: three answers, then 429s.
        var upload = new Route("PUT", "/v1/rules", "admin", "admin", "name: [broken");
        Assert.Equal([HttpStatusCode.BadRequest, HttpStatusCode.BadRequest, HttpStatusCode.BadRequest, HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests], await BurstAsync(upload, Burst, 5));
        var lease = new Route("POST", "/v1/outreach/lease", "dialer", "dialer", """{"channel":"sms","max":1,"leaseSeconds":60,"dialer":"burst"}""");
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], await BurstAsync(lease, Burst, 4));

        // Another caller has a window of its own (ops-alice uploaded twice in the table, dialer-bob leased once).
        using var other = await SendAsync(http, upload, Admin);
        Assert.Equal(HttpStatusCode.BadRequest, other.StatusCode);
        using var otherLease = await SendAsync(http, lease, Dialer);
        Assert.Equal(HttpStatusCode.OK, otherLease.StatusCode);
    }

    [Fact]
    public async Task Over_https_with_a_configured_certificate_and_no_plain_http()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var dir = TestEnvironment.NewTempDir("streaming-tls");
        var pfx = Path.Combine(dir, "engine.pfx");
        await File.WriteAllBytesAsync(pfx, certificate.Export(X509ContentType.Pfx, "test-only-password"));

        var httpsPort = TestEnvironment.FreePort();
        var plainPort = TestEnvironment.FreePort();
        var environment = new Dictionary<string, string>
        {
            ["Kestrel__Endpoints__Https__Url"] = $"https://127.0.0.1:{httpsPort}",
            ["Kestrel__Endpoints__Https__Certificate__Path"] = pfx,
            ["Kestrel__Endpoints__Https__Certificate__Password"] = "test-only-password",
        };
        var thumbprint = certificate.Thumbprint;
        using var trusting = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, cert, _, _) => cert?.Thumbprint == thumbprint };
        var process = CliProcess.Start(["run", "--data-dir", Path.Combine(dir, "state"), "--urls", $"http://127.0.0.1:{plainPort}"], environment);
        await using (process)
        {
            using var https = new HttpClient(trusting, disposeHandler: false) { BaseAddress = new Uri($"https://127.0.0.1:{httpsPort}/") };
            await EngineProcess.WaitAnswersAsync(process, https, "readyz", TimeSpan.FromSeconds(90));

            var status = await https.GetFromJsonAsync<JsonElement>("v1/status");
            Assert.True(status.GetProperty("ready").GetBoolean());

            // Plain HTTP is refused: on the TLS port it gets no answer (the connection fails) or Kestrel's 400, never the
            // route's; and the --urls address is not bound.
            using var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            HttpResponseMessage? onTlsPort = null;
            HttpRequestException? refused = null;
            try
            {
                onTlsPort = await plain.GetAsync($"http://127.0.0.1:{httpsPort}/readyz");
            }
            catch (HttpRequestException ex)
            {
                refused = ex;
            }

            using (onTlsPort)
            {
                Assert.True(
                    refused is not null || onTlsPort?.StatusCode == HttpStatusCode.BadRequest,
                    $"plain HTTP on the TLS port was answered {(int?)onTlsPort?.StatusCode}: {(onTlsPort is null ? "" : await onTlsPort.Content.ReadAsStringAsync())}");
                output.WriteLine("plain HTTP on the TLS port: " + (refused is not null ? "refused: " + refused.Message : "400 from Kestrel"));
            }

            await Assert.ThrowsAsync<HttpRequestException>(() => plain.GetAsync($"http://127.0.0.1:{plainPort}/readyz"));

            // No tokens configured: a guarded route still answers as RFC 6750 says (401, Bearer challenge), and says why.
            foreach (var (token, challenge) in new[] { ((string?)null, "Bearer"), ("some-token-of-no-engine-0000", "Bearer error=\"invalid_token\"") })
            {
                using var guarded = new HttpRequestMessage(HttpMethod.Get, "v1/audit");
                if (token is not null)
                {
                    guarded.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                }

                using var closed = await https.SendAsync(guarded);
                Assert.Equal(HttpStatusCode.Unauthorized, closed.StatusCode);
                Assert.Equal(challenge, closed.Headers.WwwAuthenticate.ToString());
                Assert.Equal("application/problem+json", closed.Content.Headers.ContentType?.MediaType);
                var detail = (await closed.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString();
                Assert.Contains("no access tokens are configured", detail, StringComparison.Ordinal);
            }

            // An untrusted certificate is not accepted by a default client: the engine presents the configured one.
            using var strict = new HttpClient();
            await Assert.ThrowsAsync<HttpRequestException>(() => strict.GetAsync($"https://127.0.0.1:{httpsPort}/readyz"));
        }
    }
}
