using System.Text;
using System.Text.Json;
using Streaming.Connectors.Datasets;
using Streaming.Engine.Rules;
using Streaming.Host.Hosting;
using Streaming.Host.Http;
using Streaming.Host.Http.Auth;

namespace Streaming.Host.WebConsole;

/// <summary>
/// The web console (CONTRACTS.md §9): server-rendered HTML pages under <c>/console</c>, built from the same bodies
/// the API answers with, and their assets (served from the engine's assembly: no CDN). Read views follow the read
/// routes' access (open unless <c>Streaming:Auth:RequireReadScope</c>); changes go through the API with the
/// <c>admin</c> token the page asks for.
/// </summary>
public static class ConsoleRoutes
{
    private static readonly JsonSerializerOptions ApiJson = new(JsonSerializerDefaults.Web);

    public static void Map(WebApplication app, EngineHost host)
    {
        var settings = host.Settings;
        var rates = new RateSampler();

        app.MapGet("/console", async (HttpContext context, string? flows, CancellationToken ct) =>
        {
            var population = await host.Engine.QueryAsync(view => view.Population(), ct).ConfigureAwait(false);
            var status = Json(ApiRoutes.StatusBody(host));
            var lifts = await LiftsAsync(host, ct).ConfigureAwait(false);
            var rate = rates.Sample(host.Engine.EventsProcessed, TimeProvider.System.GetTimestamp(), TimeProvider.System.TimestampFrequency);
            var main = ConsolePages.Home(status, Json(ApiRoutes.PopulationBody(population)), lifts, rate, flows ?? "lifecycle");
            return Page("Population now", "home", main, refreshSeconds: 10);
        }).Read(settings);

        app.MapGet("/console/customers", (string? id) => id is { Length: > 0 }
            ? Results.Redirect("/console/customers/" + CustomerIdRoute.Segment(id))
            : Page("Customers", "customers", ConsolePages.Search(null) + "<p class=\"muted\">Enter a customer id, e.g. one from a replay.</p>")).Read(settings);

        app.MapGet("/console/customers/{customerId}", async (HttpContext context, string customerId, CancellationToken ct) =>
        {
            customerId = CustomerIdRoute.Of(context, customerId);
            var title = "Customer " + customerId;
            if (CustomerIdRoute.Invalid(customerId) is not null)
            {
                return Page("Customer", "customers", ConsolePages.Search(null) + ConsolePages.Problem("Invalid customer id.", "Customer ids are 1 to 256 characters without control characters."), 400);
            }

            var (profile, served) = await host.Engine.QueryAsync(view => (view.FindCustomer(customerId), view.Serves(customerId)), ct).ConfigureAwait(false);
            var triggers = profile is null ? null : await TriggerRoutes.TriggersBody(host, customerId, ct).ConfigureAwait(false);
            if (profile is null || triggers is null)
            {
                return served
                    ? Page(title, "customers", ConsolePages.Search(customerId) + ConsolePages.Problem("Customer not found.", $"The engine knows no customer '{customerId}'."), 404)
                    : Page(title, "customers", ConsolePages.Search(customerId) + ConsolePages.Notice("warn", "<strong>Not ready.</strong> This customer's partition has no owner on this node yet (start-up or rebalance); try again in a few seconds."), 503);
            }

            return Page(title, "customers", ConsolePages.Customer(Json(profile), Json(triggers)));
        }).Read(settings);

        app.MapGet("/console/rules", () => Page("Rules", "rules", ConsolePages.Rules(Json(ApiRoutes.RulesBody(host)), Datasets.Names))).Read(settings);

        // Checks a rule file without changing anything: the same loader and errors as PUT /v1/rules.
        app.MapPost("/console/rules/check", async (HttpContext context) =>
        {
            using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
            var buffer = new char[BacktestRoutes.MaxRulesChars + 1];
            var read = await reader.ReadBlockAsync(buffer, context.RequestAborted).ConfigureAwait(false);
            if (read > BacktestRoutes.MaxRulesChars)
            {
                return Results.Problem(statusCode: 413, title: "rule file too large", detail: $"at most {BacktestRoutes.MaxRulesChars} characters");
            }

            try
            {
                var rules = RuleSetLoader.Load([new RuleSource("rules.yaml", new string(buffer, 0, read))]);
                return Results.Ok(new { valid = true, version = rules.Version, errors = Array.Empty<object>() });
            }
            catch (RuleSetException ex)
            {
                return Results.Ok(new { valid = false, version = (string?)null, errors = ApiRoutes.ErrorsBody(ex.Errors) });
            }
        }).Read(settings).DisableAntiforgery();

        app.MapGet("/console/backtests/{id}", (string id) => host.Backtests.Find(id) is { } run
            ? Page("Backtest", "rules", ConsolePages.Backtest(Json(BacktestRoutes.Body(run))))
            : Page("Backtest", "rules", ConsolePages.Problem("Backtest not found.", $"No backtest '{id}': the engine keeps the last {BacktestRunner.Kept}, and none survives a restart."), 404)).Read(settings);

        app.MapGet("/console/outreach", async (CancellationToken ct) =>
            Page("Outreach", "outreach", ConsolePages.Outreach(Json(TriggerRoutes.StatsBody(host)), await LiftsAsync(host, ct).ConfigureAwait(false)), refreshSeconds: 10)).Read(settings);

        app.MapGet("/console/assets/{name}", (string name) => ConsoleAssets.Find(name) is { } asset
            ? Results.Bytes(asset.Content, asset.ContentType)
            : Results.NotFound());
    }

