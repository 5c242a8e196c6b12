using Microsoft.Data.Sqlite;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;

namespace Streaming.Connectors.Sql;

/// <summary>
/// The embedded, single-node state store: one SQLite database in WAL mode. Each checkpoint is one transaction holding
/// the changed customers, the input offsets they reflect and per-partition progress. Schema changes are migrations
/// keyed by <c>PRAGMA user_version</c>; a database written by a newer build is refused, never reset.
/// Reads and the checkpoint write use separate connections, so lookups proceed while a checkpoint is being written
/// (WAL readers see the last committed checkpoint). A Bloom filter of stored ids answers most lookups of customers
/// the store has never seen without touching SQLite.
/// </summary>
public sealed partial class SqliteStateStore : IStateStore, Kafka.IFiringOutbox, Kafka.ICheckpointCounter
{
    /// <summary>The schema version this build writes.</summary>
    public const int SchemaVersion = 6;

    private readonly SqliteConnection _connection;
    private readonly SqliteConnection _reader;
    private readonly SqliteCommand _loadCustomer;
    private readonly SqliteCommand _findPartition;
    private readonly Lock _gate = new();
    private readonly Lock _readGate = new();
    private volatile CustomerIdFilter _filter;
    private long _lastCheckpointSeq;

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
            // NORMAL in WAL mode survives a process crash (kill -9); a power cut may lose the newest checkpoints, never
            // consistency, since state and offsets live in the same transaction.
            Execute("PRAGMA synchronous=NORMAL;");
            // A checkpoint updates customers all over the table: with SQLite's default 2 MiB page cache nearly every row
            // re-reads its page from the file (bench --core: checkpoint CPU time -30% or more with 128 MiB, an upper bound).
            Execute("PRAGMA cache_size=-131072;");
            Execute("PRAGMA busy_timeout=5000;");
            Migrate();
            _lastCheckpointSeq = ReadLong("SELECT COALESCE(MAX(seq), 0) FROM checkpoints");
            _filter = BuildFilter();
            _reader.Open();
            using (var pragma = _reader.CreateCommand())
            {
                pragma.CommandText = "PRAGMA busy_timeout=5000; PRAGMA query_only=1;";
                pragma.ExecuteNonQuery();
            }

