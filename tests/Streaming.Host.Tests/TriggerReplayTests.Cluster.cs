using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Streaming.Connectors.Persistence;
using Streaming.Connectors.Sql;
using Streaming.Host.Tests.Infrastructure;
using Streaming.Tests.Shared;

namespace Streaming.Host.Tests;

/// <summary>
/// Engines joined into one Akka.NET cluster (CONTRACTS §8) on one Kafka consumer group and one PostgreSQL database,
/// as separate processes, checked with the same batch computations as the single engine.
/// </summary>
public sealed partial class TriggerReplayTests
{
    private const int ClusterPartitions = 8;
    private const string ClusterAdminToken = "cluster-admin-token-4f1e0b7d2c";

    /// <summary>CONTRACTS §8: the survivors own a dead node's partitions within this.</summary>
    private static readonly TimeSpan TakeOverBound = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Online Retail replayed into a cluster that grows and then loses a node. Nodes a (the seed) and b start; a third,
    /// c, joins at an eighth of the replay and takes partitions over (scale-out); at a third of the replay b is killed with
    /// SIGKILL. Then: the survivors own all partitions within the contract's 60 s; every customer, read through
    /// <b>each</b> survivor, equals the batch computation; the win-back firings (distinct CloudEvent ids) are exactly the
    /// batch's; the outreach queue in PostgreSQL holds one item per queued firing; and only one node published the
    /// shared outbox (the relay's cluster singleton, on a, the oldest node).
    /// </summary>
    [Fact]
    public async Task Cluster_grows_to_three_nodes_and_loses_one_mid_replay_without_losing_or_repeating_anything()
    {
        var total = Stopwatch.StartNew();
        var histories = s_histories.Value;
        var invoices = histories.Values.Sum(h => h.Placed.Count + h.Cancelled.Count);
        var expected = OnlineRetailBatch.Compute(TestEnvironment.DataFile(RetailFile));
        await using var database = await PostgresDatabase.CreateAsync();
        await using var broker = await BrokerProcess.StartAsync(partitions: ClusterPartitions);
        var seedPort = TestEnvironment.FreePort();
        Dictionary<string, string> Node(int port) => new()
        {
            ["Streaming__Store__Provider"] = "postgresql",
            ["Streaming__Store__ConnectionString"] = database.ConnectionString,
            ["Streaming__Cluster__Port"] = port.ToString(CultureInfo.InvariantCulture),
            ["Streaming__Cluster__SeedNodes__0"] = "127.0.0.1:" + seedPort.ToString(CultureInfo.InvariantCulture),
            ["Streaming__Kafka__Partitions"] = ClusterPartitions.ToString(CultureInfo.InvariantCulture),
            ["Streaming__Cluster__Preview"] = "true",
            ["Streaming__Rules__PollIntervalMs"] = "200",
            ["Streaming__Auth__Tokens__0__Token"] = ClusterAdminToken,
            ["Streaming__Auth__Tokens__0__Scopes__0"] = "admin",
        };

        // Started together: b keeps trying its seed until a has formed the cluster.
        var starting = new[] { ("streaming-node-a", seedPort), ("streaming-node-b", TestEnvironment.FreePort()) }
            .Select(n => EngineProcess.StartAsync(broker.BootstrapServers, TestEnvironment.NewTempDir(n.Item1), Node(n.Item2)))
            .ToList();
        try
        {
            await Task.WhenAll(starting);
        }
        catch
        {
            foreach (var started in starting.Where(t => t.IsCompletedSuccessfully))
            {
                await (await started).DisposeAsync();
            }

            throw;
        }

        var (a, b) = (await starting[0], await starting[1]);
        EngineProcess? c = null;
        CliProcess? replay = null;
        try
        {
            // Voice and SMS consent for every customer first (Online Retail has none), so firings queue outreach items.
            var consent = histories.Keys.Select(id => (id, $$$"""{"eventId":"consent-seed:{{{id}}}","customerId":"{{{id}}}","occurredAt":"2010-11-30T00:00:00Z","type":"consent","consent":{"voice":true,"sms":true}}"""));
            await Kcat.ProduceAsync(broker.BootstrapServers, "customer-updates", consent);
            await WaitClusterProcessedAsync([a, b], "customer-updates", histories.Count, TimeSpan.FromMinutes(1));

            replay = CliProcess.Start(["replay", "online-retail", "--file", TestEnvironment.DataFile(RetailFile), "--bootstrap", broker.BootstrapServers, "--rate", "400"]);

            // Scale-out: a third node joins mid-replay; Kafka gives it partitions and their shards move with them.
            await WaitClusterProcessedAsync([a, b], "orders", invoices / 8, TimeSpan.FromMinutes(2));
            c = await EngineProcess.StartAsync(broker.BootstrapServers, TestEnvironment.NewTempDir("streaming-node-c"), Node(TestEnvironment.FreePort()));
            output.WriteLine($"node c ready at {total.ElapsedMilliseconds} ms, owning [{string.Join(",", (await OwnedPartitionsAsync(c)).Order())}]");
            await WaitClusterViewAsync([a, b, c], TimeSpan.FromSeconds(60));

            // SIGKILL mid-replay.
            await WaitClusterProcessedAsync([a, b, c], "orders", invoices / 3, TimeSpan.FromMinutes(2));
            var status = await b.StatusAsync();
            output.WriteLine($"SIGKILL node b at {total.ElapsedMilliseconds} ms (replay {(replay.HasExited ? "done" : "running")}): it owned [{string.Join(",", (await OwnedPartitionsAsync(b)).Order())}], checkpointSeq={status.GetProperty("checkpointSeq").GetInt64()}");
            await b.Process.KillAsync();
            var killed = Stopwatch.StartNew();
            await Eventually.WaitAsync(
                async () =>
                {
                    var (ownedA, ownedC) = (await OwnedPartitionsAsync(a), await OwnedPartitionsAsync(c));
                    return ownedA.Count + ownedC.Count == ClusterPartitions && !ownedA.Overlaps(ownedC);
                },
                TakeOverBound,
                () => $"the survivors own all {ClusterPartitions} partitions within {TakeOverBound.TotalSeconds} s of the SIGKILL; stderr a: {CliProcess.Tail(a.Process.StandardError)}; c: {CliProcess.Tail(c.Process.StandardError)}");
            output.WriteLine($"survivors own all partitions {killed.ElapsedMilliseconds} ms after the SIGKILL");
            await WaitClusterViewAsync([a, c], TakeOverBound);

            await replay.WaitForExitAsync(TimeSpan.FromMinutes(5));
            Assert.True(replay.ExitCode == 0, "replay failed: " + replay.StandardError);
            Assert.Equal(invoices, Produced(replay));
            await WaitClusterDrainedAsync([a, c], new() { ["orders"] = invoices, ["customer-updates"] = histories.Count });
            output.WriteLine($"processed and drained at {total.ElapsedMilliseconds} ms");

            await ProfileAssert.OrdersMatchAsync(a.Http, expected, "read through node a");
            await ProfileAssert.OrdersMatchAsync(c.Http, expected, "read through node c");

            var published = await ReadTriggersAsync(broker.BootstrapServers);
            AssertEnvelopes(published);
            var byId = published.GroupBy(p => p.Id).ToList();
            var differing = byId.Where(g => g.Count() > 1 && g.Select(p => p.Raw).Distinct().Count() > 1).ToList();
            output.WriteLine($"customer-triggers: {published.Count} records, {byId.Count} distinct ids; by type: {ByType(published)}");
            Assert.True(differing.Count == 0, $"{differing.Count} ids were published with different contents, e.g. {string.Join(", ", differing.Take(5).Select(g => g.Key))}");
            var distinct = byId.Select(g => g.First()).ToList();

            // One relay for the cluster: a (the oldest member, holding the relay singleton) published every record on
            // the topic, c none.
            var (publishedA, publishedC) = ((await a.StatusAsync()).GetProperty("triggersPublished").GetInt64(), (await c.StatusAsync()).GetProperty("triggersPublished").GetInt64());
            Assert.True(publishedA == published.Count && publishedC == 0, $"triggersPublished: node a {publishedA}, node c {publishedC}; {published.Count} records on the topic");

            var asOf = await AsOfAsync(c.Http, histories, ClusterPartitions);
            AssertWinBacks(histories, asOf, distinct, "cluster with node b killed");
            AssertOrderRules(histories, distinct);
            await AssertCountersMatchAsync([a.Http, c.Http], distinct);
            await AssertStateFiringsMatchAsync(a.Http, histories.Keys, distinct);

            using (var store = EngineStore.Open(new ActorStoreOptions { Provider = StoreProvider.PostgreSql, ConnectionString = database.ConnectionString }))
            {
                AssertOutreachQueue(store.ListOutreach(), distinct);
            }

            // Shared configuration: a rule set PUT on c reaches a, and both run it (switched at a checkpoint).
            var pack = await CliProcess.RunAsync(["rules", "default"], TimeSpan.FromSeconds(60));
            Assert.Equal(0, pack.ExitCode);
            const string recency = "recency: [30, 90, 180, 365]";
            Assert.Contains(recency, pack.StandardOutput, StringComparison.Ordinal);
            using var request = new HttpRequestMessage(HttpMethod.Put, "/v1/rules")
            {
                Content = new StringContent(pack.StandardOutput.Replace(recency, "recency: [14, 60, 180, 365]", StringComparison.Ordinal), System.Text.Encoding.UTF8, "application/yaml"),
            };
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ClusterAdminToken);
            using var put = await c.Http.SendAsync(request);
            Assert.Equal(System.Net.HttpStatusCode.Accepted, put.StatusCode);
            var version = (await put.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("version").GetString()!;
            foreach (var (node, origin) in new[] { (a, "cluster"), (c, "api") })
            {
                var rules = default(JsonElement);
                await Eventually.WaitAsync(
                    async () =>
                    {
                        rules = await node.Http.GetFromJsonAsync<JsonElement>("/v1/rules");
                        return rules.GetProperty("version").GetString() == version && rules.GetProperty("pending").ValueKind == JsonValueKind.Null;
                    },
                    TimeSpan.FromSeconds(30),
                    () => $"{node.Http.BaseAddress} runs rules {version}: version {rules.GetProperty("version")}, pending {rules.GetProperty("pending")}");
                Assert.Equal(origin, rules.GetProperty("origin").GetString());
            }
        }
        finally
        {
            if (replay is not null)
            {
                await replay.DisposeAsync();
            }

            foreach (var node in new[] { a, b, c })
            {
                if (node is not null)
                {
                    await node.DisposeAsync();
                }
            }
        }

        output.WriteLine($"total {total.ElapsedMilliseconds} ms");
    }

