using Streaming.Connectors.Datasets;
using Streaming.Engine.Rules;
using Streaming.Host.Hosting;
using Streaming.Host.Http.Auth;

namespace Streaming.Host.Http;

/// <summary>
/// The backtest's HTTP face: <c>POST /v1/backtests</c> (<c>admin</c>, rate-limited) starts one, <c>GET
/// /v1/backtests/{id}</c> reports progress and, when done, <c>result</c>: the JSON of <c>streaming backtest --out</c>;
/// <c>DELETE /v1/backtests/{id}</c> (<c>admin</c>) cancels it. One at a time; the live engine's state is not touched.
/// </summary>
public static class BacktestRoutes
{
    /// <summary>Largest rule file accepted in a backtest request (characters).</summary>
    public const int MaxRulesChars = 1 << 20;

    public static void Map(WebApplication app, EngineHost host)
    {
        var settings = host.Settings;
        app.MapPost("/v1/backtests", (HttpContext context, BacktestRequest? body) =>
        {
            var dataset = body?.Dataset ?? Datasets.OnlineRetail;
            if (!Datasets.Names.Contains(dataset, StringComparer.Ordinal))
            {
                return Results.Problem(statusCode: 400, title: "invalid request", detail: $"dataset must be one of {string.Join(", ", Datasets.Names)}");
            }

            var ruleSets = new List<RuleSet> { host.Engine.ActiveRules };
            if (body?.Rules is { Length: > 0 } text)
            {
                if (text.Length > MaxRulesChars)
                {
                    return Results.Problem(statusCode: 413, title: "rule file too large", detail: $"at most {MaxRulesChars} characters");
                }

                try
                {
                    ruleSets.Add(RuleSetLoader.Load([new RuleSource("rules.yaml", text)]));
                }
                catch (RuleSetException ex)
                {
                    return Results.Problem(
                        statusCode: 400,
                        title: "invalid rule set",
                        detail: $"{ex.Errors.Count} error(s) in the rule set to backtest",
                        extensions: new Dictionary<string, object?> { ["errors"] = ApiRoutes.ErrorsBody(ex.Errors) });
                }
            }

            var actor = AccessPolicies.Actor(context) ?? "anonymous";
            BacktestRun? run;
            try
            {
                run = host.Backtests.Start(ruleSets, dataset, actor);
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                return Results.Problem(statusCode: 409, title: "dataset not available", detail: ex is FileNotFoundException f ? $"{f.Message}: {f.FileName}" : ex.Message);
            }

            if (run is null)
            {
                var current = host.Backtests.Current;
                context.Response.Headers.Location = current is null ? null : "/v1/backtests/" + current.Id;
                return Results.Problem(statusCode: 409, title: "a backtest is running", detail: $"backtest {current?.Id} is running; one runs at a time (cancel it with DELETE)");
            }

            host.Audit.Record(actor, "backtest.started", $"backtest {run.Id} of {string.Join(" vs ", run.RuleVersions)} on {dataset}");
            return Results.Accepted("/v1/backtests/" + run.Id, Body(run));
        }).Needs(AccessToken.Admin).RequireRateLimiting(RateLimits.Backtests);

        app.MapGet("/v1/backtests/{id}", (string id) => host.Backtests.Find(id) is { } run
            ? Results.Ok(Body(run))
            : NotFound(id)).Read(settings);

        app.MapDelete("/v1/backtests/{id}", (HttpContext context, string id) =>
        {
            if (host.Backtests.Find(id) is null)
            {
                return NotFound(id);
            }

            if (!host.Backtests.Cancel(id))
            {
                return Results.Problem(statusCode: 409, title: "backtest not running", detail: $"backtest {id} has already ended");
            }

            host.Audit.Record(AccessPolicies.Actor(context) ?? "anonymous", "backtest.cancelled", $"backtest {id}");
            return Results.Accepted("/v1/backtests/" + id, new { id, state = "cancelling" });
        }).Needs(AccessToken.Admin);
    }

    /// <summary>The body of <c>GET /v1/backtests/{id}</c>.</summary>
    public static object Body(BacktestRun run) => new
    {
        id = run.Id,
        state = run.State,
        dataset = run.Dataset,
        ruleVersions = run.RuleVersions,
        startedBy = run.Actor,
        startedAt = run.StartedAt,
        finishedAt = run.FinishedAt,
        progress = new { records = run.Records, fileShare = Math.Round(run.FileShare, 4) },
        error = run.Error,
        result = run.Result,
    };

    private static IResult NotFound(string id) =>
        Results.Problem(statusCode: 404, title: "backtest not found", detail: $"no backtest '{id}' (the last {BacktestRunner.Kept} are kept)");

    /// <summary>Body of <c>POST /v1/backtests</c>: the dataset (default <c>online-retail</c>) and, optionally, a rule file to compare with the running set.</summary>
    public sealed record BacktestRequest(string? Dataset, string? Rules);
}
