using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Streaming.Connectors.Sql;

/// <summary>
/// The engine's own tables (<see cref="EngineStore"/>) in one SQLite database, <c>state.db</c> in the data directory, in
/// WAL mode. Schema changes are migrations keyed by <c>PRAGMA user_version</c>; a database written by a newer build is
/// refused, never reset, and one holding the customers of the partition host (schema 6 and before) is refused with
/// <see cref="LegacyStateException"/>. Reads and writes use separate connections.
/// </summary>
public sealed class SqliteStateStore : EngineStore
{
    /// <summary>The schema version this build writes.</summary>
    public const int SchemaVersion = 7;

    /// <summary>The store's file inside a data directory.</summary>
    public const string FileName = "state.db";

    private readonly SqliteConnection _connection;
    private readonly SqliteConnection _reader;
    private readonly Lock _readGate = new();

    /// <summary>Opens (creating or migrating) the store in the file <paramref name="path"/>.</summary>
    /// <exception cref="LegacyStateException">The file holds the partition host's customers.</exception>
    /// <exception cref="InvalidOperationException">The file was written by a newer build.</exception>
    public SqliteStateStore(string path)
    {
        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        Path = path;
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        _reader = new SqliteConnection(_connection.ConnectionString);
        try
        {
            _connection.Open();
            Execute("PRAGMA journal_mode=WAL;");
            // NORMAL in WAL mode survives a process crash (kill -9); a power cut may lose the newest writes, never
            // consistency.
            Execute("PRAGMA synchronous=NORMAL;");
            Execute("PRAGMA busy_timeout=5000;");
            Migrate();
            _reader.Open();
            using (var pragma = _reader.CreateCommand())
            {
                pragma.CommandText = "PRAGMA busy_timeout=5000; PRAGMA query_only=1;";
                pragma.ExecuteNonQuery();
            }
        }
        catch
        {
            // The caller gets no instance to dispose: release the file here.
            _reader.Dispose();
            _connection.Dispose();
            throw;
        }
    }

    /// <summary>The database file.</summary>
    public string Path { get; }

    /// <inheritdoc />
    public override string Location => Path;

    /// <inheritdoc />
    protected override string ForUpdate => "";

    /// <summary>Opens the store in <paramref name="dataDir"/> (file <c>state.db</c>).</summary>
    public static SqliteStateStore OpenDirectory(string dataDir) => new(System.IO.Path.Combine(dataDir, FileName));

