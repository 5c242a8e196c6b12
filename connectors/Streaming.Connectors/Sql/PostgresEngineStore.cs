using System.Data.Common;
using Npgsql;

namespace Streaming.Connectors.Sql;

/// <summary>
/// The engine's own tables (<see cref="EngineStore"/>) in the PostgreSQL database that holds the actor runtime's journal
/// (<c>Streaming:Store:ConnectionString</c>), in its current schema: <c>settings</c>, <c>outbox</c>, <c>outreach</c>,
/// <c>audit</c> and <c>checkpoint_numbers</c>, beside Akka.Persistence.Sql's <c>journal</c> and <c>snapshot</c>.
/// Created and migrated at open, under a transaction-scoped advisory lock so that nodes starting together migrate once;
/// the version is kept in <c>streaming_schema</c>, and tables written by a newer build are refused, never changed.
/// Each operation takes a pooled connection of its own.
/// </summary>
public sealed class PostgresEngineStore : EngineStore
{
    /// <summary>The schema version of the tables this build writes (PostgreSQL's own numbering, not SQLite's).</summary>
    public const int SchemaVersion = 1;

    /// <summary>Connections the engine's own tables (outbox, outreach, settings, audit) hold at most per node, unless the connection string sets a pool size.</summary>
    public const int EnginePoolSize = 6;

    /// <summary>The advisory-lock key migrations hold (an arbitrary constant: "STRM" in ASCII).</summary>
    private const long MigrationLock = 0x5354524D;

    private readonly NpgsqlDataSource _source;

    /// <summary>Opens the tables in the database of <paramref name="connectionString"/> (Npgsql form), creating or migrating them.</summary>
    /// <exception cref="InvalidOperationException">The tables were written by a newer build.</exception>
    /// <exception cref="NpgsqlException">The database cannot be reached, or refused the statements.</exception>
    public PostgresEngineStore(string connectionString)
    {
        // At most EnginePoolSize connections unless the string sets a pool size (see ActorStore.JournalPoolSize), and
        // abandoned transactions ended by the server (ActorStore.IdleTransactionTimeout).
        var builder = new NpgsqlConnectionStringBuilder(Persistence.ActorStore.ForNode(connectionString, EnginePoolSize));
        Location = $"PostgreSQL {builder.Host}:{builder.Port}/{builder.Database}";
        _source = NpgsqlDataSource.Create(builder);
        try
        {
            Migrate();
        }
        catch
        {
            _source.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public override string Location { get; }

    /// <inheritdoc />
    protected override string ForUpdate => " FOR UPDATE";

    /// <summary>The reserved checkpoint number in the database of <paramref name="connectionString"/>, read-only; 0 when the tables do not exist yet.</summary>
    internal static long ReadReserved(string connectionString)
    {
        using var connection = OpenUnpooled(connectionString);
        return ReadReserved(connection, null);
    }

    /// <summary>The reserved checkpoint number as <paramref name="tx"/> sees it (a journal snapshot's transaction); 0 when the tables do not exist yet.</summary>
    internal static long ReadReserved(DbConnection connection, DbTransaction? tx)
    {
        if (!SettingsExist(connection, tx))
        {
            return 0;
        }

        using var cmd = Command(connection, tx, "SELECT value FROM settings WHERE key = @k", ("@k", CheckpointCounterKey));
        return ParseReserved(cmd.ExecuteScalar());
    }

    /// <summary>Appends an audit entry from another process (a CLI command) without migrating; returns its seq.</summary>
    /// <exception cref="InvalidOperationException">No engine has created the tables in that database yet.</exception>
    internal static long AppendAuditTo(string connectionString, long atTicks, string actor, string action, string detail)
    {
        using var connection = OpenUnpooled(connectionString);
        if (!SettingsExist(connection, null))
        {
            throw new InvalidOperationException($"the database {connection.Database} has no audit trail yet: start the engine once on it with this build");
        }

        return InsertAudit(connection, null, atTicks, actor, action, detail);
    }

    /// <inheritdoc />
    protected override T InTransaction<T>(Func<DbConnection, DbTransaction, T> work)
    {
        using var connection = _source.OpenConnection();
        using var tx = connection.BeginTransaction();
        var result = work(connection, tx);
        tx.Commit();
        return result;
    }

    /// <inheritdoc />
    protected override T Read<T>(Func<DbConnection, T> work)
    {
        using var connection = _source.OpenConnection();
        return work(connection);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _source.Dispose();
        }
    }

    /// <summary>A connection of its own (outside any pool) to the database of <paramref name="connectionString"/>, open.</summary>
    internal static NpgsqlConnection OpenUnpooled(string connectionString)
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ToString());
        try
        {
            connection.Open();
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private static bool SettingsExist(DbConnection connection, DbTransaction? tx)
    {
        using var cmd = Command(connection, tx, "SELECT to_regclass('settings') IS NOT NULL");
        return cmd.ExecuteScalar() is true;
    }

    private void Migrate() => InTransaction((connection, tx) =>
    {
        using (var cmd = Command(connection, tx, $"SELECT pg_advisory_xact_lock({MigrationLock}); CREATE TABLE IF NOT EXISTS streaming_schema(version integer NOT NULL)"))
        {
            cmd.ExecuteNonQuery();
        }

        int version;
        using (var cmd = Command(connection, tx, "SELECT COALESCE(MAX(version), 0) FROM streaming_schema"))
        {
            version = Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }

        if (version > SchemaVersion)
        {
            throw new InvalidOperationException(
                $"the engine tables in {Location} have schema version {version}, newer than this build supports ({SchemaVersion}); run a newer engine");
        }

        if (version < 1)
        {
            // The tables SQLite's schema 7 has, in PostgreSQL's types: ticks and sequence numbers are bigint.
            using var cmd = Command(connection, tx, """
                CREATE TABLE settings(key text PRIMARY KEY, value text NOT NULL);
                CREATE TABLE outbox(
                    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    id text NOT NULL UNIQUE,
                    customer_id text NOT NULL,
                    payload bytea NOT NULL,
                    created_at bigint NOT NULL);
                CREATE TABLE outreach(
                    outreach_id text PRIMARY KEY,
                    customer_id text NOT NULL,
                    partition integer NOT NULL,
                    rule text NOT NULL,
                    rule_version text NOT NULL,
                    channel text NOT NULL,
                    priority integer NOT NULL,
                    due_at bigint NOT NULL,
                    expires_at bigint NOT NULL,
                    state text NOT NULL,
                    lease_until bigint NOT NULL DEFAULT 0,
                    dialer text,
                    attempt integer NOT NULL,
                    context text NOT NULL,
                    reason text,
                    outcome text,
                    updated_at bigint NOT NULL);
                CREATE INDEX outreach_pick ON outreach(channel, state, priority DESC, due_at);
                CREATE INDEX outreach_customer ON outreach(customer_id);
                CREATE TABLE audit(
                    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    at bigint NOT NULL,
                    actor text NOT NULL,
                    action text NOT NULL,
                    detail text NOT NULL);
                CREATE TABLE checkpoint_numbers(
                    partition integer NOT NULL,
                    seq bigint NOT NULL,
                    number bigint NOT NULL,
                    rule_version text NOT NULL,
                    PRIMARY KEY(partition, seq));
                INSERT INTO streaming_schema(version) VALUES (1);
                """);
            cmd.ExecuteNonQuery();
        }

        return 0;
    });
}
