using System.Data.Common;
using System.Runtime.CompilerServices;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Persistence.Sql;
using Akka.Persistence.Sql.Config;
using LinqToDB;
using LinqToDB.Interceptors;
using Microsoft.Data.Sqlite;
using Streaming.Runtime;

namespace Streaming.Connectors.Persistence;

/// <summary>Which database holds the runtime's journal and snapshots (CONTRACTS.md §8 <c>Streaming:Store:Provider</c>).</summary>
public enum StoreProvider
{
    /// <summary>Embedded SQLite in the data directory: a single node.</summary>
    Sqlite,

    /// <summary>PostgreSQL: required for a cluster (every node reads what another wrote).</summary>
    PostgreSql,
}

/// <summary>Where and how the runtime persists (Akka.Persistence.Sql over linq2db).</summary>
public sealed record ActorStoreOptions
{
    public StoreProvider Provider { get; init; } = StoreProvider.Sqlite;

    /// <summary>SQLite: the directory holding <see cref="ActorStore.SqliteFile"/> (created if missing).</summary>
    public string? DataDir { get; init; }

    /// <summary>PostgreSQL: an Npgsql connection string (<c>Streaming:Store:ConnectionString</c>).</summary>
    public string? ConnectionString { get; init; }

    /// <summary>Most journal writes per database round trip (the journal batches across entities).</summary>
    public int BatchSize { get; init; } = 500;
}

/// <summary>
/// The actor system's persistence: Akka.Persistence.Sql's journal and snapshot store on SQLite or PostgreSQL, the
/// plugin creating and migrating its own tables, and the runtime's serializer bound. On SQLite the database runs in
/// WAL mode with <c>synchronous=NORMAL</c> (set on every connection the plugin opens, through a linq2db interceptor)
/// and one writer (<c>parallelism = 1</c>): measured here, 2.4 times the saves per second of the defaults; a power loss
/// may lose the last commits but never corrupts the file, and Kafka offsets are committed only after a checkpoint, so
/// lost commits are re-read.
/// </summary>
public static class ActorStore
{
    /// <summary>The SQLite database file inside the data directory.</summary>
    public const string SqliteFile = "journal.db";

    /// <summary>
    /// Customers with durable state in the SQLite store of <paramref name="dataDir"/> (persistence ids
    /// <c>customer-…</c> in the journal or the snapshot store); 0 when there is no store yet. Read-only.
    /// </summary>
    public static long CountCustomers(string dataDir)
    {
        var file = Path.Combine(dataDir, SqliteFile);
        if (!File.Exists(file))
        {
            return 0;
        }

        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText =
            "SELECT COUNT(*) FROM (SELECT persistence_id FROM journal WHERE persistence_id LIKE 'customer-%' " +
            "UNION SELECT persistence_id FROM snapshot WHERE persistence_id LIKE 'customer-%')";
        return (long)command.ExecuteScalar()!;
    }

    /// <summary>The actor-system setup: <paramref name="config"/> (cluster, logging…) with the store's configuration.</summary>
    /// <exception cref="ArgumentException">Options incomplete for the provider (no data directory, no connection string).</exception>
    public static ActorSystemSetup Setup(ActorStoreOptions options, Config? config = null)
    {
        var store = Hocon(options);
        var bootstrap = BootstrapSetup.Create().WithConfig(config is null ? store : config.WithFallback(store));
        return DataSetup(options) is { } data ? ActorSystemSetup.Create(bootstrap, data) : ActorSystemSetup.Create(bootstrap);
    }

    /// <summary>
    /// The same for an actor system started by Akka.Hosting (<c>AddAkka</c>): the store's configuration as a fallback
    /// of what the builder has, and the SQLite connection setup.
    /// </summary>
    /// <exception cref="ArgumentException">Options incomplete for the provider.</exception>
    public static AkkaConfigurationBuilder WithActorStore(this AkkaConfigurationBuilder builder, ActorStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddHocon(Hocon(options), HoconAddMode.Append);
        return DataSetup(options) is { } data ? builder.AddSetup(data) : builder;
    }

    /// <summary>
    /// SQLite only: linq2db's data options with the pragmas interceptor (WAL, <c>synchronous=NORMAL</c>) for every
    /// connection the plugin opens; null for PostgreSQL.
    /// </summary>
    private static DataOptionsSetup? DataSetup(ActorStoreOptions options)
    {
        if (options.Provider != StoreProvider.Sqlite)
        {
            return null;
        }

        var (provider, connection) = Connection(options);
        return new DataOptionsSetup(new DataOptions().UseConnectionString(provider, connection).UseInterceptor(new SqlitePragmas()));
    }

