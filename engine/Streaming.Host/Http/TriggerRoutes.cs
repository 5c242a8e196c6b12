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
            return Results.Ok(new LeaseBody([.. items.Select(ItemBody)]));
        })
            .Produces<LeaseBody>()
            .ProducesProblem(400)
            .ProducesProblem(429)
            .Needs(AccessToken.Dialer)
            .RequireRateLimiting(RateLimits.Leases);

        app.MapPost("/v1/outreach/{outreachId}/ack", async (HttpContext context, string outreachId, AckRequest? body) =>
        {
            if (body?.Outcome is not { } outcome || !OutreachService.Outcomes.Contains(outcome))
            {
                return Invalid("outcome must be one of: " + string.Join(", ", OutreachService.Outcomes));
            }

            var result = await host.Outreach.AckAsync(outreachId, outcome, context.RequestAborted).ConfigureAwait(false);
            var actor = AccessPolicies.Actor(context) ?? "anonymous";

            // The token names who sent it; the lease's dialer which of the dialers that may share the token called.
            if (result.Status == 204)
            {
                host.Audit.Record(actor, "outreach.ack", $"outreach {AuditTrail.Quote(outreachId)}: {outcome}; dialer {AuditTrail.Quote(result.Dialer)}");
                return Results.NoContent();
            }

            host.Audit.Record(actor, "outreach.ack_refused", $"outreach {AuditTrail.Quote(outreachId)}: {outcome}; {result.Status} {result.Detail}; dialer {AuditTrail.Quote(result.Dialer)}");
            return Results.Problem(statusCode: result.Status, title: result.Status == 404 ? "outreach item not found" : "outreach item not open", detail: result.Detail);
        })
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblem(400)
            .ProducesProblem(404)
            .ProducesProblem(409)
            .Needs(AccessToken.Dialer);

        // Optional body {"dialer": "name"}: then only that dialer's current lease is given back (a dialer whose lease
        // ended and went to another cannot take the item from its new holder). A lease that ended is never released.
        app.MapPost("/v1/outreach/{outreachId}/release", async (HttpContext context, string outreachId) =>
        {
            ReleaseRequest? body = null;
            if (context.Request.ContentLength is > 0 || context.Request.Headers.TransferEncoding.Count > 0)
            {
                try
                {
                    body = await context.Request.ReadFromJsonAsync<ReleaseRequest>(context.RequestAborted).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is JsonException or InvalidOperationException)
                {
                    return Invalid("the body must be a JSON object such as {\"dialer\": \"name\"}, or empty");
                }
            }

            var actor = AccessPolicies.Actor(context) ?? "anonymous";
            if (host.Outreach.Release(outreachId, body?.Dialer) is not { } holder)
            {
                host.Audit.Record(actor, "outreach.release_refused", $"outreach {AuditTrail.Quote(outreachId)}: not leased" + (body?.Dialer is null ? "" : $" by {AuditTrail.Quote(body.Dialer)}"));
                return Results.Problem(statusCode: 409, title: "not leased", detail: body?.Dialer is null
                    ? $"outreach item '{outreachId}' is not leased"
                    : $"outreach item '{outreachId}' is not leased by '{body.Dialer}'");
            }

            host.Audit.Record(actor, "outreach.release", $"outreach {AuditTrail.Quote(outreachId)}; dialer {AuditTrail.Quote(holder)}");
            return Results.NoContent();
        })
            .Accepts<ReleaseRequest>(isOptional: true, "application/json")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblem(400)
            .ProducesProblem(409)
            .Needs(AccessToken.Dialer);

        app.MapGet("/v1/outreach/stats", () => Results.Ok(StatsBody(host)))
            .Produces<Dictionary<string, Dictionary<string, long>>>()
            .Read(settings);

        app.MapGet("/v1/customers/{customerId}/triggers", async (HttpContext context, string customerId, CancellationToken ct) =>
        {
            customerId = CustomerIdRoute.Of(context, customerId);
            if (CustomerIdRoute.Invalid(customerId) is { } invalid)
            {
                return invalid;
            }

            var body = await TriggersBody(host, customerId, ct).ConfigureAwait(false);
            if (body is not null)
            {
                return Results.Ok(body);
            }

            var found = await host.Engine.LookupAsync(customerId, ct).ConfigureAwait(false);
            return found.Served ? CustomerIdRoute.NotFound(customerId) : CustomerIdRoute.NotOwned(context, found.NotServedReason);
        })
            .Produces<CustomerTriggersBody>()
            .ProducesProblem(400)
            .ProducesProblem(404)
            .ProducesProblem(503)
            .Read(settings);

        app.MapGet("/v1/rules/{ruleId}/lift", async (string ruleId, CancellationToken ct) =>
            await LiftBody(host, ruleId, ct).ConfigureAwait(false) is { } body
                ? Results.Ok(body)
                : Results.Problem(statusCode: 404, title: "rule not found", detail: $"the rule set {host.Engine.ActiveRules.Version} has no trigger '{ruleId}'"))
            .Produces<LiftBody>()
            .ProducesProblem(404)
            .ProducesProblem(503)
            .Read(settings);
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
    internal static async Task<CustomerTriggersBody?> TriggersBody(EngineHost host, string customerId, CancellationToken ct)
    {
        var firings = (await host.Engine.LookupAsync(customerId, ct).ConfigureAwait(false)).State?.RecentFirings;
        if (firings is null)
        {
            return null;
        }

        var all = host.Store.OutreachOf(customerId, 100);
        var items = all.ToLookup(i => i.OutreachId);
        return new CustomerTriggersBody(
            customerId,
            [.. firings.AsEnumerable().Reverse().Select(f => new FiringBody(
                Id: f.Id,
                Rule: f.Rule,
                RuleVersion: f.RuleVersion,
                At: Time(f.AtTicks),
                Channel: TriggerNames.Of((ContactChannel)f.Channel),
                Delivery: TriggerNames.Of((Delivery)f.Delivery),
                SuppressedBy: f.SuppressedBy,
                Reason: f.Reason.Select(r => r.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : ""),
                Outcome: f.Outcome,
                Outreach: items[f.Id].Select(ItemBody).FirstOrDefault()))],
            [.. all.Select(ItemBody)]);
    }

    /// <summary>The body of <c>GET /v1/rules/{id}/lift</c>, or null when the running set has no such trigger.</summary>
    internal static async Task<LiftBody?> LiftBody(EngineHost host, string ruleId, CancellationToken ct)
    {
        var rules = host.Engine.ActiveRules;
        if (rules.FindTrigger(ruleId) is not { } trigger)
        {
            return null;
        }

        var counters = await host.Engine.RuleCountersAsync(ct).ConfigureAwait(false);
        long Count(string counter, string group) => counters.GetValueOrDefault((ruleId, counter, group));
        var contacted = Count("fired", "queued") + Count("fired", "notify");
        var contactedConverted = Count("converted", "queued") + Count("converted", "notify");
        var held = Count("fired", "holdout");
        var heldConverted = Count("converted", "holdout");
        decimal? Rate(long converted, long total) => total == 0 ? null : Math.Round((decimal)converted / total, 4);
        var contactedRate = Rate(contactedConverted, contacted);
        var holdoutRate = Rate(heldConverted, held);
        return new LiftBody(
            Rule: ruleId,
            RuleVersion: rules.Version,
            HoldoutShare: trigger.Holdout,
            AttributionDays: trigger.Attribution.TotalDays,
            Contacted: new LiftGroupBody(contacted, contactedConverted, contactedRate),
            Holdout: new LiftGroupBody(held, heldConverted, holdoutRate),
            Suppressed: new SuppressedGroupBody(Count("fired", "suppressed"), Count("converted", "suppressed")),
            Lift: contactedRate - holdoutRate,
            RelativeLift: holdoutRate is > 0 && contactedRate is { } c ? Math.Round((c - holdoutRate.Value) / holdoutRate.Value, 4) : null);
    }

    private static OutreachItemBody ItemBody(OutreachItem i) => new(
        OutreachId: i.OutreachId,
        CustomerId: i.CustomerId,
        Rule: i.Rule,
        Channel: i.Channel,
        Priority: i.Priority,
        DueAt: Time(i.DueTicks),
        ExpiresAt: Time(i.ExpiresTicks),
        LeaseUntil: i.LeaseUntilTicks == 0 ? null : Time(i.LeaseUntilTicks),
        Attempt: i.Attempt,
        State: i.State,
        Reason: i.Reason,
        Outcome: i.Outcome,
        Context: JsonSerializer.Deserialize<JsonElement>(i.Context));

    private static DateTimeOffset? Time(long ticks) => ticks == 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);

    private static IResult Invalid(string detail) => Results.Problem(statusCode: 400, title: "invalid request", detail: detail);

    /// <summary>Body of <c>POST /v1/outreach/lease</c>.</summary>
    public sealed record LeaseRequest(string? Channel, int? Max, int? LeaseSeconds, string? Dialer);

    /// <summary>Optional body of <c>POST /v1/outreach/{id}/release</c>: the dialer that holds the lease.</summary>
    public sealed record ReleaseRequest(string? Dialer);

    /// <summary>Body of <c>POST /v1/outreach/{id}/ack</c>.</summary>
    public sealed record AckRequest(string? Outcome);
}
