using System.Text.Json;
using Streaming.Connectors.Triggers;
using Streaming.Engine.Rules;
using Streaming.Host.Hosting;
using Streaming.Host.Http.Auth;

namespace Streaming.Host.Http;

/// <summary>The outreach queue (CONTRACTS.md §7), firing explanations and rule lift.</summary>
public static class TriggerRoutes
{
    private const int MaxLease = 100;

    public static void Map(WebApplication app, EngineHost host)
    {
        var settings = host.Settings;

        app.MapPost("/v1/outreach/lease", async (HttpContext context, LeaseRequest? body) =>
        {
            if (body is null || body.Channel is not ("voice" or "sms"))
            {
                return Invalid("channel must be voice or sms");
            }

            var max = body.Max ?? 1;
            var leaseSeconds = body.LeaseSeconds ?? 60;
            if (max is < 1 or > MaxLease || leaseSeconds is < 5 or > 86_400 || string.IsNullOrWhiteSpace(body.Dialer) || body.Dialer.Length > 128)
            {
                return Invalid($"max is 1–{MaxLease}, leaseSeconds 5–86400, dialer a name of at most 128 characters");
            }

            var items = await host.Outreach.LeaseAsync(body.Channel, max, TimeSpan.FromSeconds(leaseSeconds), body.Dialer, context.RequestAborted).ConfigureAwait(false);
            return Results.Ok(new { items = items.Select(ItemBody) });
        }).Needs(AccessToken.Dialer).RequireRateLimiting(RateLimits.Leases);

        app.MapPost("/v1/outreach/{outreachId}/ack", async (HttpContext context, string outreachId, AckRequest? body) =>
        {
            if (body?.Outcome is not { } outcome || !OutreachService.Outcomes.Contains(outcome))
            {
                return Invalid("outcome must be one of: " + string.Join(", ", OutreachService.Outcomes));
            }

            var result = await host.Outreach.AckAsync(outreachId, outcome, context.RequestAborted).ConfigureAwait(false);
            if (result.Status == 204)
            {
                host.Audit.Record(AccessPolicies.Actor(context) ?? "anonymous", "outreach.ack", $"outreach {outreachId}: {outcome}");
                return Results.NoContent();
            }

            return Results.Problem(statusCode: result.Status, title: result.Status == 404 ? "outreach item not found" : "outreach item not open", detail: result.Detail);
        }).Needs(AccessToken.Dialer);

        app.MapPost("/v1/outreach/{outreachId}/release", (HttpContext context, string outreachId) =>
        {
            if (!host.Outreach.Release(outreachId))
            {
                return Results.Problem(statusCode: 409, title: "not leased", detail: $"outreach item '{outreachId}' is not leased");
            }

            host.Audit.Record(AccessPolicies.Actor(context) ?? "anonymous", "outreach.release", $"outreach {outreachId}");
            return Results.NoContent();
        }).Needs(AccessToken.Dialer);

        app.MapGet("/v1/outreach/stats", () => Results.Ok(StatsBody(host))).Read(settings);

        app.MapGet("/v1/customers/{customerId}/triggers", async (HttpContext context, string customerId, CancellationToken ct) =>
        {
            customerId = CustomerIdRoute.Of(context, customerId);
            if (CustomerIdRoute.Invalid(customerId) is { } invalid)
            {
                return invalid;
            }

            var body = await TriggersBody(host, customerId, ct).ConfigureAwait(false);
            return body is not null ? Results.Ok(body)
                : await host.Engine.QueryAsync(view => view.Serves(customerId), ct).ConfigureAwait(false) ? CustomerIdRoute.NotFound(customerId)
                : CustomerIdRoute.NotOwned(context);
        }).Read(settings);

        app.MapGet("/v1/rules/{ruleId}/lift", async (string ruleId, CancellationToken ct) =>
            await LiftBody(host, ruleId, ct).ConfigureAwait(false) is { } body
                ? Results.Ok(body)
                : Results.Problem(statusCode: 404, title: "rule not found", detail: $"the rule set {host.Engine.ActiveRules.Version} has no trigger '{ruleId}'")).Read(settings);
    }

    /// <summary>The body of <c>GET /v1/outreach/stats</c>: per channel, counts per state.</summary>
    internal static Dictionary<string, Dictionary<string, long>> StatsBody(EngineHost host)
    {
        var stats = host.Outreach.Stats();
        var channels = stats.Keys.Select(k => k.Channel).Append("voice").Append("sms").Distinct().Order(StringComparer.Ordinal);
        return channels.ToDictionary(
            c => c,
            c => OutreachStates.All.ToDictionary(s => s, s => stats.GetValueOrDefault((c, s))), StringComparer.Ordinal);
    }

