using System.Diagnostics;
using System.Text;
using Streaming.Connectors.Kafka;
using Streaming.Engine.Rules;
using Streaming.Host.Hosting;
using Streaming.Host.Http.Auth;
using Streaming.Host.Metrics;

namespace Streaming.Host.Http;

/// <summary>The HTTP API of CONTRACTS.md §5. Errors are RFC 7807 problem+json.</summary>
public static class ApiRoutes
{
    /// <summary>Largest rule file accepted by <c>PUT /v1/rules</c>.</summary>
    private const int MaxRulesBytes = 1 << 20;

    public static void AddServices(IServiceCollection services, PrometheusCollectorOptions metrics)
    {
        services.AddProblemDetails();
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.WriteIndented = false);
        services.AddSingleton(metrics);
        services.AddSingleton<PrometheusCollector>();
        services.AddSingleton<MetricsInstruments>();
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
        var collector = app.Services.GetRequiredService<PrometheusCollector>();
        var instruments = app.Services.GetRequiredService<MetricsInstruments>();
        app.MapGet("/metrics", async (HttpContext context) =>
        {
            var started = Stopwatch.GetTimestamp();
            context.Response.ContentType = PrometheusCollector.ContentType;
            await collector.WriteAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
            instruments.ScrapeDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }).Protect(settings);

        app.MapGet("/healthz", () => host.Engine.Stopped.IsCompleted
            ? Results.Problem(statusCode: 503, title: "engine stopped", detail: "the engine thread has ended")
            : Results.Ok(new { status = "ok" }));

        app.MapGet("/readyz", () => host.Engine.Ready
            ? Results.Ok(new { status = "ready", partitions = host.Engine.Status.Partitions.Count })
            : Results.Problem(statusCode: 503, title: "not ready", detail: "waiting for partition assignment"));

        app.MapGet("/v1/status", () => Results.Ok(StatusBody(host))).Read(settings);

        app.MapGet("/v1/customers/{customerId}", async (HttpContext context, string customerId, CancellationToken ct) =>
        {
            customerId = CustomerIdRoute.Of(context, customerId);
            if (CustomerIdRoute.Invalid(customerId) is { } invalid)
            {
                return invalid;
            }

            var (profile, served) = await host.Engine.QueryAsync(view => (view.FindCustomer(customerId), view.Serves(customerId)), ct).ConfigureAwait(false);
            return profile is not null ? Results.Ok(profile)
                : served ? CustomerIdRoute.NotFound(customerId)
                : CustomerIdRoute.NotOwned(context);
        }).Read(settings);

        TriggerRoutes.Map(app, host);

        app.MapGet("/v1/population", async (CancellationToken ct) =>
        {
            var population = await host.Engine.QueryAsync(view => view.Population(), ct).ConfigureAwait(false);
            return Results.Ok(PopulationBody(population));
        }).Read(settings);