            _loadCustomer = Prepare("SELECT state FROM customers WHERE customer_id = $id");
            _findPartition = Prepare("SELECT partition FROM customers WHERE customer_id = $id");
        }
        catch
        {
            // The caller gets no instance to dispose: release the file here.
            _reader.Dispose();
            _connection.Dispose();
            throw;
        }
    }

    public string Path { get; }

    public long LastCheckpointSeq => Interlocked.Read(ref _lastCheckpointSeq);

    /// <summary>Opens the store in <paramref name="dataDir"/> (file <c>state.db</c>).</summary>
    public static SqliteStateStore OpenDirectory(string dataDir) => new(System.IO.Path.Combine(dataDir, FileName));

    /// <summary>The store's file inside a data directory.</summary>
    public const string FileName = "state.db";

    public CustomerState? LoadCustomer(string customerId)
    {
        if (!_filter.MayContain(customerId))
        {
            return null;
        }

        lock (_readGate)
        {
            _loadCustomer.Parameters[0].Value = customerId;
            using var reader = _loadCustomer.ExecuteReader();
            if (!reader.Read())
            {
                return null;
            }

            var bytes = (byte[])reader.GetValue(0);
            return CustomerStateCodec.Decode(customerId, bytes);
        }
    }

    public int? FindPartition(string customerId)
    {
        if (!_filter.MayContain(customerId))
        {
            return null;
        }

        lock (_readGate)
        {
            _findPartition.Parameters[0].Value = customerId;
            var result = _findPartition.ExecuteScalar();
            return result is long p ? (int)p : null;
        }
    }

    public IReadOnlyDictionary<TopicPartitionKey, long> LoadOffsets()
    {
        lock (_readGate)
        {
            var result = new Dictionary<TopicPartitionKey, long>();
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = "SELECT topic, partition, next_offset FROM offsets";
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                result[new TopicPartitionKey(reader.GetString(0), reader.GetInt32(1))] = reader.GetInt64(2);
            }

            return result;
        }
    }

    public long LoadMaxEventTicks(int partition)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = "SELECT max_event_ticks FROM partitions WHERE partition = $p";
            cmd.Parameters.AddWithValue("$p", partition);
            return cmd.ExecuteScalar() is long v ? v : 0;
        }
    }

    public byte[]? LoadPopulation(int partition)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = "SELECT population FROM partitions WHERE partition = $p";
            cmd.Parameters.AddWithValue("$p", partition);
            return cmd.ExecuteScalar() as byte[];
        }
    }

    public IReadOnlyList<(string CustomerId, long WakeTicks)> LoadTimers(int partition, long after, long until, int limit)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText =
                "SELECT customer_id, wake FROM customers WHERE partition = $p AND wake > $a AND wake <= $u AND wake > 0 " +
                "ORDER BY wake, customer_id LIMIT $l";
            cmd.Parameters.AddWithValue("$p", partition);
            cmd.Parameters.AddWithValue("$a", after);
            cmd.Parameters.AddWithValue("$u", until);
            cmd.Parameters.AddWithValue("$l", limit);
            var list = new List<(string, long)>();
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                list.Add((reader.GetString(0), reader.GetInt64(1)));
            }

            return list;
        }
    }

    public IReadOnlyList<string> ListCustomerIds(int partition, string afterId, int limit)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = "SELECT customer_id FROM customers WHERE partition = $p AND customer_id > $a ORDER BY customer_id LIMIT $l";
            cmd.Parameters.AddWithValue("$p", partition);
            cmd.Parameters.AddWithValue("$a", afterId);
            cmd.Parameters.AddWithValue("$l", limit);
            var list = new List<string>();
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                list.Add(reader.GetString(0));
            }

            return list;
        }
    }

    /// <summary>
    /// Stored customers whose state a checkpoint after <paramref name="afterSeq"/> wrote (every one for a negative
    /// value), after <paramref name="afterId"/> in ordinal order, at most <paramref name="limit"/>: id, partition, encoded
    /// state and the checkpoint that stored it. Pages for catching up a state mirror.
    /// </summary>
    public IReadOnlyList<(string CustomerId, int Partition, byte[] State, long Seq)> LoadStoredAfter(long afterSeq, string afterId, int limit)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = "SELECT customer_id, partition, state, seq FROM customers WHERE seq > $s AND customer_id > $a ORDER BY customer_id LIMIT $l";
            cmd.Parameters.AddWithValue("$s", afterSeq);
            cmd.Parameters.AddWithValue("$a", afterId);
            cmd.Parameters.AddWithValue("$l", limit);
            var rows = new List<(string, int, byte[], long)>();
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                rows.Add((reader.GetString(0), reader.GetInt32(1), (byte[])reader.GetValue(2), reader.GetInt64(3)));
            }

            return rows;
        }
    }

    public string? LoadSetting(string key)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = "SELECT value FROM settings WHERE key = $k";
            cmd.Parameters.AddWithValue("$k", key);
            return cmd.ExecuteScalar() as string;
        }
    }

    /// <summary>Stores <paramref name="value"/> under <paramref name="key"/> (replacing any), outside a checkpoint.</summary>
    public void SaveSetting(string key, string value) =>
        Write("INSERT INTO settings(key, value) VALUES($k, $v) ON CONFLICT(key) DO UPDATE SET value = excluded.value", ("$k", key), ("$v", value));

    /// <summary>One statement on the writer connection, outside a checkpoint.</summary>
    private void Write(string sql, params (string Name, object Value)[] parameters)
    {
        lock (_gate)
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = sql;
            foreach (var (name, value) in parameters)
            {
                cmd.Parameters.AddWithValue(name, value);
            }

            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>The setting that holds the actor runtime's reserved checkpoint numbers (<see cref="Kafka.ICheckpointCounter"/>).</summary>
    public const string CheckpointCounterKey = "runtime.checkpoint-numbers";

    /// <inheritdoc />
    public long Reserved => long.TryParse(LoadSetting(CheckpointCounterKey), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var reserved) ? reserved : 0;

    /// <inheritdoc />
    public void Reserve(long through) => SaveSetting(CheckpointCounterKey, through.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <inheritdoc />
    public void Record(Kafka.CheckpointNumber number) =>
        Write(
            "INSERT INTO checkpoint_numbers(partition, seq, number, rule_version) VALUES($p, $s, $n, $v) " +
            "ON CONFLICT(partition, seq) DO UPDATE SET number = excluded.number, rule_version = excluded.rule_version",
            ("$p", number.Partition),
            ("$s", number.Seq),
            ("$n", number.Number),
            ("$v", number.RuleVersion));

    /// <inheritdoc />
    public void Prune(long mirrored) =>
        Write(
            "DELETE FROM checkpoint_numbers WHERE number <= $m AND (partition, seq) NOT IN " +
            "(SELECT partition, seq FROM (SELECT partition, seq, rule_version, " +
            "LEAD(rule_version) OVER (PARTITION BY partition ORDER BY seq) AS next FROM checkpoint_numbers) " +
            "WHERE next IS NULL OR next <> rule_version)",
            ("$m", mirrored));

    /// <inheritdoc />
    public IReadOnlyList<Kafka.CheckpointNumber> LoadNumbers()
    {
        lock (_readGate)
        {
            var list = new List<Kafka.CheckpointNumber>();
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = "SELECT partition, seq, number, rule_version FROM checkpoint_numbers ORDER BY partition, seq";
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                list.Add(new Kafka.CheckpointNumber(reader.GetInt32(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetString(3)));
            }

            return list;
        }
    }

    public long CountCustomers()
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = "SELECT COUNT(*) FROM customers";
            return Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    /// <summary>Every stored customer id with its partition (for tools and tests; not used on the hot path).</summary>
    public IEnumerable<(string CustomerId, int Partition)> ListCustomers()
    {
        lock (_readGate)
        {
            var list = new List<(string, int)>();
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = "SELECT customer_id, partition FROM customers ORDER BY customer_id";
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                list.Add((reader.GetString(0), reader.GetInt32(1)));
            }

            return list;
        }
    }

    public void Commit(CheckpointBatch batch)
    {
        lock (_gate)
        {
            using var tx = _connection.BeginTransaction();
            using (var upsert = _connection.CreateCommand())
            {
                upsert.Transaction = tx;
                upsert.CommandText =
                    "INSERT INTO customers(customer_id, partition, state, wake, seq) VALUES($id, $p, $s, $w, $seq) " +
                    "ON CONFLICT(customer_id) DO UPDATE SET partition = excluded.partition, state = excluded.state, wake = excluded.wake, seq = excluded.seq";
                upsert.Parameters.AddWithValue("$seq", _lastCheckpointSeq + 1);
                var id = upsert.Parameters.Add("$id", SqliteType.Text);
                var partition = upsert.Parameters.Add("$p", SqliteType.Integer);
                var state = upsert.Parameters.Add("$s", SqliteType.Blob);
                var wake = upsert.Parameters.Add("$w", SqliteType.Integer);
                upsert.Prepare();
                foreach (var row in batch.States)
                {
                    id.Value = row.CustomerId;
                    partition.Value = row.Partition;
                    state.Value = row.State;
                    wake.Value = row.WakeTicks;
                    upsert.ExecuteNonQuery();
                }
            }

            using (var offsets = _connection.CreateCommand())
            {
                offsets.Transaction = tx;
                offsets.CommandText =
                    "INSERT INTO offsets(topic, partition, next_offset) VALUES($t, $p, $o) " +
                    "ON CONFLICT(topic, partition) DO UPDATE SET next_offset = excluded.next_offset";
                var topic = offsets.Parameters.Add("$t", SqliteType.Text);
                var partition = offsets.Parameters.Add("$p", SqliteType.Integer);
                var next = offsets.Parameters.Add("$o", SqliteType.Integer);
                offsets.Prepare();
                foreach (var row in batch.Offsets)
                {
                    topic.Value = row.Topic;
                    partition.Value = row.Partition;
                    next.Value = row.NextOffset;
                    offsets.ExecuteNonQuery();
                }
            }

            using (var partitions = _connection.CreateCommand())
            {
                partitions.Transaction = tx;
                partitions.CommandText =
                    "INSERT INTO partitions(partition, max_event_ticks, population) VALUES($p, $m, $pop) " +
                    "ON CONFLICT(partition) DO UPDATE SET max_event_ticks = excluded.max_event_ticks, " +
                    "population = COALESCE(excluded.population, partitions.population)";
                var partition = partitions.Parameters.Add("$p", SqliteType.Integer);
                var max = partitions.Parameters.Add("$m", SqliteType.Integer);
                var population = partitions.Parameters.Add("$pop", SqliteType.Blob);
                foreach (var row in batch.Partitions)
                {
                    partition.Value = row.Partition;
                    max.Value = row.MaxEventTicks;
                    population.Value = row.Population is null ? DBNull.Value : row.Population;
                    partitions.ExecuteNonQuery();
                }
            }

            if (batch.Firings.Count > 0)
            {
                WriteFirings(batch.Firings, tx);
            }

            if (batch.Settings.Count > 0)
            {
                using var settings = _connection.CreateCommand();
                settings.Transaction = tx;
                settings.CommandText = "INSERT INTO settings(key, value) VALUES($k, $v) ON CONFLICT(key) DO UPDATE SET value = excluded.value";
                var key = settings.Parameters.Add("$k", SqliteType.Text);
                var value = settings.Parameters.Add("$v", SqliteType.Text);
                foreach (var (k, v) in batch.Settings)
                {
                    key.Value = k;
                    value.Value = v;
                    settings.ExecuteNonQuery();
                }
            }

            using (var log = _connection.CreateCommand())
            {
                log.Transaction = tx;
                log.CommandText = "INSERT INTO checkpoints(seq, customers, offsets) VALUES($seq, $c, $o)";
                log.Parameters.AddWithValue("$seq", _lastCheckpointSeq + 1);
                log.Parameters.AddWithValue("$c", batch.States.Count);
                log.Parameters.AddWithValue("$o", batch.Offsets.Count);
                log.ExecuteNonQuery();
                log.CommandText = "DELETE FROM checkpoints WHERE seq <= $seq - 1000";
                log.ExecuteNonQuery();
            }

            tx.Commit();
            Interlocked.Increment(ref _lastCheckpointSeq);

            // Ids become visible to the filter only after the commit; until then their owner holds them in memory.
            var filter = _filter;
            foreach (var row in batch.States)
            {
                if (row.IsNew)
                {
                    filter.Add(row.CustomerId);
                }
            }

            if (filter.Count > filter.Capacity)
            {
                _filter = BuildFilter();
            }
        }
    }

    public void Dispose()
    {
        _loadCustomer.Dispose();
        _findPartition.Dispose();
        _reader.Dispose();
        _connection.Dispose();
    }

    /// <summary>A filter over every stored id, sized for twice their number (so it is rebuilt rarely).</summary>
    private CustomerIdFilter BuildFilter()
    {
        var count = ReadLong("SELECT COUNT(*) FROM customers");
        var filter = new CustomerIdFilter(Math.Max(1 << 20, count * 2));
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = "SELECT customer_id FROM customers";
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            filter.Add(reader.GetString(0));
        }

        return filter;
    }

    private void Migrate()
    {
        var version = (int)ReadLong("PRAGMA user_version");
        if (version > SchemaVersion)
        {
            throw new InvalidOperationException(
                $"the state store {Path} has schema version {version}, newer than this build supports ({SchemaVersion}); run a newer engine or point --data-dir elsewhere");
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

        // Each step runs in this transaction.
        Execute($"PRAGMA user_version = {SchemaVersion};", tx);
        tx.Commit();
    }

    private SqliteCommand Prepare(string sql)
    {
        var cmd = _reader.CreateCommand();
        cmd.CommandText = sql;
        cmd.Parameters.Add("$id", SqliteType.Text);
        cmd.Prepare();
        return cmd;
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
