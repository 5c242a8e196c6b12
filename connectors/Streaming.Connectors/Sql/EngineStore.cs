using System.Data;
using System.Data.Common;
using System.Globalization;
using Streaming.Connectors.Persistence;

namespace Streaming.Connectors.Sql;

/// <summary>
/// The engine's own tables beside the actor runtime's journal: the outbox of firings the trigger relay publishes, the
/// dialers' outreach queue (CONTRACTS §7), the audit trail, settings (the rule set in force) and the checkpoint numbers
/// the Redis mirror's catch-up maps to. Customers are not here: they are the actor runtime's (Akka.Persistence.Sql).
/// The statements are shared; <see cref="SqliteStateStore"/> keeps the tables in <c>state.db</c> in the data
/// directory, <see cref="PostgresEngineStore"/> in the PostgreSQL database that holds the journal.
/// </summary>
/// <remarks>
/// Writes from this process are serialised (one at a time); every write that decides on a row's current state
/// (a lease, an ack, a release) re-checks that state in its own statement or locks the row first, so two processes on
/// one PostgreSQL database never both claim an item or record two outcomes.
/// </remarks>
public abstract partial class EngineStore : Kafka.ISettingStore, Kafka.IFiringOutbox, Kafka.ICheckpointCounter, Triggers.ITriggerOutbox, Triggers.IOutreachQueue, IAuditLog, IDisposable
{
    /// <summary>The setting that holds the actor runtime's reserved checkpoint numbers (<see cref="Kafka.ICheckpointCounter"/>).</summary>
    public const string CheckpointCounterKey = "runtime.checkpoint-numbers";

    private readonly Lock _writeGate = new();

    /// <summary>Where the tables are, for log lines and messages: a file path, or a PostgreSQL host and database.</summary>
    public abstract string Location { get; }

    /// <summary>The clock of the queue's bookkeeping (created/updated times).</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>
    /// Opens the engine's tables where <paramref name="store"/> keeps the journal: <c>state.db</c> in the data directory
    /// for SQLite, the same database for PostgreSQL. Creates or migrates them.
    /// </summary>
    /// <exception cref="LegacyStateException">SQLite: the file holds the partition host's customers.</exception>
    /// <exception cref="InvalidOperationException">The tables were written by a newer build.</exception>
    /// <exception cref="DbException">The database cannot be reached or written.</exception>
    public static EngineStore Open(ActorStoreOptions store)
    {
        ArgumentNullException.ThrowIfNull(store);
        return store.Provider == StoreProvider.PostgreSql
            ? new PostgresEngineStore(store.ConnectionString ?? throw new ArgumentException("PostgreSQL needs a connection string", nameof(store)))
            : SqliteStateStore.OpenDirectory(store.DataDir ?? throw new ArgumentException("SQLite needs a data directory", nameof(store)));
    }

    /// <summary>
    /// The number of the last checkpoint reserved in <paramref name="store"/>'s engine tables, read without opening
    /// (or migrating) them: 0 when there are none yet.
    /// </summary>
    public static long ReadReserved(ActorStoreOptions store)
    {
        ArgumentNullException.ThrowIfNull(store);
        return store.Provider == StoreProvider.PostgreSql
            ? PostgresEngineStore.ReadReserved(store.ConnectionString ?? throw new ArgumentException("PostgreSQL needs a connection string", nameof(store)))
            : SqliteStateStore.ReadReserved(store.DataDir ?? throw new ArgumentException("SQLite needs a data directory", nameof(store)));
    }

    /// <summary>Runs <paramref name="work"/> in a transaction on a writing connection, one write of this process at a time; commits if it returns.</summary>
    protected T Write<T>(Func<DbConnection, DbTransaction, T> work)
    {
        lock (_writeGate)
        {
            return InTransaction(work);
        }
    }

    /// <summary>One statement in its own transaction.</summary>
    protected int Write(string sql, params (string Name, object? Value)[] parameters) => Write((connection, tx) =>
    {
        using var cmd = Command(connection, tx, sql, parameters);
        return cmd.ExecuteNonQuery();
    });

    /// <summary>Runs <paramref name="work"/> in a new transaction of a writing connection, committed if it returns.</summary>
    protected abstract T InTransaction<T>(Func<DbConnection, DbTransaction, T> work);

    /// <summary>Runs <paramref name="work"/> on a reading connection (it sees committed writes).</summary>
    protected abstract T Read<T>(Func<DbConnection, T> work);

    /// <summary>Appended to a <c>SELECT</c> that must lock the rows it reads until the transaction ends (PostgreSQL <c>FOR UPDATE</c>; SQLite locks the whole database on write).</summary>
    protected abstract string ForUpdate { get; }

    /// <summary>A command with parameters named <c>@name</c>; null values are sent as SQL NULL.</summary>
    protected static DbCommand Command(DbConnection connection, DbTransaction? tx, string sql, params (string Name, object? Value)[] parameters)
    {
        var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            Bind(cmd, name, value);
        }