    /// <summary>The reserved checkpoint number in the store of <paramref name="dataDir"/>, read-only; 0 when there is no store or none yet.</summary>
    internal static long ReadReserved(string dataDir)
    {
        var path = System.IO.Path.Combine(dataDir, FileName);
        if (!File.Exists(path))
        {
            return 0;
        }

        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false, DefaultTimeout = 30 }.ToString());
        connection.Open();
        using var cmd = Command(connection, null, "SELECT value FROM settings WHERE key = @k", ("@k", CheckpointCounterKey));
        return ParseReserved(cmd.ExecuteScalar());
    }

    /// <summary>
    /// Appends an audit entry to the store in <paramref name="dataDir"/> from another process (a CLI command), without
    /// opening the whole store: safe while an engine runs on it (SQLite locks; waits up to 30 s for a writer).
    /// </summary>
    /// <exception cref="InvalidOperationException">The store has no audit trail yet (written by an older build).</exception>
    internal static long AppendAuditTo(string dataDir, long atTicks, string actor, string action, string detail)
    {
        var path = System.IO.Path.Combine(dataDir, FileName);
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"there is no state store in {dataDir} ({FileName}), so no audit trail: start the engine once on it");
        }

        var builder = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWrite, DefaultTimeout = 30 };
        using var connection = new SqliteConnection(builder.ConnectionString);
        connection.Open();
        try
        {
            return InsertAudit(connection, null, atTicks, actor, action, detail);
        }
        catch (SqliteException ex) when (ex.Message.Contains("no such table", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"the state store in {dataDir} has no audit trail yet: start the engine once with this build", ex);
        }
    }

    /// <inheritdoc />
    protected override T InTransaction<T>(Func<DbConnection, DbTransaction, T> work)
    {
        using var tx = _connection.BeginTransaction();
        var result = work(_connection, tx);
        tx.Commit();
        return result;
    }

    /// <inheritdoc />
    protected override T Read<T>(Func<DbConnection, T> work)
    {
        lock (_readGate)
        {
            return work(_reader);
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _reader.Dispose();
            _connection.Dispose();
        }
    }

    private void Migrate()
    {
        var version = (int)ReadLong("PRAGMA user_version");
        if (version > SchemaVersion)
        {
            throw new InvalidOperationException(
                $"the state store {Path} has schema version {version}, newer than this build supports ({SchemaVersion}); run a newer engine or point --data-dir elsewhere");
        }

        if (version is > 0 and < 7 && ReadLong("SELECT COUNT(*) FROM customers") is > 0 and var customers)
        {
            // Versions before 7 kept customers here (the partition host); the actor runtime keeps them in its journal.
            throw new LegacyStateException(
                $"the data directory {System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))} holds the partition host's state ({customers:N0} customers in {FileName}), " +
                "which this version does not read; replay the input topics into a new --data-dir, or run the earlier version on it");
        }

        using var tx = _connection.BeginTransaction();
        if (version < 1)
        {
            Execute(
                """
                CREATE TABLE customers(
                    customer_id TEXT PRIMARY KEY,
                    partition INTEGER NOT NULL,
                    state BLOB NOT NULL) WITHOUT ROWID;
                CREATE TABLE offsets(
                    topic TEXT NOT NULL,
                    partition INTEGER NOT NULL,
                    next_offset INTEGER NOT NULL,
                    PRIMARY KEY(topic, partition)) WITHOUT ROWID;
                CREATE TABLE partitions(
                    partition INTEGER PRIMARY KEY,
                    max_event_ticks INTEGER NOT NULL);
                CREATE TABLE checkpoints(
                    seq INTEGER PRIMARY KEY,
                    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                    customers INTEGER NOT NULL,
                    offsets INTEGER NOT NULL);
                """, tx);
        }

        if (version < 2)
        {
            // The customer model: each customer's next timer, indexed for paging by due time; population counters;
            // settings such as the active rule set.
            Execute(
                """
                ALTER TABLE customers ADD COLUMN wake INTEGER NOT NULL DEFAULT 0;
                CREATE INDEX customers_wake ON customers(partition, wake) WHERE wake > 0;
                ALTER TABLE partitions ADD COLUMN population BLOB;
                CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                """, tx);
        }

        if (version < 3)
        {
            // Triggers: the outbox of firings to publish, and the dialers' outreach queue. Both are written in the
            // checkpoint transaction that holds the state that caused them.
            Execute(
                """
                CREATE TABLE outbox(
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    customer_id TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    created_at INTEGER NOT NULL);
                CREATE TABLE outreach(
                    outreach_id TEXT PRIMARY KEY,
                    customer_id TEXT NOT NULL,
                    partition INTEGER NOT NULL,
                    rule TEXT NOT NULL,
                    rule_version TEXT NOT NULL,
                    channel TEXT NOT NULL,
                    priority INTEGER NOT NULL,
                    due_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    state TEXT NOT NULL,
                    lease_until INTEGER NOT NULL DEFAULT 0,
                    dialer TEXT,
                    attempt INTEGER NOT NULL,
                    context TEXT NOT NULL,
                    reason TEXT,
                    outcome TEXT,
                    updated_at INTEGER NOT NULL) WITHOUT ROWID;
                CREATE INDEX outreach_pick ON outreach(channel, state, priority DESC, due_at);
                CREATE INDEX outreach_customer ON outreach(customer_id);
                """, tx);
        }

        if (version < 4)
        {
            // The audit trail: configuration changes and operator actions (who, when, what), kept with the state.
            Execute(
                """
                CREATE TABLE audit(
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    at INTEGER NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    detail TEXT NOT NULL);
                """, tx);
        }

        if (version < 5)
        {
            // The checkpoint that stored each customer: a state mirror that fell behind (a crash between a checkpoint
            // and its mirror write) finds what it misses. Rows from before this version read as checkpoint 0. No index:
            // only the catch-up at start reads it, in one pass over the table, and an index cost every checkpoint about
            // a tenth of its time (bench --core).
            Execute("ALTER TABLE customers ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;", tx);
        }

        if (version < 6)
        {
            // The actor runtime's checkpoint numbers: which node number each partition checkpoint got, for the Redis
            // mirror's catch-up (ICheckpointCounter.Record).
            Execute(
                """
                CREATE TABLE checkpoint_numbers(
                    partition INTEGER NOT NULL,
                    seq INTEGER NOT NULL,
                    number INTEGER NOT NULL,
                    rule_version TEXT NOT NULL,
                    PRIMARY KEY(partition, seq)) WITHOUT ROWID;
                """, tx);
        }

        if (version < 7)
        {
            // Customers, offsets and partition checkpoints moved to the actor runtime's journal (journal.db or
            // PostgreSQL): the partition host's tables go (empty, as checked above).
            Execute(
                """
                DROP TABLE customers;
                DROP TABLE offsets;
                DROP TABLE partitions;
                DROP TABLE checkpoints;
                """, tx);
        }

        // Each step runs in this transaction.
        Execute($"PRAGMA user_version = {SchemaVersion};", tx);
        tx.Commit();
    }

    private void Execute(string sql, SqliteTransaction? tx = null)
    {
        using var cmd = _connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private long ReadLong(string sql)
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// The state store holds customers of the partition host, the runtime of versions before schema 7, which this version
/// does not read: starting on it would silently begin from nothing. Nothing in the file was changed.
/// </summary>
public sealed class LegacyStateException(string message) : InvalidOperationException(message);