    /// <summary>The journal, snapshot-store, query and serialization configuration.</summary>
    private static Config Hocon(ActorStoreOptions options)
    {
        var (provider, connection) = Connection(options);
        return ConfigurationFactory.ParseString($$"""
            # Recoveries at once (Akka's default: 50): each new customer's first record waits for one.
            akka.persistence.max-concurrent-recoveries = 64
            akka.persistence.journal.plugin = "akka.persistence.journal.sql"
            akka.persistence.journal.sql {
              class = "Streaming.Connectors.Persistence.CustomerJournal, Streaming.Connectors"
              connection-string = "{{Escape(connection)}}"
              provider-name = "{{provider}}"
              auto-initialize = true
              parallelism = {{(options.Provider == StoreProvider.Sqlite ? 1 : 4)}}
              batch-size = {{options.BatchSize}}
              # Saves queued for the writer: a checkpoint asks every changed customer of a partition at once, and a
              # full queue fails the save (the plugin's default, 5,000, failed checkpoints of 16 partitions).
              buffer-size = 100000
              # A batch insert with parameters, not with each payload spelled into the SQL text as a hex literal: measured
              # on the 300,000-event bench, about 8% more events/s and 500 MB less at peak.
              prefer-parameters-on-multirow-insert = true
              # One writer per persistence id is sharding's job (an entity lives on one node). The filter would start an
              # actor for every recovery, that is for every customer loaded (measured: 9% of the runtime's CPU over 30,000 new customers).
              replay-filter.mode = off
              read-isolation-level = {{ReadIsolation(options)}}
            }
            # The rule sweep lists the stored customers through Akka.Persistence.Query.
            akka.persistence.query.journal.sql {
              write-plugin = "akka.persistence.journal.sql"
              connection-string = "{{Escape(connection)}}"
              provider-name = "{{provider}}"
              read-isolation-level = {{ReadIsolation(options)}}
            }
            akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.sql"
            akka.persistence.snapshot-store.sql {
              connection-string = "{{Escape(connection)}}"
              provider-name = "{{provider}}"
              auto-initialize = true
              read-isolation-level = {{ReadIsolation(options)}}
            }
            """)
            .WithFallback(ConfigurationFactory.ParseString(RuntimeConfiguration.Hocon))
            .WithFallback(SqlPersistence.DefaultConfiguration);
    }

    private static (string Provider, string Connection) Connection(ActorStoreOptions options)
    {
        switch (options.Provider)
        {
            case StoreProvider.Sqlite:
                if (string.IsNullOrWhiteSpace(options.DataDir))
                {
                    throw new ArgumentException("the SQLite store needs a data directory (--data-dir)", nameof(options));
                }

                Directory.CreateDirectory(options.DataDir);
                var file = Path.Combine(options.DataDir, SqliteFile);
                var connection = new SqliteConnectionStringBuilder { DataSource = file, Pooling = true }.ToString();
                UseWal(connection);
                return (ProviderName.SQLiteMS, connection);
            default:
                if (string.IsNullOrWhiteSpace(options.ConnectionString))
                {
                    throw new ArgumentException("the PostgreSQL store needs a connection string (--store-connection or Streaming:Store:ConnectionString)", nameof(options));
                }

                return (ProviderName.PostgreSQL15, ForNode(options.ConnectionString, JournalPoolSize));
        }
    }

    /// <summary>
    /// PostgreSQL connections one node's journal and snapshot store hold at most, unless the connection string sets
    /// <c>Maximum Pool Size</c>. Npgsql's default of 100 per process let a burst of recovering customers on three nodes
    /// exhaust PostgreSQL's default <c>max_connections</c> of 100 ("sorry, too many clients already", seen in the cluster
    /// test); with this bound a node waits for a free connection instead.
    /// </summary>
    public const int JournalPoolSize = 16;

