using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Streaming.Host.Tests.Infrastructure;
using Streaming.Tests.Shared;
using Xunit.Abstractions;

namespace Streaming.Host.Tests;

/// <summary>
/// Cluster formation through discovery with real engine processes: Akka.Management's Cluster Bootstrap with the
/// <c>config</c> discovery method (the one that needs no Kubernetes), on one Kafka broker and one PostgreSQL database.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class DiscoveryFormationTests(ITestOutputHelper output)
{
    /// <summary>
    /// Two nodes started together, neither given seed nodes, each listing both management endpoints and requiring two
    /// contact points: Cluster Bootstrap probes both, the node with the lower address forms the cluster and the other
    /// joins it. Each node's <c>/v1/cluster</c> then lists both members up and reachable, both answer <c>/readyz</c>, and
    /// each management endpoint reports its own node and the cluster's two members.
    /// </summary>
    [Fact]
    public async Task Two_nodes_with_config_discovery_bootstrap_one_cluster()
    {
        var total = Stopwatch.StartNew();
        await using var database = await PostgresDatabase.CreateAsync();
        await using var broker = await BrokerProcess.StartAsync(partitions: 4);
        var nodes = Enumerable.Range(0, 2).Select(_ => (Cluster: TestEnvironment.FreePort(), Management: TestEnvironment.FreePort())).ToList();
        Dictionary<string, string> Node(int index)
        {
            var environment = new Dictionary<string, string>
            {
                ["Streaming__Store__Provider"] = "postgresql",
                ["Streaming__Store__ConnectionString"] = database.ConnectionString,
                ["Streaming__Cluster__Preview"] = "true",
                ["Streaming__Cluster__Port"] = nodes[index].Cluster.ToString(CultureInfo.InvariantCulture),
                ["Streaming__Cluster__Discovery__Method"] = "config",
                ["Streaming__Cluster__Discovery__RequiredContactPoints"] = "2",
                ["Streaming__Cluster__Discovery__ManagementPort"] = nodes[index].Management.ToString(CultureInfo.InvariantCulture),
            };
            for (var i = 0; i < nodes.Count; i++)
            {
                environment[$"Streaming__Cluster__Discovery__Endpoints__{i}"] = "127.0.0.1:" + nodes[i].Management.ToString(CultureInfo.InvariantCulture);
            }

            return environment;
        }

        // Started together: neither becomes ready before the bootstrap has joined it to a cluster.
        var starting = Enumerable.Range(0, nodes.Count)
            .Select(i => EngineProcess.StartAsync(broker.BootstrapServers, TestEnvironment.NewTempDir($"streaming-discovery-{i}"), Node(i)))
            .ToList();
        try
        {
            await Task.WhenAll(starting);
        }
        finally
        {
            if (starting.Any(t => !t.IsCompletedSuccessfully))
            {
                foreach (var started in starting.Where(t => t.IsCompletedSuccessfully))
                {
                    await (await started).DisposeAsync();
                }
            }
        }

        var engines = starting.Select(t => t.Result).ToList();
        try
        {
            output.WriteLine($"both nodes ready at {total.ElapsedMilliseconds} ms");
            var addresses = nodes.Select(n => "127.0.0.1:" + n.Cluster.ToString(CultureInfo.InvariantCulture)).Order(StringComparer.Ordinal).ToList();
            foreach (var (engine, i) in engines.Select((e, i) => (e, i)))
            {
                var last = "";
                await Eventually.WaitAsync(
                    async () =>
                    {
                        var view = await engine.Http.GetFromJsonAsync<JsonElement>("/v1/cluster");
                        var members = view.GetProperty("members").EnumerateArray().ToList();
                        last = view.GetRawText();
                        return view.GetProperty("self").GetString() == "127.0.0.1:" + nodes[i].Cluster.ToString(CultureInfo.InvariantCulture)
                            && members.Select(m => m.GetProperty("address").GetString()).Order(StringComparer.Ordinal).SequenceEqual(addresses)
                            && members.All(m => m.GetProperty("status").GetString() == "up" && m.GetProperty("reachable").GetBoolean());
                    },
                    TimeSpan.FromSeconds(20),
                    () => $"node {i}'s /v1/cluster lists {string.Join(", ", addresses)} up and reachable: {last}; stderr: {CliProcess.Tail(engine.Process.StandardError)}");
                using var ready = await engine.Http.GetAsync("/readyz");
                Assert.Equal(System.Net.HttpStatusCode.OK, ready.StatusCode);

                // The management endpoint the other node's bootstrap probed: this node and the cluster's members.
                using var management = new HttpClient { BaseAddress = new Uri("http://127.0.0.1:" + nodes[i].Management.ToString(CultureInfo.InvariantCulture)), Timeout = TimeSpan.FromSeconds(10) };
                var seeds = await management.GetFromJsonAsync<JsonElement>("/bootstrap/seed-nodes");
                Assert.Equal(nodes[i].Cluster, seeds.GetProperty("SelfNode").GetProperty("Port").GetInt32());
                Assert.Equal(nodes.Select(n => n.Cluster).Order(), seeds.GetProperty("Nodes").EnumerateArray().Select(n => n.GetProperty("Node").GetProperty("Port").GetInt32()).Order());
            }

            output.WriteLine($"one cluster of two seen by both at {total.ElapsedMilliseconds} ms");
        }
        finally
        {
            foreach (var engine in engines)
            {
                await engine.DisposeAsync();
            }
        }
    }
}
