using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Discovery;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Streaming.Connectors.Kafka;
using Streaming.Host.Hosting;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary>
/// The <c>kubernetes</c> discovery method as the host wires it (<see cref="ClusterDiscoveryHosting"/>,
/// <see cref="KubernetesPodDiscovery"/>), against an HTTPS server that answers the Kubernetes API's pod list: no
/// Kubernetes runs here, but the request, TLS with the cluster's CA, the bearer token and the reading of the answer do.
/// </summary>
public sealed class KubernetesDiscoveryTests
{
    private const string Namespace = "streaming-test";
    private const string Token = "service-account-token-7d3f";

    /// <summary>
    /// A node configured as <c>deploy/k8s</c> configures it (label selector <c>app.kubernetes.io/name={0}</c>, a
    /// namespace): its Cluster Bootstrap lists the pods through the API with that selector in that namespace and the
    /// service account's token, and a lookup of the service resolves each running pod's IP and its container port named
    /// <c>management</c>; a pod being deleted and one without the port are left out.
    /// </summary>
    [Fact]
    public async Task Kubernetes_discovery_lists_the_labelled_pods_through_the_api_with_the_service_account_token()
    {
        var dir = TestEnvironment.NewTempDir("streaming-k8s-discovery");
        var requests = new ConcurrentQueue<(string Path, string? Selector, string? Authorization)>();
        using var certificate = SelfSignedLoopbackCertificate();
        var api = ApiServer(certificate, requests);
        await api.StartAsync();
        IHost? node = null;
        try
        {
            var port = new Uri(api.Urls.Single()).Port;

            // What Kubernetes gives a pod at fixed paths and in fixed variables, in files and variables of the test's own.
            var tokenFile = Path.Combine(dir, "token");
            await File.WriteAllTextAsync(tokenFile, Token + "\n");
            var caFile = Path.Combine(dir, "ca.crt");
            await File.WriteAllTextAsync(caFile, certificate.ExportCertificatePem());
            Environment.SetEnvironmentVariable("STREAMING_TEST_K8S_HOST", "127.0.0.1");
            Environment.SetEnvironmentVariable("STREAMING_TEST_K8S_PORT", port.ToString(System.Globalization.CultureInfo.InvariantCulture));

            var settings = new StreamingSettings
            {
                ClusterPort = TestEnvironment.FreePort(),
                Discovery = new ClusterDiscoverySettings
                {
                    Method = DiscoveryMethod.Kubernetes,
                    PodLabelSelector = "app.kubernetes.io/name={0}",
                    PodNamespace = Namespace,
                    ManagementPort = TestEnvironment.FreePort(),
                },
            };
            var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
            builder.Services.AddAkka(ShardedEngine.SystemName, akka => akka
                .AddHocon(ShardedEngine.NodeConfigFor(settings.ClusterHostname, settings.ClusterPort), HoconAddMode.Prepend)
                .WithClusterDiscovery(settings)
                // Only what a pod has at fixed paths and in fixed variables, moved for the test.
                .AddHocon($"""
                    akka.discovery.kubernetes-pods.api-token-path = "{tokenFile}"
                    akka.discovery.kubernetes-pods.api-ca-path = "{caFile}"
                    akka.discovery.kubernetes-pods.api-service-host-env-name = STREAMING_TEST_K8S_HOST
                    akka.discovery.kubernetes-pods.api-service-port-env-name = STREAMING_TEST_K8S_PORT
                    """, HoconAddMode.Prepend));
            node = builder.Build();
            await node.StartAsync();
            var system = node.Services.GetRequiredService<ActorSystem>();

            var resolved = await Akka.Discovery.Discovery.Get(system).Default.Lookup(
                new Lookup(settings.Discovery.ServiceName, ClusterDiscoverySettings.ManagementPortName, "tcp"), TimeSpan.FromSeconds(10));
            Assert.Equal(["10.1.0.10:8558", "10.1.0.11:8558"], resolved.Addresses.Select(a => $"{a.Host}:{a.Port}").Order(StringComparer.Ordinal));

            // The node's own bootstrap asks the API too, the same way.
            var selector = "app.kubernetes.io/name=streaming-engine";
            await Eventually.WaitAsync(
                () => Task.FromResult(requests.Count >= 2),
                TimeSpan.FromSeconds(20),
                () => "the bootstrap's pod list request; requests: " + string.Join("; ", requests));
            Assert.All(requests, r => Assert.Equal(($"/api/v1/namespaces/{Namespace}/pods", selector, "Bearer " + Token), r));
        }
        finally
        {
            if (node is not null)
            {
                await node.StopAsync();
                node.Dispose();
            }

            Environment.SetEnvironmentVariable("STREAMING_TEST_K8S_HOST", null);
            Environment.SetEnvironmentVariable("STREAMING_TEST_K8S_PORT", null);
            await api.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>An HTTPS server on a free loopback port answering <c>GET /api/v1/namespaces/{ns}/pods</c> with four pods, recording each request.</summary>
    private static WebApplication ApiServer(X509Certificate2 certificate, ConcurrentQueue<(string, string?, string?)> requests)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.UseHttps(certificate)));
        var app = builder.Build();
        app.MapGet("/api/v1/namespaces/{ns}/pods", (HttpRequest request) =>
        {
            requests.Enqueue((request.Path.Value!, request.Query["labelSelector"].FirstOrDefault(), request.Headers.Authorization.FirstOrDefault()));
            return Results.Text(PodList, "application/json");
        });
        return app;
    }

    /// <summary>Two running engine pods, one being deleted, one without a management port.</summary>
    private const string PodList = """
        {"apiVersion":"v1","kind":"PodList","metadata":{},"items":[
          {"metadata":{"name":"engine-0","namespace":"streaming-test"},
           "spec":{"containers":[{"name":"engine","ports":[{"name":"http","containerPort":8080},{"name":"management","containerPort":8558}]}]},
           "status":{"phase":"Running","podIP":"10.1.0.10","containerStatuses":[{"name":"engine","ready":true,"restartCount":0,"image":"e","imageID":"e","state":{"running":{}}}]}},
          {"metadata":{"name":"engine-1","namespace":"streaming-test"},
           "spec":{"containers":[{"name":"engine","ports":[{"name":"http","containerPort":8080},{"name":"management","containerPort":8558}]}]},
           "status":{"phase":"Running","podIP":"10.1.0.11","containerStatuses":[{"name":"engine","ready":false,"restartCount":0,"image":"e","imageID":"e","state":{"running":{}}}]}},
          {"metadata":{"name":"engine-2","namespace":"streaming-test","deletionTimestamp":"2026-01-01T00:00:00Z"},
           "spec":{"containers":[{"name":"engine","ports":[{"name":"management","containerPort":8558}]}]},
           "status":{"phase":"Running","podIP":"10.1.0.12","containerStatuses":[{"name":"engine","ready":true,"restartCount":0,"image":"e","imageID":"e","state":{"running":{}}}]}},
          {"metadata":{"name":"other-0","namespace":"streaming-test"},
           "spec":{"containers":[{"name":"other","ports":[{"name":"http","containerPort":8080}]}]},
           "status":{"phase":"Running","podIP":"10.1.0.13","containerStatuses":[{"name":"other","ready":true,"restartCount":0,"image":"e","imageID":"e","state":{"running":{}}}]}}
        ]}
        """;

    /// <summary>A self-signed certificate for 127.0.0.1 that can also be its own certificate authority.</summary>
    private static X509Certificate2 SelfSignedLoopbackCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment | X509KeyUsageFlags.KeyCertSign, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));

        // Kestrel needs the key in a form it can use for TLS on Linux: a round trip through PKCS#12.
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pkcs12), null);
    }
}