    /// <summary>
    /// <paramref name="connectionString"/> with <c>Maximum Pool Size</c> = <paramref name="max"/>, unless it sets a pool
    /// size itself (then it is returned as given).
    /// </summary>
    public static string WithPoolLimit(string connectionString, int max)
    {
        var given = new DbConnectionStringBuilder { ConnectionString = connectionString };
        foreach (string key in given.Keys)
        {
            if (key.Replace(" ", "", StringComparison.Ordinal) is { } compact
                && (compact.Equals("MaximumPoolSize", StringComparison.OrdinalIgnoreCase) || compact.Equals("MaxPoolSize", StringComparison.OrdinalIgnoreCase)))
            {
                return connectionString;
            }
        }

        return new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = max }.ToString();
    }

    /// <summary>
    /// How long PostgreSQL keeps a session of this node that sits idle inside a transaction before ending it
    /// (<c>idle_in_transaction_session_timeout</c>). A node cut off from the network in the middle of a transaction never
    /// sends its COMMIT: its locks would hold the next owner's writes of the same rows, and its table lock queue every
    /// node's journal (seen in the network-partition test: the restarted node's journal could not create its index, and
    /// the cluster stalled). The engine's own transactions last milliseconds; 15 s ends an abandoned one before the
    /// survivors take over (the split-brain resolver's 20 s).
    /// </summary>
    public static readonly TimeSpan IdleTransactionTimeout = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Server settings each PostgreSQL session of a node starts with (the connection's startup <c>Options</c>), so that
    /// the server ends the session of a node that has gone, with its transaction and locks: <see cref="IdleTransactionTimeout"/>
    /// for a transaction waiting for the node's next statement, and TCP keepalives (first probe after 10 s idle, then
    /// every 5 s, 3 unanswered end it: about 25 s) and <c>tcp_user_timeout</c> (30 s of unacknowledged data) for a session
    /// in the middle of a statement. PostgreSQL's defaults leave both to the operating system: two hours of keepalive.
    /// Source of the names: PostgreSQL 15 documentation, "Client Connection Defaults" and "Connection Settings".
    /// </summary>
    public static readonly IReadOnlyList<(string Name, string Value)> SessionSettings =
    [
        ("idle_in_transaction_session_timeout", ((long)IdleTransactionTimeout.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ("tcp_keepalives_idle", "10"),
        ("tcp_keepalives_interval", "5"),
        ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "30000"),
    ];

    /// <summary>
    /// The connection string a node uses for PostgreSQL: <see cref="WithPoolLimit"/>, and each of
    /// <see cref="SessionSettings"/> as a startup option (<c>-c name=value</c>) unless its <c>Options</c> set that
    /// parameter already.
    /// </summary>
    public static string ForNode(string connectionString, int maxPool)
    {
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(WithPoolLimit(connectionString, maxPool));
        var options = builder.Options ?? "";
        foreach (var (name, value) in SessionSettings)
        {
            if (!options.Contains(name, StringComparison.OrdinalIgnoreCase))
            {
                options = $"{options} -c {name}={value}";
            }
        }

        builder.Options = options.Trim();
        return builder.ToString();
    }

    /// <summary>WAL is a property of the file: set once, before the plugin opens it.</summary>
    private static void UseWal(string connection)
    {
        using var db = new SqliteConnection(connection);
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode=WAL";
        cmd.ExecuteScalar();
    }

    /// <summary>
    /// Reads on SQLite as deferred transactions: Microsoft.Data.Sqlite begins every other level with <c>BEGIN IMMEDIATE</c>,
    /// which takes the write lock, so each recovery's read queued behind the journal writer. Without shared cache, which
    /// this store does not use, "read-uncommitted" only makes the transaction deferred: a WAL snapshot, committed data.
    /// </summary>
    private static string ReadIsolation(ActorStoreOptions options) => options.Provider == StoreProvider.Sqlite ? "read-uncommitted" : "unspecified";

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);

    /// <summary>
    /// Per-connection SQLite settings (they do not persist in the file), applied once per pooled native connection:
    /// the plugin opens a connection for every query, and two more statements on each were a third of a recovery's cost.
    /// </summary>
    private sealed class SqlitePragmas : ConnectionInterceptor
    {
        private const string Pragmas = "PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;";

        /// <summary>Native connections already set (weak: a handle the pool closes drops out).</summary>
        private readonly ConditionalWeakTable<object, object> _done = [];

        public override void ConnectionOpened(ConnectionEventData eventData, DbConnection connection)
        {
            if (FirstOpen(connection))
            {
                using var cmd = connection.CreateCommand();
                cmd.CommandText = Pragmas;
                cmd.ExecuteNonQuery();
            }
        }

        /// <remarks>
        /// Microsoft.Data.Sqlite runs every "async" call synchronously, so without a yield the plugin's write stage
        /// blocks its stream while it writes and the writes queued meanwhile never batch: measured, one INSERT per
        /// customer save (34,136 for 34,136 saves). Yielding here, before any statement, lets a batch form while one is
        /// written (254 INSERTs for the same saves) and lets recoveries' reads run beside each other.
        /// </remarks>
        public override async Task ConnectionOpenedAsync(ConnectionEventData eventData, DbConnection connection, CancellationToken cancellationToken)
        {
            await Task.Yield();
            ConnectionOpened(eventData, connection);
        }

        private bool FirstOpen(DbConnection connection)
        {
            if (connection is not SqliteConnection { Handle: { } handle })
            {
                return true;
            }

            lock (_done)
            {
                return _done.TryAdd(handle, handle);
            }
        }
    }
}
