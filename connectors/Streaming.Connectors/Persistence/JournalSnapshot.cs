using System.Data;
using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Streaming.Connectors.Sql;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Serialization;

namespace Streaming.Connectors.Persistence;

/// <summary>
/// A consistent, read-only view of the actor runtime's customers in its journal, SQLite (<see cref="ActorStore.SqliteFile"/>
/// in the data directory) or PostgreSQL: each customer's latest saved state (its journal events each hold the whole
/// state), read in one read transaction on a connection of its own while an engine may keep writing (SQLite's WAL,
/// PostgreSQL's repeatable-read snapshot). <see cref="Seq"/> is the node's checkpoint number
/// (<see cref="Kafka.ICheckpointCounter"/>: in <c>state.db</c> under the data directory, read just before; on PostgreSQL in the engine tables, read in the same transaction): a customer
/// saved by a checkpoint not numbered yet is in the snapshot too, and the engine's own write of it comes later with a
/// greater number.
/// </summary>
public sealed class JournalSnapshot : IDisposable
{
    /// <summary>The most ids <see cref="ReadSaved"/> looks up at once.</summary>
    public const int MaxLookup = 500;

    private readonly DbConnection _connection;
    private readonly DbTransaction _transaction;

    private JournalSnapshot(DbConnection connection, DbTransaction transaction, long seq, long customers)
    {
        _connection = connection;
        _transaction = transaction;
        Seq = seq;
        Customers = customers;
    }

    /// <summary>The checkpoint number the snapshot's customers are written with (the mirror's <c>seq</c>).</summary>
    public long Seq { get; }

    /// <summary>How many customers the snapshot holds.</summary>
    public long Customers { get; }

    /// <summary>Whether the SQLite journal of <paramref name="dataDir"/> exists.</summary>
    /// <remarks>
    /// The file alone is not enough: an actor system started on the directory opens it before the plugin creates its
    /// tables (on the first write or recovery).
    /// </remarks>
    public static bool Exists(string dataDir) => Exists(new ActorStoreOptions { Provider = StoreProvider.Sqlite, DataDir = dataDir });

    /// <summary>Whether the journal of <paramref name="store"/> exists (its table is created at the first write or recovery).</summary>
    /// <exception cref="Npgsql.NpgsqlException">PostgreSQL is unreachable.</exception>
    public static bool Exists(ActorStoreOptions store)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (store.Provider == StoreProvider.Sqlite && !File.Exists(SqlitePath(store)))
        {
            return false;
        }

