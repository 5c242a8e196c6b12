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
    /// <remarks>
    /// The file alone is not enough: an actor system started on the directory opens it before the plugin creates its
    /// tables (on the first write or recovery).
    /// </remarks>
    public static bool Exists(string dataDir)
    {
        var path = Path.Combine(dataDir, ActorStore.SqliteFile);
        if (!File.Exists(path))
        {
            return false;
        }

        using var connection = ReadOnly(path);
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'journal'";
        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture) > 0;
    }

    /// <summary>Opens a snapshot of the journal in <paramref name="dataDir"/>.</summary>
    /// <exception cref="FileNotFoundException">No journal there.</exception>
    /// <exception cref="SqliteException">The file holds no journal table (<see cref="Exists"/> is false).</exception>
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
    /// <remarks>In persistence-id order; the partition is the one the customer was last saved from (-1 in events written before it was recorded).</remarks>
    public IEnumerable<(string CustomerId, int Partition, byte[] State)> ReadCustomers()
    {
        foreach (var (id, saved) in ReadSaved(null))
        {
            yield return (id, saved.Partition, saved.State);
        }
    }

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

        using var cmd = _connection.CreateCommand();
        cmd.Transaction = _transaction;
        var which = "j.persistence_id LIKE 'customer-%'";
        if (customerIds is not null)
        {
            var names = new List<string>(customerIds.Count);
            for (var i = 0; i < customerIds.Count; i++)
            {
                names.Add("$p" + i.ToString(CultureInfo.InvariantCulture));
                cmd.Parameters.AddWithValue(names[i], CustomerEntity.PersistencePrefix + customerIds[i]);
            }

            which = $"j.persistence_id IN ({string.Join(',', names)})";
        }

        cmd.CommandText =
            $"SELECT j.persistence_id, j.message FROM journal j WHERE {which} AND j.deleted = 0 AND j.sequence_number = " +
            "(SELECT MAX(k.sequence_number) FROM journal k WHERE k.persistence_id = j.persistence_id AND k.deleted = 0) ORDER BY j.persistence_id";
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            yield return (reader.GetString(0)[CustomerEntity.PersistencePrefix.Length..], RuntimeSerializer.Decode((byte[])reader.GetValue(1)));
        }
    }

    /// <summary>The most ids <see cref="ReadSaved"/> looks up at once.</summary>
    public const int MaxLookup = 500;

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
