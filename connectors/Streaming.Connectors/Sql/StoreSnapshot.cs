using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Streaming.Connectors.Sql;

/// <summary>
/// A consistent, read-only view of a state store: every stored customer and the checkpoint they belong to, read in one
/// SQLite read transaction on a connection of its own, so an engine may keep writing checkpoints meanwhile (WAL). For
/// tools such as <c>streaming mirror resync</c>; nothing is migrated or written.
/// </summary>
public sealed class StoreSnapshot : ICustomerSnapshot
{
    private readonly SqliteConnection _connection;
    private readonly SqliteTransaction _transaction;

    private StoreSnapshot(SqliteConnection connection, SqliteTransaction transaction, long seq, long customers)
    {
        _connection = connection;
        _transaction = transaction;
        Seq = seq;
        Customers = customers;
    }

    /// <summary>The last checkpoint in the snapshot: every customer row is as that checkpoint left it.</summary>
    public long Seq { get; }

    /// <summary>How many customers the snapshot holds.</summary>
    public long Customers { get; }

    /// <summary>Opens a snapshot of the store in <paramref name="dataDir"/> (file <c>state.db</c>).</summary>
    /// <exception cref="FileNotFoundException">No store there.</exception>
    /// <exception cref="InvalidOperationException">The store's schema is not the one this build reads.</exception>
    public static StoreSnapshot OpenDirectory(string dataDir) => Open(Path.Combine(dataDir, "state.db"));

    public static StoreSnapshot Open(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"no state store at {path}", path);
        }

        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        try
        {
            connection.Open();
            Execute(connection, "PRAGMA busy_timeout=5000; PRAGMA query_only=1;");
            var version = Scalar(connection, null, "PRAGMA user_version");
            if (version != SqliteStateStore.SchemaVersion)
            {
                throw new InvalidOperationException(
                    $"the state store {path} has schema version {version}; this build reads version {SqliteStateStore.SchemaVersion} (start the engine once to migrate it, or use a matching build)");
            }

            // Deferred: the read snapshot begins with the first SELECT below and holds for every later one.
            var transaction = connection.BeginTransaction(deferred: true);
            var seq = Scalar(connection, transaction, "SELECT COALESCE(MAX(seq), 0) FROM checkpoints");
            var customers = Scalar(connection, transaction, "SELECT COUNT(*) FROM customers");
            return new StoreSnapshot(connection, transaction, seq, customers);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>Every customer's id, partition and encoded state, in id order, streamed.</summary>
    public IEnumerable<(string CustomerId, int Partition, byte[] State)> ReadCustomers()
    {
        using var cmd = _connection.CreateCommand();
        cmd.Transaction = _transaction;
        cmd.CommandText = "SELECT customer_id, partition, state FROM customers ORDER BY customer_id";
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            yield return (reader.GetString(0), reader.GetInt32(1), (byte[])reader.GetValue(2));
        }
    }

    public void Dispose()
    {
        _transaction.Dispose();
        _connection.Dispose();
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static long Scalar(SqliteConnection connection, SqliteTransaction? transaction, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.Transaction = transaction;
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }
}
