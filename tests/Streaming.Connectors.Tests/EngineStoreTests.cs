using Npgsql;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Persistence;
using Streaming.Connectors.Sql;
using Streaming.Connectors.Triggers;
using Streaming.Engine.Rules;
using Streaming.Tests.Shared;

namespace Streaming.Connectors.Tests;

/// <summary>
/// What every engine store does, on SQLite (<c>state.db</c>) and on PostgreSQL: settings, the outbox, the outreach
/// queue's claims and acks, the audit trail and checkpoint numbers. "Two nodes" are two store instances on one
/// database (PostgreSQL); a SQLite store serves one node, so there both are the same instance.
/// </summary>
public abstract class EngineStoreContract : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly List<EngineStore> _opened = [];

    /// <summary>Where the store is kept; set by <see cref="InitializeAsync"/>.</summary>
    protected ActorStoreOptions Options { get; set; } = new();

    public abstract Task InitializeAsync();

    public virtual Task DisposeAsync()
    {
        foreach (var store in _opened)
        {
            store.Dispose();
        }

        return Task.CompletedTask;
    }

    /// <summary>The store a second node would use.</summary>
    protected abstract EngineStore Peer(EngineStore first);

    protected EngineStore Open()
    {
        var store = EngineStore.Open(Options);
        _opened.Add(store);
        return store;
    }

    private static TriggerFiring Firing(string id, Delivery delivery = Delivery.Queued, string customer = "c-1") => new()
    {
        Id = id,
        CustomerId = customer,
        Rule = "win_back",
        RuleVersion = "v1",
        Channel = ContactChannel.Voice,
        Priority = 5,
        AtTicks = Now.UtcTicks,
        DueTicks = Now.AddHours(-1).UtcTicks,
        ExpiresTicks = Now.AddDays(3).UtcTicks,
        Delivery = delivery,
        Reason = [new("daysSinceLastOrder", "120")],
        Profile = new Dictionary<string, object?> { ["tier"] = "gold" },
        Partition = 3,
    };

    private static IReadOnlyList<(OutreachItem, LeaseDecision)> LeaseAll(IEnumerable<OutreachItem> items) =>
        items.Select(i => (i, LeaseDecision.Lease)).ToList();

    [Fact]
    public void Settings_and_the_reserved_checkpoint_number_survive_reopening()
    {
        Assert.Equal(0, EngineStore.ReadReserved(Options));
        using (var store = EngineStore.Open(Options))
        {
            Assert.Null(store.LoadSetting("rules"));
            store.SaveSetting("rules", "[1]");
            store.SaveSetting("rules", "[2]");
            store.Reserve(41);
            store.Reserve(42);
        }

        var again = Open();
        Assert.Equal(("[2]", 42L), (again.LoadSetting("rules"), again.Reserved));
        Assert.Equal(42, EngineStore.ReadReserved(Options));
    }

    /// <summary>
    /// Two nodes save revisions of one setting at once (25 each): the revisions handed out are 1 to 50, each once, and
    /// the value left is the one saved with revision 50.
    /// </summary>
    [Fact]
    public async Task Revisions_saved_at_once_on_two_nodes_are_distinct_and_the_last_one_holds_the_value()
    {
        var first = Open();
        var second = Peer(first);
        Assert.Equal((0L, (string?)null), first.LoadRevision("rules"));
        var saved = new System.Collections.Concurrent.ConcurrentBag<(long Revision, string Value)>();
        await Task.WhenAll(new[] { first, second }.Select((store, node) => Task.Run(() =>
        {
            for (var i = 0; i < 25; i++)
            {
                var value = $"node {node} save {i}";
                saved.Add((store.SaveRevision("rules", value), value));
            }
        })));

        Assert.Equal(Enumerable.Range(1, 50).Select(r => (long)r), saved.Select(s => s.Revision).Order());
        var last = saved.Single(s => s.Revision == 50).Value;
        Assert.Equal((50L, last), first.LoadRevision("rules"));
        Assert.Equal((50L, last), second.LoadRevision("rules"));
        Assert.Equal(last, second.LoadSetting("rules"));
    }

    [Fact]
    public void Firings_are_stored_once_by_id_and_only_queued_ones_become_outreach_items()
    {
        var store = Open();
        store.Append([Firing("f-1"), Firing("f-2", Delivery.Suppressed), Firing("f-3")]);
        store.Append([Firing("f-2", Delivery.Suppressed), Firing("f-3"), Firing("f-4")]);

        var rows = store.ReadOutbox(0, 10);
        Assert.Equal(["c-1", "c-1", "c-1", "c-1"], rows.Select(r => r.CustomerId));
        Assert.True(rows.Select(r => r.Seq).SequenceEqual(rows.Select(r => r.Seq).Order()), "outbox rows come in insertion order");
        Assert.Equal(["f-1", "f-3", "f-4"], store.ListOutreach().Select(i => i.OutreachId));
        Assert.All(store.ListOutreach(), i => Assert.Equal((OutreachStates.Due, "voice", 3, 1), (i.State, i.Channel, i.Partition, i.Attempt)));

        store.DeleteOutbox([rows[0].Seq, rows[1].Seq]);
        Assert.Equal([rows[2].Seq, rows[3].Seq], store.ReadOutbox(0, 10).Select(r => r.Seq));
        Assert.Equal([rows[3].Seq], store.ReadOutbox(rows[2].Seq, 10).Select(r => r.Seq));
        Assert.Equal(2, store.OutboxBacklog());
    }

    /// <summary>Eight dialers, four on each node, lease 120 items in batches of up to 7 at once: each item goes to exactly one.</summary>
    [Fact]
    public async Task Dialers_leasing_at_once_on_two_nodes_never_hold_one_item_twice()
    {
        var first = Open();
        var second = Peer(first);
        var ids = Enumerable.Range(0, 120).Select(i => $"f-{i:D3}").ToList();
        first.Append(ids.Select(id => Firing(id, customer: "c-" + id)).ToList());
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(Now);

        var dialers = Enumerable.Range(0, 8).Select(d => Task.Run(() =>
        {
            var store = d % 2 == 0 ? first : second;
            var mine = new List<string>();
            while (store.LeaseCandidates("voice", Now.UtcTicks, 7) is { Count: > 0 } candidates)
            {
                mine.AddRange(store.ApplyLease(LeaseAll(candidates), "dialer-" + d, clock, TimeSpan.FromMinutes(10), 7).Select(i => i.OutreachId));
            }

            return (Dialer: "dialer-" + d, Leased: mine);
        })).ToList();
        var results = await Task.WhenAll(dialers);

        var all = results.SelectMany(r => r.Leased).ToList();
        Assert.Equal(ids, all.Order(StringComparer.Ordinal));
        var holders = first.ListOutreach().ToDictionary(i => i.OutreachId, i => i.Dialer);
        Assert.All(results, r => Assert.All(r.Leased, id => Assert.Equal(r.Dialer, holders[id])));
    }

    /// <summary>Each item is acked at once from both nodes, with different outcomes: one records, the other is refused.</summary>
    [Fact]
    public async Task Acks_with_different_outcomes_from_two_nodes_record_exactly_one()
    {
        var first = Open();
        var second = Peer(first);
        var ids = Enumerable.Range(0, 40).Select(i => $"a-{i:D2}").ToList();
        first.Append(ids.Select(id => Firing(id)).ToList());

        async Task<string?> AckAsync(EngineStore store, string id, string outcome)
        {
            await Task.Yield();
            try
            {
                return store.Ack(id, outcome, Now.UtcTicks, null).Recorded ? outcome : null;
            }
            catch (InvalidOperationException)
            {
                return null;
            }
        }

        foreach (var id in ids)
        {
            var recorded = (await Task.WhenAll(AckAsync(first, id, "answered"), AckAsync(second, id, "no_answer"))).OfType<string>().ToList();
            var outcome = Assert.Single(recorded);
            var item = first.FindOutreach(id)!;
            Assert.Equal((OutreachStates.Done, outcome), (item.State, item.Outcome));
        }

        // The same outcome again is a no-op on either node; another outcome is refused.
        Assert.False(second.Ack(ids[0], first.FindOutreach(ids[0])!.Outcome!, Now.UtcTicks, null).Recorded);
        Assert.Throws<InvalidOperationException>(() => second.Ack(ids[0], "wrong_number", Now.UtcTicks, null));
        Assert.Equal((null, false), first.Ack("missing", "answered", Now.UtcTicks, null));
    }

    [Fact]
    public void An_ack_with_a_retry_queues_the_next_attempt_once()
    {
        var store = Open();
        store.Append([Firing("r-1")]);
        var item = store.FindOutreach("r-1")!;
        var retry = item with { OutreachId = "r-1#2", Attempt = 2, DueTicks = Now.AddHours(2).UtcTicks, Reason = "retry after no_answer" };

        Assert.True(store.Ack("r-1", "no_answer", Now.UtcTicks, retry).Recorded);
        Assert.False(store.Ack("r-1", "no_answer", Now.UtcTicks, retry).Recorded);

        var queued = Assert.Single(store.ListOutreach(), i => i.OutreachId == "r-1#2");
        Assert.Equal((OutreachStates.Due, 2, "retry after no_answer", Now.AddHours(2).UtcTicks), (queued.State, queued.Attempt, queued.Reason, queued.DueTicks));
    }

    [Fact]
    public void A_lease_is_released_only_by_its_dialer_and_stats_count_an_ended_lease_as_due()
    {
        var store = Open();
        store.Append([Firing("l-1"), Firing("l-2")]);
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(Now);
        var leased = store.ApplyLease(LeaseAll(store.LeaseCandidates("voice", Now.UtcTicks, 10)), "d1", clock, TimeSpan.FromMinutes(5), 10);
        Assert.Equal(2, leased.Count);

        Assert.Null(store.Release("l-1", Now.UtcTicks, "d2"));
        Assert.Equal("d1", store.Release("l-1", Now.UtcTicks, "d1"));
        Assert.Null(store.Release("l-1", Now.UtcTicks, "d1"));
        Assert.Equal((OutreachStates.Due, null), (store.FindOutreach("l-1")!.State, store.FindOutreach("l-1")!.Dialer));

        Assert.Equal(new Dictionary<(string, string), long> { [("voice", "due")] = 1, [("voice", "leased")] = 1 }, store.OutreachStats(Now.UtcTicks));
        Assert.Equal(new Dictionary<(string, string), long> { [("voice", "due")] = 2 }, store.OutreachStats(Now.AddMinutes(6).UtcTicks));
    }

    [Fact]
    public void Stale_items_expire_and_lease_decisions_defer_or_drop()
    {
        var store = Open();
        store.Append([Firing("e-1"), Firing("e-2"), Firing("e-3")]);
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(Now);
        var candidates = store.LeaseCandidates("voice", Now.UtcTicks, 10).ToDictionary(i => i.OutreachId);
        var deferTo = Now.AddHours(8).UtcTicks;
        store.ApplyLease(
            [(candidates["e-1"], new LeaseDecision(LeaseVerdict.Defer, "quiet hours", deferTo)), (candidates["e-2"], new LeaseDecision(LeaseVerdict.Drop, "consent withdrawn"))],
            "d1",
            clock,
            TimeSpan.FromMinutes(5),
            10);

        Assert.Equal((OutreachStates.Due, deferTo, "quiet hours"), (store.FindOutreach("e-1")!.State, store.FindOutreach("e-1")!.DueTicks, store.FindOutreach("e-1")!.Reason));
        Assert.Equal((OutreachStates.Dropped, "consent withdrawn"), (store.FindOutreach("e-2")!.State, store.FindOutreach("e-2")!.Reason));
        Assert.Equal(["e-3"], store.LeaseCandidates("voice", Now.UtcTicks, 10).Select(i => i.OutreachId));

        // Past the firings' expiry (3 days): the two still due expire; the dropped one stays dropped.
        Assert.Equal(2, store.ExpireStale("voice", Now.AddDays(4).UtcTicks));
        Assert.Equal([OutreachStates.Expired, OutreachStates.Dropped, OutreachStates.Expired], store.ListOutreach().Select(i => i.State));
        Assert.Throws<InvalidOperationException>(() => store.Ack("e-2", "answered", Now.UtcTicks, null));
    }

    [Fact]
    public void Audit_entries_from_the_engine_and_from_another_process_page_newest_first()
    {
        Assert.Throws<InvalidOperationException>(() => EngineStore.AppendAuditTo(Options, Now.UtcTicks, "cli", "mirror.resync", "before any engine"));
        var store = Open();
        var seqs = Enumerable.Range(1, 4).Select(i => store.AppendAudit(Now.AddMinutes(i).UtcTicks, "ops", "rules.accepted", "v" + i)).ToList();
        seqs.Add(EngineStore.AppendAuditTo(Options, Now.AddMinutes(5).UtcTicks, "cli", "mirror.resync", "prefix s:"));
        Assert.True(seqs.SequenceEqual(seqs.Order()) && seqs.Distinct().Count() == 5, string.Join(",", seqs));

        var page = store.ReadAudit(long.MaxValue, 3);
        Assert.Equal(["prefix s:", "v4", "v3"], page.Select(e => e.Detail));
        Assert.Equal(("cli", "mirror.resync", Now.AddMinutes(5).UtcTicks), (page[0].Actor, page[0].Action, page[0].AtTicks));
        Assert.Equal(["v2", "v1"], store.ReadAudit(page[^1].Seq, 3).Select(e => e.Detail));
    }

    /// <summary>
    /// Checkpoint numbers: pruning below the mirrored number forgets every row at or below it except, per partition, the
    /// last row of each run of one rule version (partition 0 goes v1, v2, back to v1), and keeps every row above it; a
    /// number recorded again for the same checkpoint replaces the old one.
    /// </summary>
    [Fact]
    public void Checkpoint_numbers_are_pruned_below_the_mirror_keeping_the_last_of_each_rule_version_run()
    {
        var store = Open();
        CheckpointNumber[] rows =
        [
            new(0, 1, 1, "v1"), new(0, 2, 3, "v1"), new(0, 3, 5, "v2"), new(0, 4, 6, "v2"), new(0, 5, 8, "v1"), new(0, 6, 9, "v1"), new(0, 7, 11, "v1"),
            new(1, 1, 2, "v1"), new(1, 2, 4, "v1"),
        ];
        foreach (var row in rows)
        {
            store.Record(row);
        }

        store.Record(new CheckpointNumber(1, 2, 7, "v1"));
        store.Prune(9);

        Assert.Equal([new(0, 2, 3, "v1"), new(0, 4, 6, "v2"), new(0, 7, 11, "v1"), new(1, 2, 7, "v1")], store.LoadNumbers());
    }
}