    /// <summary>Per trigger of the running set, the body of <c>GET /v1/rules/{id}/lift</c>.</summary>
    private static async Task<IReadOnlyList<(string Rule, JsonElement Lift)>> LiftsAsync(EngineHost host, CancellationToken ct)
    {
        var lifts = new List<(string, JsonElement)>();
        foreach (var trigger in host.Engine.ActiveRules.Triggers)
        {
            if (await TriggerRoutes.LiftBody(host, trigger.Id, ct).ConfigureAwait(false) is { } body)
            {
                lifts.Add((trigger.Id, Json(body)));
            }
        }

        return lifts;
    }

    /// <summary>A body as the API serializes it.</summary>
    private static JsonElement Json(object body) => JsonSerializer.SerializeToElement(body, body.GetType(), ApiJson);

    private static IResult Page(string title, string active, string main, int status = 200, int refreshSeconds = 0) =>
        Results.Content(ConsolePages.Layout(title, active, main, refreshSeconds), "text/html; charset=utf-8", Encoding.UTF8, status);
}

/// <summary>Events per second between two looks at the processed-events counter (the home page's figure).</summary>
public sealed class RateSampler
{
    private readonly Lock _gate = new();
    private long _count = -1;
    private long _at;
    private double? _rate;

    /// <summary>
    /// Records <paramref name="count"/> at <paramref name="timestamp"/> and returns the rate since the previous sample
    /// (kept if less than a second has passed); null on the first sample.
    /// </summary>
    public double? Sample(long count, long timestamp, long frequency)
    {
        lock (_gate)
        {
            if (_count < 0)
            {
                (_count, _at) = (count, timestamp);
                return null;
            }

            var seconds = (timestamp - _at) / (double)frequency;
            if (seconds >= 1)
            {
                _rate = Math.Max(0, count - _count) / seconds;
                (_count, _at) = (count, timestamp);
            }

            return _rate;
        }
    }
}

/// <summary>The console's stylesheet and script, embedded in the engine's assembly.</summary>
public static class ConsoleAssets
{
    private static readonly Dictionary<string, (byte[] Content, string ContentType)> Assets = Load();

    /// <summary>The asset of that name (<c>console.css</c>, <c>console.js</c>), or null.</summary>
    public static (byte[] Content, string ContentType)? Find(string name) => Assets.TryGetValue(name, out var a) ? a : null;

    private static Dictionary<string, (byte[], string)> Load()
    {
        var assembly = typeof(ConsoleAssets).Assembly;
        var assets = new Dictionary<string, (byte[], string)>(StringComparer.Ordinal);
        foreach (var (name, type) in new[] { ("console.css", "text/css; charset=utf-8"), ("console.js", "text/javascript; charset=utf-8") })
        {
            using var stream = assembly.GetManifestResourceStream("Streaming.Host.WebConsole.Assets." + name)
                ?? throw new InvalidOperationException($"console asset {name} is not embedded");
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            assets[name] = (buffer.ToArray(), type);
        }

        return assets;
    }
}
