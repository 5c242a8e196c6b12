using Microsoft.Playwright;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests.WebConsole;

/// <summary>
/// Debian's Chromium driven by Playwright for the console tests: one headless browser per fixture, a fresh 1280×800
/// page per test, the script errors the page raised, and a full-page screenshot named after the test when it fails
/// (with <c>STREAMING_TEST_SCREENSHOTS=all</c>, also when it passes).
/// </summary>
public sealed class ConsoleBrowser : IAsyncDisposable
{
    private readonly IPlaywright _playwright;
    private readonly IBrowser _browser;

    private ConsoleBrowser(IPlaywright playwright, IBrowser browser)
    {
        _playwright = playwright;
        _browser = browser;
    }

    /// <summary>Where screenshots go: <c>STREAMING_TEST_ARTIFACTS</c>/console, else <c>TestResults/console</c> in the repository.</summary>
    public static string Artifacts { get; } = Environment.GetEnvironmentVariable("STREAMING_TEST_ARTIFACTS") is { Length: > 0 } dir
        ? Path.Combine(dir, "console")
        : Path.Combine(TestEnvironment.RepoRoot, "TestResults", "console");

    /// <summary>Starts the browser (<c>STREAMING_TEST_CHROMIUM</c>, else <c>/usr/bin/chromium</c>).</summary>
    public static async Task<ConsoleBrowser> LaunchAsync()
    {
        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Environment.GetEnvironmentVariable("STREAMING_TEST_CHROMIUM") ?? "/usr/bin/chromium",
            Headless = true,
            // The flags this machine's notes give for Chromium on a closed network (its background connections are
            // refused, many at a time, and Google's hosts are looked up at every start): none of it is the console's.
            Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
        return new ConsoleBrowser(playwright, browser);
    }

    /// <summary>Runs <paramref name="test"/> in a fresh page with the list of script errors the page raises.</summary>
    public async Task WithPageAsync(string name, Func<IPage, IReadOnlyList<string>, Task> test)
    {
        await using var context = await _browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 800 } });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(30_000);
        var errors = new List<string>();
        page.PageError += (_, error) => errors.Add(error);
        try
        {
            await test(page, errors);
            if (Environment.GetEnvironmentVariable("STREAMING_TEST_SCREENSHOTS") == "all")
            {
                Directory.CreateDirectory(Artifacts);
                await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Artifacts, name + ".ok.png"), FullPage = true });
            }
        }
        catch
        {
            Directory.CreateDirectory(Artifacts);
            var file = Path.Combine(Artifacts, name + ".png");
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = file, FullPage = true });
            Console.Error.WriteLine("screenshot of the failure: " + file);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _browser.DisposeAsync();
        _playwright.Dispose();
    }
}
