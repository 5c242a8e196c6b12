using Akka.Actor;
using Streaming.Connectors.Persistence;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Rules;
using Streaming.Tests.Shared;

namespace Streaming.Connectors.Tests;

/// <summary>
/// The runtime's persistence on the real Akka.Persistence.Sql plugin: a customer saved by one actor system is read back
/// by the next, on SQLite in a data directory and on the PostgreSQL server the test script starts
/// (<c>STREAMING_TEST_POSTGRES</c>), each in a database of its own.
/// </summary>
public sealed class ActorStoreTests
{
    private static readonly DateTimeOffset T0 = new(2024, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private readonly RuleBook _book = new(RuleSetLoader.Default);

    [Fact]
    public async Task A_customer_saved_on_sqlite_is_recovered_by_the_next_actor_system()
    {
        var dir = Path.Combine(Path.GetTempPath(), "streaming-actorstore-" + Guid.NewGuid().ToString("N"));
        try
        {
            var options = new ActorStoreOptions { Provider = StoreProvider.Sqlite, DataDir = dir };
            await SaveThenRecoverAsync(options);

            await using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(dir, ActorStore.SqliteFile)}");
            await db.OpenAsync();
            await using var cmd = db.CreateCommand();
            cmd.CommandText = "PRAGMA journal_mode";
            Assert.Equal("wal", (string?)await cmd.ExecuteScalarAsync());
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// The mirror's view of the journal: each customer's latest save (the earlier one of a customer saved twice is not
    /// read), how many customers, and the node's checkpoint number from <c>state.db</c>.
    /// </summary>
    [Fact]
    public async Task The_journal_snapshot_reads_each_customers_latest_save_and_the_nodes_checkpoint_number()
    {
        var dir = Path.Combine(Path.GetTempPath(), "streaming-journal-snapshot-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var store = Streaming.Connectors.Sql.SqliteStateStore.OpenDirectory(dir))
            {
                store.Reserve(7);
            }

            var saves = new Dictionary<string, decimal[][]>
            {
                ["p-1"] = [[10m, 2.5m], [0.25m]],
                ["p-2"] = [[99.99m]],
            };
            await SavedCustomers.WriteAsync(dir, saves);

            using var snapshot = JournalSnapshot.OpenDirectory(dir);
            Assert.Equal(7, snapshot.Seq);
            Assert.Equal(2, snapshot.Customers);
            var read = snapshot.ReadCustomers().ToDictionary(c => c.CustomerId, c => Streaming.Engine.Model.CustomerStateCodec.Decode(c.CustomerId, c.State));
            Assert.Equal(saves.Keys.Order(), read.Keys.Order());
            foreach (var (id, groups) in saves)
            {
                Assert.Equal(groups.Sum(g => g.Length), read[id].OrderCount);
                Assert.Equal(groups.Sum(g => g.Sum()), read[id].NetAmount);
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_customer_saved_on_postgresql_is_recovered_by_the_next_actor_system()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        await SaveThenRecoverAsync(new ActorStoreOptions { Provider = StoreProvider.PostgreSql, ConnectionString = database.ConnectionString });
    }

    /// <summary>Three orders saved at a checkpoint, a fourth not saved; the next system sees exactly the three.</summary>
    private async Task SaveThenRecoverAsync(ActorStoreOptions options)
    {
        decimal[] amounts = [19.99m, 0.01m, 250m];
        var first = ActorSystem.Create("store-a", ActorStore.Setup(options));
        try
        {
            var entity = first.ActorOf(CustomerEntity.Props("p-1", new CustomerEntityOptions(), _book));
            var clock = new PartitionClock(T0.UtcTicks, 0, _book.Latest.Version, 0, 1);
            for (var i = 0; i < amounts.Length; i++)
            {
                var changed = await entity.Ask<CustomerChanged>(new ApplyRecord("p-1", 0, "orders", i, Order(i, amounts[i]), clock), Wait);
                Assert.Equal(ChangeOutcome.Applied, changed.Outcome);
            }

            var saved = await entity.Ask<CustomerSaved>(new SaveCustomer("p-1", 0, 1), Wait);
            Assert.True(saved.Written);
            await entity.Ask<CustomerChanged>(new ApplyRecord("p-1", 0, "orders", 3, Order(3, 1000m), clock), Wait);
        }
        finally
        {
            await first.Terminate();
        }

        var second = ActorSystem.Create("store-b", ActorStore.Setup(options));
        try
        {
            var entity = second.ActorOf(CustomerEntity.Props("p-1", new CustomerEntityOptions(), _book));
            var found = await entity.Ask<CustomerFound>(new GetCustomer("p-1", 0), Wait);
            Assert.NotNull(found.State);
            Assert.Equal(amounts.Length, found.State.OrderCount);
            Assert.Equal(amounts.Sum(), found.State.NetAmount);

            // The journal's shortcut: a customer recovering with Recovery.None (its partition never saved it) is answered
            // "highest 0" at once; a normal recovery of the same customer reads its one stored save.
            var journal = Akka.Persistence.Persistence.Instance.Apply(second).JournalFor(null);
            var inbox = Inbox.Create(second);
            journal.Tell(new Akka.Persistence.ReplayMessages(1, 0, long.MaxValue, "customer-p-1", inbox.Receiver));
            Assert.Equal(0, Assert.IsType<Akka.Persistence.RecoverySuccess>(inbox.Receive(Wait)).HighestSequenceNr);
            journal.Tell(new Akka.Persistence.ReplayMessages(1, long.MaxValue, long.MaxValue, "customer-p-1", inbox.Receiver));
            Assert.Equal(1, Assert.IsType<Akka.Persistence.ReplayedMessage>(inbox.Receive(Wait)).Persistent.SequenceNr);
            Assert.Equal(1, Assert.IsType<Akka.Persistence.RecoverySuccess>(inbox.Receive(Wait)).HighestSequenceNr);
        }
        finally
        {
            await second.Terminate();
        }
    }

    private static OrderEvent Order(int i, decimal amount) => new()
    {
        EventId = "e" + i,
        CustomerId = "p-1",
        OccurredAt = T0.AddHours(i),
        Type = EventType.OrderPlaced,
        OrderId = "o" + i,
        Amount = amount,
        ItemCount = 1,
    };
}