        return cmd;
    }

    /// <summary>Adds parameter <paramref name="name"/>, typed from the value (a null is text).</summary>
    protected static DbParameter Bind(DbCommand cmd, string name, object? value)
    {
        var parameter = cmd.CreateParameter();
        parameter.ParameterName = name;
        parameter.DbType = value switch
        {
            long => DbType.Int64,
            int => DbType.Int32,
            byte[] => DbType.Binary,
            _ => DbType.String,
        };
        parameter.Value = value ?? DBNull.Value;
        cmd.Parameters.Add(parameter);
        return parameter;
    }

    /// <inheritdoc />
    public string? LoadSetting(string key) => Read(connection =>
    {
        using var cmd = Command(connection, null, "SELECT value FROM settings WHERE key = @k", ("@k", key));
        return cmd.ExecuteScalar() as string;
    });

    /// <summary>Stores <paramref name="value"/> under <paramref name="key"/> (replacing any), durably.</summary>
    public void SaveSetting(string key, string value) =>
        Write("INSERT INTO settings(key, value) VALUES(@k, @v) ON CONFLICT(key) DO UPDATE SET value = excluded.value", ("@k", key), ("@v", value));

    /// <summary>Appended to a key to name the setting that holds its revision (<see cref="SaveRevision"/>).</summary>
    public const string RevisionSuffix = ".revision";

    /// <inheritdoc />
    /// <remarks>
    /// One transaction: the revision row is bumped first (an upsert, which PostgreSQL locks until commit, so a second
    /// writer waits and then counts on), then the value is written; the last to commit holds the highest revision.
    /// </remarks>
    public long SaveRevision(string key, string value) => Write((connection, tx) =>
    {
        using var bump = Command(
            connection,
            tx,
            "INSERT INTO settings(key, value) VALUES(@k, '1') ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT) RETURNING value",
            ("@k", key + RevisionSuffix));
        var revision = long.Parse((string)bump.ExecuteScalar()!, NumberStyles.None, CultureInfo.InvariantCulture);
        using var save = Command(connection, tx, "INSERT INTO settings(key, value) VALUES(@k, @v) ON CONFLICT(key) DO UPDATE SET value = excluded.value", ("@k", key), ("@v", value));
        save.ExecuteNonQuery();
        return revision;
    });

    /// <inheritdoc />
    public (long Revision, string? Value) LoadRevision(string key) => Read(connection =>
    {
        using var cmd = Command(connection, null, "SELECT key, value FROM settings WHERE key = @k OR key = @r", ("@k", key), ("@r", key + RevisionSuffix));
        using var reader = cmd.ExecuteReader();
        (long Revision, string? Value) result = (0, null);
        while (reader.Read())
        {
            var text = reader.GetString(1);
            if (reader.GetString(0) == key)
            {
                result.Value = text;
            }
            else
            {
                result.Revision = ParseReserved(text);
            }
        }

        return result;
    });

    /// <inheritdoc />
    public long Reserved => ParseReserved(LoadSetting(CheckpointCounterKey));

    /// <summary>The reserved checkpoint number in the setting's text; 0 when absent or not a number.</summary>
    protected static long ParseReserved(object? setting) =>
        setting is string text && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var reserved) ? reserved : 0;

    /// <inheritdoc />
    public void Reserve(long through) => SaveSetting(CheckpointCounterKey, through.ToString(CultureInfo.InvariantCulture));

    /// <inheritdoc />
    public void Record(Kafka.CheckpointNumber number) =>
        Write(
            "INSERT INTO checkpoint_numbers(partition, seq, number, rule_version) VALUES(@p, @s, @n, @v) " +
            "ON CONFLICT(partition, seq) DO UPDATE SET number = excluded.number, rule_version = excluded.rule_version",
            ("@p", number.Partition),
            ("@s", number.Seq),
            ("@n", number.Number),
            ("@v", number.RuleVersion));

    /// <inheritdoc />
    public void Prune(long mirrored) =>
        Write(
            "DELETE FROM checkpoint_numbers WHERE number <= @m AND (partition, seq) NOT IN " +
            "(SELECT partition, seq FROM (SELECT partition, seq, rule_version, " +
            "LEAD(rule_version) OVER (PARTITION BY partition ORDER BY seq) AS next FROM checkpoint_numbers) kept " +
            "WHERE next IS NULL OR next <> rule_version)",
            ("@m", mirrored));

    /// <inheritdoc />
    public IReadOnlyList<Kafka.CheckpointNumber> LoadNumbers() => Read(connection =>
    {
        var list = new List<Kafka.CheckpointNumber>();
        using var cmd = Command(connection, null, "SELECT partition, seq, number, rule_version FROM checkpoint_numbers ORDER BY partition, seq");
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            list.Add(new Kafka.CheckpointNumber(reader.GetInt32(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetString(3)));
        }

        return list;
    });

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the connections.</summary>
    protected abstract void Dispose(bool disposing);
}
