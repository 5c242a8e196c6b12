using System.Globalization;
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
        await ProfileAssert.OrdersMatchAsync(first.Http, expected, "read through node a");
        await ProfileAssert.OrdersMatchAsync(second.Http, expected, "read through node b");
    }

    /// <summary>The input partitions a node's <c>/v1/status</c> lists.</summary>
    private static async Task<HashSet<int>> OwnedPartitionsAsync(EngineProcess node)
    {
        var status = await node.StatusAsync();
        return status.GetProperty("partitions").EnumerateArray().Select(p => p.GetProperty("partition").GetInt32()).ToHashSet();
    }

    [GeneratedRegex(@"^produced=(\d+)$", RegexOptions.Multiline)]
    private static partial Regex ProducedLine();
}
