using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary>
/// Rule sets changed while the engine runs (a watched directory, <c>PUT /v1/rules</c>), and event-time timers that
/// move a customer through the lifecycle as the watermark advances, across a restart.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed class RulesEndToEndTests
{
    private const string AdminToken = "admin-token-for-tests-0123456789";
    private const string DialerToken = "dialer-token-for-tests-0123456789";

    private static readonly DateTimeOffset T0 = new(2023, 1, 1, 12, 0, 0, TimeSpan.Zero);

    private static async Task<string> DefaultPackAsync()
    {
        var result = await CliProcess.RunAsync(["rules", "default"], TimeSpan.FromSeconds(60));
        Assert.Equal(0, result.ExitCode);
        return result.StandardOutput;
    }

    /// <summary>The version <c>streaming rules check</c> gives a file: what the engine must report once it runs it.</summary>
    private static async Task<string> VersionOfAsync(string file)
    {
        var result = await CliProcess.RunAsync(["rules", "check", file], TimeSpan.FromSeconds(60));
        Assert.True(result.ExitCode == 0, result.StandardError);
        return result.StandardOutput.Split(' ')[1];
    }

    private static string Replace(string text, string from, string to)
    {
        Assert.Contains(from, text, StringComparison.Ordinal);
        return text.Replace(from, to, StringComparison.Ordinal);
    }

    private static async Task WriteAtomicallyAsync(string path, string text)
    {
        var temp = path + ".tmp";
        await File.WriteAllTextAsync(temp, text);
        File.Move(temp, path, overwrite: true);
    }

    private static (int Line, int Column) PositionOf(string text, string needle)
    {
        var index = text.IndexOf(needle, StringComparison.Ordinal);
        var line = text[..index].Count(c => c == '\n') + 1;
        var column = index - (text.LastIndexOf('\n', index - 1) + 1) + 1;
        return (line, column);
    }

    private static string Order(string id, string customer, DateTimeOffset at, decimal amount) =>
        $$"""{"eventId":"{{id}}","customerId":"{{customer}}","occurredAt":"{{at:O}}","type":"order_placed","orderId":"{{id}}","amount":{{amount.ToString(CultureInfo.InvariantCulture)}}}""";

    private static string Click(string id, string customer, DateTimeOffset at) =>
        $$"""{"eventId":"{{id}}","customerId":"{{customer}}","occurredAt":"{{at:O}}","type":"page_view","sessionId":"s"}""";

    private static async Task<JsonElement> RulesAsync(EngineProcess engine) => await engine.Http.GetFromJsonAsync<JsonElement>("/v1/rules");

    [Fact]
    public async Task A_watched_directory_rejects_a_broken_file_with_its_position_and_picks_up_the_fix()
    {
        await using var broker = await BrokerProcess.StartAsync(partitions: 2);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        var rulesDir = TestEnvironment.NewTempDir("streaming-rules");
        var pack = Path.Combine(rulesDir, "pack.yaml");
        var original = await DefaultPackAsync();
        await File.WriteAllTextAsync(pack, original);
        var v1 = await VersionOfAsync(pack);
        var env = new Dictionary<string, string> { ["Streaming__Rules__Directory"] = rulesDir, ["Streaming__Rules__PollIntervalMs"] = "200" };
        await using var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);

        var rules = await RulesAsync(engine);
        Assert.Equal((v1, "directory"), (rules.GetProperty("version").GetString(), rules.GetProperty("origin").GetString()));

        // A typo: rejected with file, line and column; the running version stays.
        var broken = Replace(original, "when: orders.net >= 5000", "when: orders.nett >= 5000");
        await WriteAtomicallyAsync(pack, broken);
        await Eventually.WaitAsync(async () => (await RulesAsync(engine)).GetProperty("lastError").ValueKind == JsonValueKind.Object, TimeSpan.FromSeconds(30), () => "the broken file is reported");
        rules = await RulesAsync(engine);
        var (line, column) = PositionOf(broken, "orders.nett");
        var error = Assert.Single(rules.GetProperty("lastError").GetProperty("errors").EnumerateArray());
        Assert.Equal($"pack.yaml:{line}:{column}: unknown field 'orders.nett' (did you mean 'orders.net'?)", error.GetProperty("text").GetString());
        Assert.Equal(v1, rules.GetProperty("version").GetString());

        // The fix, with a lower VIP threshold: picked up without a restart, and shown in profiles.
        var fixedText = Replace(original, "when: orders.net >= 5000", "when: orders.net >= 100");
        await WriteAtomicallyAsync(pack, fixedText);
        var v2 = await VersionOfAsync(pack);
        Assert.NotEqual(v1, v2);
        await Eventually.WaitAsync(async () => (await RulesAsync(engine)).GetProperty("version").GetString() == v2, TimeSpan.FromSeconds(30), () => "version " + v2);
        Assert.Equal(JsonValueKind.Null, (await RulesAsync(engine)).GetProperty("lastError").ValueKind);

        await Kcat.ProduceAsync(broker.BootstrapServers, "orders", [("r-1", Order("r-1-o1", "r-1", T0, 150m))]);
        JsonElement profile = default;
        await Eventually.WaitAsync(
            async () =>
            {
                using var response = await engine.Http.GetAsync("/v1/customers/r-1");
                if (!response.IsSuccessStatusCode)
                {
                    return false;
                }

                profile = await response.Content.ReadFromJsonAsync<JsonElement>();
                return true;
            },
            TimeSpan.FromSeconds(30),
            () => "customer r-1");
        Assert.Equal(v2, profile.GetProperty("ruleVersion").GetString());
        Assert.Contains("vip", profile.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));

        // With a directory, the files are the truth: PUT is refused (here already for want of a token: none is
        // configured, so the answer is the RFC 6750 challenge, saying so).
        using var put = await engine.Http.PutAsync("/v1/rules", new StringContent(original));
        Assert.Equal(HttpStatusCode.Unauthorized, put.StatusCode);
        Assert.Equal("Bearer", put.Headers.WwwAuthenticate.ToString());
        Assert.Equal("application/problem+json", put.Content.Headers.ContentType?.MediaType);
        Assert.Contains("no access tokens are configured", await put.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // The audit trail's lines: the set the directory held at start (nothing was stored before), the broken edit,
        // the fix, each by the directory.
        string[] audited =
        [
            $"Audit 1: rules.accepted by directory: version {v1} from directory at start",
            "Audit 2: rules.rejected by directory: 1 error(s) from directory; first at pack.yaml:",
            $"Audit 3: rules.accepted by directory: version {v2} from directory",
        ];
        await Eventually.WaitAsync(
            () => Task.FromResult(audited.All(line => engine.Process.StandardError.Contains(line, StringComparison.Ordinal))),
            TimeSpan.FromSeconds(10),
            () => "audit lines in the engine's log:\n" + string.Join('\n', engine.Process.StandardError.Split('\n').Where(l => l.Contains("Audit ", StringComparison.Ordinal))));
    }

    [Fact]
    public async Task Put_rules_needs_the_admin_scope_validates_with_positions_and_survives_a_restart()
    {
        await using var broker = await BrokerProcess.StartAsync(partitions: 2);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        var env = new Dictionary<string, string>
        {
            ["Streaming__Auth__Tokens__0__Token"] = AdminToken,
            ["Streaming__Auth__Tokens__0__Scopes__0"] = "admin",
            ["Streaming__Auth__Tokens__1__Token"] = DialerToken,
            ["Streaming__Auth__Tokens__1__Scopes__0"] = "dialer",
        };
        var original = await DefaultPackAsync();
        var changed = Replace(original, "recency: [30, 90, 180, 365]", "recency: [14, 60, 180, 365]");
        var file = Path.Combine(TestEnvironment.NewTempDir("streaming-rules"), "changed.yaml");
        await File.WriteAllTextAsync(file, changed);
        var expected = await VersionOfAsync(file);

        string started;
        {
            await using var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);
            started = (await RulesAsync(engine)).GetProperty("version").GetString()!;
            Assert.Equal("default", (await RulesAsync(engine)).GetProperty("origin").GetString());

            async Task<HttpResponseMessage> PutAsync(string body, string? token)
            {
                using var request = new HttpRequestMessage(HttpMethod.Put, "/v1/rules") { Content = new StringContent(body, Encoding.UTF8, "application/yaml") };
                if (token is not null)
                {
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                }

                return await engine.Http.SendAsync(request);
            }

            Assert.Equal(HttpStatusCode.Unauthorized, (await PutAsync(changed, null)).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await PutAsync(changed, "not-a-token-at-all-000000")).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await PutAsync(changed, DialerToken)).StatusCode);

            var broken = Replace(changed, "recency: [14, 60, 180, 365]", "recency: [14, 60, 180]");
            using var rejected = await PutAsync(broken, AdminToken);
            Assert.Equal(HttpStatusCode.BadRequest, rejected.StatusCode);
            var problem = await rejected.Content.ReadFromJsonAsync<JsonElement>();
            var error = Assert.Single(problem.GetProperty("errors").EnumerateArray());
            Assert.Equal(PositionOf(broken, "[14, 60, 180]"), (error.GetProperty("line").GetInt32(), error.GetProperty("column").GetInt32()));
            Assert.Equal(started, (await RulesAsync(engine)).GetProperty("version").GetString());

            using var accepted = await PutAsync(changed, AdminToken);
            Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
            await Eventually.WaitAsync(async () => (await RulesAsync(engine)).GetProperty("version").GetString() == expected, TimeSpan.FromSeconds(30), () => "version " + expected);
            engine.Process.Terminate();
            await engine.Process.WaitForExitAsync(TimeSpan.FromSeconds(15));
            Assert.Equal(0, engine.Process.ExitCode);
        }

        // The switch was stored with a checkpoint: a restart without a directory resumes with it.
        await using var restarted = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);
        var after = await RulesAsync(restarted);
        Assert.Equal((expected, "stored"), (after.GetProperty("version").GetString(), after.GetProperty("origin").GetString()));
        Assert.NotEqual(started, expected);
    }

    [Fact]
    public async Task One_order_moves_through_the_lifecycle_as_the_watermark_passes_each_threshold_across_a_restart()
    {
        // One partition, so the "clock" customer's events advance the watermark of the partition that owns life-1.
        await using var broker = await BrokerProcess.StartAsync(partitions: 1);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir);
        try
        {
            await Kcat.ProduceAsync(broker.BootstrapServers, "orders", [("life-1", Order("life-o1", "life-1", T0, 25m))]);
            await ExpectStageAsync(engine, "new", T0);

            // Thresholds of the default pack: new under 30 days; active up to 90; at_risk up to 180; dormant up to
            // 365 whole days. The watermark is the latest event time minus 5 minutes.
            await AdvanceAsync(broker, 1, T0.AddDays(31));
            await ExpectStageAsync(engine, "active", T0.AddDays(30));
            await AdvanceAsync(broker, 2, T0.AddDays(92));
            await ExpectStageAsync(engine, "at_risk", T0.AddDays(91));

            engine.Process.Terminate();
            await engine.Process.WaitForExitAsync(TimeSpan.FromSeconds(15));
            Assert.Equal(0, engine.Process.ExitCode);
            await engine.DisposeAsync();
            engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir);

            await ExpectStageAsync(engine, "at_risk", T0.AddDays(91));
            await AdvanceAsync(broker, 3, T0.AddDays(182));
            await ExpectStageAsync(engine, "dormant", T0.AddDays(181));
            await AdvanceAsync(broker, 4, T0.AddDays(367));
            await ExpectStageAsync(engine, "churned", T0.AddDays(366));

            var population = await engine.Http.GetFromJsonAsync<JsonElement>("/v1/population");
            Assert.Equal(1, population.GetProperty("lifecycle").GetProperty("churned").GetInt64());
            Assert.Equal(1, population.GetProperty("lifecycle").GetProperty("prospect").GetInt64()); // the clock
            var lifecycleMoves = population.GetProperty("transitions").EnumerateArray()
                .Where(t => t.GetProperty("dimension").GetString() == "lifecycle")
                .Select(t => (t.GetProperty("from").GetString(), t.GetProperty("to").GetString(), t.GetProperty("count").GetInt64()))
                .ToList();
            Assert.Equal([("active", "at_risk", 1L), ("at_risk", "dormant", 1L), ("dormant", "churned", 1L), ("new", "active", 1L)], lifecycleMoves);
        }
        finally
        {
            await engine.DisposeAsync();
        }
    }

    private static async Task AdvanceAsync(BrokerProcess broker, int step, DateTimeOffset to) =>
        await Kcat.ProduceAsync(broker.BootstrapServers, "clickstream", [("clock", Click("clock-" + step, "clock", to.AddMinutes(10)))]);

    private static async Task ExpectStageAsync(EngineProcess engine, string stage, DateTimeOffset since)
    {
        var last = "";
        await Eventually.WaitAsync(
            async () =>
            {
                using var response = await engine.Http.GetAsync("/v1/customers/life-1");
                if (!response.IsSuccessStatusCode)
                {
                    return false;
                }

                var lifecycle = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("lifecycle");
                last = lifecycle.ToString();
                return lifecycle.GetProperty("stage").GetString() == stage && lifecycle.GetProperty("since").GetDateTimeOffset() == since;
            },
            TimeSpan.FromSeconds(30),
            () => $"life-1 {stage} since {since:O}; last seen {last}");
    }
}
