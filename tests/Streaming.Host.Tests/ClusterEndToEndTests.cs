using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Streaming.Host.Tests.Infrastructure;
using Streaming.Tests.Shared;

namespace Streaming.Host.Tests;

/// <summary>
/// Engines joined into one Akka.NET cluster (CONTRACTS §8, preview) on one Kafka consumer group and one PostgreSQL
/// database, as separate processes: Kafka splits the partitions between them, partition p of every input topic on one
/// node, and any node answers for any customer.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed partial class ClusterEndToEndTests
{
    private const string RetailFile = "online_retail_2010_2011.csv.gz";

    /// <summary>
    /// Two nodes (the second joins the first as its seed) share a replay of Online Retail; each consumes a disjoint part
    /// of the partitions, and every customer's orders, read through each node, equal the batch computation.
    /// </summary>
    [Fact]
    public async Task Two_nodes_share_the_partitions_and_each_serves_every_customer()
    {
        var expected = OnlineRetailBatch.Compute(TestEnvironment.DataFile(RetailFile));
        await using var database = await PostgresDatabase.CreateAsync();
        await using var broker = await BrokerProcess.StartAsync(partitions: 8);
        var seedPort = TestEnvironment.FreePort();
        Dictionary<string, string> Node(int port) => new()
        {
            ["Streaming__Store__Provider"] = "postgresql",
            ["Streaming__Store__ConnectionString"] = database.ConnectionString,
            ["Streaming__Cluster__Port"] = port.ToString(CultureInfo.InvariantCulture),
            ["Streaming__Cluster__SeedNodes__0"] = "127.0.0.1:" + seedPort.ToString(CultureInfo.InvariantCulture),
            ["Streaming__Kafka__Partitions"] = "8",
            ["Streaming__Cluster__Preview"] = "true",
        };

        await using var first = await EngineProcess.StartAsync(broker.BootstrapServers, TestEnvironment.NewTempDir("streaming-node-a"), Node(seedPort));
        await using var second = await EngineProcess.StartAsync(broker.BootstrapServers, TestEnvironment.NewTempDir("streaming-node-b"), Node(TestEnvironment.FreePort()));

        var replay = await CliProcess.RunAsync(["replay", "online-retail", "--file", TestEnvironment.DataFile(RetailFile), "--bootstrap", broker.BootstrapServers], TimeSpan.FromMinutes(5));
        Assert.True(replay.ExitCode == 0, "replay failed: " + replay.StandardError);
        var produced = long.Parse(ProducedLine().Match(replay.StandardOutput).Groups[1].Value, CultureInfo.InvariantCulture);

        await Eventually.WaitAsync(
            async () => await first.ProcessedOffsetsAsync("orders") + await second.ProcessedOffsetsAsync("orders") >= produced,
            TimeSpan.FromMinutes(3),
            () => $"{produced} orders processed by the two nodes; stderr a: {CliProcess.Tail(first.Process.StandardError)}; b: {CliProcess.Tail(second.Process.StandardError)}");
        var (a, b) = (await OwnedPartitionsAsync(first), await OwnedPartitionsAsync(second));
        Assert.True(a.Count > 0 && b.Count > 0 && !a.Overlaps(b), $"partitions of node a [{string.Join(",", a)}], of node b [{string.Join(",", b)}]");

        Assert.Equal(8, a.Count + b.Count);

        // GET /v1/cluster on each node: both members up, and each member's partitions are the ones its own status lists.
        var expectedOwners = new Dictionary<string, HashSet<int>>
        {
            [(await ClusterAsync(first)).Self] = a,
            [(await ClusterAsync(second)).Self] = b,
        };
        Assert.Equal(2, expectedOwners.Count);
        foreach (var node in new[] { first, second })
        {
            var last = "";
            await Eventually.WaitAsync(
                async () =>
                {
                    var view = await ClusterAsync(node);
                    last = string.Join("; ", view.Members.Select(m => $"{m.Address} {m.Status} [{string.Join(",", m.Partitions)}]"));
                    return view.Members.Count == 2 && view.Members.All(m => m.Status == "up" && m.Reachable && expectedOwners.TryGetValue(m.Address, out var owned) && owned.SetEquals(m.Partitions));
                },
                TimeSpan.FromSeconds(30),
                () => $"/v1/cluster of {node.Http.BaseAddress}: {last}; expected {string.Join("; ", expectedOwners.Select(e => $"{e.Key} [{string.Join(",", e.Value.Order())}]"))}");
        }

        await ProfileAssert.OrdersMatchAsync(first.Http, expected, "read through node a");
        await ProfileAssert.OrdersMatchAsync(second.Http, expected, "read through node b");
    }

    /// <summary>The input partitions a node's <c>/v1/status</c> lists.</summary>
    private static async Task<HashSet<int>> OwnedPartitionsAsync(EngineProcess node)
    {
        var status = await node.StatusAsync();
        return status.GetProperty("partitions").EnumerateArray().Select(p => p.GetProperty("partition").GetInt32()).ToHashSet();
    }

    /// <summary>A node's <c>/v1/cluster</c>, read with the contract's field names.</summary>
    private static async Task<(string Self, List<(string Address, string Status, bool Reachable, List<int> Partitions)> Members)> ClusterAsync(EngineProcess node)
    {
        var root = await node.Http.GetFromJsonAsync<JsonElement>("/v1/cluster");
        return (root.GetProperty("self").GetString()!, [.. root.GetProperty("members").EnumerateArray().Select(m => (
            m.GetProperty("address").GetString()!,
            m.GetProperty("status").GetString()!,
            m.GetProperty("reachable").GetBoolean(),
            m.GetProperty("partitions").EnumerateArray().Select(p => p.GetInt32()).ToList()))]);
    }

    [GeneratedRegex(@"^produced=(\d+)$", RegexOptions.Multiline)]
    private static partial Regex ProducedLine();
}
