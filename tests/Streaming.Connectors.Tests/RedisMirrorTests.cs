using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Persistence;
using Streaming.Connectors.Redis;
using Streaming.Connectors.Sql;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;
using Streaming.Tests.Shared;
using Xunit.Abstractions;

namespace Streaming.Connectors.Tests;

/// <summary>The Redis mirror against a real redis-server: the shared one of the test run, or private ones it controls.</summary>
public sealed class RedisMirrorTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private static readonly long T0 = new DateTime(2011, 3, 1, 12, 0, 0, DateTimeKind.Utc).Ticks;

    private readonly string _prefix = "test-" + Guid.NewGuid().ToString("N")[..10] + ":";
    private RedisTestServer _redis = null!;
    private ConnectionMultiplexer _client = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisTestServer.SharedOrPrivateAsync();
        _client = await ConnectionMultiplexer.ConnectAsync(_redis.Connection + ",syncTimeout=15000"); // 2 loaded cores: the 1 s default flakes
    }

    public async Task DisposeAsync()
    {
        // Each test writes under its own prefix; leave the shared server as it was.
        var db = _client.GetDatabase();
        foreach (var keys in _client.GetServer(_client.GetEndPoints()[0]).Keys(pattern: _prefix + "*", pageSize: 1000).Chunk(1000))
        {
            await db.KeyDeleteAsync(keys);
        }

        _client.Dispose();
        await _redis.DisposeAsync();
    }

    private IDatabase Db => _client.GetDatabase();

    private static CustomerProjection Customer(string id, int orders = 3, decimal net = 120.50m, string? stage = "active", string? tier = "silver", string? segment = "loyal", int risk = 10, string[]? tags = null, string? rules = "default@0123456789ab", long updated = 0) =>
        new(id, 7, orders, net, stage, tier, segment, risk, tags ?? ["frequent_buyer", "high_value"], rules, updated == 0 ? T0 : updated);

    private RedisMirror Mirror(string? connection = null, IMeterFactory? meters = null, TimeSpan? operationTimeout = null, MirrorSeqSource seqSource = MirrorSeqSource.Checkpoint) =>
        new(new RedisMirrorOptions
        {
            Connection = connection ?? _redis.Connection,
            Prefix = _prefix,
            OperationTimeout = operationTimeout ?? TimeSpan.FromSeconds(5),
            MaxBackoff = TimeSpan.FromMilliseconds(500),
            SeqSource = seqSource,
        }, NullLogger.Instance, meters);

    private Dictionary<string, string> Hash(string id) =>
        Db.HashGetAll(_prefix + "customer:" + id).ToDictionary(e => (string)e.Name!, e => (string)e.Value!, StringComparer.Ordinal);

    private string[] Members(string set) => Db.SetMembers(_prefix + set).Select(m => (string)m!).Order(StringComparer.Ordinal).ToArray();

    /// <summary>
    /// The actor runtime's catch-up. Partition 0's checkpoints 1 and 2 got node numbers 2 and 4, checkpoint 3 none (a
    /// crash before its numbering); the mirror's marker is 3. j-1 (last saved by checkpoint 2) is written with 4, j-3
    /// (checkpoint 3) with a new number, 6, reserved and recorded; j-2 (checkpoint 1, number 2, under the marker) is not
    /// touched. The marker reaches 6, and a second start queues nothing.
    /// </summary>
    [Theory]
    [InlineData(StoreProvider.Sqlite)]
    [InlineData(StoreProvider.PostgreSql)]
    public async Task Catch_up_from_the_actor_journal_writes_each_customer_with_its_checkpoints_number(StoreProvider provider)
    {
        var dir = Path.Combine(Path.GetTempPath(), "streaming-catchup-journal-" + Guid.NewGuid().ToString("N"));
        await using var database = provider == StoreProvider.PostgreSql ? await PostgresDatabase.CreateAsync() : null;
        var journal = new ActorStoreOptions { Provider = provider, DataDir = dir, ConnectionString = database?.ConnectionString };
        try
        {
            await SavedCustomers.WriteAsync(journal, new Dictionary<string, decimal[][]> { ["j-1"] = [[1m], [2m, 3m]], ["j-2"] = [[4m]], ["j-3"] = [[5m], [6m], [7m]] });
            var version = RuleSetLoader.Default.Version;
            using var store = EngineStore.Open(journal);
            store.Reserve(5);
            store.Record(new CheckpointNumber(0, 1, 2, version));
            store.Record(new CheckpointNumber(0, 2, 4, version));
            await Db.HashSetAsync(_prefix + "mirror", "seq", 3);
            await using (var mirror = Mirror())
            {
                Assert.Equal((2, (long?)3), await MirrorCatchUp.RunFromJournalAsync(journal, mirror, store, version, Wait));
                Assert.True(await mirror.WaitIdleAsync(Wait));
                await Eventually.Require(Wait, () => (long)Db.HashGet(_prefix + "mirror", "seq") == 6, () => "marker " + Db.HashGet(_prefix + "mirror", "seq"));
            }

            Assert.Equal(("3", "6", "4"), (Hash("j-1")["ordersCount"], Hash("j-1")["netAmount"], Hash("j-1")["seq"]));
            Assert.False(await Db.KeyExistsAsync(_prefix + "customer:j-2"));
            Assert.Equal(("3", "18", "6"), (Hash("j-3")["ordersCount"], Hash("j-3")["netAmount"], Hash("j-3")["seq"]));
            Assert.Equal(6, store.Reserved);
            Assert.Contains(new CheckpointNumber(0, 3, 6, version), store.LoadNumbers());
            await using (var mirror = Mirror())
            {
                Assert.Equal((0, (long?)6), await MirrorCatchUp.RunFromJournalAsync(journal, mirror, store, version, Wait));
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            if (Directory.Exists(dir))
            {
                // On PostgreSQL nothing is written there.
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>
    /// Unnumbered checkpoints under three rule versions, with an emptied Redis (no marker): each gets a new number above
    /// the reserved ones, ordered by the last number its version got (B last numbered at 3, A at 5), the running version
    /// last, whatever their partitions.
    /// </summary>
    [Fact]
    public async Task Catch_up_numbers_unnumbered_checkpoints_older_rule_versions_first()
    {
        using var dir = new TempDirectory();
        var journal = new ActorStoreOptions { Provider = StoreProvider.Sqlite, DataDir = dir.Path };
        var (a, b, running) = (InjectedRules.DefaultWith("a_tag", _ => false), InjectedRules.DefaultWith("b_tag", _ => false), RuleSetLoader.Default);
        await SavedCustomers.WriteAsync(journal, new Dictionary<string, decimal[][]> { ["under-a"] = [[1m]] }, a, partition: 0);
        await SavedCustomers.WriteAsync(journal, new Dictionary<string, decimal[][]> { ["under-b"] = [[2m]] }, b, partition: 1);
        await SavedCustomers.WriteAsync(journal, new Dictionary<string, decimal[][]> { ["under-running"] = [[3m]] }, running, partition: 2);
        using var store = SqliteStateStore.OpenDirectory(dir.Path);
        store.Reserve(10);
        store.Record(new CheckpointNumber(7, 1, 3, b.Version));
        store.Record(new CheckpointNumber(8, 1, 5, a.Version));
        await using (var mirror = Mirror())
        {
            Assert.Equal((3, (long?)null), await MirrorCatchUp.RunFromJournalAsync(journal, mirror, store, running.Version, Wait));
            Assert.True(await mirror.WaitIdleAsync(Wait));
        }

        Assert.Equal(("11", b.Version), (Hash("under-b")["seq"], Hash("under-b")["ruleVersion"]));
        Assert.Equal(("12", a.Version), (Hash("under-a")["seq"], Hash("under-a")["ruleVersion"]));
        Assert.Equal(("13", running.Version), (Hash("under-running")["seq"], Hash("under-running")["ruleVersion"]));
        Assert.Equal(13, store.Reserved);
    }

    [Fact]
    public async Task The_marker_follows_the_mirrored_checkpoint_and_never_moves_back()
    {
        await using var mirror = Mirror();
        mirror.Publish(5, [Customer("m1")]);
        mirror.Publish(6, []);
        Assert.True(await mirror.WaitIdleAsync(Wait));
        await Eventually.Require(Wait, () => (long)Db.HashGet(_prefix + "mirror", "seq") == 6, () => "marker " + Db.HashGet(_prefix + "mirror", "seq"));

        // Another writer (a resync, say) already went further: a lower value leaves it.
        await Db.HashSetAsync(_prefix + "mirror", "seq", 40);
        mirror.Publish(7, [Customer("m2")]);
        Assert.True(await mirror.WaitIdleAsync(Wait));
        Assert.Equal(7, mirror.MirroredSeq);
        Assert.Equal(40, (long)Db.HashGet(_prefix + "mirror", "seq"));
    }

    /// <summary>
    /// A cluster's mirrors (two here, as two nodes) write each customer with its own version: an older version published
    /// later, by the other node or under a greater checkpoint number, never replaces a newer one, in Redis or while
    /// pending. The marker records the kind and carries no checkpoint number.
    /// </summary>
    [Fact]
    public async Task With_customer_versions_the_version_decides_whichever_node_or_checkpoint_writes()
    {
        await using var a = Mirror(seqSource: MirrorSeqSource.CustomerVersion);
        await using var b = Mirror(seqSource: MirrorSeqSource.CustomerVersion);
        a.Publish(1, [Customer("v1", orders: 5) with { Version = 7 }]);
        Assert.True(await a.WaitIdleAsync(Wait));
        b.Publish(50, [Customer("v1", orders: 4) with { Version = 6 }]);
        Assert.True(await b.WaitIdleAsync(Wait));
        Assert.Equal(("5", "7"), (Hash("v1")["ordersCount"], Hash("v1")["seq"]));
        Assert.Equal(1, b.NewerPresent);

        // Pending on one node: the later publication of an older version does not replace the newer one waiting.
        b.Publish(60, [Customer("v2", orders: 9) with { Version = 3 }]);
        b.Publish(61, [Customer("v2", orders: 8) with { Version = 2 }]);
        Assert.True(await b.WaitIdleAsync(Wait));
        Assert.Equal(("9", "3"), (Hash("v2")["ordersCount"], Hash("v2")["seq"]));

        b.Publish(62, [Customer("v1", orders: 6) with { Version = 8 }]);
        Assert.True(await b.WaitIdleAsync(Wait));
        Assert.Equal(("6", "8"), (Hash("v1")["ordersCount"], Hash("v1")["seq"]));
        Assert.Equal("customerVersion", (string?)Db.HashGet(_prefix + "mirror", "seqSource"));
        Assert.False(Db.HashExists(_prefix + "mirror", "seq"));
    }

    /// <summary>
    /// Checkpoint numbers and customer versions do not compare: a prefix a single node wrote is refused by a cluster's
    /// mirror (before start, and by its writer, which writes nothing), and the other way round; a resync for the other
    /// kind makes it usable.
    /// </summary>
    [Fact]
    public async Task A_prefix_of_the_other_seq_kind_is_refused_until_a_resync_rebuilds_it()
    {
        await using (var single = Mirror())
        {
            single.Publish(4, [Customer("s1")]);
            Assert.True(await single.WaitIdleAsync(Wait));
        }

        Assert.Equal(("checkpoint", "4"), ((string?)Db.HashGet(_prefix + "mirror", "seqSource"), (string?)Db.HashGet(_prefix + "mirror", "seq")));
        await using (var cluster = Mirror(seqSource: MirrorSeqSource.CustomerVersion))
        {
            var refusal = await cluster.CheckSeqSourceAsync(Wait);
            Assert.NotNull(refusal);
            Assert.Contains("single node's checkpoint number", refusal, StringComparison.Ordinal);
            Assert.Contains("streaming mirror resync", refusal, StringComparison.Ordinal);
            cluster.Publish(1, [Customer("s1", orders: 99) with { Version = 100 }]);
            await Eventually.Require(Wait, () => cluster.Errors > 0, () => "no refused write");
            Assert.Equal(("3", "4"), (Hash("s1")["ordersCount"], Hash("s1")["seq"]));
        }

        // A pre-field marker (only seq) counts as a single node's too.
        await Db.HashDeleteAsync(_prefix + "mirror", "seqSource");
        await using (var cluster = Mirror(seqSource: MirrorSeqSource.CustomerVersion))
        {
            Assert.NotNull(await cluster.CheckSeqSourceAsync(Wait));
        }

        await Db.KeyDeleteAsync(_prefix + "mirror");
        await using (var cluster = Mirror(seqSource: MirrorSeqSource.CustomerVersion))
        {
            Assert.Null(await cluster.CheckSeqSourceAsync(Wait));
        }

        await using (var single = Mirror())
        {
            var refusal = await single.CheckSeqSourceAsync(Wait);
            Assert.NotNull(refusal);
            Assert.Contains("customer version (written by a cluster)", refusal, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// The cluster's takeover catch-up, on a real journal: partition 0's customers (t-1 saved by two checkpoints, so at
    /// version 2; t-2 by one) are published with their versions, replacing t-1's stale hash at version 1 that a dead
    /// node left; partition 1's customer is not touched. A second takeover writes nothing new (equal versions).
    /// Resync for a cluster writes the same versions and marks the prefix as customer versions.
    /// </summary>
    [Fact]
    public async Task Takeover_publishes_the_partitions_customers_with_their_journal_versions()
    {
        using var dir = new TempDirectory();
        var journal = new ActorStoreOptions { Provider = StoreProvider.Sqlite, DataDir = dir.Path };
        await SavedCustomers.WriteAsync(journal, new Dictionary<string, decimal[][]> { ["t-1"] = [[1m], [2m, 3m]], ["t-2"] = [[4m]] }, partition: 0);
        await SavedCustomers.WriteAsync(journal, new Dictionary<string, decimal[][]> { ["t-3"] = [[5m]] }, partition: 1);
        await Db.HashSetAsync(_prefix + "customer:t-1", [new HashEntry("seq", 1), new HashEntry("ordersCount", 1)]);
        await using (var mirror = Mirror(seqSource: MirrorSeqSource.CustomerVersion))
        {
            await using var takeover = new MirrorTakeover(journal, mirror, NullLogger.Instance);
            takeover.Add(0);
            await Eventually.Require(Wait, () => takeover.Rounds == 1, () => "no journal read");
            Assert.Equal(2, takeover.Published);
            Assert.True(await mirror.WaitIdleAsync(Wait));
            Assert.Equal(("3", "6", "2"), (Hash("t-1")["ordersCount"], Hash("t-1")["netAmount"], Hash("t-1")["seq"]));
            Assert.Equal(("1", "4", "1"), (Hash("t-2")["ordersCount"], Hash("t-2")["netAmount"], Hash("t-2")["seq"]));
            Assert.False(Db.KeyExists(_prefix + "customer:t-3"));

            var written = mirror.Writes;
            takeover.Add(0);
            await Eventually.Require(Wait, () => takeover.Rounds == 2, () => "no second journal read");
            Assert.True(await mirror.WaitIdleAsync(Wait));
            Assert.Equal((4L, 0L), (takeover.Published, mirror.NewerPresent));
            Assert.Equal(("3", "2"), (Hash("t-1")["ordersCount"], Hash("t-1")["seq"]));
            Assert.Equal(written + 2, mirror.Writes);
        }

        await using (var single = Mirror())
        {
            Assert.Throws<ArgumentException>(() => new MirrorTakeover(journal, single, NullLogger.Instance));
        }

        var result = await new RedisResync(_client, new RedisKeySchema(_prefix), _ => { }) { SeqSource = MirrorSeqSource.CustomerVersion }.RunAsync(journal, CancellationToken.None);
        Assert.Equal(3, result.Customers);
        Assert.Equal(("2", "1", "1"), (Hash("t-1")["seq"], Hash("t-2")["seq"], Hash("t-3")["seq"]));
        Assert.Equal("customerVersion", (string?)Db.HashGet(_prefix + "mirror", "seqSource"));
        Assert.False(Db.HashExists(_prefix + "mirror", "seq"));
    }

    [Fact]
    public async Task Writes_every_field_of_the_schema_and_joins_the_sets()
    {
        await using var mirror = Mirror();
        mirror.Publish(4, [Customer("c1", updated: T0 + 1234567), Customer("c2", tags: [], stage: "new", net: -3m)]);

        Assert.True(await mirror.WaitIdleAsync(Wait));

        Assert.Equal(
            new Dictionary<string, string>
            {
                ["ordersCount"] = "3",
                ["netAmount"] = "120.50",
                ["lifecycleStage"] = "active",
                ["tier"] = "silver",
                ["rfmSegment"] = "loyal",
                ["churnRisk"] = "10",
                ["tags"] = "frequent_buyer,high_value",
                ["ruleVersion"] = "default@0123456789ab",
                ["updatedAt"] = "2011-03-01T12:00:00.1234567Z",
                ["seq"] = "4",
            },
            Hash("c1"));
        Assert.Equal("", Hash("c2")["tags"]);
        Assert.Equal("-3", Hash("c2")["netAmount"]);
        Assert.Equal("2011-03-01T12:00:00Z", Hash("c2")["updatedAt"]);
        Assert.Equal(["c1"], Members("tag:frequent_buyer"));
        Assert.Equal(["c1"], Members("tag:high_value"));
        Assert.Equal(["c1"], Members("stage:active"));
        Assert.Equal(["c2"], Members("stage:new"));
        Assert.Equal(4, mirror.MirroredSeq);
        Assert.Equal(0, mirror.LagCheckpoints);
        Assert.Equal(0, mirror.Pending);
        Assert.Equal(2, mirror.Writes);
    }

    [Fact]
    public async Task A_key_never_moves_backwards()
    {
        await using var mirror = Mirror();
        mirror.Publish(5, [Customer("c1", orders: 5, tags: ["vip"], stage: "active")]);
        Assert.True(await mirror.WaitIdleAsync(Wait));

        // An older checkpoint arriving late (another writer, a replay) is refused atomically, sets included.
        mirror.Publish(3, [Customer("c1", orders: 3, tags: ["lapsed"], stage: "dormant")]);
        Assert.True(await mirror.WaitIdleAsync(Wait));

        var hash = Hash("c1");
        Assert.Equal("5", hash["seq"]);
        Assert.Equal("5", hash["ordersCount"]);
        Assert.Equal(["c1"], Members("tag:vip"));
        Assert.Empty(Members("tag:lapsed"));
        Assert.Empty(Members("stage:dormant"));
        Assert.Equal(1, mirror.NewerPresent);

        // The same seq again changes nothing either.
        mirror.Publish(5, [Customer("c1", orders: 99)]);
        Assert.True(await mirror.WaitIdleAsync(Wait));
        Assert.Equal("5", Hash("c1")["ordersCount"]);
    }

    [Fact]
    public async Task Sets_stay_exact_as_tags_and_stage_change()
    {
        await using var mirror = Mirror();
        mirror.Publish(1, [Customer("c1", tags: ["frequent_buyer", "vip"], stage: "active"), Customer("c2", tags: ["vip"], stage: "active")]);
        Assert.True(await mirror.WaitIdleAsync(Wait));
        Assert.Equal(["c1", "c2"], Members("tag:vip"));

        mirror.Publish(2, [Customer("c1", tags: ["lapsed"], stage: "dormant")]);
        Assert.True(await mirror.WaitIdleAsync(Wait));
        Assert.Equal(["c2"], Members("tag:vip"));
        Assert.Empty(Members("tag:frequent_buyer"));
        Assert.False(Db.KeyExists(_prefix + "tag:frequent_buyer"));
        Assert.Equal(["c1"], Members("tag:lapsed"));
        Assert.Equal(["c2"], Members("stage:active"));
        Assert.Equal(["c1"], Members("stage:dormant"));

        // No stage, no tags: empty fields and no memberships.
        mirror.Publish(3, [Customer("c1", tags: [], stage: null, tier: null, segment: null, rules: null)]);
        Assert.True(await mirror.WaitIdleAsync(Wait));
        var hash = Hash("c1");
        Assert.Equal("", hash["tags"]);
        Assert.Equal("", hash["lifecycleStage"]);
        Assert.Equal("", hash["tier"]);
        Assert.Equal("", hash["rfmSegment"]);
        Assert.Equal("", hash["ruleVersion"]);
        Assert.Empty(Members("tag:lapsed"));
        Assert.Empty(Members("stage:dormant"));
        Assert.Equal(["c2"], Members("stage:active"));
    }

    [Fact]
    public async Task Prefixes_are_isolated()
    {
        var other = "test-" + Guid.NewGuid().ToString("N")[..10] + ":";
        await using (var mirror = Mirror())
        await using (var second = new RedisMirror(new RedisMirrorOptions { Connection = _redis.Connection, Prefix = other }, NullLogger.Instance))
        {
            mirror.Publish(1, [Customer("c1", orders: 1, tags: ["vip"])]);
            second.Publish(9, [Customer("c1", orders: 2, tags: ["lapsed"])]);
            Assert.True(await mirror.WaitIdleAsync(Wait));
            Assert.True(await second.WaitIdleAsync(Wait));
        }

        try
        {
            Assert.Equal("1", Hash("c1")["ordersCount"]);
            Assert.Equal(["c1"], Members("tag:vip"));
            Assert.Empty(Members("tag:lapsed"));
            Assert.Equal("2", (string)Db.HashGet(other + "customer:c1", "ordersCount")!);
            Assert.False(Db.KeyExists(other + "tag:vip"));
        }
        finally
        {
            Db.KeyDelete([other + "customer:c1", other + "tag:lapsed", other + "stage:active"]);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("app:v1.mirror_2-")]
    public void Accepts_plain_prefixes(string prefix) => Assert.Null(RedisKeySchema.Validate(prefix));

    [Theory]
    [InlineData("a*")]
    [InlineData("a b")]
    [InlineData("{tag}")]
    [InlineData("x?")]
    public void Refuses_prefixes_with_glob_or_hash_tag_characters(string prefix)
    {
        Assert.NotNull(RedisKeySchema.Validate(prefix));
        Assert.Throws<ArgumentException>(() => new RedisMirror(new RedisMirrorOptions { Connection = "127.0.0.1:1", Prefix = prefix }, NullLogger.Instance));
    }

    /// <summary>
    /// Redis not there yet: the engine's publishes return at once, the pending map keeps one entry per customer (the
    /// latest), the lag grows, errors are counted; once the server starts, each customer is written once, at its latest seq.
    /// </summary>
    [Fact]
    public async Task While_redis_is_away_pending_keeps_the_latest_per_customer_and_catches_up()
    {
        await using var later = await RedisTestServer.StartPrivateAsync(start: false);
        await using var mirror = Mirror(later.Connection);
        for (var seq = 1; seq <= 10; seq++)
        {
            var batch = new List<CustomerProjection>();
            for (var c = 0; c < 100; c++)
            {
                batch.Add(Customer("c" + c, orders: seq, tags: seq % 2 == 0 ? ["vip"] : ["lapsed"]));
            }

            mirror.Publish(seq, batch);
        }

        await Eventually.Require(Wait, () => mirror.Errors >= 2, () => $"errors {mirror.Errors}");
        Assert.Equal(100, mirror.Pending);
        Assert.Equal(10, mirror.LagCheckpoints);
        Assert.Equal(0, mirror.Writes);
        Assert.False(await mirror.WaitIdleAsync(TimeSpan.FromMilliseconds(200)));

        await later.StartAsync();
        Assert.True(await mirror.WaitIdleAsync(Wait), $"pending {mirror.Pending}, errors {mirror.Errors}");

        Assert.Equal(100, mirror.Writes);
        Assert.Equal(0, mirror.LagCheckpoints);
        using var client = await ConnectionMultiplexer.ConnectAsync(later.Connection + ",syncTimeout=15000");
        var db = client.GetDatabase();
        for (var c = 0; c < 100; c++)
        {
            Assert.Equal("10", (string)db.HashGet(_prefix + "customer:c" + c, "seq")!);
            Assert.Equal("10", (string)db.HashGet(_prefix + "customer:c" + c, "ordersCount")!);
        }

        Assert.Equal(100, db.SetLength(_prefix + "tag:vip"));
        Assert.False(db.KeyExists(_prefix + "tag:lapsed"));
    }

    /// <summary>
    /// A hung server (SIGSTOP keeps its sockets and data): batches time out, are put back merged, and are written after
    /// SIGCONT; the batches that timed out may still run late, and the seq check makes them harmless.
    /// </summary>
    [Fact]
    public async Task A_hung_server_delays_but_never_rewinds_the_mirror()
    {
        await using var hung = await RedisTestServer.StartPrivateAsync();
        await using var mirror = Mirror(hung.Connection, operationTimeout: TimeSpan.FromMilliseconds(300));
        var ids = Enumerable.Range(0, 50).Select(i => "c" + i).ToList();
        mirror.Publish(1, ids.Select(id => Customer(id, orders: 1, tags: ["vip"])).ToList());
        Assert.True(await mirror.WaitIdleAsync(Wait));

        await hung.PauseAsync();
        try
        {
            mirror.Publish(2, ids.Select(id => Customer(id, orders: 2, tags: ["lapsed"])).ToList());
            await Eventually.Require(Wait, () => mirror.Errors >= 1, () => $"errors {mirror.Errors}");
            mirror.Publish(3, ids.Take(25).Select(id => Customer(id, orders: 3, tags: ["frequent_buyer"])).ToList());
            await Eventually.Require(Wait, () => mirror.Errors >= 3, () => $"errors {mirror.Errors}");
            Assert.Equal(50, mirror.Pending);
            Assert.Equal(2, mirror.LagCheckpoints);
        }
        finally
        {
            await hung.ResumeAsync();
        }

        Assert.True(await mirror.WaitIdleAsync(Wait), $"pending {mirror.Pending}, errors {mirror.Errors}");
        using var client = await ConnectionMultiplexer.ConnectAsync(hung.Connection);
        var db = client.GetDatabase();
        foreach (var (id, i) in ids.Select((id, i) => (id, i)))
        {
            var want = i < 25 ? "3" : "2";
            Assert.Equal(want, (string)db.HashGet(_prefix + "customer:" + id, "seq")!);
            Assert.Equal(want, (string)db.HashGet(_prefix + "customer:" + id, "ordersCount")!);
        }

        Assert.False(db.KeyExists(_prefix + "tag:vip"));
        Assert.Equal(25, db.SetLength(_prefix + "tag:lapsed"));
        Assert.Equal(25, db.SetLength(_prefix + "tag:frequent_buyer"));
    }

    /// <summary>
    /// Publishing while Redis hangs returns without waiting for it, shown by order of events rather than by a time
    /// limit: every Redis call of this mirror (its own timeout and the client's) may wait two minutes, so a
    /// <c>Publish</c> that waited for Redis could only return through a failed attempt; yet all twenty return with no
    /// attempt failed and nothing more written.
    /// </summary>
    [Fact]
    public async Task Publishing_never_waits_for_redis()
    {
        await using var hung = await RedisTestServer.StartPrivateAsync();
        await using var mirror = Mirror(hung.Connection + ",syncTimeout=120000,responseTimeout=120000", operationTimeout: TimeSpan.FromMinutes(2));

        // Connected, with one customer written, before the server hangs.
        mirror.Publish(1, [Customer("first")]);
        Assert.True(await mirror.WaitIdleAsync(Wait));
        await hung.PauseAsync();
        var batch = Enumerable.Range(0, 20_000).Select(i => Customer("c" + i)).ToList();
        for (var seq = 2; seq <= 21; seq++)
        {
            mirror.Publish(seq, batch);
        }

        // 400,000 merges while Redis hangs, and not one attempt came back.
        Assert.Equal(0, mirror.Errors);
        Assert.Equal(1, mirror.Writes);

        // The hung server dies: the attempt in flight fails, puts its batch back, and each customer is pending once,
        // with its latest state.
        await hung.KillAsync();
        await Eventually.Require(Wait, () => mirror.Errors > 0, () => $"errors {mirror.Errors}");
        Assert.Equal(20_000, mirror.Pending);
        Assert.Equal(20, mirror.LagCheckpoints);
    }

    /// <summary>
    /// Catch-up: 50,000 changed customers (as after an outage) written in batches of 500. The speed is printed, not
    /// asserted (a unit test on two shared cores is no place for a speed limit).
    /// </summary>
    [Fact]
    public async Task Catches_up_fifty_thousand_customers_in_batches()
    {
        await using var mirror = Mirror();
        var customers = Enumerable.Range(0, 50_000)
            .Select(i => Customer("t" + i, orders: i % 40, net: i * 1.5m, stage: i % 3 == 0 ? "active" : "dormant", tags: i % 5 == 0 ? ["vip", "high_value"] : ["lapsed"]))
            .ToList();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        mirror.Publish(1, customers);
        Assert.True(await mirror.WaitIdleAsync(TimeSpan.FromMinutes(2)));
        var perSecond = customers.Count / clock.Elapsed.TotalSeconds;
        output.WriteLine($"mirrored {customers.Count} customers in {clock.ElapsedMilliseconds} ms: {perSecond:0} customers/s");
        Assert.Equal(customers.Count, mirror.Writes);
        Assert.Equal(10_000, Db.SetLength(_prefix + "tag:vip"));
        Assert.Equal(40_000, Db.SetLength(_prefix + "tag:lapsed"));
        Assert.Equal(16_667, Db.SetLength(_prefix + "stage:active"));
    }

    [Fact]
    public async Task Reports_pending_lag_errors_and_writes_as_instruments()
    {
        using var meters = new TestMeterFactory();
        var measured = new Dictionary<string, long>(StringComparer.Ordinal);
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (meters.Created.Contains(instrument.Meter))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            lock (measured)
            {
                measured[instrument.Name] = instrument is Counter<long> ? measured.GetValueOrDefault(instrument.Name) + value : value;
            }
        });
        listener.SetMeasurementEventCallback<int>((instrument, value, _, _) =>
        {
            lock (measured)
            {
                measured[instrument.Name] = value;
            }
        });
        listener.Start();

        await using var mirror = Mirror(meters: meters);
        mirror.Publish(1, [Customer("c1"), Customer("c2")]);
        Assert.True(await mirror.WaitIdleAsync(Wait));
        listener.RecordObservableInstruments();

        lock (measured)
        {
            Assert.Equal("Streaming", meters.Created.Single().Name);
            Assert.Equal(2, measured[MirrorInstruments.WritesName]);
            Assert.Equal(0, measured[MirrorInstruments.PendingName]);
            Assert.Equal(0, measured[MirrorInstruments.LagName]);
            Assert.Equal(0, measured[MirrorInstruments.ErrorsName]); // created at zero, never incremented
        }
    }

    /// <summary>
    /// Resync rebuilds the prefix from the journal, more customers than one batch: a key with a seq from another life (a
    /// reset store) is replaced whole (a field the schema does not write goes), a stray set member and a stray set
    /// disappear, every customer is in exactly the stage set its hash names, keys outside the prefix stay.
    /// </summary>
    [Fact]
    public async Task Resync_replaces_stale_keys_fields_and_set_members_in_batches()
    {
        using var dir = new TempDirectory();
        const int count = RedisResync.BatchSize + 200;
        var saves = Enumerable.Range(0, count).ToDictionary(i => "r" + i, i => new[] { Enumerable.Repeat(10m + i, 1 + (i % 3)).ToArray() });
        await SavedCustomers.WriteAsync(dir.Path, saves);
        using (var store = SqliteStateStore.OpenDirectory(dir.Path))
        {
            store.Reserve(3);
        }

        var outside = "other-" + Guid.NewGuid().ToString("N")[..8];
        Db.HashSet(_prefix + "customer:r1", [new HashEntry("seq", 999_999), new HashEntry("ordersCount", 9), new HashEntry("stale", "x")]);
        Db.SetAdd(_prefix + "tag:vip", ["ghost"]);
        Db.SetAdd(_prefix + "stage:prospect", "r2");
        Db.HashSet(_prefix + "customer:ghost", "seq", 1);
        Db.StringSet(outside, "keep");

        try
        {
            var lines = new List<string>();
            var result = await new RedisResync(_client, new RedisKeySchema(_prefix), lines.Add).RunAsync(dir.Path, CancellationToken.None);

            Assert.Equal((3L, (long)count, (long)count, 0L, 4L), (result.Seq, result.Customers, result.Written, result.NewerKept, result.KeysDeleted));
            Assert.NotEmpty(lines);
            Assert.Equal("keep", (string)Db.StringGet(outside)!);
            Assert.False(Db.KeyExists(_prefix + "customer:ghost"));
            Assert.False(Db.KeyExists(_prefix + "stage:prospect"));
            Assert.DoesNotContain("ghost", Members("tag:vip"));
            var r1 = Hash("r1");
            Assert.Equal(("3", "2"), (r1["seq"], r1["ordersCount"]));
            Assert.False(r1.ContainsKey("stale"));
            var stages = new Dictionary<string, string[]>(StringComparer.Ordinal);
            for (var i = 0; i < count; i++)
            {
                var hash = Hash("r" + i);
                Assert.Equal((1 + (i % 3)).ToString(System.Globalization.CultureInfo.InvariantCulture), hash["ordersCount"]);
                var stage = hash[RedisKeySchema.LifecycleStage];
                if (!stages.ContainsKey(stage))
                {
                    stages[stage] = Members("stage:" + stage);
                }

                Assert.Contains("r" + i, stages[stage]);
            }

            Assert.Equal(count, stages.Values.Sum(members => members.Length));
        }
        finally
        {
            Db.KeyDelete(outside);
        }
    }

    /// <summary>
    /// Resync from the actor runtime's journal, on SQLite and on PostgreSQL: every saved customer's latest state is
    /// written with the node's checkpoint number from the engine tables (state.db, or PostgreSQL beside the journal), and a key the journal does not hold is deleted.
    /// </summary>
    [Theory]
    [InlineData(StoreProvider.Sqlite)]
    [InlineData(StoreProvider.PostgreSql)]
    public async Task Resync_rebuilds_the_prefix_from_the_actor_journal(StoreProvider provider)
    {
        using var dir = new TempDirectory();
        await using var database = provider == StoreProvider.PostgreSql ? await PostgresDatabase.CreateAsync() : null;
        var journal = new ActorStoreOptions { Provider = provider, DataDir = dir.Path, ConnectionString = database?.ConnectionString };
        await SavedCustomers.WriteAsync(journal, new Dictionary<string, decimal[][]> { ["k-1"] = [[1m], [2m, 3m]], ["k-2"] = [[4m]] });
        using (var store = EngineStore.Open(journal))
        {
            store.Reserve(7);
        }

        Db.HashSet(_prefix + "customer:ghost", "seq", 1);
        var result = await new RedisResync(_client, new RedisKeySchema(_prefix), _ => { }).RunAsync(journal, CancellationToken.None);

        Assert.Equal((7L, 2L, 2L), (result.Seq, result.Customers, result.Written));
        Assert.Equal(("3", "6", "7"), (Hash("k-1")["ordersCount"], Hash("k-1")["netAmount"], Hash("k-1")["seq"]));
        Assert.Equal(("1", "4", "7"), (Hash("k-2")["ordersCount"], Hash("k-2")["netAmount"], Hash("k-2")["seq"]));
        Assert.False(Db.KeyExists(_prefix + "customer:ghost"));
    }

    /// <summary>Creates meters and remembers them, so a listener can pick out the instruments of one test.</summary>
    internal sealed class TestMeterFactory : IMeterFactory
    {
        public List<Meter> Created { get; } = [];

        public Meter Create(MeterOptions options)
        {
            var meter = new Meter(options);
            Created.Add(meter);
            return meter;
        }

        public void Dispose()
        {
            foreach (var meter in Created)
            {
                meter.Dispose();
            }
        }
    }
}
