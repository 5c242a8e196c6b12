using System.Diagnostics;
using System.Text;
using Prometheus;
using Streaming.Connectors.Kafka;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;
using Streaming.Host.Hosting;
using Streaming.Host.Http.Auth;
using Streaming.Host.Metrics;

namespace Streaming.Host.Http;

/// <summary>The HTTP API of CONTRACTS.md §5. Errors are RFC 7807 problem+json.</summary>
public static class ApiRoutes
{
    /// <summary>Largest rule file accepted by <c>PUT /v1/rules</c>.</summary>
    private const int MaxRulesBytes = 1 << 20;

    /// <summary>Problem details, JSON options, the meter bridge and the OpenAPI document (which follows <paramref name="settings"/>' access switches).</summary>
    public static void AddServices(IServiceCollection services, MeterBridgeOptions metrics, StreamingSettings settings)
    {
        services.AddProblemDetails();
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.WriteIndented = false);
        services.AddSingleton(metrics);
        services.AddSingleton<MeterBridge>();
        services.AddSingleton<MetricsInstruments>();
        OpenApiDocument.AddTo(services, settings);
    }

    public static void Map(WebApplication app, EngineHost host)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        CustomerIdRoute.Use(app);
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRateLimiter();
        var settings = host.Settings;

        // Reads that need the engine thread answer 503 while it is stopping or after it failed.
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context).ConfigureAwait(false);
            }
            catch (EngineStoppedException ex) when (!context.Response.HasStarted)
            {
                await Results.Problem(statusCode: 503, title: "engine not running", detail: ex.Message).ExecuteAsync(context).ConfigureAwait(false);
            }
        });

        // Resolved now, before the engine starts: a listener only sees measurements made after it subscribed.
        var bridge = app.Services.GetRequiredService<MeterBridge>();
        var instruments = app.Services.GetRequiredService<MetricsInstruments>();
        app.Use(async (context, next) =>
        {
            if (!context.Request.Path.Equals("/metrics", StringComparison.OrdinalIgnoreCase))
            {
                await next(context).ConfigureAwait(false);
                return;
            }

            var started = Stopwatch.GetTimestamp();
            await next(context).ConfigureAwait(false);
            instruments.ScrapeDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
        });

        // prometheus-net writes the exposition; OpenMetrics stays off so every scraper gets text format 0.0.4.
        app.MapMetrics(options =>
        {
            options.Registry = bridge.Registry;
            options.EnableOpenMetrics = false;
        }).Protect(settings);

        app.MapOpenApi("/openapi/{documentName}.json");

        app.MapGet("/healthz", () => host.Engine.Stopped.IsCompleted
            ? Results.Problem(statusCode: 503, title: "engine stopped", detail: "the engine thread has ended")
            : Results.Ok(new HealthBody("ok")))
            .Produces<HealthBody>()
            .ProducesProblem(503);

        app.MapGet("/readyz", () => host.Engine.Ready
            ? Results.Ok(new HealthBody("ready", host.Engine.Status.Partitions.Count))
            : Results.Problem(statusCode: 503, title: "not ready", detail: "waiting for partition assignment"))
            .Produces<HealthBody>()
            .ProducesProblem(503);

        app.MapGet("/v1/status", () => Results.Ok(StatusBody(host)))
            .Produces<StatusBody>()
            .Read(settings);

        app.MapGet("/v1/customers/{customerId}", async (HttpContext context, string customerId, CancellationToken ct) =>
        {
            customerId = CustomerIdRoute.Of(context, customerId);
            if (CustomerIdRoute.Invalid(customerId) is { } invalid)
            {
                return invalid;
            }

            var found = await host.Engine.LookupAsync(customerId, ct).ConfigureAwait(false);
            return found.Profile is { } profile ? Results.Ok(profile)
                : found.Served ? CustomerIdRoute.NotFound(customerId)
                : CustomerIdRoute.NotOwned(context, found.NotServedReason);
        })
            .Produces<CustomerProfile>()
            .ProducesProblem(400)
            .ProducesProblem(404)
            .ProducesProblem(503)
            .Read(settings);

        TriggerRoutes.Map(app, host);

        app.MapGet("/v1/population", async (CancellationToken ct) =>
        {
            var population = await host.Engine.PopulationAsync(ct).ConfigureAwait(false);
            return Results.Ok(PopulationBody(population));
        })
            .Produces<PopulationBody>()
            .ProducesProblem(503)
            .Read(settings);

        // CONTRACTS §8: this node's address and every member with the partitions it hosts.
        app.MapGet("/v1/cluster", () => Results.Ok(host.Engine.Membership))
            .Produces<ClusterMembership>()
            .Read(settings);

        app.MapGet("/v1/rules", () => Results.Ok(RulesBody(host)))
            .Produces<RulesBody>()
            .Read(settings);

        app.MapPut("/v1/rules", async (HttpContext context) =>
        {
            if (host.Rules.Directory is not null)
            {
                return Results.Problem(statusCode: 409, title: "rules come from a directory", detail: $"this engine watches {host.Rules.Directory}; edit the files there");
            }

            var text = await ReadLimitedAsync(context.Request, MaxRulesBytes, context.RequestAborted).ConfigureAwait(false);
            if (text is null)
            {
                return Results.Problem(statusCode: 413, title: "rule file too large", detail: $"at most {MaxRulesBytes} bytes");
            }

            try
            {
                var rules = host.Rules.Submit(text, "rules.yaml", AccessPolicies.Actor(context) ?? "anonymous");
                return Results.Accepted("/v1/rules", new RulesAcceptedBody(rules.Version, "pending", host.Engine.ActiveRules.Version));
            }
            catch (RuleSetException ex)
            {
                return Results.Problem(
                    statusCode: 400,
                    title: "invalid rule set",
                    detail: $"{ex.Errors.Count} error(s); the running rule set {host.Engine.ActiveRules.Version} stays in force",
                    extensions: new Dictionary<string, object?> { ["errors"] = ErrorsBody(ex.Errors) });
            }
        })
            .Accepts<string>("application/yaml", "text/yaml", "text/plain")
            .Produces<RulesAcceptedBody>(StatusCodes.Status202Accepted)
            .ProducesProblem(400)
            .ProducesProblem(409)
            .ProducesProblem(413)
            .ProducesProblem(429)
            .Needs(AccessToken.Admin)
            .RequireRateLimiting(RateLimits.RuleUploads);

        AuditRoutes.Map(app, host);
        BacktestRoutes.Map(app, host);
    }

    /// <summary>The body of <c>GET /v1/status</c> (the console renders the same).</summary>
    internal static StatusBody StatusBody(EngineHost host)
    {
        var status = host.Engine.Status;
        return new StatusBody(
            Kafka: new KafkaBody(host.BootstrapServers, host.Embedded),
            ConsumerLag: status.ConsumerLag,
            EventsProcessed: host.Engine.EventsProcessed,
            DeadLetters: host.Engine.DeadLetters,
            Duplicates: host.Engine.Duplicates,
            Checkpoints: host.Engine.Checkpoints,
            CheckpointSeq: status.CheckpointSeq,
            CachedCustomers: status.CachedCustomers,
            Passivations: host.Engine.Passivations,
            FiringsPending: status.FiringsPending,
            OutboxBacklog: host.Store.OutboxBacklog(),
            TriggersPublished: host.Relay.Published,
            Partitions: [.. status.Partitions.Select(p => new PartitionBody(p.Topic, p.Partition, p.Offset, p.Lag, p.Watermark))],
            Mirror: host.Mirror is { } m
                ? new MirrorBody(true, m.Endpoint, m.Schema.Prefix, m.Pending, m.LagCheckpoints, m.MirroredSeq, m.PublishedSeq, m.Writes, m.Errors)
                : null)
        {
            Ready = host.Engine.Ready,
        };
    }

    /// <summary><c>/metrics</c>: open, unless <c>Streaming:Auth:ProtectMetrics</c> asks for the <c>metrics</c> scope.</summary>
    private static TBuilder Protect<TBuilder>(this TBuilder builder, StreamingSettings settings)
        where TBuilder : IEndpointConventionBuilder => settings.ProtectMetrics ? builder.Needs(AccessToken.Metrics) : builder;

    internal static PopulationBody PopulationBody(PopulationView p)
    {
        Dictionary<string, long> Dimension(string name) => p.Counts
            .Where(c => c.Key.Dimension == name)
            .OrderBy(c => c.Key.Value, StringComparer.Ordinal)
            .ToDictionary(c => c.Key.Value, c => c.Value, StringComparer.Ordinal);

        var dimensions = p.Counts.Keys.Select(k => k.Dimension).Distinct().Order(StringComparer.Ordinal).ToList();
        return new PopulationBody(
            RuleVersion: p.RuleVersion,
            Customers: Dimension("lifecycle").Values.Sum(),
            Lifecycle: Dimension("lifecycle"),
            Aarrr: Dimension("aarrr"),
            Ladder: Dimension("ladder"),
            Tier: Dimension(RuleEvaluator.TierDimension),
            RfmSegment: Dimension(RuleEvaluator.SegmentDimension),
            Dimensions: dimensions.ToDictionary(d => d, d => (IReadOnlyDictionary<string, long>)Dimension(d), StringComparer.Ordinal),
            Transitions: [.. p.Transitions
                .OrderBy(t => t.Key.Dimension, StringComparer.Ordinal).ThenBy(t => t.Key.From, StringComparer.Ordinal).ThenBy(t => t.Key.To, StringComparer.Ordinal)
                .Select(t => new TransitionBody(t.Key.Dimension, t.Key.From, t.Key.To, t.Value))],
            Timers: new TimersBody(p.TimersFired, p.LateTimersFired));
    }

    internal static RulesBody RulesBody(EngineHost host)
    {
        var active = host.Engine.ActiveRules;
        var error = host.Rules.LastError;
        return new RulesBody(
            Name: active.Name,
            Version: active.Version,
            Pending: host.Engine.PendingRules?.Version,
            Origin: host.Rules.Origin,
            Directory: host.Rules.Directory,
            Files: [.. active.Sources.Select(s => new RuleFileBody(s.FileName, s.Text))],
            Ladders: [.. active.Ladders.Select(l => new LadderBody(l.Name, [.. l.Stages.Select(s => new LadderStageBody(s.Name, s.When.Text))]))],
            RfmSegments: [.. active.Rfm.Segments.Select(s => new ConditionBody(s.Name, s.When.Text))],
            Tiers: [.. active.Tiers.Levels.Select(l => new TierBody(l.Name, l.Points))],
            Tags: [.. active.Tags.Select(t => new ConditionBody(t.Name, t.When.Text))],
            ChurnRisk: active.ChurnRisk.Text,
            LastError: error is null ? null : new RulesErrorBody(error.At, error.Origin, ErrorsBody(error.Errors)));
    }

    internal static List<RuleErrorBody> ErrorsBody(IReadOnlyList<RuleError> errors) =>
        [.. errors.Select(e => new RuleErrorBody(e.File, e.Line, e.Column, e.Message, e.ToString()))];

    /// <summary>The body as UTF-8 text, or null if it is longer than <paramref name="limit"/> bytes.</summary>
    private static async Task<string?> ReadLimitedAsync(HttpRequest request, int limit, CancellationToken ct)
    {
        if (request.ContentLength > limit)
        {
            return null;
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
