using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Akka.Actor;
using Akka.Discovery;
using Akka.Event;
using Config = Akka.Configuration.Config;

namespace Streaming.Host.Hosting;

/// <summary>
/// An Akka.Discovery method that lists pods through the Kubernetes API from inside a pod: <c>GET
/// /api/v1/namespaces/{namespace}/pods?labelSelector=…</c> on <c>https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT</c>,
/// authenticated with the pod's service-account token and trusting the cluster's CA; every running pod not being
/// deleted resolves to its IP and the container port named as the lookup's port name.
/// </summary>
/// <remarks>
/// Akka.Discovery.KubernetesApi 1.5.73 does the same but was built against KubernetesClient 17.0.14; the package source
/// here serves only 19.0.2 and 21.0.8, whose model types changed (<c>V1PodList</c>'s constructor), so its lookup fails
/// with <see cref="MissingMethodException"/>. This class needs no client library: one GET and a JSON read.
/// Settings under <c>akka.discovery.kubernetes-pods</c> (<see cref="Hocon"/>), named as the library names them.
/// </remarks>
public sealed class KubernetesPodDiscovery : ServiceDiscovery, IDisposable
{
    /// <summary>The method's name (<c>akka.discovery.method</c>) and configuration section under <c>akka.discovery</c>.</summary>
    public const string MethodName = "kubernetes-pods";

    private readonly ILoggingAdapter _log;
    private readonly string _labelSelector;
    private readonly string? _namespace;
    private readonly string _namespacePath;
    private readonly string _tokenPath;
    private readonly string _caPath;
    private readonly string _hostVariable;
    private readonly string _portVariable;
    private readonly Lazy<HttpClient> _http;

