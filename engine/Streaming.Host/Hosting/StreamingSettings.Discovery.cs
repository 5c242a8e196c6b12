using System.Globalization;

namespace Streaming.Host.Hosting;

/// <summary>How a cluster node finds the others (<c>Streaming:Cluster:Discovery:Method</c>).</summary>
public enum DiscoveryMethod
{
    /// <summary>No discovery: the node joins <c>Streaming:Cluster:SeedNodes</c>, or forms a cluster of its own.</summary>
    None,

    /// <summary>The pods the Kubernetes API lists under a label selector (<see cref="KubernetesPodDiscovery"/>).</summary>
    Kubernetes,

    /// <summary>A fixed list of management endpoints in the configuration (Akka.Discovery's <c>config</c> method).</summary>
    Config,
}

/// <summary>
/// Cluster formation through Akka.Management's Cluster Bootstrap (<c>Streaming:Cluster:Discovery:*</c>): every node
/// serves the management HTTP endpoint on <see cref="ManagementPort"/>, discovers the others' endpoints with
/// <see cref="Method"/>, and joins the cluster they report; when none exists yet, the node with the lowest address among
/// at least <see cref="RequiredContactPoints"/> that all answered forms it.
/// </summary>
public sealed record ClusterDiscoverySettings
{
    /// <summary>The management HTTP port when <c>Streaming:Cluster:Discovery:ManagementPort</c> is not set: Akka.Management's own default.</summary>
    public const int DefaultManagementPort = 8558;

    /// <summary>
    /// The name the Kubernetes method looks the management port up by among the pod's container ports
    /// (Cluster Bootstrap's <c>port-name</c>): a pod must declare its management port under this name.
    /// </summary>
    public const string ManagementPortName = "management";

    /// <summary><c>Streaming:Cluster:Discovery:Method</c> (<c>run --discovery</c>): <c>none</c> (default), <c>kubernetes</c> or <c>config</c>.</summary>
    public DiscoveryMethod Method { get; init; } = DiscoveryMethod.None;

    /// <summary>
    /// <c>Streaming:Cluster:Discovery:ServiceName</c>, default <c>streaming-engine</c>: the service looked up. With
    /// <c>kubernetes</c> it fills the <c>{0}</c> of <see cref="PodLabelSelector"/> (the pods' label value); with
    /// <c>config</c> it only names the endpoint list.
    /// </summary>
    public string ServiceName { get; init; } = "streaming-engine";

    /// <summary>
    /// <c>Streaming:Cluster:Discovery:RequiredContactPoints</c>, default 2 (Cluster Bootstrap's
    /// <c>required-contact-point-nr</c> default): how many nodes must have been discovered and have answered before the
    /// first of them forms a new cluster. Joining a cluster that exists needs only one node that reports it.
    /// </summary>
    public int RequiredContactPoints { get; init; } = 2;

    /// <summary>
    /// <c>Streaming:Cluster:Discovery:ManagementPort</c> (<c>run --management-port</c>), default
    /// <see cref="DefaultManagementPort"/>: the TCP port of this node's Akka.Management HTTP endpoint, bound on
    /// <c>Streaming:Cluster:Hostname</c>; the other nodes' Cluster Bootstrap asks it which cluster this node is in.
    /// </summary>
    public int ManagementPort { get; init; } = DefaultManagementPort;

    /// <summary>
    /// <c>Streaming:Cluster:Discovery:PodLabelSelector</c> (<c>kubernetes</c> only): the label selector of the engine's
    /// pods, <c>{0}</c> standing for <see cref="ServiceName"/>; null: <c>app={0}</c> (Akka.Discovery.KubernetesApi's default too).
    /// </summary>
    public string? PodLabelSelector { get; init; }

    /// <summary>
    /// <c>Streaming:Cluster:Discovery:PodNamespace</c> (<c>kubernetes</c> only): the namespace the pods are listed in; null:
    /// as Akka.Discovery.KubernetesApi does it, the pod's own namespace from its service account
    /// (<c>/var/run/secrets/kubernetes.io/serviceaccount/namespace</c>), else <c>default</c>.
    /// </summary>
    public string? PodNamespace { get; init; }

    /// <summary>
    /// <c>Streaming:Cluster:Discovery:Endpoints:0</c>, … (<c>run --discovery-endpoint</c>, repeatable; <c>config</c> only):
    /// every node's management endpoint, <c>host:port</c> (this node's own included, as
    /// <c>Streaming:Cluster:Hostname</c>:<see cref="ManagementPort"/>).
    /// </summary>
    public IReadOnlyList<string> Endpoints { get; init; } = [];

    /// <summary>The configuration value of <see cref="Method"/>: <c>none</c>, <c>kubernetes</c> or <c>config</c>.</summary>
    public string MethodName => Method.ToString().ToLowerInvariant();
}

/// <summary>Reading and checking <c>Streaming:Cluster:Discovery:*</c>.</summary>
public sealed partial record StreamingSettings
{
    private static readonly string[] s_discoveryMethods = ["none", "kubernetes", "config"];

