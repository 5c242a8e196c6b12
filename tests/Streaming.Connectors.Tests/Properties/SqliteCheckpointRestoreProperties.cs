using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;
using Streaming.Connectors.Sql;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;
using Streaming.Engine.Tests.Properties;
using Xunit.Abstractions;

namespace Streaming.Connectors.Tests.Properties;

/// <summary>
/// The engine tests' checkpoint/restore property (<see cref="CheckpointRestoreScenario"/>) on the real SQLite store:
/// its own queries (timers paged by due time, customer listing, population, event-time progress, the Bloom filter of
/// stored ids rebuilt on reopen) feed the restarted host, and the outbox and outreach queue it wrote are compared with
/// those of a straight run. The restart closes the database and opens it again, as a new process would.
/// </summary>
public sealed class SqliteCheckpointRestoreProperties(ITestOutputHelper output) : CheckpointRestoreScenario(output), IDisposable
{
    private readonly TempDirectory _dir = new();
    private int _stores;

    /// <summary>Fewer cases than on the in-memory store: every case writes two databases.</summary>
    protected override int Cases => 60;

    private protected override ICheckpointStore NewStore() =>
        new SqliteCheckpointStore(_dir.File(string.Create(CultureInfo.InvariantCulture, $"state-{++_stores}.db")));

    public void Dispose() => _dir.Dispose();

    private sealed class SqliteCheckpointStore(string path) : ICheckpointStore
    {
        private readonly SqliteStateStore _store = new(path);

        public long LastCheckpointSeq => _store.LastCheckpointSeq;

        public IReadOnlyList<string> StoredCustomerIds => _store.ListCustomers().Select(c => c.CustomerId).Order(StringComparer.Ordinal).ToList();

        public CustomerState? LoadCustomer(string customerId) => _store.LoadCustomer(customerId);

        public int? FindPartition(string customerId) => _store.FindPartition(customerId);

        public IReadOnlyDictionary<TopicPartitionKey, long> LoadOffsets() => _store.LoadOffsets();

        public long LoadMaxEventTicks(int partition) => _store.LoadMaxEventTicks(partition);

        public byte[]? LoadPopulation(int partition) => _store.LoadPopulation(partition);

        public IReadOnlyList<(string CustomerId, long WakeTicks)> LoadTimers(int partition, long after, long until, int limit) =>
            _store.LoadTimers(partition, after, until, limit);

        public IReadOnlyList<string> ListCustomerIds(int partition, string afterId, int limit) => _store.ListCustomerIds(partition, afterId, limit);

        public string? LoadSetting(string key) => _store.LoadSetting(key);

        public long CountCustomers() => _store.CountCustomers();

        public void Commit(CheckpointBatch batch) => _store.Commit(batch);

        /// <summary>The state column as stored, read on a connection of its own.</summary>
        public byte[]? RawState(string customerId)
        {
            using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
            connection.Open();
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "SELECT state FROM customers WHERE customer_id = $id";
            cmd.Parameters.AddWithValue("$id", customerId);
            return cmd.ExecuteScalar() as byte[];
        }

        /// <summary>Outbox rows (the CloudEvent as stored) and outreach items, every field but the bookkeeping times.</summary>
        public IReadOnlyList<string> StoredFirings()
        {
            var lines = _store.ReadOutbox(0, int.MaxValue).Select(r => $"outbox customer={r.CustomerId} {Encoding.UTF8.GetString(r.Payload)}").ToList();
            lines.AddRange(_store.ListOutreach().Select(i =>
                string.Create(CultureInfo.InvariantCulture,
                    $"{i.OutreachId} outreach customer={i.CustomerId} partition={i.Partition} rule={i.Rule}@{i.RuleVersion} channel={i.Channel} priority={i.Priority} " +
                    $"due={i.DueTicks} expires={i.ExpiresTicks} state={i.State} lease={i.LeaseUntilTicks} dialer={i.Dialer} attempt={i.Attempt} " +
                    $"reason={i.Reason} outcome={i.Outcome} context={i.Context}")));
            lines.Sort(StringComparer.Ordinal);
            return lines;
        }

        public ICheckpointStore Reopen()
        {
            _store.Dispose();
            return new SqliteCheckpointStore(path);
        }

        public void Dispose() => _store.Dispose();
    }
}
