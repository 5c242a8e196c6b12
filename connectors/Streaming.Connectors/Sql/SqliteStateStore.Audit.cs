using Microsoft.Data.Sqlite;

namespace Streaming.Connectors.Sql;

/// <summary>One audit entry: who did what, when. <see cref="AtTicks"/> is UTC ticks of the wall clock.</summary>
/// <param name="Seq">Increasing with time; pages are read newest first, <c>before</c> a seq.</param>
/// <param name="Actor">The token's name, or <c>directory</c> / <c>cli</c> for changes that did not come over HTTP.</param>
/// <param name="Action">A dotted verb, e.g. <c>rules.accepted</c>, <c>outreach.ack</c>.</param>
/// <param name="Detail">What was acted on (a rule-set version, an outreach id and outcome); never personal data.</param>
public sealed record AuditEntry(long Seq, long AtTicks, string Actor, string Action, string Detail);

/// <summary>The audit trail's storage: entries numbered in order of appending. Implemented by <see cref="SqliteStateStore"/>.</summary>
public interface IAuditLog
{
    /// <summary>Appends an entry durably; returns its number.</summary>
    long AppendAudit(long atTicks, string actor, string action, string detail);

    /// <summary>The newest entries numbered below <paramref name="beforeSeq"/>, newest first, at most <paramref name="limit"/>.</summary>
    IReadOnlyList<AuditEntry> ReadAudit(long beforeSeq, int limit);
}

public sealed partial class SqliteStateStore
{
    /// <summary>Appends an audit entry in its own transaction; returns its seq.</summary>
    public long AppendAudit(long atTicks, string actor, string action, string detail)
    {
        lock (_gate)
        {
            return InsertAudit(_connection, atTicks, actor, action, detail);
        }
    }

    /// <summary>
    /// Appends an audit entry to the store in <paramref name="dataDir"/> from another process (a CLI command), without
    /// opening the whole store: safe while an engine runs on it (SQLite locks; waits up to 30 s for a writer).
    /// </summary>
    /// <exception cref="InvalidOperationException">The store has no audit trail yet (written by an older build).</exception>
    public static long AppendAuditTo(string dataDir, long atTicks, string actor, string action, string detail)
    {
        var builder = new SqliteConnectionStringBuilder { DataSource = System.IO.Path.Combine(dataDir, "state.db"), Mode = SqliteOpenMode.ReadWrite, DefaultTimeout = 30 };
        using var connection = new SqliteConnection(builder.ConnectionString);
        connection.Open();
        try
        {
            return InsertAudit(connection, atTicks, actor, action, detail);
        }
        catch (SqliteException ex) when (ex.Message.Contains("no such table", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"the state store in {dataDir} has no audit trail yet: start the engine once with this build", ex);
        }
    }

    private static long InsertAudit(SqliteConnection connection, long atTicks, string actor, string action, string detail)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "INSERT INTO audit(at, actor, action, detail) VALUES ($at, $actor, $action, $detail) RETURNING seq";
        cmd.Parameters.AddWithValue("$at", atTicks);
        cmd.Parameters.AddWithValue("$actor", actor);
        cmd.Parameters.AddWithValue("$action", action);
        cmd.Parameters.AddWithValue("$detail", detail);
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>Up to <paramref name="limit"/> entries with a seq below <paramref name="beforeSeq"/>, newest first.</summary>
    public IReadOnlyList<AuditEntry> ReadAudit(long beforeSeq, int limit)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = "SELECT seq, at, actor, action, detail FROM audit WHERE seq < $before ORDER BY seq DESC LIMIT $limit";
            cmd.Parameters.AddWithValue("$before", beforeSeq);
            cmd.Parameters.AddWithValue("$limit", limit);
            using var reader = cmd.ExecuteReader();
            var entries = new List<AuditEntry>();
            while (reader.Read())
            {
                entries.Add(new AuditEntry(reader.GetInt64(0), reader.GetInt64(1), reader.GetString(2), reader.GetString(3), reader.GetString(4)));
            }

            return entries;
        }
    }
}
