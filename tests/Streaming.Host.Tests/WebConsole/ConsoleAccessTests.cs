using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using Streaming.Host.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Streaming.Host.Tests.WebConsole;

/// <summary>
/// The console with no data, with a read token to sign in with, and on an engine that is not ready, in a real browser.
/// Two engines that start in seconds and are fed nothing (<see cref="FreshConsoleEngines"/>): one fresh and closed to
/// readers without a token (<c>Streaming:Auth:RequireReadScope</c>), one whose broker does not exist, so it never
/// gets its partitions.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed class ConsoleAccessTests(FreshConsoleEngines fixture, ITestOutputHelper output) : IClassFixture<FreshConsoleEngines>
{
    [Fact]
    public async Task A_browser_signs_in_with_a_read_token_sees_the_empty_engine_and_still_cannot_apply_rules()
    {
        await fixture.WithPageAsync(nameof(A_browser_signs_in_with_a_read_token_sees_the_empty_engine_and_still_cannot_apply_rules), async (page, errors) =>
        {
            var clock = Stopwatch.StartNew();

            // No token: the page says what is needed and offers the sign-in form, with 401.
            var response = await page.GotoAsync(fixture.Url("/console"));
            Assert.Equal(401, response!.Status);
            Assert.Contains("needs a token with the read scope", await page.InnerTextAsync("main"), StringComparison.Ordinal);
            Assert.Equal(0, await page.Locator(".echart").CountAsync());

            // An unknown token, then a token without the read scope: refused, and the page says which.
            await SignInAsync(page, "not-a-token-of-this-engine");
            await Assertions.Expect(page.Locator("[role=alert]")).ToContainTextAsync("not one of this engine's tokens");
            await SignInAsync(page, FreshConsoleEngines.DialerToken);
            await Assertions.Expect(page.Locator("[role=alert]")).ToContainTextAsync("The token 'dialer' does not grant the read scope.");

            // The read token, typed and sent with the keyboard: back to the page asked for, and a session cookie that is
            // not the token, that scripts cannot read, and that only the console's pages get.
            await SignInAsync(page, FreshConsoleEngines.ReadToken);
            await page.WaitForURLAsync(fixture.Url("/console"));
            var cookie = Assert.Single(await page.Context.CookiesAsync());
            Assert.Equal("streaming_console", cookie.Name);
            Assert.NotEqual(FreshConsoleEngines.ReadToken, cookie.Value);
            Assert.True(cookie.HttpOnly);
            Assert.Equal(SameSiteAttribute.Strict, cookie.SameSite);
            Assert.Equal("/console", cookie.Path);
            Assert.Equal("", await page.EvaluateAsync<string>("() => document.cookie"));

            // The fresh engine's home page: no customers, said so, and no chart drawn from nothing.
            Assert.Equal("0", (await page.InnerTextAsync("[data-testid=customers]")).Trim());
            Assert.Contains("No customers yet.", await page.InnerTextAsync("main"), StringComparison.Ordinal);
            Assert.Contains("No transitions yet.", await page.InnerTextAsync("main"), StringComparison.Ordinal);
            Assert.Contains("No rule has fired yet.", await page.InnerTextAsync("main"), StringComparison.Ordinal);
            Assert.Equal(0, await page.Locator(".echart").CountAsync());
            Assert.Equal(5, await page.Locator(".card .none").CountAsync());

            // The session opens the console, not the API: the browser does not send it there, and the engine would not
            // take it there if it were sent.
            Assert.Equal(401, await page.EvaluateAsync<int>("async () => (await fetch('/v1/population')).status"));
            foreach (var (path, status) in new[] { ("/console/outreach", HttpStatusCode.OK), ("/v1/population", HttpStatusCode.Unauthorized) })
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, path);
                request.Headers.Add("Cookie", $"{cookie.Name}={cookie.Value}");
                using var answer = await fixture.Fresh.Http.SendAsync(request);
                Assert.Equal(status, answer.StatusCode);
            }

            // An unknown customer: a page that says so, with 404.
            response = await page.GotoAsync(fixture.Url("/console/customers/nobody-here"));
            Assert.Equal(404, response!.Status);
            Assert.Contains("Customer not found. The engine knows no customer 'nobody-here'.", await page.InnerTextAsync("[role=alert]"), StringComparison.Ordinal);

            // The rules page reads; applying with the read token is refused (403), the set in force stays.
            var version = (await fixture.ReadAsync("/v1/rules")).GetProperty("version").GetString();
            await page.GotoAsync(fixture.Url("/console/rules"));
            Assert.Equal(version, (await page.InnerTextAsync("[data-field=version]")).Trim());
            await page.FillAsync("#admin-token", FreshConsoleEngines.ReadToken);
            await page.ClickAsync("#apply");
            await Assertions.Expect(page.Locator("#action-status")).ToContainTextAsync("Applying refused (403)");
            Assert.Contains("needs the admin token", await page.InnerTextAsync("#action-status"), StringComparison.Ordinal);
            await page.FillAsync("#admin-token", "");
            await page.ClickAsync("#apply");
            await Assertions.Expect(page.Locator("#action-status")).ToContainTextAsync("Applying refused (401)");
            Assert.Equal(version, (await fixture.ReadAsync("/v1/rules")).GetProperty("version").GetString());

            // Signing out ends the session: the next page asks again.
            await page.ClickAsync("form.sign-out button");
            await page.WaitForURLAsync(fixture.Url("/console/sign-in"));
            response = await page.GotoAsync(fixture.Url("/console/outreach"));
            Assert.Equal(401, response!.Status);
            Assert.Empty(errors);
            output.WriteLine($"sign-in, empty engine and refusals checked in {clock.Elapsed.TotalSeconds:N1} s");
        });
    }

    [Fact]
    public async Task An_engine_without_its_partitions_says_it_is_not_ready_and_answers_a_customer_with_503()
    {
        await fixture.WithPageAsync(nameof(An_engine_without_its_partitions_says_it_is_not_ready_and_answers_a_customer_with_503), async (page, errors) =>
        {
            var status = await fixture.NotReady.Http.GetFromJsonAsync<JsonElement>("/v1/status");
            Assert.False(status.GetProperty("ready").GetBoolean());

            var response = await page.GotoAsync(fixture.NotReadyUrl("/console"));
            Assert.Equal(200, response!.Status);
            Assert.Contains("Engine not ready. It is waiting for its partitions to be assigned", await page.InnerTextAsync("main .notice.warn"), StringComparison.Ordinal);
            Assert.Equal(0, await page.Locator(".echart").CountAsync());

            response = await page.GotoAsync(fixture.NotReadyUrl("/console/customers/12347"));
            Assert.Equal(503, response!.Status);
            Assert.Contains("Not ready. This customer's partition has no owner on this node yet", await page.InnerTextAsync("main [role=status]"), StringComparison.Ordinal);
            // The search box stays usable.
            Assert.Equal("12347", await page.InputValueAsync("#q"));
            Assert.Empty(errors);

            // The chart library, as the page links it: served by the engine (the very file npm installed from the lock
            // file), cacheable for a year at that versioned address, revalidated at any other.
            await page.GotoAsync(fixture.NotReadyUrl("/console"));
            var src = await page.GetAttributeAsync("script[src*='echarts']", "src");
            Assert.Matches("^/console/assets/echarts\\.min\\.js\\?v=[0-9a-f]{16}$", src);
            using var asset = await fixture.NotReady.Http.GetAsync(src);
            Assert.Equal(HttpStatusCode.OK, asset.StatusCode);
            Assert.Equal("public, max-age=31536000, immutable", asset.Headers.CacheControl?.ToString());
            var npm = Path.Combine(TestEnvironment.RepoRoot, "engine", "Streaming.Host", "console", "node_modules", "echarts", "dist", "echarts.min.js");
            Assert.Equal(await File.ReadAllBytesAsync(npm), await asset.Content.ReadAsByteArrayAsync());
            using var unversioned = await fixture.NotReady.Http.GetAsync("/console/assets/echarts.min.js");
            Assert.Equal("no-cache", unversioned.Headers.CacheControl?.ToString());
            Assert.True(await page.EvaluateAsync<bool>("() => typeof window.echarts?.init === 'function'"), "echarts did not load in the page");
        });
    }

    private static async Task SignInAsync(IPage page, string token)
    {
        await page.FillAsync("#token", "");
        await page.FocusAsync("#token");
        await page.Keyboard.TypeAsync(token);
        await page.Keyboard.PressAsync("Enter");
    }
}

