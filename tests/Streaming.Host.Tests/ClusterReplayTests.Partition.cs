using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

public sealed partial class ClusterReplayTests
{
    /// <summary>
    /// A network partition (CONTRACTS §8): three nodes, each a host of its own (a network namespace with its own address,
    /// on a bridge the test made), find each other through config discovery (Cluster Bootstrap; each management
    /// endpoint then names its node and the three members) and share a replay of Online Retail; at a quarter of it node c's link is cut, so that c and
    /// the others each see the other side unreachable, and c cannot reach the broker nor PostgreSQL either. Then: a and
    /// b (the majority) own every partition within the contract's 60 s; c (the minority) stops serving, answering 503
    /// for a customer of a partition it owned, and is downed by the split-brain resolver, so it exits with code 1 and says
    /// why. The link restored, c is started again and rejoins. At the end: every customer, read through each node, equals
    /// the batch computation; the win-back firings (distinct CloudEvent ids) are exactly the batch's, and no outreach
    /// item exists twice. The test reaches each node's HTTP through a relay into its namespace that the cut leaves alone.
    /// </summary>
    [Fact]
    public async Task Network_partition_cuts_one_node_off_mid_replay_the_majority_takes_over_and_the_node_rejoins_without_losing_or_repeating_anything()
    {
        var total = Stopwatch.StartNew();
        var histories = TriggerReplayTests.s_histories.Value;
        var invoices = histories.Values.Sum(h => h.Placed.Count + h.Cancelled.Count);
        var expected = OnlineRetailBatch.Compute(TestEnvironment.DataFile(TriggerReplayTests.RetailFile));
        await using var network = await TestNetwork.CreateAsync(hosts: 3);
        // PostgreSQL on the bridge: the hosts reach it over their links, and it sees a cut host's sessions go silent.
        await using var database = await PrivatePostgres.StartAsync(network.Gateway);
        await using var broker = await BrokerProcess.StartAsync(partitions: ClusterPartitions, initialRebalanceDelayMs: 3000);

        // The broker names itself 127.0.0.1:port to its clients: on each host that port leads to the test's broker over the
        // host's link.
        var brokerPort = new Uri("tcp://" + broker.BootstrapServers.Split(',')[0]).Port;
        network.Expose(brokerPort);
        const int HttpPort = 8080;
        const int AkkaPort = 25520;
        const int ManagementPort = 8558;
        var backdoors = new List<Uri>();
        foreach (var host in network.Hosts)
        {
            host.ReachLoopback(brokerPort, network.Gateway);
            backdoors.Add(host.Backdoor(HttpPort));
        }

        var dirs = new[] { "streaming-node-a", "streaming-node-b", "streaming-node-c" }.Select(TestEnvironment.NewTempDir).ToArray();
        Dictionary<string, string> Node(int i)
        {
            var settings = new Dictionary<string, string>
            {
                ["Streaming__Store__Provider"] = "postgresql",
                ["Streaming__Store__ConnectionString"] = database.ConnectionString,
                ["Streaming__Cluster__Hostname"] = network.Hosts[i].Address.ToString(),
                ["Streaming__Cluster__Port"] = AkkaPort.ToString(CultureInfo.InvariantCulture),
                ["Streaming__Kafka__Partitions"] = ClusterPartitions.ToString(CultureInfo.InvariantCulture),
                // The cut-off node loses its partitions after the session timeout and answers 503 until the split-brain
                // resolver downs it, some seconds after its stable-after.
                ["Streaming__Kafka__SessionTimeoutMs"] = "5000",
                ["Streaming__Cluster__StableAfterMs"] = "12000",
            };
            // No seed nodes: Akka.Management's Cluster Bootstrap finds the others through their management endpoints
            // (config discovery), the lowest address forms the cluster once all three answered, and a node started again
            // later joins the running cluster.
            settings["Streaming__Cluster__Discovery__Method"] = "config";
            settings["Streaming__Cluster__Discovery__RequiredContactPoints"] = network.Hosts.Count.ToString(CultureInfo.InvariantCulture);
            settings["Streaming__Cluster__Discovery__ManagementPort"] = ManagementPort.ToString(CultureInfo.InvariantCulture);
            for (var h = 0; h < network.Hosts.Count; h++)
            {
                settings[$"Streaming__Cluster__Discovery__Endpoints__{h}"] = $"{network.Hosts[h].Address}:{ManagementPort}";
            }

            return settings;
        }

        Task<EngineProcess> Start(int i) => EngineProcess.StartOnAsync(network.Hosts[i], HttpPort, backdoors[i], "127.0.0.1:" + brokerPort, dirs[i], Node(i));
        var started = await StartTogetherAsync([Start(0), Start(1), Start(2)]);
        var (a, b, c) = (started[0], started[1], started[2]);
        CliProcess? replay = null;
        try
        {
            await WaitClusterViewAsync([a, b, c], TimeSpan.FromSeconds(60));
            output.WriteLine($"three hosts ({string.Join(", ", network.Hosts.Select(h => h.Address))}) formed one cluster through config discovery at {total.ElapsedMilliseconds} ms");

            // Each management endpoint (the one the others' bootstrap probed, reached over the host's link) names its own
            // node and the cluster's three members.
            foreach (var host in network.Hosts)
            {
                using var management = new HttpClient { BaseAddress = new Uri($"http://{host.Address}:{ManagementPort}"), Timeout = TimeSpan.FromSeconds(10) };
                var seeds = await management.GetFromJsonAsync<JsonElement>("/bootstrap/seed-nodes");
                Assert.Equal(host.Address.ToString(), seeds.GetProperty("SelfNode").GetProperty("Host").GetString());
                Assert.Equal(
                    network.Hosts.Select(h => h.Address.ToString()).Order(StringComparer.Ordinal),
                    seeds.GetProperty("Nodes").EnumerateArray().Select(n => n.GetProperty("Node").GetProperty("Host").GetString()!).Order(StringComparer.Ordinal));
            }
            var consent = histories.Keys.Select(id => (id, $$$"""{"eventId":"consent-seed:{{{id}}}","customerId":"{{{id}}}","occurredAt":"2010-11-30T00:00:00Z","type":"consent","consent":{"voice":true,"sms":true}}"""));
            await Kcat.ProduceAsync(broker.BootstrapServers, "customer-updates", consent);
            await WaitClusterProcessedAsync([a, b, c], "customer-updates", histories.Count, TimeSpan.FromMinutes(1));
            replay = CliProcess.Start(["replay", "online-retail", "--file", TestEnvironment.DataFile(TriggerReplayTests.RetailFile), "--bootstrap", broker.BootstrapServers, "--rate", "400"]);

            // The cut, mid-replay.
            await WaitClusterProcessedAsync([a, b, c], "orders", invoices / 4, TimeSpan.FromMinutes(2));
            var ownedByC = await OwnedPartitionsAsync(c);
            Assert.NotEmpty(ownedByC);
            var probe = histories.Keys.Order(StringComparer.Ordinal).First(id => ownedByC.Contains(ProducerPartitioner.PartitionOf(id, ClusterPartitions)));
            using (var before = await c.Http.GetAsync("/v1/customers/" + probe))
            {
                Assert.Equal(HttpStatusCode.OK, before.StatusCode);
            }

            await network.CutAsync(2);
            var cut = Stopwatch.StartNew();
            output.WriteLine($"node c's link cut at {total.ElapsedMilliseconds} ms (replay {(replay.HasExited ? "done" : "running")}); it owned [{string.Join(",", ownedByC.Order())}]");

            // The majority takes every partition over.
            await WaitOwnAllPartitionsAsync(a, b, "a and b", "the cut");
            output.WriteLine($"a and b own all partitions {cut.ElapsedMilliseconds} ms after the cut");

            // The minority stops serving (503 for its former customer), then is downed: exit code 1, with the reason.
            var refused = false;
            await Eventually.WaitAsync(
                async () =>
                {
                    if (c.Process.HasExited)
                    {
                        return true;
                    }

                    try
                    {
                        using var answer = await c.Http.GetAsync("/v1/customers/" + probe);
                        refused |= answer.StatusCode == HttpStatusCode.ServiceUnavailable;
                    }
                    catch (HttpRequestException)
                    {
                        // Exiting.
                    }

                    return false;
                },
                TakeOverBound,
                () => $"node c exits after the cut; stderr: {CliProcess.Tail(c.Process.StandardError)}");
            output.WriteLine($"node c exited with {c.Process.ExitCode} {cut.ElapsedMilliseconds} ms after the cut, having answered 503: {refused}");
            Assert.True(refused, "node c never answered 503 for a customer of a partition it had owned before it exited");
            Assert.True(c.Process.ExitCode == 1, $"node c exited with {c.Process.ExitCode}: {CliProcess.Tail(c.Process.StandardError)}");
            Assert.True(c.Process.StandardError.Contains("was removed from the Akka cluster", StringComparison.Ordinal), $"node c exited without saying it was removed from the cluster: {CliProcess.Tail(c.Process.StandardError)}");
            await WaitClusterViewAsync([a, b], TakeOverBound);

            // The link restored, c starts again and rejoins.
            await network.RestoreAsync(2);
            await c.DisposeAsync();
            c = await Start(2);
            await WaitClusterViewAsync([a, b, c], TakeOverBound);
            output.WriteLine($"node c back at {total.ElapsedMilliseconds} ms (replay {(replay.HasExited ? "done" : "running")})");

            await ReplayDrainedAsync(replay, [a, b, c], invoices, histories.Count, total);
            var (_, distinct) = await AssertNodesAndTopicAsync([a, b, c], expected, broker.BootstrapServers);
            await AssertFiringsAsync([a, b, c], histories, distinct, database.ConnectionString, "cluster with node c cut off");
        }
        finally
        {
            if (replay is not null)
            {
                await replay.DisposeAsync();
            }

            await KillTogetherAsync(a, b, c);
        }

        output.WriteLine($"total {total.ElapsedMilliseconds} ms");
    }
}
