using Microsoft.Data.Sqlite;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Sql;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;

namespace Streaming.Connectors.Tests;

public sealed class SqliteStateStoreTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string DbPath => _dir.File("state.db");

    private static readonly long T0 = new DateTime(2024, 3, 1, 12, 0, 0, DateTimeKind.Utc).Ticks;

    private static CustomerState State(string id, int orders, decimal gross, string? country = null)
    {
        var s = new CustomerState(id)
        {
            FirstSeenTicks = T0,
            LastSeenTicks = T0 + TimeSpan.TicksPerHour,
            EventsApplied = orders + 2,
            OrderCount = orders,
            GrossAmount = gross,
            RefundAmount = 1.25m,
            FirstOrderTicks = T0,
            LastOrderTicks = T0 + TimeSpan.TicksPerMinute,
            PageViews = 7,
            Country = country,
            ConsentSms = true,
        };
        s.RecentEventIds.Add(0xDEADBEEFUL, 32);
        return s;
    }

    private static StateRow Row(CustomerState s, int partition) => new(s.CustomerId, partition, CustomerStateCodec.Encode(s));

    private static SqliteConnection OpenRaw(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    /// <summary>
    /// Checkpoint numbers: pruning below the mirrored number forgets every row at or below it except, per partition, the
    /// last row of each run of one rule version (partition 0 goes v1, v2, back to v1), and keeps every row above it; a
    /// number recorded again for the same checkpoint replaces the old one.
    /// </summary>
    [Fact]
    public void Checkpoint_numbers_are_pruned_below_the_mirror_keeping_the_last_of_each_rule_version_run()
    {
        using var store = new SqliteStateStore(DbPath);
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

    [Fact]
    public void Fresh_store_is_empty()
    {
        using var store = new SqliteStateStore(DbPath);

        Assert.Equal(0, store.LastCheckpointSeq);
        Assert.Equal(0, store.CountCustomers());
        Assert.Empty(store.LoadOffsets());
        Assert.Null(store.LoadCustomer("nobody"));
        Assert.Null(store.FindPartition("nobody"));
        Assert.Equal(0, store.LoadMaxEventTicks(3));
    }

    [Fact]
    public void Commit_makes_states_offsets_and_progress_readable()
    {
        using var store = new SqliteStateStore(DbPath);
        var batch = new CheckpointBatch();
        batch.States.Add(Row(State("alice", 3, 30.10m, "GB"), 2));
        batch.States.Add(Row(State("bob", 1, 9.99m), 5));
        batch.Offsets.Add(new OffsetRow("orders", 2, 17));
        batch.Offsets.Add(new OffsetRow("clickstream", 5, 4));
        batch.Partitions.Add(new PartitionRow(2, T0 + 42));
        batch.Partitions.Add(new PartitionRow(5, T0 + 7));

        store.Commit(batch);

        Assert.Equal(1, store.LastCheckpointSeq);
        Assert.Equal(2, store.CountCustomers());
        var alice = store.LoadCustomer("alice");
        Assert.NotNull(alice);
        Assert.Equal("alice", alice.CustomerId);
        Assert.Equal(3, alice.OrderCount);
        Assert.Equal(30.10m, alice.GrossAmount);
        Assert.Equal(1.25m, alice.RefundAmount);
        Assert.Equal("GB", alice.Country);
        Assert.True(alice.ConsentSms);
        Assert.Equal(7, alice.PageViews);
        Assert.True(alice.RecentEventIds.Contains(0xDEADBEEFUL));
        Assert.Equal(2, store.FindPartition("alice"));
        Assert.Equal(5, store.FindPartition("bob"));
        Assert.Null(store.FindPartition("carol"));
        Assert.Equal(
            new Dictionary<TopicPartitionKey, long>
            {
                [new TopicPartitionKey("orders", 2)] = 17,
                [new TopicPartitionKey("clickstream", 5)] = 4,
            },
            store.LoadOffsets());
        Assert.Equal(T0 + 42, store.LoadMaxEventTicks(2));
        Assert.Equal(T0 + 7, store.LoadMaxEventTicks(5));
        Assert.Equal(0, store.LoadMaxEventTicks(0));

        store.Commit(new CheckpointBatch());
        Assert.Equal(2, store.LastCheckpointSeq);
    }

    [Fact]
    public void Upsert_overwrites_state_partition_offsets_and_progress()
    {
        using var store = new SqliteStateStore(DbPath);
        var first = new CheckpointBatch();
        first.States.Add(Row(State("alice", 1, 10m, "GB"), 1));
        first.Offsets.Add(new OffsetRow("orders", 1, 5));
        first.Partitions.Add(new PartitionRow(1, T0));
        store.Commit(first);

        var second = new CheckpointBatch();
        second.States.Add(Row(State("alice", 4, 123.45m, "FR"), 3));
        second.Offsets.Add(new OffsetRow("orders", 1, 9));
        second.Partitions.Add(new PartitionRow(1, T0 + 99));
        store.Commit(second);

        Assert.Equal(1, store.CountCustomers());
        var alice = store.LoadCustomer("alice");
        Assert.NotNull(alice);
        Assert.Equal(4, alice.OrderCount);
        Assert.Equal(123.45m, alice.GrossAmount);
        Assert.Equal("FR", alice.Country);
        Assert.Equal(3, store.FindPartition("alice"));
        var offsets = store.LoadOffsets();
        Assert.Single(offsets);
        Assert.Equal(9, offsets[new TopicPartitionKey("orders", 1)]);
        Assert.Equal(T0 + 99, store.LoadMaxEventTicks(1));
        Assert.Equal(2, store.LastCheckpointSeq);
    }

    [Fact]
    public void A_new_instance_on_the_same_file_sees_committed_data()
    {
        using (var store = new SqliteStateStore(DbPath))
        {
            var batch = new CheckpointBatch();
            batch.States.Add(Row(State("alice", 2, 20.5m), 0));
            batch.Offsets.Add(new OffsetRow("callcenter", 0, 1234));
            batch.Partitions.Add(new PartitionRow(0, T0 + 5));
            store.Commit(batch);
            store.Commit(new CheckpointBatch());
            store.Commit(new CheckpointBatch());
        }

        using var reopened = new SqliteStateStore(DbPath);
        Assert.Equal(3, reopened.LastCheckpointSeq);
        Assert.Equal(1, reopened.CountCustomers());
        Assert.Equal(20.5m, reopened.LoadCustomer("alice")?.GrossAmount);
        Assert.Equal(0, reopened.FindPartition("alice"));
        Assert.Equal(1234, reopened.LoadOffsets()[new TopicPartitionKey("callcenter", 0)]);
        Assert.Equal(T0 + 5, reopened.LoadMaxEventTicks(0));

        // The sequence keeps counting from the file, not from zero.
        reopened.Commit(new CheckpointBatch());
        Assert.Equal(4, reopened.LastCheckpointSeq);
    }

    [Fact]
    public void OpenDirectory_creates_state_db_in_a_missing_directory()
    {
        var dataDir = _dir.File("nested/data");
        using (var store = SqliteStateStore.OpenDirectory(dataDir))
        {
            Assert.Equal(Path.Combine(dataDir, "state.db"), store.Path);
        }

        Assert.True(File.Exists(Path.Combine(dataDir, "state.db")));
    }

    [Fact]
    public void Database_is_in_wal_mode()
    {
        using var store = new SqliteStateStore(DbPath);
        using var raw = OpenRaw(DbPath);

        Assert.Equal("wal", Scalar(raw, "PRAGMA journal_mode") as string, StringComparer.OrdinalIgnoreCase);
        Assert.Equal((long)SqliteStateStore.SchemaVersion, Scalar(raw, "PRAGMA user_version"));
    }

    [Fact]
    public void Database_from_a_newer_schema_is_refused_and_left_untouched()
    {
        using (var store = new SqliteStateStore(DbPath))
        {
            var batch = new CheckpointBatch();
            batch.States.Add(Row(State("alice", 1, 10m), 0));
            batch.States.Add(Row(State("bob", 2, 20m), 1));
            store.Commit(batch);
        }

        var newer = SqliteStateStore.SchemaVersion + 1;
        using (var raw = OpenRaw(DbPath))
        {
            Scalar(raw, $"PRAGMA user_version = {newer}");
        }

        var ex = Assert.Throws<InvalidOperationException>(() => new SqliteStateStore(DbPath));
        Assert.Contains($"schema version {newer}", ex.Message, StringComparison.Ordinal);
        Assert.Contains(SqliteStateStore.SchemaVersion.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Message, StringComparison.Ordinal);

        using var check = OpenRaw(DbPath);
        Assert.Equal((long)newer, Scalar(check, "PRAGMA user_version"));
        Assert.Equal(2L, Scalar(check, "SELECT COUNT(*) FROM customers"));
        Assert.Equal(1L, Scalar(check, "SELECT COUNT(*) FROM checkpoints"));
    }

    [Fact]
    public void Failing_state_row_rolls_back_the_whole_batch()
    {
        using var store = new SqliteStateStore(DbPath);
        var good = new CheckpointBatch();
        good.States.Add(Row(State("alice", 1, 10m), 0));
        good.Offsets.Add(new OffsetRow("orders", 0, 5));
        good.Partitions.Add(new PartitionRow(0, T0));
        store.Commit(good);

        var bad = new CheckpointBatch();
        bad.States.Add(Row(State("alice", 9, 999m), 0));
        bad.States.Add(Row(State("bob", 1, 1m), 1));
        bad.States.Add(new StateRow("broken", 1, null!));
        bad.Offsets.Add(new OffsetRow("orders", 0, 50));
        bad.Offsets.Add(new OffsetRow("orders", 1, 7));
        bad.Partitions.Add(new PartitionRow(0, T0 + 1000));

        Assert.Throws<InvalidOperationException>(() => store.Commit(bad));

        AssertOnlyFirstCheckpoint(store);
        using var reopened = ReopenAfter(store);
        AssertOnlyFirstCheckpoint(reopened);
    }

    [Fact]
    public void Failing_offset_row_rolls_back_the_states_written_before_it()
    {
        using var store = new SqliteStateStore(DbPath);
        var good = new CheckpointBatch();
        good.States.Add(Row(State("alice", 1, 10m), 0));
        good.Offsets.Add(new OffsetRow("orders", 0, 5));
        good.Partitions.Add(new PartitionRow(0, T0));
        store.Commit(good);

        // Every state row is valid; the batch fails on its second offset, after the states were written.
        var bad = new CheckpointBatch();
        bad.States.Add(Row(State("alice", 9, 999m), 0));
        bad.States.Add(Row(State("bob", 1, 1m), 1));
        bad.Offsets.Add(new OffsetRow("orders", 0, 50));
        bad.Offsets.Add(new OffsetRow(null!, 1, 7));
        bad.Partitions.Add(new PartitionRow(0, T0 + 1000));

        Assert.Throws<InvalidOperationException>(() => store.Commit(bad));

        AssertOnlyFirstCheckpoint(store);

        // The store stays usable and numbers the next checkpoint after the last committed one.
        var next = new CheckpointBatch();
        next.States.Add(Row(State("carol", 1, 3m), 2));
        store.Commit(next);
        Assert.Equal(2, store.LastCheckpointSeq);
        Assert.Equal(2, store.CountCustomers());
    }

    private SqliteStateStore ReopenAfter(SqliteStateStore store)
    {
        store.Dispose();
        return new SqliteStateStore(DbPath);
    }

    private static void AssertOnlyFirstCheckpoint(SqliteStateStore store)
    {
        Assert.Equal(1, store.LastCheckpointSeq);
        Assert.Equal(1, store.CountCustomers());
        Assert.Equal(1, store.LoadCustomer("alice")?.OrderCount);
        Assert.Equal(10m, store.LoadCustomer("alice")?.GrossAmount);
        Assert.Null(store.LoadCustomer("bob"));
        Assert.Null(store.FindPartition("broken"));
        Assert.Equal(
            new Dictionary<TopicPartitionKey, long> { [new TopicPartitionKey("orders", 0)] = 5 },
            store.LoadOffsets());
        Assert.Equal(T0, store.LoadMaxEventTicks(0));
    }
}
