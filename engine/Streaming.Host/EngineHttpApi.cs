using Streaming.Host.Hosting;
using Streaming.Host.Http;
using Streaming.Host.Metrics;
using Streaming.Host.WebConsole;

namespace Streaming.Host;

/// <summary>
/// The engine's HTTP surface composed for <see cref="EngineHost"/>: the API (<see cref="ApiRoutes"/>, bearer tokens and
/// scopes, rate limits) and the web console (<see cref="ConsoleRoutes"/>). It lives beside the composition root so
/// that neither hosting nor the API layer depends on the console.
/// </summary>
public sealed class EngineHttpApi : IHttpApi
{
    /// <inheritdoc />
    public void AddServices(IServiceCollection services, StreamingSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ApiRoutes.AddServices(services, new MeterBridgeOptions { MeterPrefixes = settings.MetricsMeterPrefixes }, settings);
        Http.Auth.AccessPolicies.AddTo(services);
        Http.Auth.RateLimits.AddTo(services, settings);
    }

    /// <inheritdoc />
    public void Map(WebApplication app, EngineHost host)
    {
        ApiRoutes.Map(app, host);
        ConsoleRoutes.Map(app, host);
    }
}