    /// <summary>Waits until the nodes together have processed <paramref name="count"/> records of <paramref name="topic"/>.</summary>
    private static Task WaitClusterProcessedAsync(IReadOnlyList<EngineProcess> nodes, string topic, long count, TimeSpan timeout)
    {
        long sum = 0;
        return Eventually.WaitAsync(
            async () =>
            {
                sum = 0;
                foreach (var node in nodes)
                {
                    sum += await node.ProcessedOffsetsAsync(topic);
                }

                return sum >= count;
            },
            timeout,
            () => $"{count} records of {topic} processed by {nodes.Count} nodes (last {sum}); stderr of the first: {CliProcess.Tail(nodes[0].Process.StandardError)}");
    }

    /// <summary>
    /// Waits until the nodes own disjoint partitions covering all of them, every input record is processed, and no
    /// firing waits for a checkpoint or in the (shared) outbox.
    /// </summary>
    private static async Task WaitClusterDrainedAsync(IReadOnlyList<EngineProcess> nodes, Dictionary<string, long> expectedPerTopic)
    {
        var last = "";
        await Eventually.WaitAsync(
            async () =>
            {
                var processed = new Dictionary<string, long>(StringComparer.Ordinal);
                var owned = new List<int>();
                var idle = true;
                var report = new List<string>();
                foreach (var node in nodes)
                {
                    var status = await node.StatusAsync();
                    foreach (var p in status.GetProperty("partitions").EnumerateArray())
                    {
                        var topic = p.GetProperty("topic").GetString()!;
                        processed[topic] = processed.GetValueOrDefault(topic) + p.GetProperty("offset").GetInt64();
                        if (topic == "orders")
                        {
                            owned.Add(p.GetProperty("partition").GetInt32());
                        }
                    }

                    idle &= status.GetProperty("consumerLag").ValueKind == JsonValueKind.Number && status.GetProperty("consumerLag").GetInt64() == 0
                        && status.GetProperty("firingsPending").GetInt64() == 0
                        && status.GetProperty("outboxBacklog").GetInt64() == 0;
                    report.Add($"{node.Http.BaseAddress}: {status}\nstderr: {CliProcess.Tail(node.Process.StandardError, 60)}");
                }

                last = string.Join("\n", report);
                return idle && owned.Count == ClusterPartitions && owned.Distinct().Count() == ClusterPartitions
                    && expectedPerTopic.All(e => processed.GetValueOrDefault(e.Key) == e.Value);
            },
            TimeSpan.FromMinutes(3),
            () => $"all processed and the outbox drained; last statuses:\n{last}");
    }

