using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using StackExchange.Redis;
using Streaming.Connectors.Persistence;
using Streaming.Host.Tests.Infrastructure;
using Streaming.Tests.Shared;
using Xunit.Abstractions;

namespace Streaming.Host.Tests;

/// <summary>
/// The Redis mirror end to end: Online Retail replayed in full through separate broker, replay and engine processes
/// with <c>Streaming:Redis</c> configured, against a real <c>redis-server</c>; then every customer's hash and set
/// memberships must equal its API profile. Also with Redis shut down for 15 s mid-replay, and after
/// <c>streaming mirror resync</c>.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed partial class RedisMirrorEndToEndTests(ITestOutputHelper output)
{
    private const string RetailFile = "online_retail_2010_2011.csv.gz";
    private const string AdminToken = "admin-token-for-mirror-tests-0123456789";
    private const int ReportedMismatches = 20;
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(15);

    /// <summary>
    /// One replay (at 2,500 events/s) with the mirror, an admin token and checkpoints every 250 ms. Mid-replay the rule set is
    /// switched by <c>PUT /v1/rules</c> (the VIP tag's threshold from 5000 to 1000 net), and the engine is SIGKILLed as
    /// soon as Redis shows a customer evaluated with the new set (so the checkpoint that stored the switch is durable),
    /// then restarted on the same data directory. A sampler reads the <c>seq</c> and <c>ruleVersion</c> of 2,000
    /// customer hashes every 200 ms throughout: no <c>seq</c> ever goes back, no checkpoint carries two versions, and
    /// every checkpoint after the switch carries the new one. The restarted engine resumes with the switched set; every
    /// profile ends on it, with orders equal to the batch computation and the VIP tag exactly where net ≥ 1000; the mirror
    /// equals the API. Then the mirror is damaged and <c>streaming mirror resync</c> rebuilds it.
    /// </summary>
    [Fact]
    public async Task Replay_mirrors_every_customer_across_a_rule_switch_and_a_kill_and_resync_rebuilds_it()
    {
        var total = Stopwatch.StartNew();
        await using var redis = await RedisTestServer.SharedOrPrivateAsync();
        var prefix = "e2e-" + Guid.NewGuid().ToString("N")[..10] + ":";
        using var client = await ConnectionMultiplexer.ConnectAsync(redis.Connection + ",syncTimeout=15000");
        var db = client.GetDatabase();
        await using var broker = await BrokerProcess.StartAsync(partitions: 16);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        var expected = OnlineRetailBatch.Compute(TestEnvironment.DataFile(RetailFile));
        var (switched, v2) = await SwitchedPackAsync(dataDir);
        var env = MirrorEnvironment(redis, prefix);
        env["Streaming__Auth__Tokens__0__Token"] = AdminToken;
        env["Streaming__Auth__Tokens__0__Scopes__0"] = "admin";
        env["Streaming__Engine__CheckpointIntervalMs"] = "250";
        try
        {
            Dictionary<string, Profile> profiles;
            long lastSeq;
            var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);
            try
            {
                var v1 = (await RulesAsync(engine)).GetProperty("version").GetString()!;
                Assert.NotEqual(v1, v2);
                await using var sampler = new SeqSampler(redis.Connection, prefix, maxKeys: 2000);
                // Capped at 2,500 events/s (about 9 s for the file): a switch takes one to three checkpoints under load to
                // reach Redis, and at the full rate the replay could end before it, leaving no load for the switch and kill.
                var replay = CliProcess.Start(["replay", "online-retail", "--file", TestEnvironment.DataFile(RetailFile), "--bootstrap", broker.BootstrapServers, "--rate", "2500"]);

                await engine.WaitProcessedAsync("orders", expected.Invoices * 15 / 100, TimeSpan.FromMinutes(2));
                using (var request = new HttpRequestMessage(HttpMethod.Put, "/v1/rules") { Content = new StringContent(switched, Encoding.UTF8, "application/yaml") })
                {
                    request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminToken);
                    using var put = await engine.Http.SendAsync(request);
                    Assert.Equal(HttpStatusCode.Accepted, put.StatusCode);
                }

                var putAt = total.ElapsedMilliseconds;
                await Eventually.WaitAsync(() => Task.FromResult(sampler.Saw(v2)), TimeSpan.FromMinutes(1), () => $"a hash with ruleVersion {v2}; sampler saw {sampler.Versions}");
                var processed = await engine.ProcessedOffsetsAsync("orders");
                output.WriteLine($"switch to {v2} put at {putAt} ms, seen in Redis at {total.ElapsedMilliseconds} ms; SIGKILL with {processed} of {expected.Invoices} orders processed");
                Assert.True(processed < expected.Invoices, "the replay was over before the kill: the switch and the kill were not under load");
                await engine.Process.KillAsync();
                await engine.DisposeAsync();
                engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);
                var resumed = await RulesAsync(engine);
                Assert.Equal((v2, "stored"), (resumed.GetProperty("version").GetString(), resumed.GetProperty("origin").GetString()));
                output.WriteLine($"restarted at {total.ElapsedMilliseconds} ms");

                await replay.WaitForExitAsync(TimeSpan.FromMinutes(5));
                Assert.True(replay.ExitCode == 0, "replay failed: " + replay.StandardError);
                Assert.Equal(expected.Invoices, Produced(replay));
                await engine.WaitProcessedAsync("orders", expected.Invoices, TimeSpan.FromMinutes(3));
                Assert.True(sampler.Decreases.IsEmpty, "seq went backwards after the restart: " + string.Join("; ", sampler.Decreases.Take(20)));

                // Customers not touched since the restart are re-evaluated by the background sweep.
                var customerIds = expected.Customers.Keys.ToList();
                var stale = customerIds;
                await Eventually.WaitAsync(
                    async () => (stale = [.. (await ProfilesAsync(engine.Http, customerIds)).Values.Where(p => p.RuleVersion != v2).Select(p => p.Id)]).Count == 0,
                    TimeSpan.FromMinutes(1),
                    () => $"{stale.Count} profiles not on {v2}, e.g. {string.Join(", ", stale.Take(5))}");
                await WaitMirrorIdleAsync(engine);
                output.WriteLine($"{expected.Invoices} events processed, every profile on {v2} and the mirror idle at {total.ElapsedMilliseconds} ms");

                await ProfileAssert.OrdersMatchAsync(engine.Http, expected, "after a rule switch and a SIGKILL");
                (profiles, lastSeq) = await MirrorEqualsApiEventuallyAsync(engine, db, dataDir, prefix);
                Assert.Equal(expected.Customers.Count, profiles.Count);
                var vipWrong = profiles.Values.Where(p => p.Tags.Contains("vip") != (expected.Customers[p.Id].Net >= 1000m)).Select(p => $"{p.Id} (net {expected.Customers[p.Id].Net}, tags {string.Join(',', p.Tags)})").ToList();
                Assert.True(vipWrong.Count == 0, $"{vipWrong.Count} customers' vip tag is not net >= 1000: {string.Join("; ", vipWrong.Take(ReportedMismatches))}");
                Assert.Contains(profiles.Values, p => p.Tags.Contains("vip") && expected.Customers[p.Id].Net < 5000m);

                await sampler.StopAsync();
                output.WriteLine($"sampler: {sampler.Rounds} rounds over {sampler.Keys} keys, {sampler.Increases} increases, versions by seq: {sampler.Versions}");
                Assert.True(sampler.Decreases.IsEmpty, "seq went backwards: " + string.Join("; ", sampler.Decreases.Take(20)));
                Assert.True(sampler.Conflicts.IsEmpty, "a checkpoint carries two rule versions: " + string.Join("; ", sampler.Conflicts.Take(20)));
                var lastOld = sampler.SeqRange(v1).Max;
                var firstNew = sampler.SeqRange(v2).Min;
                Assert.True(lastOld < firstNew, $"checkpoints with {v1} up to seq {lastOld}, with {v2} from seq {firstNew}: the versions interleave");
                Assert.True(sampler.Keys >= 2000 && sampler.Increases > 2000, $"the sampler tracked {sampler.Keys} keys and saw {sampler.Increases} increases");

                var status = await engine.StatusAsync();
                output.WriteLine("status.mirror: " + status.GetProperty("mirror"));
                Assert.Equal(0, status.GetProperty("mirror").GetProperty("errors").GetInt64());
                var metrics = await engine.Http.GetStringAsync("/metrics");
                Assert.Contains("streaming_mirror_writes_total", metrics, StringComparison.Ordinal);
                Assert.Contains("streaming_mirror_pending ", metrics, StringComparison.Ordinal);
                Assert.Contains("streaming_mirror_lag ", metrics, StringComparison.Ordinal);

                engine.Process.Terminate();
                await engine.Process.WaitForExitAsync(TimeSpan.FromSeconds(15));
                Assert.Equal(0, engine.Process.ExitCode);
            }
            finally
            {
                await engine.DisposeAsync();
            }

            // Damage the mirror as a lost or foreign Redis would: missing keys, a stray member, a seq from another life.
            var ids = profiles.Keys.Order(StringComparer.Ordinal).ToList();
            foreach (var id in ids.Take(25))
            {
                await db.KeyDeleteAsync(prefix + "customer:" + id);
            }

            await db.SetAddAsync(prefix + "tag:vip", ids.Last(id => !profiles[id].Tags.Contains("vip")));
            await db.SetAddAsync(prefix + "stage:prospect", "nobody");
            await db.HashSetAsync(prefix + "customer:" + ids[^2], "seq", 999_999_999);

            var resync = await CliProcess.RunAsync(["mirror", "resync", "--data-dir", dataDir, "--redis", redis.Connection, "--prefix", prefix], TimeSpan.FromMinutes(3));
            Assert.True(resync.ExitCode == 0, "resync failed: " + resync.StandardError);
            output.WriteLine(resync.StandardOutput.Trim());
            Assert.Contains($"customers={profiles.Count} seq=", resync.StandardOutput, StringComparison.Ordinal);

            long storeSeq;
            using (var snapshot = JournalSnapshot.OpenDirectory(dataDir))
            {
                storeSeq = snapshot.Seq;
            }

            Assert.True(storeSeq >= lastSeq);

            // The resync is in the audit trail, by the command line.
            using (var store = Streaming.Connectors.Sql.SqliteStateStore.OpenDirectory(dataDir))
            {
                var entry = Assert.Single(store.ReadAudit(long.MaxValue, 10), e => e.Action == "mirror.resync");
                Assert.Equal("cli", entry.Actor);
                Assert.Equal($"prefix {prefix}: customers={profiles.Count} seq={storeSeq}", entry.Detail);
            }

            var mismatches = await CompareAsync(db, prefix, profiles, exactSeq: storeSeq);
            Assert.True(mismatches.IsEmpty, Report("after resync", profiles.Count, mismatches));
            output.WriteLine($"total {total.ElapsedMilliseconds} ms");
        }
        finally
        {
            await DeletePrefixAsync(client, prefix);
            Directory.Delete(dataDir, recursive: true);
        }
    }

    /// <summary>
    /// Redis (a private server with an append-only file, so it comes back with its data) is shut down for 15 s while
    /// the replay runs at a paced rate. The engine keeps processing, the mirror's lag grows; after Redis returns the
    /// mirror catches up and equals the API, and a sampler reading 1,000 keys' seq every 200 ms never saw one go back.
    /// A shutdown rather than SIGSTOP: it drops the connections, so reconnecting and reloading the Lua script
    /// (NOSCRIPT) are exercised; the hung-server case is covered by the connector tests.
    /// </summary>
    [Fact]
    public async Task Redis_down_for_15_s_mid_replay_the_engine_goes_on_and_the_mirror_catches_up_never_backwards()
    {
        await using var redis = await RedisTestServer.StartPrivateAsync(appendOnly: true);
        var prefix = "outage:";
        await using var broker = await BrokerProcess.StartAsync(partitions: 16);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        try
        {
            await using var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, MirrorEnvironment(redis, prefix));
            await using var sampler = new SeqSampler(redis.Connection, prefix, maxKeys: 1000);
            var replay = CliProcess.Start(["replay", "online-retail", "--file", TestEnvironment.DataFile(RetailFile), "--bootstrap", broker.BootstrapServers, "--rate", "600"]);

            await engine.WaitProcessedAsync("orders", 3000, TimeSpan.FromMinutes(2));
            await Eventually.WaitAsync(() => Task.FromResult(sampler.Keys >= 500), TimeSpan.FromMinutes(1), () => $"sampler tracks {sampler.Keys} keys");

            await redis.ShutdownAsync();
            var before = await engine.StatusAsync();
            var processedBefore = before.GetProperty("eventsProcessed").GetInt64();
            long maxLag = 0, maxPending = 0, errors = 0;
            var down = Stopwatch.StartNew();
            while (down.Elapsed < Outage)
            {
                var mirror = (await engine.StatusAsync()).GetProperty("mirror");
                maxLag = Math.Max(maxLag, mirror.GetProperty("lagCheckpoints").GetInt64());
                maxPending = Math.Max(maxPending, mirror.GetProperty("pending").GetInt64());
                errors = mirror.GetProperty("errors").GetInt64();
                await Task.Delay(TimeSpan.FromMilliseconds(500));
            }

            var after = await engine.StatusAsync();
            var processedDuring = after.GetProperty("eventsProcessed").GetInt64() - processedBefore;
            output.WriteLine($"during the outage: {processedDuring} events processed, mirror lag up to {maxLag} checkpoints, {maxPending} customers pending, {errors} failed attempts");
            Assert.True(processedDuring > 1000, $"the engine processed only {processedDuring} events while Redis was down");
            Assert.True(maxLag >= 5, $"the mirror's lag should grow while Redis is down: {maxLag}");
            Assert.True(maxPending > 0 && errors > 0, $"pending {maxPending}, errors {errors}");
            Assert.False(replay.HasExited, "the replay ended before Redis came back: the outage was not mid-replay");

            await redis.StartAsync();
            var back = Stopwatch.StartNew();
            await replay.WaitForExitAsync(TimeSpan.FromMinutes(5));
            Assert.True(replay.ExitCode == 0, "replay failed: " + replay.StandardError);
            var produced = Produced(replay);
            await engine.WaitProcessedAsync("orders", produced, TimeSpan.FromMinutes(3));
            await WaitMirrorIdleAsync(engine);
            output.WriteLine($"replay finished and mirror idle {back.ElapsedMilliseconds} ms after Redis returned");

            using var client = await ConnectionMultiplexer.ConnectAsync(redis.Connection + ",syncTimeout=15000");
            var (profiles, _) = await MirrorEqualsApiEventuallyAsync(engine, client.GetDatabase(), dataDir, prefix);
            await sampler.StopAsync();
            output.WriteLine($"sampler: {sampler.Rounds} rounds over {sampler.Keys} keys, {sampler.FailedRounds} failed while Redis was down, {sampler.Increases} increases seen");
            Assert.True(sampler.Decreases.IsEmpty, "seq went backwards: " + string.Join("; ", sampler.Decreases.Take(20)));
            Assert.True(sampler.FailedRounds > 0 && sampler.RoundsAfterFailure > 0, "the sampler must have seen the outage and the recovery");
            Assert.True(profiles.Count >= 4000);
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }

    private static Dictionary<string, string> MirrorEnvironment(RedisTestServer redis, string prefix) => new()
    {
        ["Streaming__Redis__Connection"] = redis.Connection,
        ["Streaming__Redis__Prefix"] = prefix,
    };

    private static async Task<JsonElement> RulesAsync(EngineProcess engine) => await engine.Http.GetFromJsonAsync<JsonElement>("/v1/rules");

    /// <summary>The default pack with the VIP tag at net ≥ 1000 instead of 5000, and its version as <c>streaming rules check</c> gives it.</summary>
    private static async Task<(string Text, string Version)> SwitchedPackAsync(string dir)
    {
        var pack = await CliProcess.RunAsync(["rules", "default"], TimeSpan.FromSeconds(60));
        Assert.Equal(0, pack.ExitCode);
        const string From = "when: orders.net >= 5000";
        Assert.Contains(From, pack.StandardOutput, StringComparison.Ordinal);
        var text = pack.StandardOutput.Replace(From, "when: orders.net >= 1000", StringComparison.Ordinal);
        var file = Path.Combine(dir, "switched.yaml");
        await File.WriteAllTextAsync(file, text);
        var check = await CliProcess.RunAsync(["rules", "check", file], TimeSpan.FromSeconds(60));
        Assert.True(check.ExitCode == 0, check.StandardError);
        File.Delete(file);
        return (text, check.StandardOutput.Split(' ')[1]);
    }

    /// <summary>Waits until the mirror has written everything the engine checkpointed (the engine must be idle).</summary>
    private static async Task WaitMirrorIdleAsync(EngineProcess engine)
    {
        JsonElement last = default;
        await Eventually.WaitAsync(
            async () =>
            {
                last = await engine.StatusAsync();
                var mirror = last.GetProperty("mirror");
                return mirror.GetProperty("pending").GetInt64() == 0
                    && mirror.GetProperty("lagCheckpoints").GetInt64() == 0
                    && mirror.GetProperty("lastSeq").GetInt64() == last.GetProperty("checkpointSeq").GetInt64()
                    && last.GetProperty("consumerLag").GetInt64() == 0;
            },
            TimeSpan.FromMinutes(2),
            () => "mirror idle at the engine's checkpoint: " + last);
    }

    /// <summary>
    /// Compares every stored customer's Redis hash and set memberships with its API profile, again until equal: the
    /// engine checkpoints its last changes up to a checkpoint interval after processing them, and the mirror follows.
    /// </summary>
    private async Task<(Dictionary<string, Profile> Profiles, long LastSeq)> MirrorEqualsApiEventuallyAsync(EngineProcess engine, IDatabase db, string dataDir, string prefix)
    {
        var clock = Stopwatch.StartNew();
        for (var round = 1; ; round++)
        {
            var ids = StoredCustomerIds(dataDir);

            var profiles = await ProfilesAsync(engine.Http, ids);
            var mismatches = await CompareAsync(db, prefix, profiles, exactSeq: null);
            var redisIds = await CustomerIdsAsync(db, prefix);
            if (!redisIds.SetEquals(ids))
            {
                mismatches.Add(new("(keys)", "customer hashes", $"{ids.Count} stored customers", $"{redisIds.Count} hashes, {redisIds.Except(ids).Count()} unknown, {ids.Except(redisIds).Count()} missing"));
            }

            // No key ahead of the engine's checkpoints (read after the keys: the status may lag a little, never lead).
            var maxSeq = await MaxSeqAsync(db, prefix, ids);
            var checkpointSeq = (await engine.StatusAsync()).GetProperty("checkpointSeq").GetInt64();
            if (maxSeq > checkpointSeq)
            {
                mismatches.Add(new("(seq)", "seq", $"<= {checkpointSeq}", maxSeq.ToString(CultureInfo.InvariantCulture)));
            }

            output.WriteLine($"round {round}: {profiles.Count} customers compared, {mismatches.Count} mismatches ({clock.ElapsedMilliseconds} ms)");
            if (mismatches.IsEmpty)
            {
                return (profiles, maxSeq);
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(60))
            {
                Assert.Fail(Report("mirror vs API", profiles.Count, mismatches));
            }

            await Task.Delay(TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>
    /// The customers with durable state: the actor runtime's journal (its customers' persistence ids, <c>customer-</c> and
    /// the id), read as another process would; none before the journal exists.
    /// </summary>
    private static List<string> StoredCustomerIds(string dataDir)
    {
        var journal = Path.Combine(dataDir, "journal.db");
        if (!File.Exists(journal))
        {
            return [];
        }

        using var connection = ReadOnlySqlite.Open(journal);

        using var command = connection.CreateCommand();
        command.CommandText = "SELECT DISTINCT substr(persistence_id, 10) FROM journal WHERE persistence_id LIKE 'customer-%'";
        using var reader = command.ExecuteReader();
        var ids = new List<string>();
        while (reader.Read())
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }

    /// <summary>The fields the mirror carries, as the API shows them.</summary>
    internal sealed record Profile(string Id, int OrdersCount, decimal NetAmount, string LifecycleStage, string Tier, string RfmSegment, int ChurnRisk, string[] Tags, string RuleVersion, DateTimeOffset? LastSeen);

    internal sealed record Mismatch(string CustomerId, string Field, string Expected, string Actual);

    internal static async Task<Dictionary<string, Profile>> ProfilesAsync(HttpClient http, IReadOnlyList<string> ids)
    {
        var profiles = new ConcurrentDictionary<string, Profile>(StringComparer.Ordinal);
        await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (id, ct) =>
        {
            using var response = await http.GetAsync("/v1/customers/" + Uri.EscapeDataString(id), ct);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /v1/customers/{id}: {(int)response.StatusCode}");
            var p = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
            static string Text(JsonElement e) => e.ValueKind == JsonValueKind.Null ? "" : e.GetString() ?? "";
            var lifecycle = p.GetProperty("lifecycle");
            profiles[id] = new Profile(
                id,
                p.GetProperty("orders").GetProperty("count").GetInt32(),
                p.GetProperty("orders").GetProperty("netAmount").GetDecimal(),
                lifecycle.ValueKind == JsonValueKind.Object ? Text(lifecycle.GetProperty("stage")) : "",
                Text(p.GetProperty("tier").GetProperty("name")),
                Text(p.GetProperty("rfm").GetProperty("segment")),
                p.GetProperty("churnRisk").GetInt32(),
                p.GetProperty("tags").EnumerateArray().Select(t => t.GetString()!).ToArray(),
                Text(p.GetProperty("ruleVersion")),
                p.GetProperty("lastSeen").ValueKind == JsonValueKind.Null ? null : p.GetProperty("lastSeen").GetDateTimeOffset());
        });
        return new Dictionary<string, Profile>(profiles, StringComparer.Ordinal);
    }

    /// <summary>Every profile's hash field by field, and every tag and stage set member by member, in both directions.</summary>
    internal static async Task<ConcurrentBag<Mismatch>> CompareAsync(IDatabase db, string prefix, IReadOnlyDictionary<string, Profile> profiles, long? exactSeq)
    {
        var mismatches = new ConcurrentBag<Mismatch>();
        var batch = db.CreateBatch();
        var reads = profiles.Values.Select(p => (Profile: p, Hash: batch.HashGetAllAsync(prefix + "customer:" + p.Id))).ToList();
        batch.Execute();
        foreach (var (p, read) in reads)
        {
            var hash = (await read).ToDictionary(e => (string)e.Name!, e => (string)e.Value!, StringComparer.Ordinal);
            void Check(string field, string expected)
            {
                var actual = hash.GetValueOrDefault(field);
                if (actual != expected)
                {
                    mismatches.Add(new(p.Id, field, expected, actual ?? "(absent)"));
                }
            }

            if (hash.Count == 0)
            {
                mismatches.Add(new(p.Id, "hash", "present", "absent"));
                continue;
            }

            Check("ordersCount", p.OrdersCount.ToString(CultureInfo.InvariantCulture));
            if (!decimal.TryParse(hash.GetValueOrDefault("netAmount"), NumberStyles.Number, CultureInfo.InvariantCulture, out var net) || net != p.NetAmount)
            {
                mismatches.Add(new(p.Id, "netAmount", p.NetAmount.ToString(CultureInfo.InvariantCulture), hash.GetValueOrDefault("netAmount") ?? "(absent)"));
            }

            Check("lifecycleStage", p.LifecycleStage);
            Check("tier", p.Tier);
            Check("rfmSegment", p.RfmSegment);
            Check("churnRisk", p.ChurnRisk.ToString(CultureInfo.InvariantCulture));
            Check("tags", string.Join(',', p.Tags.Order(StringComparer.Ordinal)));
            Check("ruleVersion", p.RuleVersion);
            if (exactSeq is { } seq)
            {
                Check("seq", seq.ToString(CultureInfo.InvariantCulture));
            }
            else if (!long.TryParse(hash.GetValueOrDefault("seq"), NumberStyles.None, CultureInfo.InvariantCulture, out var s) || s <= 0)
            {
                mismatches.Add(new(p.Id, "seq", "a checkpoint number", hash.GetValueOrDefault("seq") ?? "(absent)"));
            }

            // updatedAt: RFC 3339 UTC, at or after the last event (a timer may have re-evaluated the customer later).
            if (!DateTimeOffset.TryParseExact(hash.GetValueOrDefault("updatedAt"), "yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var updated)
                || (p.LastSeen is { } seen && updated < seen))
            {
                mismatches.Add(new(p.Id, "updatedAt", $">= {p.LastSeen:O}", hash.GetValueOrDefault("updatedAt") ?? "(absent)"));
            }
        }

        // Sets: each member set must be exactly the customers whose profile has that tag or stage.
        var expected = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var p in profiles.Values)
        {
            foreach (var tag in p.Tags)
            {
                Members(expected, "tag:" + tag).Add(p.Id);
            }

            if (p.LifecycleStage.Length > 0)
            {
                Members(expected, "stage:" + p.LifecycleStage).Add(p.Id);
            }
        }

        var actualSets = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var pattern in new[] { prefix + "tag:*", prefix + "stage:*" })
        {
            foreach (var key in await ScanAsync(db, pattern))
            {
                actualSets[key[prefix.Length..]] = (await db.SetMembersAsync(key)).Select(m => (string)m!).ToHashSet(StringComparer.Ordinal);
            }
        }

        foreach (var name in expected.Keys.Union(actualSets.Keys))
        {
            var want = expected.GetValueOrDefault(name) ?? [];
            var have = actualSets.GetValueOrDefault(name) ?? [];
            foreach (var id in want.Except(have))
            {
                mismatches.Add(new(id, "member of " + name, "yes", "no"));
            }

            foreach (var id in have.Except(want))
            {
                mismatches.Add(new(id, "member of " + name, "no", "yes"));
            }
        }

        return mismatches;
    }

    private static HashSet<string> Members(Dictionary<string, HashSet<string>> sets, string name)
    {
        if (!sets.TryGetValue(name, out var members))
        {
            sets[name] = members = new HashSet<string>(StringComparer.Ordinal);
        }

        return members;
    }

    internal static async Task<HashSet<string>> CustomerIdsAsync(IDatabase db, string prefix)
    {
        var keys = await ScanAsync(db, prefix + "customer:*");
        return keys.Select(k => k[(prefix.Length + "customer:".Length)..]).ToHashSet(StringComparer.Ordinal);
    }

    private static async Task<long> MaxSeqAsync(IDatabase db, string prefix, IEnumerable<string> ids)
    {
        var batch = db.CreateBatch();
        var reads = ids.Select(id => batch.HashGetAsync(prefix + "customer:" + id, "seq")).ToList();
        batch.Execute();
        long max = 0;
        foreach (var read in reads)
        {
            var value = await read;
            if (value.HasValue)
            {
                max = Math.Max(max, (long)value);
            }
        }

        return max;
    }

    private static async Task<List<string>> ScanAsync(IDatabase db, string pattern)
    {
        var keys = new List<string>();
        var cursor = "0";
        do
        {
            var reply = (RedisResult[])(await db.ExecuteAsync("SCAN", cursor, "MATCH", pattern, "COUNT", 1000))!;
            cursor = (string)reply[0]!;
            keys.AddRange(((RedisValue[])reply[1]!).Select(v => (string)v!));
        }
        while (cursor != "0");
        return keys;
    }

    internal static async Task DeletePrefixAsync(ConnectionMultiplexer client, string prefix)
    {
        var db = client.GetDatabase();
        foreach (var key in await ScanAsync(db, prefix + "*"))
        {
            await db.KeyDeleteAsync(key);
        }
    }

    internal static string Report(string when, int customers, IEnumerable<Mismatch> mismatches)
    {
        var list = mismatches.OrderBy(m => m.CustomerId, StringComparer.Ordinal).ThenBy(m => m.Field, StringComparer.Ordinal).ToList();
        var text = new StringBuilder();
        var byField = string.Join(", ", list.GroupBy(m => m.Field).OrderByDescending(g => g.Count()).Take(10).Select(g => $"{g.Key} {g.Count()}"));
        text.Append(CultureInfo.InvariantCulture, $"{when}: {list.Count} mismatches over {customers} customers ({byField}); the first {Math.Min(ReportedMismatches, list.Count)}:");
        foreach (var m in list.Take(ReportedMismatches))
        {
            text.Append(CultureInfo.InvariantCulture, $"\n  {m.CustomerId} {m.Field}: expected {m.Expected}, actual {m.Actual}");
        }

        return text.ToString();
    }

    private static long Produced(CliProcess replay)
    {
        var match = ProducedLine().Match(replay.StandardOutput);
        Assert.True(match.Success, "no produced=N line in: " + replay.StandardOutput);
        return long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"^produced=(\d+)$", RegexOptions.Multiline)]
    private static partial Regex ProducedLine();

    /// <summary>
    /// Reads the <c>seq</c> and <c>ruleVersion</c> of up to <c>maxKeys</c> customer hashes (the first it discovers) every
    /// 200 ms on its own connection and records every decrease of a key's seq, and every seq seen with two rule versions;
    /// rounds fail while Redis is down and are counted.
    /// </summary>
    internal sealed class SeqSampler : IAsyncDisposable
    {
        private readonly string _connection;
        private readonly string _prefix;
        private readonly int _maxKeys;
        private readonly Dictionary<string, long> _seen = new(StringComparer.Ordinal);
        private readonly ConcurrentDictionary<long, string> _versionBySeq = new();
        private static readonly RedisValue[] s_fields = ["seq", "ruleVersion"];
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        private int _failedRounds;
        private int _roundsAfterFailure;
        private int _rounds;
        private int _keys;
        private int _increases;

        public SeqSampler(string connection, string prefix, int maxKeys)
        {
            _connection = connection;
            _prefix = prefix;
            _maxKeys = maxKeys;
            _loop = Task.Run(RunAsync);
        }

        public ConcurrentQueue<string> Decreases { get; } = new();

        /// <summary>Checkpoints (seq) seen with two rule versions.</summary>
        public ConcurrentQueue<string> Conflicts { get; } = new();

        /// <summary>Rule versions seen, each with the range of seq it was seen at.</summary>
        public string Versions => string.Join(", ", _versionBySeq.GroupBy(v => v.Value).Select(g => $"{g.Key} at seq {g.Min(v => v.Key)}..{g.Max(v => v.Key)} ({g.Count()} checkpoints)"));

        public bool Saw(string version) => _versionBySeq.Values.Contains(version);

        /// <summary>The smallest and the largest seq seen with <paramref name="version"/>; fails when never seen.</summary>
        public (long Min, long Max) SeqRange(string version)
        {
            var seqs = _versionBySeq.Where(v => v.Value == version).Select(v => v.Key).ToList();
            Assert.True(seqs.Count > 0, $"the sampler never saw {version}: {Versions}");
            return (seqs.Min(), seqs.Max());
        }

        public int Rounds => Volatile.Read(ref _rounds);

        public int FailedRounds => Volatile.Read(ref _failedRounds);

        public int RoundsAfterFailure => Volatile.Read(ref _roundsAfterFailure);

        public int Keys => Volatile.Read(ref _keys);

        public int Increases => Volatile.Read(ref _increases);

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await _loop;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_stop.IsCancellationRequested)
            {
                await StopAsync();
            }

            _stop.Dispose();
        }

        private async Task RunAsync()
        {
            var options = ConfigurationOptions.Parse(_connection);
            options.AbortOnConnectFail = false;
            options.SyncTimeout = 1000;
            using var client = await ConnectionMultiplexer.ConnectAsync(options);
            var db = client.GetDatabase();
            var discover = Stopwatch.StartNew();
            var ids = new List<string>();
            while (!_stop.IsCancellationRequested)
            {
                var round = Stopwatch.StartNew();
                try
                {
                    if (ids.Count < _maxKeys && (ids.Count == 0 || discover.Elapsed > TimeSpan.FromSeconds(2)))
                    {
                        discover.Restart();
                        foreach (var id in await CustomerIdsAsync(db, _prefix))
                        {
                            if (ids.Count < _maxKeys && !_seen.ContainsKey(id))
                            {
                                _seen[id] = 0;
                                ids.Add(id);
                            }
                        }

                        Volatile.Write(ref _keys, ids.Count);
                    }

                    var batch = db.CreateBatch();
                    var reads = ids.Select(id => batch.HashGetAsync(_prefix + "customer:" + id, s_fields)).ToList();
                    batch.Execute();
                    var values = await Task.WhenAll(reads).WaitAsync(TimeSpan.FromSeconds(2));
                    for (var i = 0; i < ids.Count; i++)
                    {
                        var seq = values[i][0].HasValue ? (long)values[i][0] : 0;
                        if (seq > 0 && values[i][1].HasValue)
                        {
                            var version = (string)values[i][1]!;
                            var first = _versionBySeq.GetOrAdd(seq, version);
                            if (first != version)
                            {
                                Conflicts.Enqueue($"seq {seq}: {first} and {version} ({ids[i]})");
                            }
                        }

                        var previous = _seen[ids[i]];
                        if (seq < previous)
                        {
                            Decreases.Enqueue($"{ids[i]}: {previous} -> {(values[i][0].HasValue ? seq.ToString(CultureInfo.InvariantCulture) : "absent")}");
                        }
                        else if (seq > previous)
                        {
                            _seen[ids[i]] = seq;
                            Interlocked.Increment(ref _increases);
                        }
                    }

                    Interlocked.Increment(ref _rounds);
                    if (FailedRounds > 0)
                    {
                        Interlocked.Increment(ref _roundsAfterFailure);
                    }
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    Interlocked.Increment(ref _failedRounds);
                }

                var rest = TimeSpan.FromMilliseconds(200) - round.Elapsed;
                if (rest > TimeSpan.Zero)
                {
                    try
                    {
                        await Task.Delay(rest, _stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            }
        }
    }
}
