using System.Data.Common;
using Streaming.Connectors.Persistence;

namespace Streaming.Connectors.Sql;

/// <summary>One audit entry: who did what, when. <see cref="AtTicks"/> is UTC ticks of the wall clock.</summary>
/// <param name="Seq">Increasing with time; pages are read newest first, <c>before</c> a seq.</param>
/// <param name="Actor">The token's name, or <c>directory</c> / <c>cli</c> for changes that did not come over HTTP.</param>
/// <param name="Action">A dotted verb, e.g. <c>rules.accepted</c>, <c>outreach.ack</c>.</param>
/// <param name="Detail">What was acted on (a rule-set version, an outreach id and outcome); never personal data.</param>
public sealed record AuditEntry(long Seq, long AtTicks, string Actor, string Action, string Detail);

/// <summary>The audit trail's storage: entries numbered in order of appending. Implemented by <see cref="EngineStore"/>.</summary>
public interface IAuditLog
{
    /// <summary>Appends an entry durably; returns its number.</summary>
    long AppendAudit(long atTicks, string actor, string action, string detail);

    /// <summary>The newest entries numbered below <paramref name="beforeSeq"/>, newest first, at most <paramref name="limit"/>.</summary>
    IReadOnlyList<AuditEntry> ReadAudit(long beforeSeq, int limit);
}

public abstract partial class EngineStore
{
    private const string InsertAuditSql = "INSERT INTO audit(at, actor, action, detail) VALUES (@at, @actor, @action, @detail) RETURNING seq";

    /// <summary>Appends an audit entry in its own transaction; returns its seq.</summary>
    public long AppendAudit(long atTicks, string actor, string action, string detail) =>
        Write((connection, tx) => InsertAudit(connection, tx, atTicks, actor, action, detail));

    /// <summary>
    /// Appends an audit entry to the engine tables of <paramref name="store"/> from another process (a CLI command),
    /// without opening (or migrating) the whole store: safe while an engine runs on it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The store has no audit trail yet (no engine has started on it with this build).</exception>
    public static long AppendAuditTo(ActorStoreOptions store, long atTicks, string actor, string action, string detail)
    {
        ArgumentNullException.ThrowIfNull(store);
        return store.Provider == StoreProvider.PostgreSql
            ? PostgresEngineStore.AppendAuditTo(store.ConnectionString ?? throw new ArgumentException("PostgreSQL needs a connection string", nameof(store)), atTicks, actor, action, detail)
            : SqliteStateStore.AppendAuditTo(store.DataDir ?? throw new ArgumentException("SQLite needs a data directory", nameof(store)), atTicks, actor, action, detail);
    }

    /// <summary>Inserts one entry with <paramref name="tx"/>; returns its seq.</summary>
    protected static long InsertAudit(DbConnection connection, DbTransaction? tx, long atTicks, string actor, string action, string detail)
    {
        using var cmd = Command(connection, tx, InsertAuditSql, ("@at", atTicks), ("@actor", actor), ("@action", action), ("@detail", detail));
        return Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Up to <paramref name="limit"/> entries with a seq below <paramref name="beforeSeq"/>, newest first.</summary>
    public IReadOnlyList<AuditEntry> ReadAudit(long beforeSeq, int limit) => Read(connection =>
    {
        using var cmd = Command(connection, null, "SELECT seq, at, actor, action, detail FROM audit WHERE seq < @before ORDER BY seq DESC LIMIT @limit", ("@before", beforeSeq), ("@limit", limit));
        using var reader = cmd.ExecuteReader();
        var entries = new List<AuditEntry>();
        while (reader.Read())
        {
            entries.Add(new AuditEntry(reader.GetInt64(0), reader.GetInt64(1), reader.GetString(2), reader.GetString(3), reader.GetString(4)));
        }

        return (IReadOnlyList<AuditEntry>)entries;
    });
}
