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
/// routes' access (open unless <c>Streaming:Auth:RequireReadScope</c>): then a browser signs in once at
/// <c>/console/sign-in</c> with a <c>read</c> (or <c>admin</c>) token and carries a session cookie for the read views
/// (<see cref="ConsoleSessions"/>); a page asked for without it answers 401 with the sign-in form. Changes go through
/// the API with the <c>admin</c> token the page asks for, as before.
/// </summary>
public static class ConsoleRoutes
{
    private const string HtmlType = "text/html";

    private static readonly JsonSerializerOptions ApiJson = new(JsonSerializerDefaults.Web);

    /// <summary>Maps the console's pages, its sign-in and its assets.</summary>
    public static void Map(WebApplication app, EngineHost host)
    {
        var settings = host.Settings;
        var rates = new RateSampler();

        IResult Page(string title, string active, string main, int status = 200, int refreshSeconds = 0) =>
            Results.Content(ConsolePages.Layout(title, active, main, refreshSeconds, signOut: settings.RequireReadScope), "text/html; charset=utf-8", Encoding.UTF8, status);

        // For /openapi/v1.json: a view answers HTML, and needs read when RequireReadScope (checked by the filter below).
        RouteHandlerBuilder Described(RouteHandlerBuilder builder)
        {
            builder.Produces<string>(StatusCodes.Status200OK, HtmlType);
            return settings.RequireReadScope ? builder.WithMetadata(new RequiresScope(AccessToken.Read)) : builder;
        }

        // A read view: open, unless RequireReadScope; then without read access, the sign-in form explains why (401), or
        // that the token presented lacks the scope (403).
        RouteHandlerBuilder View(RouteHandlerBuilder builder) => Described(builder).AddEndpointFilter(async (context, next) =>
        {
            var user = context.HttpContext.User;
            if (!settings.RequireReadScope || AccessPolicies.Has(user, AccessToken.Read))
            {
                return await next(context).ConfigureAwait(false);
            }

            var request = context.HttpContext.Request;
            var back = request.Path + request.QueryString;
            var authenticated = user.Identity?.IsAuthenticated == true;

            // The same status and challenge as the API; a browser gets the sign-in form, any other client problem+json.
            var answer = authenticated ? BearerTokenHandler.Forbidden(context.HttpContext) : BearerTokenHandler.Challenge(context.HttpContext);
            if (!WantsHtml(request))
            {
                return answer;
            }

            return Results.Content(
                ConsolePages.Layout("Sign in", "", ConsolePages.SignIn(back, authenticated
                    ? "The token you are signed in with does not grant the read scope."
                    : "This engine's console needs a token with the read scope (Streaming:Auth:RequireReadScope is on). Sign in to see this page.", error: authenticated), 0, signOut: false),
                "text/html; charset=utf-8", Encoding.UTF8, authenticated ? 403 : 401);
        });

        app.MapGet("/console/sign-in", (string? next) => Results.Content(
            ConsolePages.Layout("Sign in", "", ConsolePages.SignIn(SafeNext(next), settings.RequireReadScope
                ? "Enter a token with the read scope (an admin token also works). The browser then keeps a session for the console's read views; changing rules still needs the admin token on the rules page."
                : "This engine's read views are open: no sign-in is needed. Changing rules needs the admin token on the rules page.", error: false), 0, signOut: false),
            "text/html; charset=utf-8", Encoding.UTF8))
            .Produces<string>(StatusCodes.Status200OK, HtmlType);

        app.MapPost("/console/sign-in", async (HttpContext context, ConsoleSessions sessions) =>
        {
            var form = await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
            var next = SafeNext(form["next"].ToString());
            var token = ConsoleSessions.Match(settings.AuthTokens, form["token"].ToString());
            if (token is null || !(token.Scopes.Contains(AccessToken.Read) || token.Scopes.Contains(AccessToken.Admin)))
            {
                var message = token is null ? "That token is not one of this engine's tokens." : $"The token '{token.Name}' does not grant the read scope.";
                return Results.Content(
                    ConsolePages.Layout("Sign in", "", ConsolePages.SignIn(next, message, error: true), 0, signOut: false),
                    "text/html; charset=utf-8", Encoding.UTF8, token is null ? 401 : 403);
            }

            context.Response.Cookies.Append(ConsoleSessions.CookieName, sessions.Open(token.Name), new CookieOptions
            {
                HttpOnly = true,
                SameSite = SameSiteMode.Strict,
                Secure = context.Request.IsHttps,
                Path = "/console",
                MaxAge = ConsoleSessions.Lifetime,
            });
            return Results.Redirect(next);
        })
            .WithMetadata(new FormRequestBody("the sign-in form", new Dictionary<string, string>
            {
                ["token"] = "a token with the read (or admin) scope",
                ["next"] = "the /console address to go to after signing in (optional)",
            }))
            .Produces(StatusCodes.Status302Found)
            .Produces<string>(StatusCodes.Status401Unauthorized, HtmlType)
            .Produces<string>(StatusCodes.Status403Forbidden, HtmlType)
            .DisableAntiforgery();

        app.MapPost("/console/sign-out", (HttpContext context, ConsoleSessions sessions) =>
        {
            sessions.Close(context.Request.Cookies[ConsoleSessions.CookieName]);
            context.Response.Cookies.Delete(ConsoleSessions.CookieName, new CookieOptions { Path = "/console" });
            return Results.Redirect("/console/sign-in");
        })
            .Produces(StatusCodes.Status302Found)
            .DisableAntiforgery();

        View(app.MapGet("/console", async (HttpContext context, string? flows, CancellationToken ct) =>
        {
            var population = await host.Engine.PopulationAsync(ct).ConfigureAwait(false);
            var status = Json(ApiRoutes.StatusBody(host));
            var lifts = await LiftsAsync(host, ct).ConfigureAwait(false);
            var rate = rates.Sample(host.Engine.EventsProcessed, TimeProvider.System.GetTimestamp(), TimeProvider.System.TimestampFrequency);
            var main = ConsolePages.Home(status, Json(ApiRoutes.PopulationBody(population)), lifts, rate, flows ?? "lifecycle");
            return Page("Population now", "home", main, refreshSeconds: 10);
        }));

        View(app.MapGet("/console/customers", (string? id) => id is { Length: > 0 }
            ? Results.Redirect("/console/customers/" + CustomerIdRoute.Segment(id))
            : Page("Customers", "customers", ConsolePages.Search(null) + "<p class=\"muted\">Enter a customer id, e.g. one from a replay.</p>")));

        View(app.MapGet("/console/customers/{customerId}", async (HttpContext context, string customerId, CancellationToken ct) =>
        {
            customerId = CustomerIdRoute.Of(context, customerId);
            var title = "Customer " + customerId;
            if (CustomerIdRoute.Invalid(customerId) is not null)
            {
                return Page("Customer", "customers", ConsolePages.Search(null) + ConsolePages.Problem("Invalid customer id.", "Customer ids are 1 to 256 characters without control characters."), 400);
            }

            var found = await host.Engine.LookupAsync(customerId, ct).ConfigureAwait(false);
            var (profile, served) = (found.Profile, found.Served);
            var triggers = profile is null ? null : await TriggerRoutes.TriggersBody(host, customerId, ct).ConfigureAwait(false);
            if (profile is null || triggers is null)
            {
                return served
                    ? Page(title, "customers", ConsolePages.Search(customerId) + ConsolePages.Problem("Customer not found.", $"The engine knows no customer '{customerId}'."), 404)
                    : Page(title, "customers", ConsolePages.Search(customerId) + ConsolePages.Notice("warn", "<strong>Not ready.</strong> This customer's partition has no owner on this node yet (start-up or rebalance); try again in a few seconds."), 503);
            }

            return Page(title, "customers", ConsolePages.Customer(Json(profile), Json(triggers)));
        }));

        View(app.MapGet("/console/rules", () => Page("Rules", "rules", ConsolePages.Rules(Json(ApiRoutes.RulesBody(host)), Datasets.Names))));

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
                return Results.Ok(new RulesCheckBody(true, rules.Version, []));
            }
            catch (RuleSetException ex)
            {
                return Results.Ok(new RulesCheckBody(false, null, ApiRoutes.ErrorsBody(ex.Errors)));
            }
        })
            .WithMetadata(new TextRequestBody("a rule file (YAML, at most 1,048,576 characters); any content type", "text/plain", "application/yaml", "text/yaml"))
            .Produces<RulesCheckBody>()
            .ProducesProblem(413)
            .Read(settings)
            .DisableAntiforgery();

        View(app.MapGet("/console/backtests/{id}", (string id) => host.Backtests.Find(id) is { } run
            ? Page("Backtest", "rules", ConsolePages.Backtest(Json(BacktestRoutes.Body(run))))
            : Page("Backtest", "rules", ConsolePages.Problem("Backtest not found.", $"No backtest '{id}': the engine keeps the last {BacktestRunner.Kept}, and none survives a restart."), 404)));

        View(app.MapGet("/console/outreach", async (CancellationToken ct) =>
            Page("Outreach", "outreach", ConsolePages.Outreach(Json(TriggerRoutes.StatsBody(host)), await LiftsAsync(host, ct).ConfigureAwait(false)), refreshSeconds: 10)));

        // Assets: pages link them as /console/assets/NAME?v=HASH; that address never changes its content, so it may be
        // cached for a year. Any other address of an asset is revalidated.
        app.MapGet("/console/assets/{name}", (HttpContext context, string name, string? v) =>
        {
            if (ConsoleAssets.Find(name) is not { } asset)
            {
                return Results.NotFound();
            }

            context.Response.Headers.CacheControl = v == asset.Version ? "public, max-age=31536000, immutable" : "no-cache";
            context.Response.Headers.ETag = "\"" + asset.Version + "\"";
            return Results.Bytes(asset.Content, asset.ContentType);
        })
            .Produces<string>(StatusCodes.Status200OK, "text/css", "text/javascript")
            .Produces(StatusCodes.Status404NotFound);
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

    /// <summary>Where to go after signing in: a console address of this engine, else the home page.</summary>
    public static string SafeNext(string? next) =>
        next is { Length: > 0 } && (next == "/console" || next.StartsWith("/console/", StringComparison.Ordinal) || next.StartsWith("/console?", StringComparison.Ordinal))
            && !next.Contains('\\', StringComparison.Ordinal) && !next.Contains("//", StringComparison.Ordinal)
            ? next
            : "/console";

    /// <summary>The client asks for HTML (a browser): its Accept header names <c>text/html</c>.</summary>
    private static bool WantsHtml(HttpRequest request) =>
        request.Headers.Accept.Any(value => value?.Contains("text/html", StringComparison.OrdinalIgnoreCase) == true);
}

