using Microsoft.Extensions.Configuration;
using Streaming.Host.Hosting;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary><c>Streaming:Cluster:Discovery:*</c>: cluster formation through Akka.Management's Cluster Bootstrap, its defaults and refusals.</summary>
public sealed class DiscoverySettingsTests
{
    /// <summary>What every cluster needs besides discovery (CONTRACTS §8): PostgreSQL.</summary>
    private static readonly (string, string)[] s_cluster =
        [("Streaming:Store:Provider", "postgresql"), ("Streaming:Store:ConnectionString", "Host=db")];

    /// <summary>The settings read from these keys; a key given twice takes its later value.</summary>
    private static StreamingSettings Settings(params (string Key, string Value)[] values)
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in values)
        {
            data[key] = value;
        }

        return StreamingSettings.From(new ConfigurationBuilder().AddInMemoryCollection(data).Build());
    }

    [Fact]
    public void Without_a_method_a_node_uses_no_discovery_and_is_no_cluster()
    {
        var settings = Settings();
        Assert.Equal(DiscoveryMethod.None, settings.Discovery.Method);
        Assert.Equal(("streaming-engine", 2, 8558), (settings.Discovery.ServiceName, settings.Discovery.RequiredContactPoints, settings.Discovery.ManagementPort));
        Assert.False(settings.IsCluster);
        var options = settings.ToEngineOptions("kafka:9092");
        Assert.False(options.ClusterBootstrap || options.IsCluster);
        Assert.Equal(DiscoveryMethod.None, Settings(("Streaming:Cluster:Discovery:Method", "none")).Discovery.Method);
    }

    [Fact]
    public void Kubernetes_discovery_is_read_with_the_library_defaults_left_to_the_library()
    {
        var settings = Settings([.. s_cluster, ("Streaming:Cluster:Discovery:Method", "Kubernetes"), ("Streaming:Cluster:Discovery:ServiceName", "engine"),
            ("Streaming:Cluster:Discovery:PodLabelSelector", "app.kubernetes.io/name={0}"), ("Streaming:Cluster:Discovery:RequiredContactPoints", "3")]);
        Assert.Equal(DiscoveryMethod.Kubernetes, settings.Discovery.Method);
        Assert.Equal(("engine", 3, 8558, "app.kubernetes.io/name={0}"), (settings.Discovery.ServiceName, settings.Discovery.RequiredContactPoints, settings.Discovery.ManagementPort, settings.Discovery.PodLabelSelector));

        // The namespace: the library reads the pod's own from its service account unless one is given.
        Assert.Null(settings.Discovery.PodNamespace);
        Assert.True(settings.IsCluster);
        var options = settings.ToEngineOptions("kafka:9092");
        Assert.True(options.ClusterBootstrap && options.IsCluster);
        Assert.Empty(options.SeedNodes);
    }

    [Fact]
    public void Config_discovery_reads_every_endpoint_and_the_management_port()
    {
        var settings = Settings([.. s_cluster, ("Streaming:Cluster:Hostname", "10.0.0.6"), ("Streaming:Cluster:Discovery:Method", "config"), ("Streaming:Cluster:Discovery:ManagementPort", "9000"),
            ("Streaming:Cluster:Discovery:Endpoints:0", "10.0.0.5:9000"), ("Streaming:Cluster:Discovery:Endpoints:1", "10.0.0.6:9000"), ("Streaming:Cluster:Discovery:Endpoints:2", "10.0.0.7:9000")]);
        Assert.Equal(DiscoveryMethod.Config, settings.Discovery.Method);
        Assert.Equal(["10.0.0.5:9000", "10.0.0.6:9000", "10.0.0.7:9000"], settings.Discovery.Endpoints);
        Assert.Equal(9000, settings.Discovery.ManagementPort);
        Assert.True(settings.ToEngineOptions("kafka:9092").IsCluster);
    }

    [Theory]
    [InlineData("Method=consul", "Streaming:Cluster:Discovery:Method = 'consul' must be one of 'none', 'kubernetes', 'config'")]
    [InlineData("Method=kubernetes;SeedNodes=10.0.0.5:4053", "Streaming:Cluster:Discovery:Method = 'kubernetes' and Streaming:Cluster:SeedNodes (--seed-node) both say how the node joins")]
    [InlineData("Method=kubernetes;Provider=sqlite", "a cluster (Streaming:Cluster:Discovery:Method = 'kubernetes', --discovery) needs Streaming:Store:Provider = 'postgresql'")]
    [InlineData("Method=config", "Streaming:Cluster:Discovery:Method = 'config' needs Streaming:Cluster:Discovery:Endpoints:0")]
    [InlineData("Method=config;Endpoints=127.0.0.1", "Streaming:Cluster:Discovery:Endpoints: endpoint '127.0.0.1' must be host:port")]
    [InlineData("Method=config;Endpoints=127.0.0.1:70000", "endpoint '127.0.0.1:70000' must be host:port")]
    [InlineData("Method=config;Endpoints=10.0.0.5:8558,10.0.0.6:8558", "must list this node's own management endpoint 127.0.0.1:8558")]
    [InlineData("Method=config;Endpoints=127.0.0.1:8558;RequiredContactPoints=2", "Streaming:Cluster:Discovery:RequiredContactPoints = 2 exceeds the 1 endpoints listed")]
    [InlineData("Method=config;Endpoints=127.0.0.1:8558,127.0.0.1:8559;RequiredContactPoints=0", "Streaming:Cluster:Discovery:RequiredContactPoints = '0' must be an integer in [1, 1000]")]
    [InlineData("Method=kubernetes;ManagementPort=0", "Streaming:Cluster:Discovery:ManagementPort = '0' must be an integer in [1, 65535]")]
    [InlineData("Method=kubernetes;ManagementPort=4053;Port=4053", "Streaming:Cluster:Discovery:ManagementPort = 4053 is also Streaming:Cluster:Port")]
    [InlineData("Method=kubernetes;ServiceName=streaming engine", "Streaming:Cluster:Discovery:ServiceName = 'streaming engine' must be 1 to 63 letters")]
    [InlineData("Method=kubernetes;Endpoints=127.0.0.1:8558", "Streaming:Cluster:Discovery:Endpoints is read only with Method = 'config'")]
    [InlineData("Method=config;Endpoints=127.0.0.1:8558;PodNamespace=streaming;RequiredContactPoints=1", "PodLabelSelector and PodNamespace are read only with Method = 'kubernetes'")]
    [InlineData("Endpoints=127.0.0.1:8558", "Endpoints, PodLabelSelector and PodNamespace are read only with a discovery method")]
    public void Discovery_settings_that_cannot_form_a_cluster_are_refused_with_the_reason(string given, string reason)
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Settings([.. s_cluster, .. Keys(given)]));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_takes_discovery_from_its_options_and_refuses_what_cannot_form_a_cluster()
    {
        var dir = TestEnvironment.NewTempDir("streaming-discovery-options");
        try
        {
            var unknown = await CliProcess.RunAsync(["run", "--data-dir", dir, "--discovery", "dns"], TimeSpan.FromSeconds(60));
            Assert.Equal(2, unknown.ExitCode);
            Assert.Contains("Streaming:Cluster:Discovery:Method = 'dns' must be one of 'none', 'kubernetes', 'config'", unknown.StandardError, StringComparison.Ordinal);

            // The endpoints and the management port from the command line: this node's own endpoint is checked against them.
            var sqlite = await CliProcess.RunAsync(["run", "--data-dir", dir, "--discovery", "config", "--discovery-endpoint", "127.0.0.1:9101", "--discovery-endpoint", "127.0.0.1:9102", "--management-port", "9102", "--bootstrap", "127.0.0.1:9"], TimeSpan.FromSeconds(60));
            Assert.Equal(2, sqlite.ExitCode);
            Assert.Contains("a cluster (Streaming:Cluster:Discovery:Method = 'config', --discovery) needs Streaming:Store:Provider = 'postgresql'", sqlite.StandardError, StringComparison.Ordinal);

            var elsewhere = await CliProcess.RunAsync(["run", "--data-dir", dir, "--discovery", "config", "--discovery-endpoint", "127.0.0.1:9101", "--management-port", "9102", "--store-provider", "postgresql", "--store-connection", "Host=127.0.0.1;Port=9"], TimeSpan.FromSeconds(60));
            Assert.Equal(2, elsewhere.ExitCode);
            Assert.Contains("must list this node's own management endpoint 127.0.0.1:9102", elsewhere.StandardError, StringComparison.Ordinal);

            var embedded = await CliProcess.RunAsync(["run", "--data-dir", dir, "--discovery", "kubernetes", "--store-provider", "postgresql", "--store-connection", "Host=127.0.0.1;Port=9"], TimeSpan.FromSeconds(60));
            Assert.Equal(2, embedded.ExitCode);
            Assert.Contains("a cluster (--discovery) needs Kafka bootstrap servers", embedded.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// <c>Name=value</c> pairs separated by <c>;</c>: discovery keys by their last name (<c>Endpoints</c>, comma-separated,
    /// become <c>Endpoints:0</c>, …), and <c>SeedNodes</c>, <c>Provider</c>, <c>Port</c> and <c>Redis</c>.
    /// </summary>
    private static IEnumerable<(string, string)> Keys(string given)
    {
        foreach (var pair in given.Split(';'))
        {
            var (name, value) = (pair[..pair.IndexOf('=', StringComparison.Ordinal)], pair[(pair.IndexOf('=', StringComparison.Ordinal) + 1)..]);
            switch (name)
            {
                case "Endpoints":
                    foreach (var (endpoint, i) in value.Split(',').Select((e, i) => (e, i)))
                    {
                        yield return ($"Streaming:Cluster:Discovery:Endpoints:{i}", endpoint);
                    }

                    break;
                case "SeedNodes":
                    yield return ("Streaming:Cluster:SeedNodes:0", value);
                    break;
                case "Provider":
                    yield return ("Streaming:Store:Provider", value);
                    break;
                case "Port":
                    yield return ("Streaming:Cluster:Port", value);
                    break;
                case "Redis":
                    yield return ("Streaming:Redis:Connection", value);
                    break;
                default:
                    yield return ("Streaming:Cluster:Discovery:" + name, value);
                    break;
            }
        }
    }
}