        using var connection = Open(store);
        using var cmd = connection.CreateCommand();
        cmd.CommandText = store.Provider == StoreProvider.Sqlite
            ? "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'journal'"
            : "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE tablename = 'journal' AND schemaname = current_schema()";
        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture) > 0;
    }

    /// <summary>Opens a snapshot of the SQLite journal in <paramref name="dataDir"/>.</summary>
    /// <exception cref="FileNotFoundException">No journal there.</exception>
    /// <exception cref="DbException">The file holds no journal table (<see cref="Exists(string)"/> is false).</exception>
    public static JournalSnapshot OpenDirectory(string dataDir) => Open(new ActorStoreOptions { Provider = StoreProvider.Sqlite, DataDir = dataDir }, dataDir);

    /// <summary>Opens a snapshot of the journal of <paramref name="store"/>; the node's checkpoint number is read from <c>state.db</c> in <paramref name="dataDir"/> (SQLite) or from the engine tables in the same PostgreSQL transaction.</summary>
    /// <exception cref="FileNotFoundException">SQLite, and no journal file.</exception>
    /// <exception cref="DbException">No journal table (<see cref="Exists(ActorStoreOptions)"/> is false), or the database is unreachable.</exception>
    public static JournalSnapshot Open(ActorStoreOptions store, string dataDir)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (store.Provider == StoreProvider.Sqlite && !File.Exists(SqlitePath(store)))
        {
            throw new FileNotFoundException($"no actor runtime journal at {SqlitePath(store)}", SqlitePath(store));
        }

        // SQLite: the number is read before the journal, so it never runs ahead of what the snapshot holds.
        var seq = store.Provider == StoreProvider.Sqlite ? SqliteStateStore.ReadReserved(dataDir) : 0;
        var connection = Open(store);
        try
        {
            var transaction = store.Provider == StoreProvider.Sqlite
                ? ((SqliteConnection)connection).BeginTransaction(deferred: true)
                : connection.BeginTransaction(IsolationLevel.RepeatableRead);
            if (store.Provider == StoreProvider.PostgreSql)
            {
                // In the snapshot's transaction: the number the journal it sees was saved under.
                seq = PostgresEngineStore.ReadReserved(connection, transaction);
            }

            using var count = connection.CreateCommand();
            count.Transaction = transaction;
            count.CommandText = "SELECT COUNT(DISTINCT persistence_id) FROM journal WHERE persistence_id LIKE 'customer-%' AND NOT deleted";
            return new JournalSnapshot(connection, transaction, seq, Convert.ToInt64(count.ExecuteScalar(), CultureInfo.InvariantCulture));
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks>In persistence-id order; the partition is the one the customer was last saved from (-1 in events written before it was recorded).</remarks>
    public IEnumerable<(string CustomerId, int Partition, byte[] State)> ReadCustomers()
    {
        foreach (var (id, saved) in ReadSaved(null))
        {
            yield return (id, saved.Partition, saved.State);
        }
    }

    /// <summary>
    /// Each customer's latest journal event with its sequence number in the customer's journal (the customer's durable
    /// version, <see cref="Engine.Runtime.CustomerProjection.Version"/>), in persistence-id order.
    /// </summary>
    /// <exception cref="InvalidDataException">An event is corrupt.</exception>
    public IEnumerable<(string CustomerId, CustomerCheckpointed Saved, long Version)> ReadVersioned() => Query(null);

    /// <summary>
    /// Each customer's latest journal event (in persistence-id order), or only those of <paramref name="customerIds"/>
    /// (at most 500, for a lookup; ids not stored are left out).
    /// </summary>
    /// <exception cref="ArgumentException">More than 500 ids.</exception>
    /// <exception cref="InvalidDataException">An event is corrupt.</exception>
    public IEnumerable<(string CustomerId, CustomerCheckpointed Saved)> ReadSaved(IReadOnlyList<string>? customerIds)
    {
        if (customerIds is { Count: > MaxLookup })
        {
            throw new ArgumentException($"at most {MaxLookup} ids per lookup, got {customerIds.Count}", nameof(customerIds));
        }

        return Query(customerIds).Select(r => (r.CustomerId, r.Saved));
    }

    private IEnumerable<(string CustomerId, CustomerCheckpointed Saved, long Version)> Query(IReadOnlyList<string>? customerIds)
    {
        using var cmd = _connection.CreateCommand();
        cmd.Transaction = _transaction;
        var which = "j.persistence_id LIKE 'customer-%'";
        if (customerIds is not null)
        {
            var names = new List<string>(customerIds.Count);
            for (var i = 0; i < customerIds.Count; i++)
            {
                names.Add("@p" + i.ToString(CultureInfo.InvariantCulture));
                var parameter = cmd.CreateParameter();
                parameter.ParameterName = names[i];
                parameter.Value = CustomerEntity.PersistencePrefix + customerIds[i];
                cmd.Parameters.Add(parameter);
            }

            which = $"j.persistence_id IN ({string.Join(',', names)})";
        }

        cmd.CommandText =
            $"SELECT j.persistence_id, j.message, j.sequence_number FROM journal j WHERE {which} AND NOT j.deleted AND j.sequence_number = " +
            "(SELECT MAX(k.sequence_number) FROM journal k WHERE k.persistence_id = j.persistence_id AND NOT k.deleted) ORDER BY j.persistence_id";
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            yield return (reader.GetString(0)[CustomerEntity.PersistencePrefix.Length..], RuntimeSerializer.Decode((byte[])reader.GetValue(1)), reader.GetInt64(2));
        }
    }

    public void Dispose()
    {
        _transaction.Dispose();
        _connection.Dispose();
    }

    private static string SqlitePath(ActorStoreOptions store) =>
        Path.Combine(store.DataDir ?? throw new ArgumentException("SQLite needs a data directory", nameof(store)), ActorStore.SqliteFile);

    /// <summary>A read-only connection of its own to the journal's database, open.</summary>
    private static DbConnection Open(ActorStoreOptions store)
    {
        if (store.Provider == StoreProvider.Sqlite)
        {
            return ReadOnly(SqlitePath(store));
        }

        return PostgresEngineStore.OpenUnpooled(store.ConnectionString ?? throw new ArgumentException("PostgreSQL needs a connection string", nameof(store)));
    }

    private static SqliteConnection ReadOnly(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA busy_timeout=5000";
        pragma.ExecuteNonQuery();
        return connection;
    }
}
