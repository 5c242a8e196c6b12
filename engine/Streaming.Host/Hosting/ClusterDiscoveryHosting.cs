using System.Collections.Immutable;
using System.Globalization;
using Akka.Actor;
using Akka.Cluster;
using Akka.Discovery.Config.Hosting;
using Akka.Hosting;
using Akka.Management;
using Akka.Management.Cluster.Bootstrap;
using Akka.Management.Cluster.Bootstrap.ContactPoint;
using Akka.Management.Dsl;
using Newtonsoft.Json;

namespace Streaming.Host.Hosting;

/// <summary>
/// Cluster formation through discovery (<see cref="StreamingSettings.Discovery"/>): Akka.Management's Cluster Bootstrap
/// with the chosen discovery method (Akka.Discovery's <c>config</c>, or <see cref="KubernetesPodDiscovery"/>), and the
/// management HTTP endpoint its probes ask (<see cref="ManagementEndpoint"/>).
/// </summary>
/// <remarks>
/// Akka.Management serves its HTTP endpoint through Akka.Http.Shim, built against Ceen.Httpd 0.9.9; the package source
/// this project restores from serves only Ceen.Httpd 0.9.10, whose <c>HttpServer.ListenAsync</c> takes another parameter
/// type, so <c>AkkaManagement.Start()</c> fails with a <see cref="MissingMethodException"/> here. So Akka.Management is
/// configured (its host and port give Cluster Bootstrap this node's contact point) but not started, and the one route
/// Cluster Bootstrap needs, <c>GET /bootstrap/seed-nodes</c>, is served by the host's own Kestrel.
/// </remarks>
public static class ClusterDiscoveryHosting
{
    /// <summary>
    /// With a discovery method set: configures Akka.Management on <c>Streaming:Cluster:Hostname</c> and the management
    /// port, the discovery method, and Cluster Bootstrap, started with the actor system, which discovers the other nodes'
    /// management endpoints and joins this node to their cluster (or forms it). Without one: nothing (the engine joins the
    /// seed nodes or itself).
    /// </summary>
    public static AkkaConfigurationBuilder WithClusterDiscovery(this AkkaConfigurationBuilder akka, StreamingSettings settings)
    {
        ArgumentNullException.ThrowIfNull(akka);
        ArgumentNullException.ThrowIfNull(settings);
        var discovery = settings.Discovery;
        if (discovery.Method == DiscoveryMethod.None)
        {
            return akka;
        }

        // The address the others' bootstrap reaches, and the one it recognises itself by among the discovered endpoints
        // (so with Kubernetes the cluster host is the pod's IP, which the API lists).
        akka.WithAkkaManagement(
            management =>
            {
                management.HostName = settings.ClusterHostname;
                management.Port = discovery.ManagementPort;
            },
            autoStart: false);
        akka.WithClusterBootstrap(
            bootstrap =>
            {
                bootstrap.ContactPointDiscovery.ServiceName = discovery.ServiceName;
                bootstrap.ContactPointDiscovery.RequiredContactPointsNr = discovery.RequiredContactPoints;
                if (discovery.Method == DiscoveryMethod.Kubernetes)
                {
                    // Each pod's management port is the container port of this name.
                    bootstrap.ContactPointDiscovery.PortName = ClusterDiscoverySettings.ManagementPortName;
                }
                else
                {
                    // Endpoints are listed with their ports: several on one host are several nodes, not one node's ports.
                    bootstrap.ContactPoint.FilterOnFallbackPort = false;
                }
            },
            autoStart: false);
        if (discovery.Method == DiscoveryMethod.Kubernetes)
        {
            // Not Akka.Discovery.KubernetesApi's WithKubernetesDiscovery: see KubernetesPodDiscovery.
            akka.AddHocon(KubernetesPodDiscovery.Hocon(discovery.PodLabelSelector, discovery.PodNamespace), HoconAddMode.Prepend);
        }
        else
        {
            akka.WithConfigDiscovery(config => config.Services.Add(new Service { Name = discovery.ServiceName, Endpoints = [.. discovery.Endpoints] }));
        }

        return akka.AddStartup(async (system, _) =>
        {
            // Asking Akka.Management for its routes hands Cluster Bootstrap this node's contact point
            // (http://hostname:port/), without starting its HTTP server.
            AkkaManagement.Get(system).Routes();
            await ClusterBootstrap.Get(system).Start().ConfigureAwait(false);
        });
    }

    /// <summary>With a discovery method set: serves <see cref="ManagementEndpoint"/> while the host runs.</summary>
    public static IServiceCollection AddClusterDiscovery(this IServiceCollection services, StreamingSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Discovery.Method != DiscoveryMethod.None)
        {
            services.AddHostedService(provider => new ManagementEndpoint(settings.ClusterHostname, settings.Discovery.ManagementPort, provider.GetRequiredService<ActorSystem>()));
        }

        return services;
    }
}

/// <summary>
/// The management HTTP endpoint of a node formed through discovery: <c>GET /bootstrap/seed-nodes</c> on
/// <c>Streaming:Cluster:Hostname</c> and the management port, answering Cluster Bootstrap's probes from the other nodes
/// with this node's address and the cluster's live members (Akka.Management's JSON form,
/// <see cref="HttpBootstrapJsonProtocol.SeedNodes"/>).
/// </summary>
public sealed class ManagementEndpoint(string hostname, int port, ActorSystem system) : IHostedService, IAsyncDisposable
{
    /// <summary>The route Cluster Bootstrap probes on every contact point.</summary>
    public const string SeedNodesPath = "/bootstrap/seed-nodes";

    private WebApplication? _web;

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://{(hostname.Contains(':', StringComparison.Ordinal) ? $"[{hostname}]" : hostname)}:{port.ToString(CultureInfo.InvariantCulture)}");
        var web = builder.Build();
        web.MapGet(SeedNodesPath, () => Results.Text(SeedNodesJson(Cluster.Get(system)), "application/json"));
        await web.StartAsync(cancellationToken).ConfigureAwait(false);
        _web = web;
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_web is { } web)
        {
            await web.StopAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_web is { } web)
        {
            await web.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// This node's address and the members a joining node may contact: none while this node is leaving or gone, else the
    /// reachable members that are joining or up.
    /// </summary>
    public static string SeedNodesJson(Cluster cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        var self = cluster.SelfMember;
        var state = cluster.State;
        var members = self.Status is MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Leaving or MemberStatus.Removed
            ? []
            : state.Members
                .Where(m => m.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Joining && !state.Unreachable.Contains(m))
                .Select(m => new HttpBootstrapJsonProtocol.ClusterMember(m.UniqueAddress.Address, m.UniqueAddress.Uid, m.Status, m.Roles))
                .ToImmutableList();
        return JsonConvert.SerializeObject(new HttpBootstrapJsonProtocol.SeedNodes(self.UniqueAddress.Address, members));
    }
}
