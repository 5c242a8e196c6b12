namespace Streaming.Host.Hosting;

/// <summary>
/// The engine's HTTP surface as the host composes it: its services (problem details, JSON, authentication, rate limits,
/// metrics exposition, the OpenAPI document) and its routes. Implemented in <c>Streaming.Host.Http</c>; the host knows
/// only this interface, so hosting does not depend on the HTTP layer, which depends on hosting.
/// </summary>
public interface IHttpApi
{
    /// <summary>Registers the services the routes need, before the web application is built.</summary>
    void AddServices(IServiceCollection services, StreamingSettings settings);

    /// <summary>Maps middleware and routes onto the built application, answering for <paramref name="host"/>.</summary>
    void Map(WebApplication app, EngineHost host);
}