    /// <summary>The body of <c>GET /v1/customers/{id}/triggers</c>, or null when this node has no such customer.</summary>
    internal static async Task<object?> TriggersBody(EngineHost host, string customerId, CancellationToken ct)
    {
        var firings = await host.Engine.QueryAsync(
            view => view.FindState(customerId) is { } found ? found.State.RecentFirings.Select(f => f with { }).ToList() : null,
            ct).ConfigureAwait(false);
        if (firings is null)
        {
            return null;
        }

        var all = host.Store.OutreachOf(customerId, 100);
        var items = all.ToLookup(i => i.OutreachId);
        return new
        {
            customerId,
            firings = firings.AsEnumerable().Reverse().Select(f => new
            {
                id = f.Id,
                rule = f.Rule,
                ruleVersion = f.RuleVersion,
                at = Time(f.AtTicks),
                channel = TriggerNames.Of((ContactChannel)f.Channel),
                delivery = TriggerNames.Of((Delivery)f.Delivery),
                suppressedBy = f.SuppressedBy,
                reason = f.Reason.Select(r => r.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : ""),
                outcome = f.Outcome,
                outreach = items[f.Id].Select(ItemBody).FirstOrDefault(),
            }),
            outreach = all.Select(ItemBody),
        };
    }

    /// <summary>The body of <c>GET /v1/rules/{id}/lift</c>, or null when the running set has no such trigger.</summary>
    internal static async Task<object?> LiftBody(EngineHost host, string ruleId, CancellationToken ct)
    {
        var rules = host.Engine.ActiveRules;
        if (rules.FindTrigger(ruleId) is not { } trigger)
        {
            return null;
        }

        var counters = await host.Engine.QueryAsync(view => view.RuleCounters(), ct).ConfigureAwait(false);
        long Count(string counter, string group) => counters.GetValueOrDefault((ruleId, counter, group));
        var contacted = Count("fired", "queued") + Count("fired", "notify");
        var contactedConverted = Count("converted", "queued") + Count("converted", "notify");
        var held = Count("fired", "holdout");
        var heldConverted = Count("converted", "holdout");
        decimal? Rate(long converted, long total) => total == 0 ? null : Math.Round((decimal)converted / total, 4);
        var contactedRate = Rate(contactedConverted, contacted);
        var holdoutRate = Rate(heldConverted, held);
        return new
        {
            rule = ruleId,
            ruleVersion = rules.Version,
            holdoutShare = trigger.Holdout,
            attributionDays = trigger.Attribution.TotalDays,
            contacted = new { firings = contacted, conversions = contactedConverted, rate = contactedRate },
            holdout = new { firings = held, conversions = heldConverted, rate = holdoutRate },
            suppressed = new { firings = Count("fired", "suppressed"), conversions = Count("converted", "suppressed") },
            lift = contactedRate - holdoutRate,
            relativeLift = holdoutRate is > 0 && contactedRate is { } c ? Math.Round((c - holdoutRate.Value) / holdoutRate.Value, 4) : (decimal?)null,
        };
    }

    private static object ItemBody(OutreachItem i) => new
    {
        outreachId = i.OutreachId,
        customerId = i.CustomerId,
        rule = i.Rule,
        channel = i.Channel,
        priority = i.Priority,
        dueAt = Time(i.DueTicks),
        expiresAt = Time(i.ExpiresTicks),
        leaseUntil = i.LeaseUntilTicks == 0 ? null : Time(i.LeaseUntilTicks),
        attempt = i.Attempt,
        state = i.State,
        reason = i.Reason,
        outcome = i.Outcome,
        context = JsonSerializer.Deserialize<JsonElement>(i.Context),
    };

    private static DateTimeOffset? Time(long ticks) => ticks == 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);

    private static IResult Invalid(string detail) => Results.Problem(statusCode: 400, title: "invalid request", detail: detail);

    /// <summary>Body of <c>POST /v1/outreach/lease</c>.</summary>
    public sealed record LeaseRequest(string? Channel, int? Max, int? LeaseSeconds, string? Dialer);

    /// <summary>Body of <c>POST /v1/outreach/{id}/ack</c>.</summary>
    public sealed record AckRequest(string? Outcome);
}
