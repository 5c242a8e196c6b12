using System.Text.Json;
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

    /// <summary>Maps the three routes.</summary>
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
        })
            .Produces<BacktestBody>(StatusCodes.Status202Accepted)
            .ProducesProblem(400)
            .ProducesProblem(409)
            .ProducesProblem(413)
            .ProducesProblem(429)
            .Needs(AccessToken.Admin)
            .RequireRateLimiting(RateLimits.Backtests);

        app.MapGet("/v1/backtests/{id}", (string id) => host.Backtests.Find(id) is { } run
            ? Results.Ok(Body(run))
            : NotFound(id))
            .Produces<BacktestBody>()
            .ProducesProblem(404)
            .Read(settings);

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
            return Results.Accepted("/v1/backtests/" + id, new BacktestCancellingBody(id, "cancelling"));
        })
            .Produces<BacktestCancellingBody>(StatusCodes.Status202Accepted)
            .ProducesProblem(404)
            .ProducesProblem(409)
            .Needs(AccessToken.Admin);
    }

    /// <summary>The body of <c>GET /v1/backtests/{id}</c> (and of the 202 of <c>POST /v1/backtests</c>).</summary>
    public static BacktestBody Body(BacktestRun run) => new(
        run.Id,
        run.State,
        run.Dataset,
        run.RuleVersions,
        run.Actor,
        run.StartedAt,
        run.FinishedAt,
        new BacktestProgressBody(run.Records, Math.Round(run.FileShare, 4)),
        run.Error,
        run.Result);

    private static IResult NotFound(string id) =>
        Results.Problem(statusCode: 404, title: "backtest not found", detail: $"no backtest '{id}' (the last {BacktestRunner.Kept} are kept)");

    /// <summary>Body of <c>POST /v1/backtests</c>: the dataset (default <c>online-retail</c>) and, optionally, a rule file to compare with the running set.</summary>
    /// <param name="Dataset"><c>online-retail</c> (default), <c>taobao</c> or <c>bank-callcenter</c>: read from the engine's data directory by its usual file name</param>
    /// <param name="Rules">a rule file (YAML, at most 1,048,576 characters) to compare with the running set; without it the running set alone is backtested</param>
    public sealed record BacktestRequest(string? Dataset, string? Rules);
}

/// <summary>One backtest started over HTTP: <c>GET /v1/backtests/{id}</c>, and the 202 of <c>POST /v1/backtests</c>.</summary>
/// <param name="Id">the backtest's id (<c>Location: /v1/backtests/{id}</c>)</param>
/// <param name="State"><c>running</c>, then <c>done</c>, <c>failed</c> or <c>cancelled</c></param>
/// <param name="Dataset">the dataset replayed</param>
/// <param name="RuleVersions">the running set's version (base), then the compared set's when a rule file was given</param>
/// <param name="StartedBy">the token name that started it (<c>anonymous</c> without one)</param>
/// <param name="StartedAt">when it started (UTC)</param>
/// <param name="FinishedAt">when it ended; null while running</param>
/// <param name="Progress">how far through the dataset file it is</param>
/// <param name="Error">why it failed; null unless <c>failed</c></param>
/// <param name="Result">when <c>done</c>, exactly the JSON <c>streaming backtest --out</c> writes for the same rule sets (a result for one set, or the comparison of two); else null</param>
public sealed record BacktestBody(
    string Id,
    string State,
    string Dataset,
    IReadOnlyList<string> RuleVersions,
    string StartedBy,
    DateTimeOffset StartedAt,
    DateTimeOffset? FinishedAt,
    BacktestProgressBody Progress,
    string? Error,
    JsonElement? Result);

/// <summary>A backtest's progress through its dataset file.</summary>
/// <param name="Records">input records read so far</param>
/// <param name="FileShare">share of the (compressed) file read, 0–1, rounded to 4 decimals</param>
public sealed record BacktestProgressBody(long Records, double FileShare);

/// <summary>The 202 of <c>DELETE /v1/backtests/{id}</c>: cancellation asked; the run ends as <c>cancelled</c> within moments.</summary>
/// <param name="Id">the backtest's id</param>
/// <param name="State">always <c>cancelling</c></param>
public sealed record BacktestCancellingBody(string Id, string State);