/// <summary>
/// Two engines fed nothing, and one headless chromium: <see cref="Fresh"/> on a broker of its own, with tokens and
/// <c>Streaming:Auth:RequireReadScope</c> on; <see cref="NotReady"/> pointed at a port where no broker listens.
/// </summary>
public sealed class FreshConsoleEngines : IAsyncLifetime
{
    public const string ReadToken = "read-token-for-console-tests-0123456";
    public const string AdminToken = "admin-token-for-console-access-0123";
    public const string DialerToken = "dialer-token-for-console-tests-0123";

    private BrokerProcess? _broker;
    private readonly List<string> _dirs = [];
    private ConsoleBrowser? _browser;

    public EngineProcess Fresh { get; private set; } = null!;

    public EngineProcess NotReady { get; private set; } = null!;

    public string Url(string path) => new Uri(Fresh.Http.BaseAddress!, path).ToString();

    public string NotReadyUrl(string path) => new Uri(NotReady.Http.BaseAddress!, path).ToString();

    /// <summary>A read route of <see cref="Fresh"/>, with the read token.</summary>
    public async Task<JsonElement> ReadAsync(string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ReadToken);
        using var response = await Fresh.Http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    public async Task InitializeAsync()
    {
        var clock = Stopwatch.StartNew();
        _broker = await BrokerProcess.StartAsync(partitions: 4);
        var tokens = new Dictionary<string, string>
        {
            ["Streaming__Auth__RequireReadScope"] = "true",
            ["Streaming__Auth__Tokens__0__Name"] = "console-reader",
            ["Streaming__Auth__Tokens__0__Token"] = ReadToken,
            ["Streaming__Auth__Tokens__0__Scopes__0"] = "read",
            ["Streaming__Auth__Tokens__1__Name"] = "console-admin",
            ["Streaming__Auth__Tokens__1__Token"] = AdminToken,
            ["Streaming__Auth__Tokens__1__Scopes__0"] = "admin",
            ["Streaming__Auth__Tokens__2__Name"] = "dialer",
            ["Streaming__Auth__Tokens__2__Token"] = DialerToken,
            ["Streaming__Auth__Tokens__2__Scopes__0"] = "dialer",
        };
        var freshStart = EngineProcess.StartAsync(_broker.BootstrapServers, NewDir("console-fresh"), tokens);
        var notReadyStart = EngineProcess.StartAsync($"127.0.0.1:{TestEnvironment.FreePort()}", NewDir("console-not-ready"), waitFor: "/healthz");
        Fresh = await freshStart;
        NotReady = await notReadyStart;
        _browser = await ConsoleBrowser.LaunchAsync();
        Console.Error.WriteLine($"fresh console engines and browser ready in {clock.Elapsed.TotalSeconds:N1} s");
    }

    private string NewDir(string name)
    {
        var dir = TestEnvironment.NewTempDir(name);
        _dirs.Add(dir);
        return dir;
    }

    /// <summary>Runs <paramref name="test"/> in a fresh page with the script errors it raises (<see cref="ConsoleBrowser.WithPageAsync"/>).</summary>
    public Task WithPageAsync(string name, Func<IPage, IReadOnlyList<string>, Task> test) => _browser!.WithPageAsync(name, test);

    public async Task DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.DisposeAsync();
        }

        foreach (var engine in new[] { Fresh, NotReady })
        {
            if (engine is not null)
            {
                await engine.DisposeAsync();
            }
        }

        if (_broker is not null)
        {
            await _broker.DisposeAsync();
        }

        foreach (var dir in _dirs)
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