/// <summary>The answer of <c>POST /console/rules/check</c>: the checks of <c>PUT /v1/rules</c>, nothing changed.</summary>
/// <param name="Valid">whether the rule file loads</param>
/// <param name="Version">the set's version (<c>name@hash12</c>) when valid; null when not</param>
/// <param name="Errors">every error, each with its file, line, column and message (empty when valid)</param>
public sealed record RulesCheckBody(bool Valid, string? Version, IReadOnlyList<RuleErrorBody> Errors);

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

/// <summary>
/// The console's stylesheet and script, and the Apache ECharts build it draws charts with, embedded in the engine's
/// assembly (no CDN). ECharts comes from npm (<c>engine/Streaming.Host/console/package-lock.json</c>, installed by
/// <c>npm ci</c>); the build copies <c>echarts/dist/echarts.min.js</c> in and fails when it is missing.
/// </summary>
public static class ConsoleAssets
{
    /// <summary>The name of the ECharts asset.</summary>
    public const string ECharts = "echarts.min.js";

    private static readonly Dictionary<string, (byte[] Content, string ContentType, string Version)> Assets = Load();

    /// <summary>The asset of that name (<c>console.css</c>, <c>console.js</c>, <c>echarts.min.js</c>) with its version (a hash of its bytes), or null.</summary>
    public static (byte[] Content, string ContentType, string Version)? Find(string name) => Assets.TryGetValue(name, out var a) ? a : null;

    /// <summary>The address pages link an asset by: <c>/console/assets/NAME?v=VERSION</c>, cacheable for a year.</summary>
    public static string Url(string name) => $"/console/assets/{name}?v={Assets[name].Version}";

    private static Dictionary<string, (byte[], string, string)> Load()
    {
        var assembly = typeof(ConsoleAssets).Assembly;
        var assets = new Dictionary<string, (byte[], string, string)>(StringComparer.Ordinal);
        foreach (var (name, type) in new[] { ("console.css", "text/css; charset=utf-8"), ("console.js", "text/javascript; charset=utf-8"), (ECharts, "text/javascript; charset=utf-8") })
        {
            using var stream = assembly.GetManifestResourceStream("Streaming.Host.WebConsole.Assets." + name)
                ?? throw new InvalidOperationException($"console asset {name} is not embedded");
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            var bytes = buffer.ToArray();
            assets[name] = (bytes, type, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes))[..16]);
        }

        return assets;
    }
}