    /// <summary>Created by Akka.Discovery with the method's configuration section.</summary>
    public KubernetesPodDiscovery(ExtendedActorSystem system, Config config)
    {
        ArgumentNullException.ThrowIfNull(system);
        ArgumentNullException.ThrowIfNull(config);
        _log = Logging.GetLogger(system, this);
        _labelSelector = config.GetString("pod-label-selector", "app={0}");
        _namespace = config.GetString("pod-namespace", "") is { Length: > 0 } ns ? ns : null;
        _namespacePath = config.GetString("pod-namespace-path", "/var/run/secrets/kubernetes.io/serviceaccount/namespace");
        _tokenPath = config.GetString("api-token-path", "/var/run/secrets/kubernetes.io/serviceaccount/token");
        _caPath = config.GetString("api-ca-path", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
        _hostVariable = config.GetString("api-service-host-env-name", "KUBERNETES_SERVICE_HOST");
        _portVariable = config.GetString("api-service-port-env-name", "KUBERNETES_SERVICE_PORT");
        _http = new Lazy<HttpClient>(CreateHttp);
    }

    /// <summary>Created by Akka.Discovery from <c>akka.discovery.kubernetes-pods</c>.</summary>
    public KubernetesPodDiscovery(ExtendedActorSystem system)
        : this(system, system?.Settings.Config.GetConfig("akka.discovery." + MethodName) ?? throw new ArgumentNullException(nameof(system)))
    {
    }

    /// <summary>
    /// The configuration that makes this the default discovery method: pods selected by
    /// <paramref name="labelSelector"/> (<c>{0}</c>: the looked-up service name; null: <c>app={0}</c>) in
    /// <paramref name="podNamespace"/> (null: the pod's own, from its service account, else <c>default</c>).
    /// </summary>
    public static string Hocon(string? labelSelector, string? podNamespace) => $$"""
        akka.discovery.method = {{MethodName}}
        akka.discovery.{{MethodName}} {
          class = {{Quote(typeof(KubernetesPodDiscovery).AssemblyQualifiedName!)}}
          pod-label-selector = {{Quote(labelSelector ?? "app={0}")}}
          pod-namespace = {{Quote(podNamespace ?? "")}}
        }
        """;

    /// <summary>The pods selected for <paramref name="lookup"/>'s service name, as IP and port.</summary>
    /// <exception cref="InvalidOperationException">Not in a pod (no API address in the environment), or the API refused or failed the request.</exception>
    public override async Task<Resolved> Lookup(Lookup lookup, TimeSpan resolveTimeout)
    {
        ArgumentNullException.ThrowIfNull(lookup);
        var host = Environment.GetEnvironmentVariable(_hostVariable);
        var port = Environment.GetEnvironmentVariable(_portVariable);
        if (string.IsNullOrWhiteSpace(host) || string.IsNullOrWhiteSpace(port))
        {
            throw new InvalidOperationException($"Kubernetes discovery: ${_hostVariable} and ${_portVariable} are not set: this process does not run in a Kubernetes pod");
        }

        var podNamespace = _namespace ?? OwnNamespace() ?? "default";
        var selector = string.Format(CultureInfo.InvariantCulture, _labelSelector, lookup.ServiceName);
        var uri = new Uri($"https://{(host.Contains(':', StringComparison.Ordinal) ? $"[{host}]" : host)}:{port}/api/v1/namespaces/{Uri.EscapeDataString(podNamespace)}/pods?labelSelector={Uri.EscapeDataString(selector)}");
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);

        // Read at every lookup: Kubernetes rotates projected service-account tokens.
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", (await File.ReadAllTextAsync(_tokenPath).ConfigureAwait(false)).Trim());
        using var timeout = new CancellationTokenSource(resolveTimeout);
        using var response = await _http.Value.SendAsync(request, timeout.Token).ConfigureAwait(false);
        var body = await response.Content.ReadAsStringAsync(timeout.Token).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.Forbidden)
        {
            throw new InvalidOperationException($"Kubernetes discovery: listing pods in namespace {podNamespace} is forbidden: the pod's service account needs a Role that may get, list and watch pods (deploy/k8s/rbac.yaml); {body}");
        }

        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"Kubernetes discovery: GET {uri.AbsolutePath} answered {(int)response.StatusCode}: {body}");
        }

        var targets = Targets(body, lookup.PortName);
        if (targets.Count == 0)
        {
            _log.Warning("Kubernetes discovery: no running pod in namespace {0} matches {1} with a container port named {2}", podNamespace, selector, lookup.PortName ?? "(any)");
        }

        return new Resolved(lookup.ServiceName, targets);
    }

    /// <summary>
    /// The pods of a pod list (the API's JSON) that run and are not being deleted, with an IP: that IP, and the first
    /// container port named <paramref name="portName"/> (pods without one left out); no port name, no port.
    /// </summary>
    public static IReadOnlyList<ResolvedTarget> Targets(string podListJson, string? portName)
    {
        using var document = JsonDocument.Parse(podListJson);
        var targets = new List<ResolvedTarget>();
        if (!document.RootElement.TryGetProperty("items", out var items) || items.ValueKind != JsonValueKind.Array)
        {
            return targets;
        }

        foreach (var pod in items.EnumerateArray())
        {
            var deleting = pod.TryGetProperty("metadata", out var metadata) && metadata.TryGetProperty("deletionTimestamp", out var deletion) && deletion.ValueKind != JsonValueKind.Null;
            if (deleting || !pod.TryGetProperty("status", out var status)
                || !string.Equals(Text(status, "phase"), "Running", StringComparison.OrdinalIgnoreCase)
                || Text(status, "podIP") is not { Length: > 0 } ip || !IPAddress.TryParse(ip, out var address))
            {
                continue;
            }

            int? port = null;
            if (!string.IsNullOrEmpty(portName))
            {
                port = ContainerPorts(pod).Where(p => p.Name == portName).Select(p => (int?)p.Port).FirstOrDefault();
                if (port is null)
                {
                    continue;
                }
            }

            targets.Add(new ResolvedTarget(ip, port, address));
        }

        return targets;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_http.IsValueCreated)
        {
            _http.Value.Dispose();
        }
    }

    /// <summary>The pod's own namespace, from its service account (<c>pod-namespace-path</c>); null where there is none.</summary>
    private string? OwnNamespace() =>
        File.Exists(_namespacePath) && File.ReadAllText(_namespacePath).Trim() is { Length: > 0 } own ? own : null;

    private static IEnumerable<(string? Name, int Port)> ContainerPorts(JsonElement pod)
    {
        if (!pod.TryGetProperty("spec", out var spec) || !spec.TryGetProperty("containers", out var containers) || containers.ValueKind != JsonValueKind.Array)
        {
            yield break;
        }

        foreach (var container in containers.EnumerateArray())
        {
            if (container.TryGetProperty("ports", out var ports) && ports.ValueKind == JsonValueKind.Array)
            {
                foreach (var port in ports.EnumerateArray())
                {
                    if (port.TryGetProperty("containerPort", out var number) && number.TryGetInt32(out var value))
                    {
                        yield return (Text(port, "name"), value);
                    }
                }
            }
        }
    }

    private static string? Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>A client that trusts the API server's certificate when it chains to the cluster's CA (<c>api-ca-path</c>), made at the first lookup.</summary>
    private HttpClient CreateHttp()
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(_caPath);
        var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, certificate, _, errors) =>
            {
                if (errors == SslPolicyErrors.None)
                {
                    return true;
                }

                // A name mismatch or no certificate stays an error; only the chain is checked again, against the cluster's CA.
                if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0)
                {
                    return false;
                }

                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(certificate);
            },
        };
        return new HttpClient(handler, disposeHandler: true);
    }

    private static string Quote(string value)
    {
        var quoted = new StringBuilder("\"");
        foreach (var c in value)
        {
            _ = c is '"' or '\\' ? quoted.Append('\\').Append(c) : quoted.Append(c);
        }

        return quoted.Append('"').ToString();
    }
}