    /// <summary>
    /// Waits until each node's <c>GET /v1/cluster</c> lists exactly these nodes, up and reachable, each member with the
    /// partitions that node's own <c>/v1/status</c> lists.
    /// </summary>
    private static async Task WaitClusterViewAsync(IReadOnlyList<EngineProcess> nodes, TimeSpan timeout)
    {
        foreach (var node in nodes)
        {
            var last = "";
            var want = "";
            await Eventually.WaitAsync(
                async () =>
                {
                    var owners = new Dictionary<string, HashSet<int>>(StringComparer.Ordinal);
                    foreach (var member in nodes)
                    {
                        owners[(await ClusterAsync(member)).Self] = await OwnedPartitionsAsync(member);
                    }

                    var view = await ClusterAsync(node);
                    last = string.Join("; ", view.Members.Select(m => $"{m.Address} {m.Status} {(m.Reachable ? "reachable" : "unreachable")} [{string.Join(",", m.Partitions)}]"));
                    want = string.Join("; ", owners.Select(e => $"{e.Key} [{string.Join(",", e.Value.Order())}]"));
                    return view.Members.Count == nodes.Count
                        && view.Members.All(m => m.Status == "up" && m.Reachable && owners.TryGetValue(m.Address, out var owned) && owned.SetEquals(m.Partitions));
                },
                timeout,
                () => $"/v1/cluster of {node.Http.BaseAddress}: {last}; expected {want}");
        }
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
}