/// <summary>The engine store in <c>state.db</c>: one node.</summary>
public sealed class SqliteEngineStoreTests : EngineStoreContract
{
    private readonly TempDirectory _dir = new();

    public override Task InitializeAsync()
    {
        Options = new ActorStoreOptions { Provider = StoreProvider.Sqlite, DataDir = _dir.Path };
        return Task.CompletedTask;
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _dir.Dispose();
    }

    protected override EngineStore Peer(EngineStore first) => first;
}

/// <summary>The engine store in PostgreSQL, in a database of the test's own.</summary>
public sealed class PostgresEngineStoreTests : EngineStoreContract
{
    private PostgresDatabase? _database;

    public override async Task InitializeAsync()
    {
        _database = await PostgresDatabase.CreateAsync();
        Options = new ActorStoreOptions { Provider = StoreProvider.PostgreSql, ConnectionString = _database.ConnectionString };
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (_database is not null)
        {
            await _database.DisposeAsync();
        }
    }

    protected override EngineStore Peer(EngineStore first) => Open();

    [Fact]
    public async Task Tables_of_a_newer_build_are_refused_and_left_untouched()
    {
        Open().SaveSetting("rules", "[]");
        await using (var connection = new NpgsqlConnection(Options.ConnectionString))
        {
            await connection.OpenAsync();
            await using var raise = new NpgsqlCommand("UPDATE streaming_schema SET version = 99", connection);
            await raise.ExecuteNonQueryAsync();
        }

        var refused = Assert.Throws<InvalidOperationException>(() => EngineStore.Open(Options));
        Assert.Contains("schema version 99, newer than this build supports (1)", refused.Message, StringComparison.Ordinal);
        await using (var connection = new NpgsqlConnection(Options.ConnectionString))
        {
            await connection.OpenAsync();
            await using var read = new NpgsqlCommand("SELECT (SELECT version FROM streaming_schema), (SELECT value FROM settings WHERE key = 'rules')", connection);
            await using var reader = await read.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal((99, "[]"), (reader.GetInt32(0), reader.GetString(1)));
        }
    }

    /// <summary>Nodes starting together: the tables are created once, and every node opens them.</summary>
    [Fact]
    public async Task Nodes_opening_at_once_migrate_once()
    {
        var stores = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(Open)));
        stores[0].SaveSetting("k", "v");
        Assert.All(stores, s => Assert.Equal("v", s.LoadSetting("k")));
        await using var connection = new NpgsqlConnection(Options.ConnectionString);
        await connection.OpenAsync();
        await using var count = new NpgsqlCommand("SELECT COUNT(*) FROM streaming_schema", connection);
        Assert.Equal(1L, await count.ExecuteScalarAsync());
    }
}
