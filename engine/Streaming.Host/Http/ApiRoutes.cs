using System.Diagnostics;
using Streaming.Host.Hosting;
using Streaming.Host.Metrics;

namespace Streaming.Host.Http;

/// <summary>The HTTP API of CONTRACTS.md §5. Errors are RFC 7807 problem+json.</summary>
public static class ApiRoutes
{
    private const int MaxCustomerIdLength = 256;

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

        // Resolved now, before the engine starts: a listener only sees measurements made after it subscribed.
        var collector = app.Services.GetRequiredService<PrometheusCollector>();
        var instruments = app.Services.GetRequiredService<MetricsInstruments>();
        app.MapGet("/metrics", async (HttpContext context) =>
        {
            var started = Stopwatch.GetTimestamp();
            context.Response.ContentType = PrometheusCollector.ContentType;
            await collector.WriteAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
            instruments.ScrapeDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
        });

        app.MapGet("/healthz", () => host.Engine.Stopped.IsCompleted
            ? Results.Problem(statusCode: 503, title: "engine stopped", detail: "the engine thread has ended")
            : Results.Ok(new { status = "ok" }));

        app.MapGet("/readyz", () => host.Engine.Ready
            ? Results.Ok(new { status = "ready", partitions = host.Engine.Status.Partitions.Count })
            : Results.Problem(statusCode: 503, title: "not ready", detail: "waiting for partition assignment"));

        app.MapGet("/v1/status", () =>
        {
            var status = host.Engine.Status;
            return Results.Ok(new
            {
                kafka = new { bootstrapServers = host.BootstrapServers, embedded = host.Embedded },
                consumerLag = status.ConsumerLag,
                eventsProcessed = host.Engine.EventsProcessed,
                deadLetters = host.Engine.DeadLetters,
                duplicates = host.Engine.Duplicates,
                checkpoints = host.Engine.Checkpoints,
                checkpointSeq = status.CheckpointSeq,
                cachedCustomers = status.CachedCustomers,
                passivations = host.Engine.Passivations,
                ready = host.Engine.Ready,
                partitions = status.Partitions.Select(p => new { topic = p.Topic, partition = p.Partition, offset = p.Offset, lag = p.Lag, watermark = p.Watermark }),
            });
        });

        app.MapGet("/v1/customers/{customerId}", async (string customerId, CancellationToken ct) =>
        {
            if (customerId.Length > MaxCustomerIdLength)
            {
                return Results.Problem(statusCode: 400, title: "invalid customer id", detail: $"customer ids are at most {MaxCustomerIdLength} characters");
            }

            var profile = await host.Engine.QueryAsync(view => view.FindCustomer(customerId), ct).ConfigureAwait(false);
            return profile is null
                ? Results.Problem(statusCode: 404, title: "customer not found", detail: $"no customer '{customerId}' on this node")
                : Results.Ok(profile);
        });
    }
}
