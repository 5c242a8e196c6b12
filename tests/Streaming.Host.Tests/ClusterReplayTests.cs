using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using StackExchange.Redis;
using Streaming.Connectors.Persistence;
using Streaming.Connectors.Sql;
using Streaming.Host.Tests.Infrastructure;
using Streaming.Tests.Shared;
using Xunit.Abstractions;

namespace Streaming.Host.Tests;

/// <summary>
/// Engines joined into one Akka.NET cluster (CONTRACTS §8) on one Kafka consumer group and one PostgreSQL database,
/// as separate processes, checked with the same batch computations as the single engine. They run one at a time with
/// the other end-to-end tests: beside them, on two cores, the other tests' timing-bound checks failed.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed partial class ClusterReplayTests(ITestOutputHelper output)
{
    private readonly TriggerReplayTests _replay = new(output);

    private const int ClusterPartitions = 8;
    private const string ClusterAdminToken = "cluster-admin-token-4f1e0b7d2c";

    /// <summary>CONTRACTS §8: the survivors own a dead node's partitions within this.</summary>
    private static readonly TimeSpan TakeOverBound = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Online Retail replayed (200 events/s) into a cluster that grows, loses a node and is restarted node by node. Nodes a
    /// and b start (every node lists a, b and c as seed nodes, so a restarted a joins the others rather than forming a
    /// cluster of its own); a third, c, joins at an eighth of the replay and takes partitions over (scale-out); at a quarter
    /// b is killed with SIGKILL, and the survivors own all partitions within the contract's 60 s. Then, with the replay
    /// still running, a rolling restart: b comes back, c and then a are stopped with SIGTERM (exit code 0, the others own
    /// every partition) and started again, each time until every node's view lists the three. Then: every customer, read
    /// through <b>each</b> node, equals the batch computation; the win-back firings (distinct CloudEvent ids) are exactly
    /// the batch's; the outreach queue in PostgreSQL holds one item per queued firing; and only the oldest node published
    /// the shared outbox (the relay's cluster singleton): a until it left, then b, never c nor the restarted a. Every node
    /// mirrors to one Redis prefix: no
    /// sampled key's <c>seq</c> ever goes back while customers change owner, and at the end every customer's hash and
    /// set memberships equal its profile, with <c>seq</c> its durable version (its journal's last sequence number in
    /// PostgreSQL).
    /// </summary>
    [Fact]
    public async Task Cluster_grows_loses_a_node_and_restarts_node_by_node_mid_replay_without_losing_or_repeating_anything()
    {
        var total = Stopwatch.StartNew();
        var histories = TriggerReplayTests.s_histories.Value;
        var invoices = histories.Values.Sum(h => h.Placed.Count + h.Cancelled.Count);
        var expected = OnlineRetailBatch.Compute(TestEnvironment.DataFile(TriggerReplayTests.RetailFile));
        await using var database = await PostgresDatabase.CreateAsync();
        await using var broker = await BrokerProcess.StartAsync(partitions: ClusterPartitions, initialRebalanceDelayMs: 3000);
        await using var redis = await RedisTestServer.SharedOrPrivateAsync();
        var prefix = "cluster-" + Guid.NewGuid().ToString("N")[..10] + ":";
        using var redisClient = await ConnectionMultiplexer.ConnectAsync(redis.Connection + ",syncTimeout=15000");
        var ports = new[] { TestEnvironment.FreePort(), TestEnvironment.FreePort(), TestEnvironment.FreePort() };
        var dirs = new[] { "streaming-node-a", "streaming-node-b", "streaming-node-c" }.Select(TestEnvironment.NewTempDir).ToArray();
        Dictionary<string, string> Node(int port) => new()
        {
            ["Streaming__Store__Provider"] = "postgresql",
            ["Streaming__Store__ConnectionString"] = database.ConnectionString,
            ["Streaming__Cluster__Port"] = port.ToString(CultureInfo.InvariantCulture),
            ["Streaming__Cluster__SeedNodes__0"] = "127.0.0.1:" + ports[0].ToString(CultureInfo.InvariantCulture),
            ["Streaming__Cluster__SeedNodes__1"] = "127.0.0.1:" + ports[1].ToString(CultureInfo.InvariantCulture),
            ["Streaming__Cluster__SeedNodes__2"] = "127.0.0.1:" + ports[2].ToString(CultureInfo.InvariantCulture),
            ["Streaming__Kafka__Partitions"] = ClusterPartitions.ToString(CultureInfo.InvariantCulture),
            // Shorter than the defaults (10 s and 20 s), as for a small cluster on a quiet network: the embedded broker
            // waits a session timeout less a second in every rebalance round, and the survivors of the SIGKILL take its
            // partitions once the split-brain resolver has decided.
            ["Streaming__Kafka__SessionTimeoutMs"] = "5000",
            ["Streaming__Cluster__StableAfterMs"] = "7000",
            ["Streaming__Rules__PollIntervalMs"] = "200",
            ["Streaming__Auth__Tokens__0__Token"] = ClusterAdminToken,
            ["Streaming__Auth__Tokens__0__Scopes__0"] = "admin",
            ["Streaming__Redis__Connection"] = redis.Connection,
            ["Streaming__Redis__Prefix"] = prefix,
        };

        // Started together: b keeps trying its seed until a has formed the cluster.
        Task<EngineProcess> Start(int node) => EngineProcess.StartAsync(broker.BootstrapServers, dirs[node], Node(ports[node]));
        var started = await StartTogetherAsync([Start(0), Start(1)]);
        var (a, b) = (started[0], started[1]);
        EngineProcess? c = null;
        CliProcess? replay = null;
        var sampler = new RedisMirrorEndToEndTests.SeqSampler(redis.Connection, prefix, maxKeys: 1000);
        try
        {
            // Voice and SMS consent for every customer first (Online Retail has none), so firings queue outreach items.
            var consent = histories.Keys.Select(id => (id, $$$"""{"eventId":"consent-seed:{{{id}}}","customerId":"{{{id}}}","occurredAt":"2010-11-30T00:00:00Z","type":"consent","consent":{"voice":true,"sms":true}}"""));
            await Kcat.ProduceAsync(broker.BootstrapServers, "customer-updates", consent);
            await WaitClusterProcessedAsync([a, b], "customer-updates", histories.Count, TimeSpan.FromMinutes(1));

            replay = CliProcess.Start(["replay", "online-retail", "--file", TestEnvironment.DataFile(TriggerReplayTests.RetailFile), "--bootstrap", broker.BootstrapServers, "--rate", "200"]);

            // Scale-out: a third node joins mid-replay; Kafka gives it partitions and their shards move with them.
            await WaitClusterProcessedAsync([a, b], "orders", invoices / 8, TimeSpan.FromMinutes(2));
            c = await Start(2);
            output.WriteLine($"node c ready at {total.ElapsedMilliseconds} ms, owning [{string.Join(",", (await OwnedPartitionsAsync(c)).Order())}]");
            await WaitClusterViewAsync([a, b, c], TimeSpan.FromSeconds(60));

            // SIGKILL mid-replay.
            await WaitClusterProcessedAsync([a, b, c], "orders", invoices / 4, TimeSpan.FromMinutes(2));
            var status = await b.StatusAsync();
            output.WriteLine($"SIGKILL node b at {total.ElapsedMilliseconds} ms (replay {(replay.HasExited ? "done" : "running")}): it owned [{string.Join(",", (await OwnedPartitionsAsync(b)).Order())}], checkpointSeq={status.GetProperty("checkpointSeq").GetInt64()}");
            await b.Process.KillAsync();
            var killed = Stopwatch.StartNew();
            await WaitOwnAllPartitionsAsync(a, c, "the survivors", "the SIGKILL");
            output.WriteLine($"survivors own all partitions {killed.ElapsedMilliseconds} ms after the SIGKILL");
            await WaitClusterViewAsync([a, c], TakeOverBound);

            // Rolling restart while the replay runs: b comes back, then c and a (the relay's holder) leave and return in turn.
            // Under load: records are still coming in (produced or not yet processed) when the restarts begin.
            var processedBefore = await a.ProcessedOffsetsAsync("orders") + await c.ProcessedOffsetsAsync("orders");
            Assert.True(!replay.HasExited || processedBefore < invoices, $"every invoice was processed ({processedBefore}) before the rolling restart: it would not run under load");
            await b.DisposeAsync();
            b = await Start(1);
            await WaitClusterViewAsync([a, b, c], TakeOverBound);
            output.WriteLine($"node b back at {total.ElapsedMilliseconds} ms");
            async Task<long> PublishedBy(EngineProcess node) => (await node.StatusAsync()).GetProperty("triggersPublished").GetInt64();
            foreach (var restart in new[] { 2, 0 })
            {
                var nodes = new List<EngineProcess> { a, b, c };
                var leaving = nodes[restart];
                nodes.RemoveAt(restart);
                foreach (var node in restart == 0 ? nodes : [leaving])
                {
                    // a, the oldest member, holds the relay singleton until it leaves: nobody else has published.
                    Assert.Equal(0, await PublishedBy(node));
                }

                var stopping = Stopwatch.StartNew();
                leaving.Process.Terminate();
                await leaving.Process.WaitForExitAsync(TimeSpan.FromSeconds(60));
                Assert.True(leaving.Process.ExitCode == 0, $"node {"abc"[restart]} exited with {leaving.Process.ExitCode} on SIGTERM: {CliProcess.Tail(leaving.Process.StandardError)}");
                await WaitOwnAllPartitionsAsync(nodes[0], nodes[1], "the others", $"node {"abc"[restart]} left");
                output.WriteLine($"node {"abc"[restart]} left (SIGTERM) at {total.ElapsedMilliseconds} ms; the others own all partitions {stopping.ElapsedMilliseconds} ms after the signal (replay {(replay.HasExited ? "done" : "running")})");
                await leaving.DisposeAsync();
                var back = await Start(restart);
                (a, c) = restart == 0 ? (back, c) : (a, back);
                await WaitClusterViewAsync([a, b, c], TakeOverBound);
                output.WriteLine($"node {"abc"[restart]} back at {total.ElapsedMilliseconds} ms");
            }

            await ReplayDrainedAsync(replay, [a, b, c], invoices, histories.Count, total);
            var (published, distinct) = await AssertNodesAndTopicAsync([a, b, c], expected, broker.BootstrapServers);

            // One relay for the cluster: since the first a left, b (the oldest member, holding the relay singleton) alone
            // published; the restarted c and a never did.
            var (publishedA, publishedB, publishedC) = (await PublishedBy(a), await PublishedBy(b), await PublishedBy(c));
            Assert.True(publishedA == 0 && publishedC == 0 && publishedB <= published.Count, $"triggersPublished: node a {publishedA}, b {publishedB}, c {publishedC}; {published.Count} records on the topic");

            output.WriteLine($"profiles through each node and the topic checked at {total.ElapsedMilliseconds} ms");
            await AssertFiringsAsync([a, b, c], histories, distinct, database.ConnectionString, "cluster with node b killed and every node restarted");
            output.WriteLine($"firings, counters and outreach checked at {total.ElapsedMilliseconds} ms");
            await _replay.AssertStateFiringsMatchAsync(a.Http, histories.Keys, distinct);
            output.WriteLine($"remembered firings checked at {total.ElapsedMilliseconds} ms");

            await AssertClusterMirrorAsync([a, b, c], redisClient.GetDatabase(), prefix, database.ConnectionString, sampler);

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
            foreach (var (node, origin) in new[] { (a, "cluster"), (b, "cluster"), (c, "api") })
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
            await sampler.DisposeAsync();
            await RedisMirrorEndToEndTests.DeletePrefixAsync(redisClient, prefix);
            if (replay is not null)
            {
                await replay.DisposeAsync();
            }

            output.WriteLine($"checks ended at {total.ElapsedMilliseconds} ms");
            await KillTogetherAsync(a, b, c);
        }

        output.WriteLine($"total {total.ElapsedMilliseconds} ms");
    }

    /// <summary>
    /// Ends the nodes at once with SIGKILL, after the checks: their graceful leave is what the rolling restart tests (a
    /// leave takes 10 s or so, and one by one each would hand its partitions to nodes about to leave too).
    /// </summary>
    private static Task KillTogetherAsync(params EngineProcess?[] nodes) =>
        Task.WhenAll(nodes.OfType<EngineProcess>().Select(async node =>
        {
            await node.Process.KillAsync();
            await node.DisposeAsync();
        }));

    /// <summary>Waits for nodes started together; if one fails to start, the others are stopped and the failure thrown.</summary>
    private static async Task<EngineProcess[]> StartTogetherAsync(IReadOnlyList<Task<EngineProcess>> starting)
    {
        try
        {
            return await Task.WhenAll(starting);
        }
        catch
        {
            foreach (var started in starting.Where(t => t.IsCompletedSuccessfully))
            {
                await (await started).DisposeAsync();
            }

            throw;
        }
    }

    /// <summary>Waits for the replay to end having produced every invoice, then for the nodes to process and drain all of it.</summary>
    private async Task ReplayDrainedAsync(CliProcess replay, IReadOnlyList<EngineProcess> nodes, long invoices, long consents, Stopwatch total)
    {
        try
        {
            await replay.WaitForExitAsync(TimeSpan.FromMinutes(5));
        }
        catch (TimeoutException)
        {
            // The replay waits for the group to catch up: say what each node was doing.
            foreach (var node in nodes)
            {
                output.WriteLine($"node on {node.Http.BaseAddress}, warnings and errors:\n" + string.Join('\n', (node.Process.StandardOutput + node.Process.StandardError).Split('\n').Where(l => l.Contains(" warn: ", StringComparison.Ordinal) || l.Contains(" fail: ", StringComparison.Ordinal)).TakeLast(40)));
                output.WriteLine($"its status: {await node.StatusAsync()}");
            }

            throw;
        }

        Assert.True(replay.ExitCode == 0, "replay failed: " + replay.StandardError);
        Assert.Equal(invoices, TriggerReplayTests.Produced(replay));
        await WaitClusterDrainedAsync(nodes, new() { ["orders"] = invoices, ["customer-updates"] = consents });
        output.WriteLine($"processed and drained at {total.ElapsedMilliseconds} ms");
    }

    /// <summary>
    /// Every customer read through each node equals the batch; every record on <c>customer-triggers</c> is a valid
    /// CloudEvent and an id published twice carries the same contents. Returns the records and one per distinct id.
    /// </summary>
    private async Task<(List<TriggerReplayTests.Published> All, List<TriggerReplayTests.Published> Distinct)> AssertNodesAndTopicAsync(
        IReadOnlyList<EngineProcess> nodes, OnlineRetailBatch.Result expected, string bootstrap)
    {
        // Through the nodes at once: each read is a round trip through its node's shard region, often to another node.
        // A read answered 503 (its partition's owner not known to this node yet, or not answering) is asked again for up
        // to 15 s, as the Retry-After tells a client to.
        await Task.WhenAll(nodes.Select((node, i) => ProfileAssert.OrdersMatchAsync([node.Http], expected, $"read through node {"abc"[i]}", TimeSpan.FromSeconds(15), output.WriteLine)));

        var published = await TriggerReplayTests.ReadTriggersAsync(bootstrap);
        TriggerReplayTests.AssertEnvelopes(published);
        var byId = published.GroupBy(p => p.Id).ToList();
        var differing = byId.Where(g => g.Count() > 1 && g.Select(p => p.Raw).Distinct().Count() > 1).ToList();
        output.WriteLine($"customer-triggers: {published.Count} records, {byId.Count} distinct ids; by type: {TriggerReplayTests.ByType(published)}");
        Assert.True(differing.Count == 0, $"{differing.Count} ids were published with different contents, e.g. {string.Join(", ", differing.Take(5).Select(g => g.Key))}");
        return (published, byId.Select(g => g.First()).ToList());
    }

    /// <summary>
    /// The distinct firings against the batch (win-backs exactly, the order rules), the nodes' firing counters against
    /// them, and the outreach queue in PostgreSQL: one item per queued firing.
    /// </summary>
    private async Task AssertFiringsAsync(IReadOnlyList<EngineProcess> nodes, IReadOnlyDictionary<string, CustomerHistory> histories, List<TriggerReplayTests.Published> distinct, string connectionString, string context)
    {
        var asOf = await _replay.AsOfAsync(nodes[^1].Http, histories, ClusterPartitions);
        _replay.AssertWinBacks(histories, asOf, distinct, context);
        _replay.AssertOrderRules(histories, distinct);
        await _replay.AssertCountersMatchAsync([.. nodes.Select(n => n.Http)], distinct);
        using var store = EngineStore.Open(new ActorStoreOptions { Provider = StoreProvider.PostgreSql, ConnectionString = connectionString });
        _replay.AssertOutreachQueue(store.ListOutreach(), distinct);
    }

    /// <summary>
    /// Once both survivors' mirrors are idle: Redis holds exactly the stored customers, each equal to its profile (read
    /// through the first node) with its journal version as <c>seq</c>, again until so within 60 s (the last checkpoints
    /// reach Redis a moment after the records); and the sampler saw no <c>seq</c> go back.
    /// </summary>
    private async Task AssertClusterMirrorAsync(IReadOnlyList<EngineProcess> nodes, IDatabase db, string prefix, string connectionString, RedisMirrorEndToEndTests.SeqSampler sampler)
    {
        var clock = Stopwatch.StartNew();
        for (var round = 1; ; round++)
        {
            var idle = true;
            foreach (var node in nodes)
            {
                var mirror = (await node.StatusAsync()).GetProperty("mirror");
                idle &= mirror.GetProperty("pending").GetInt64() == 0 && mirror.GetProperty("lagCheckpoints").GetInt64() == 0 && mirror.GetProperty("errors").GetInt64() == 0;
            }

            // Each customer's durable version, read from the journal as another process would.
            var versions = new Dictionary<string, long>(StringComparer.Ordinal);
            await using (var connection = new Npgsql.NpgsqlConnection(connectionString))
            {
                await connection.OpenAsync();
                await using var command = new Npgsql.NpgsqlCommand("SELECT substr(persistence_id, 10), MAX(sequence_number) FROM journal WHERE persistence_id LIKE 'customer-%' GROUP BY persistence_id", connection);
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    versions[reader.GetString(0)] = reader.GetInt64(1);
                }
            }

            var profiles = await RedisMirrorEndToEndTests.ProfilesAsync(nodes[0].Http, [.. versions.Keys]);
            var mismatches = await RedisMirrorEndToEndTests.CompareAsync(db, prefix, profiles, exactSeq: null);
            var batch = db.CreateBatch();
            var seqs = versions.Keys.Select(id => (Id: id, Seq: batch.HashGetAsync(prefix + "customer:" + id, "seq"))).ToList();
            batch.Execute();
            foreach (var (id, read) in seqs)
            {
                var seq = await read;
                if (seq != versions[id])
                {
                    mismatches.Add(new(id, "seq", versions[id].ToString(CultureInfo.InvariantCulture), seq.IsNull ? "(absent)" : seq.ToString()));
                }
            }

            var redisIds = await RedisMirrorEndToEndTests.CustomerIdsAsync(db, prefix);
            if (!redisIds.SetEquals(versions.Keys))
            {
                mismatches.Add(new("(keys)", "customer hashes", $"{versions.Count} stored customers", $"{redisIds.Count} hashes"));
            }

            output.WriteLine($"mirror round {round}: {profiles.Count} customers compared, {mismatches.Count} mismatches, mirrors idle: {idle} ({clock.ElapsedMilliseconds} ms)");
            if (mismatches.IsEmpty && idle)
            {
                break;
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(60))
            {
                var logs = nodes.Select(n => string.Join("\n", n.Process.StandardError.Split('\n').Where(l => l.Contains("Redis mirror", StringComparison.Ordinal))));
                Assert.Fail(RedisMirrorEndToEndTests.Report("cluster mirror vs API and journal", profiles.Count, mismatches) + "\nthe nodes' mirror log lines:\n" + string.Join("\n--\n", logs));
            }

            await Task.Delay(TimeSpan.FromSeconds(1));
        }

        await sampler.StopAsync();
        output.WriteLine($"sampler: {sampler.Rounds} rounds over {sampler.Keys} keys, {sampler.Increases} increases");
        Assert.True(sampler.Decreases.IsEmpty, "seq went backwards: " + string.Join("; ", sampler.Decreases.Take(20)));
        Assert.True(sampler.Keys >= 1000 && sampler.Increases > 1000, $"the sampler tracked {sampler.Keys} keys and saw {sampler.Increases} increases");
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
                () => $"/v1/cluster of {node.Http.BaseAddress}: {last}; expected {want}\n" + string.Join("\n", nodes.Select(n => $"stderr of {n.Http.BaseAddress}: {CliProcess.Tail(n.Process.StandardError, 40)}")));
        }
    }

    /// <summary>
    /// Waits until <paramref name="one"/> and <paramref name="two"/> together own every partition, none twice, within the
    /// contract's <see cref="TakeOverBound"/> of <paramref name="since"/>.
    /// </summary>
    private static Task WaitOwnAllPartitionsAsync(EngineProcess one, EngineProcess two, string who, string since) =>
        Eventually.WaitAsync(
            async () =>
            {
                var (first, second) = (await OwnedPartitionsAsync(one), await OwnedPartitionsAsync(two));
                return first.Count + second.Count == ClusterPartitions && !first.Overlaps(second);
            },
            TakeOverBound,
            () => $"{who} own all {ClusterPartitions} partitions within {TakeOverBound.TotalSeconds} s of {since}; stderr: {CliProcess.Tail(one.Process.StandardError)}\n--\n{CliProcess.Tail(two.Process.StandardError)}");

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
