using System.Globalization;
using Microsoft.Data.Sqlite;
using Streaming.Connectors.Sql;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Serialization;

namespace Streaming.Connectors.Persistence;

/// <summary>
/// A consistent, read-only view of the actor runtime's customers in its SQLite journal (<see cref="ActorStore.SqliteFile"/>):
/// each customer's latest saved state (its journal events each hold the whole state), read in one read transaction on
/// a connection of its own while an engine may keep writing (WAL). <see cref="Seq"/> is the node's checkpoint number
/// (<see cref="Kafka.ICheckpointCounter"/> in <c>state.db</c>) read just before: a customer saved by a checkpoint not
/// numbered yet is in the snapshot too, and the engine's own write of it comes later with a greater number.
/// </summary>
public sealed class JournalSnapshot : ICustomerSnapshot
{
    private readonly SqliteConnection _connection;
    private readonly SqliteTransaction _transaction;

    private JournalSnapshot(SqliteConnection connection, SqliteTransaction transaction, long seq, long customers)
    {
        _connection = connection;
        _transaction = transaction;
        Seq = seq;
        Customers = customers;
    }

    /// <inheritdoc />
    public long Seq { get; }

    /// <inheritdoc />
    public long Customers { get; }

    /// <summary>Whether <paramref name="dataDir"/> holds the actor runtime's SQLite journal.</summary>
    public static bool Exists(string dataDir) => File.Exists(Path.Combine(dataDir, ActorStore.SqliteFile));

    /// <summary>Opens a snapshot of the journal in <paramref name="dataDir"/>.</summary>
    /// <exception cref="FileNotFoundException">No journal there.</exception>
    public static JournalSnapshot OpenDirectory(string dataDir)
    {
        var path = Path.Combine(dataDir, ActorStore.SqliteFile);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"no actor runtime journal at {path}", path);
        }

        var seq = CheckpointNumber(Path.Combine(dataDir, "state.db"));
        var connection = ReadOnly(path);
        try
        {
            var transaction = connection.BeginTransaction(deferred: true);
            using var count = connection.CreateCommand();
            count.Transaction = transaction;
            count.CommandText = "SELECT COUNT(DISTINCT persistence_id) FROM journal WHERE persistence_id LIKE 'customer-%' AND deleted = 0";
            return new JournalSnapshot(connection, transaction, seq, Convert.ToInt64(count.ExecuteScalar(), CultureInfo.InvariantCulture));
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks>In persistence-id order; the partition is not stored with a customer (-1).</remarks>
    public IEnumerable<(string CustomerId, int Partition, byte[] State)> ReadCustomers()
    {
        using var cmd = _connection.CreateCommand();
        cmd.Transaction = _transaction;
        cmd.CommandText =
            "SELECT j.persistence_id, j.message FROM journal j WHERE j.persistence_id LIKE 'customer-%' AND j.deleted = 0 AND j.sequence_number = " +
            "(SELECT MAX(k.sequence_number) FROM journal k WHERE k.persistence_id = j.persistence_id AND k.deleted = 0) ORDER BY j.persistence_id";
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            var saved = RuntimeSerializer.Decode((byte[])reader.GetValue(1));
            yield return (reader.GetString(0)[CustomerEntity.PersistencePrefix.Length..], -1, saved.State);
        }
    }

    public void Dispose()
    {
        _transaction.Dispose();
        _connection.Dispose();
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

    /// <summary>The node's last checkpoint number as stored in <c>state.db</c> (0: none, or no such file).</summary>
    private static long CheckpointNumber(string stateDb)
    {
        if (!File.Exists(stateDb))
        {
            return 0;
        }

        using var connection = ReadOnly(stateDb);
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT value FROM settings WHERE key = $k";
        cmd.Parameters.AddWithValue("$k", SqliteStateStore.CheckpointCounterKey);
        return cmd.ExecuteScalar() is string text && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var seq) ? seq : 0;
    }
}