        app.MapGet("/v1/rules", () => Results.Ok(RulesBody(host))).Read(settings);

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
                return Results.Accepted("/v1/rules", new { version = rules.Version, status = "pending", active = host.Engine.ActiveRules.Version });
            }
            catch (RuleSetException ex)
            {
                return Results.Problem(
                    statusCode: 400,
                    title: "invalid rule set",
                    detail: $"{ex.Errors.Count} error(s); the running rule set {host.Engine.ActiveRules.Version} stays in force",
                    extensions: new Dictionary<string, object?> { ["errors"] = ErrorsBody(ex.Errors) });
            }
        }).Needs(AccessToken.Admin).RequireRateLimiting(RateLimits.RuleUploads);

        AuditRoutes.Map(app, host);
        BacktestRoutes.Map(app, host);
        WebConsole.ConsoleRoutes.Map(app, host);
    }

    /// <summary>The body of <c>GET /v1/status</c>.</summary>
    internal static object StatusBody(EngineHost host)
    {
        var status = host.Engine.Status;
        return new
        {
            kafka = new { bootstrapServers = host.BootstrapServers, embedded = host.Embedded },
            // null while no partition is owned: "not assigned yet" must not read as "caught up" (CONTRACTS.md §5 v1.1).
            consumerLag = status.ConsumerLag,
            eventsProcessed = host.Engine.EventsProcessed,
            deadLetters = host.Engine.DeadLetters,
            duplicates = host.Engine.Duplicates,
            checkpoints = host.Engine.Checkpoints,
            checkpointSeq = status.CheckpointSeq,
            cachedCustomers = status.CachedCustomers,
            passivations = host.Engine.Passivations,
            ready = host.Engine.Ready,
            firingsPending = status.FiringsPending,
            outboxBacklog = host.Store.OutboxBacklog(),
            triggersPublished = host.Relay.Published,
            partitions = status.Partitions.Select(p => new { topic = p.Topic, partition = p.Partition, offset = p.Offset, lag = p.Lag, watermark = p.Watermark }),
            mirror = host.Mirror is { } m
                ? new
                {
                    enabled = true,
                    endpoint = m.Endpoint,
                    prefix = m.Schema.Prefix,
                    pending = m.Pending,
                    lagCheckpoints = m.LagCheckpoints,
                    lastSeq = m.MirroredSeq,
                    publishedSeq = m.PublishedSeq,
                    writes = m.Writes,
                    errors = m.Errors,
                }
                : null,
        };
    }

    /// <summary><c>/metrics</c>: open, unless <c>Streaming:Auth:ProtectMetrics</c> asks for the <c>metrics</c> scope.</summary>
    private static TBuilder Protect<TBuilder>(this TBuilder builder, StreamingSettings settings)
        where TBuilder : IEndpointConventionBuilder => settings.ProtectMetrics ? builder.Needs(AccessToken.Metrics) : builder;

    internal static object PopulationBody(PopulationView p)
    {
        Dictionary<string, long> Dimension(string name) => p.Counts
            .Where(c => c.Key.Dimension == name)
            .OrderBy(c => c.Key.Value, StringComparer.Ordinal)
            .ToDictionary(c => c.Key.Value, c => c.Value, StringComparer.Ordinal);

        var dimensions = p.Counts.Keys.Select(k => k.Dimension).Distinct().Order(StringComparer.Ordinal).ToList();
        return new
        {
            ruleVersion = p.RuleVersion,
            customers = Dimension("lifecycle").Values.Sum(),
            lifecycle = Dimension("lifecycle"),
            aarrr = Dimension("aarrr"),
            ladder = Dimension("ladder"),
            tier = Dimension(RuleEvaluator.TierDimension),
            rfmSegment = Dimension(RuleEvaluator.SegmentDimension),
            dimensions = dimensions.ToDictionary(d => d, Dimension, StringComparer.Ordinal),
            transitions = p.Transitions
                .OrderBy(t => t.Key.Dimension, StringComparer.Ordinal).ThenBy(t => t.Key.From, StringComparer.Ordinal).ThenBy(t => t.Key.To, StringComparer.Ordinal)
                .Select(t => new { dimension = t.Key.Dimension, from = t.Key.From, to = t.Key.To, count = t.Value }),
            timers = new { fired = p.TimersFired, late = p.LateTimersFired },
        };
    }

    internal static object RulesBody(EngineHost host)
    {
        var active = host.Engine.ActiveRules;
        var error = host.Rules.LastError;
        return new
        {
            name = active.Name,
            version = active.Version,
            pending = host.Engine.PendingRules?.Version,
            origin = host.Rules.Origin,
            directory = host.Rules.Directory,
            files = active.Sources.Select(s => new { file = s.FileName, text = s.Text }),
            ladders = active.Ladders.Select(l => new { name = l.Name, stages = l.Stages.Select(s => new { stage = s.Name, when = s.When.Text }) }),
            rfmSegments = active.Rfm.Segments.Select(s => new { name = s.Name, when = s.When.Text }),
            tiers = active.Tiers.Levels.Select(l => new { name = l.Name, points = l.Points }),
            tags = active.Tags.Select(t => new { name = t.Name, when = t.When.Text }),
            churnRisk = active.ChurnRisk.Text,
            lastError = error is null ? null : new { at = error.At, origin = error.Origin, errors = ErrorsBody(error.Errors) },
        };
    }

    internal static IEnumerable<object> ErrorsBody(IReadOnlyList<RuleError> errors) =>
        errors.Select(e => new { file = e.File, line = e.Line, column = e.Column, message = e.Message, text = e.ToString() });

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