    /// <summary>Reads <c>Cluster:Discovery:*</c> of the <c>Streaming</c> section <paramref name="s"/>.</summary>
    private static ClusterDiscoverySettings ReadDiscovery(IConfigurationSection s)
    {
        var defaults = new ClusterDiscoverySettings();
        var d = s.GetSection("Cluster:Discovery");
        var method = Blank(d["Method"])?.Trim().ToLowerInvariant() ?? "none";
        return new ClusterDiscoverySettings
        {
            Method = method switch
            {
                "none" => DiscoveryMethod.None,
                "kubernetes" => DiscoveryMethod.Kubernetes,
                "config" => DiscoveryMethod.Config,
                _ => throw new InvalidOperationException($"configuration Streaming:Cluster:Discovery:Method = '{d["Method"]}' must be one of {string.Join(", ", s_discoveryMethods.Select(m => $"'{m}'"))}"),
            },
            ServiceName = Blank(d["ServiceName"])?.Trim() ?? defaults.ServiceName,
            RequiredContactPoints = Int(s, "Cluster:Discovery:RequiredContactPoints", defaults.RequiredContactPoints, 1, 1000),
            ManagementPort = Int(s, "Cluster:Discovery:ManagementPort", defaults.ManagementPort, 1, 65535),
            PodLabelSelector = Blank(d["PodLabelSelector"])?.Trim(),
            PodNamespace = Blank(d["PodNamespace"])?.Trim(),
            Endpoints = d.GetSection("Endpoints").GetChildren().Select(c => Blank(c.Value)?.Trim()).OfType<string>().ToList(),
        };
    }

    /// <summary>
    /// Refuses discovery settings that cannot form a cluster: discovery together with seed nodes (two ways of joining),
    /// keys of one method given to the other, a service name that is no label value, the management port on the cluster
    /// port, and for <c>config</c> no endpoints, a malformed one, none that is this node, or fewer endpoints than
    /// required contact points (a cluster would never form).
    /// </summary>
    /// <exception cref="InvalidOperationException">The reason, naming the keys.</exception>
    private void CheckDiscovery()
    {
        const string Key = "configuration Streaming:Cluster:Discovery";
        var d = Discovery;
        if (d.Method == DiscoveryMethod.None)
        {
            if (d.Endpoints.Count > 0 || d.PodLabelSelector is not null || d.PodNamespace is not null)
            {
                throw new InvalidOperationException($"{Key}: Endpoints, PodLabelSelector and PodNamespace are read only with a discovery method; set Streaming:Cluster:Discovery:Method ('kubernetes' or 'config', --discovery) or drop them");
            }

            return;
        }

        if (SeedNodes.Count > 0)
        {
            throw new InvalidOperationException($"{Key}:Method = '{d.MethodName}' and Streaming:Cluster:SeedNodes (--seed-node) both say how the node joins its cluster: set one of them (with discovery, drop the seed nodes)");
        }

        if (d.ServiceName.Length > 63 || !d.ServiceName.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
        {
            throw new InvalidOperationException($"{Key}:ServiceName = '{d.ServiceName}' must be 1 to 63 letters, digits, '-', '_' or '.' (a Kubernetes label value)");
        }

        if (d.ManagementPort == ClusterPort)
        {
            throw new InvalidOperationException($"{Key}:ManagementPort = {d.ManagementPort} is also Streaming:Cluster:Port: the management HTTP endpoint and cluster remoting need ports of their own");
        }

        if (d.Method == DiscoveryMethod.Kubernetes)
        {
            if (d.Endpoints.Count > 0)
            {
                throw new InvalidOperationException($"{Key}:Endpoints is read only with Method = 'config'; with 'kubernetes' the nodes are the pods the API lists (PodLabelSelector)");
            }

            return;
        }

        if (d.PodLabelSelector is not null || d.PodNamespace is not null)
        {
            throw new InvalidOperationException($"{Key}:PodLabelSelector and PodNamespace are read only with Method = 'kubernetes'; with 'config' the nodes are Streaming:Cluster:Discovery:Endpoints");
        }

        if (d.Endpoints.Count == 0)
        {
            throw new InvalidOperationException($"{Key}:Method = 'config' needs Streaming:Cluster:Discovery:Endpoints:0, … (--discovery-endpoint): every node's management endpoint, host:port");
        }

        foreach (var endpoint in d.Endpoints)
        {
            var colon = endpoint.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(endpoint.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                throw new InvalidOperationException($"{Key}:Endpoints: endpoint '{endpoint}' must be host:port (the node's Streaming:Cluster:Hostname and management port), e.g. 10.0.0.5:{ClusterDiscoverySettings.DefaultManagementPort}");
            }
        }

        var self = ClusterHostname + ":" + d.ManagementPort.ToString(CultureInfo.InvariantCulture);
        if (!d.Endpoints.Contains(self, StringComparer.OrdinalIgnoreCase))
        {
            // Cluster Bootstrap recognises itself among the endpoints by this address; a node missing from the list never
            // forms the cluster, and with all missing none does.
            throw new InvalidOperationException($"{Key}:Endpoints ({string.Join(", ", d.Endpoints)}) must list this node's own management endpoint {self} (Streaming:Cluster:Hostname and ManagementPort, written the same way)");
        }

        if (d.RequiredContactPoints > d.Endpoints.Count)
        {
            throw new InvalidOperationException($"{Key}:RequiredContactPoints = {d.RequiredContactPoints} exceeds the {d.Endpoints.Count} endpoints listed: the cluster would never form");
        }
    }
}
