using Microsoft.Data.Sqlite;
using Streaming.Connectors.Sql;

namespace Streaming.Connectors.Tests;

public sealed class SqliteStateStoreTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string DbPath => _dir.File("state.db");

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
    /// A store as schema 6 left it: today's tables, plus the partition host's customers, offsets, partitions and
    /// checkpoints tables (their columns as that version created them), with <paramref name="customers"/> rows.
    /// </summary>
    private void WriteSchema6Store(int customers)
    {
        using (new SqliteStateStore(DbPath))
        {
        }

        using var raw = OpenRaw(DbPath);
        Scalar(raw, """
            CREATE TABLE customers(customer_id TEXT PRIMARY KEY, partition INTEGER NOT NULL, state BLOB NOT NULL,
                wake INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
            CREATE TABLE offsets(topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, PRIMARY KEY(topic, partition)) WITHOUT ROWID;
            CREATE TABLE partitions(partition INTEGER PRIMARY KEY, max_event_ticks INTEGER NOT NULL, population BLOB);
            CREATE TABLE checkpoints(seq INTEGER PRIMARY KEY, at TEXT NOT NULL, customers INTEGER NOT NULL, offsets INTEGER NOT NULL);
            INSERT INTO settings(key, value) VALUES ('rules', '[]');
            PRAGMA user_version = 6;
            """);
        for (var i = 0; i < customers; i++)
        {
            Scalar(raw, $"INSERT INTO customers(customer_id, partition, state) VALUES ('c{i}', {i % 4}, x'00')");
        }
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
            store.SaveSetting("k", "kept");
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
        Assert.Equal("kept", Scalar(check, "SELECT value FROM settings WHERE key = 'k'"));
    }

    /// <summary>
    /// The partition host kept customers in <c>state.db</c>; this version keeps them in the actor runtime's journal.
    /// A store holding some is refused with the count, and nothing in it changes.
    /// </summary>
    [Fact]
    public void A_schema_6_store_holding_the_partition_hosts_customers_is_refused_and_left_untouched()
    {
        WriteSchema6Store(customers: 3);

        var ex = Assert.Throws<LegacyStateException>(() => new SqliteStateStore(DbPath));
        Assert.Contains("partition host's state (3 customers in state.db)", ex.Message, StringComparison.Ordinal);

        using var check = OpenRaw(DbPath);
        Assert.Equal(6L, Scalar(check, "PRAGMA user_version"));
        Assert.Equal(3L, Scalar(check, "SELECT COUNT(*) FROM customers"));
    }

    /// <summary>A schema 6 store without customers (e.g. the actor runtime's, which never wrote them) migrates: the partition host's tables go, settings stay.</summary>
    [Fact]
    public void An_empty_schema_6_store_migrates_dropping_the_partition_hosts_tables_and_keeping_settings()
    {
        WriteSchema6Store(customers: 0);

        using (var store = new SqliteStateStore(DbPath))
        {
            Assert.Equal("[]", store.LoadSetting("rules"));
        }

        using var check = OpenRaw(DbPath);
        Assert.Equal((long)SqliteStateStore.SchemaVersion, Scalar(check, "PRAGMA user_version"));
        Assert.Equal(0L, Scalar(check, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('customers', 'offsets', 'partitions', 'checkpoints')"));
        Assert.Equal(1L, Scalar(check, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'outreach'"));
    }

    /// <summary>A new store has none of the partition host's tables.</summary>
    [Fact]
    public void A_new_store_has_no_table_of_customers()
    {
        using (new SqliteStateStore(DbPath))
        {
        }

        using var check = OpenRaw(DbPath);
        Assert.Equal(0L, Scalar(check, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('customers', 'offsets', 'partitions', 'checkpoints')"));
    }
}
