using Akka.Actor;
using Streaming.Connectors.Persistence;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Rules;

namespace Streaming.Connectors.Tests;

/// <summary>
/// Writes customers into the actor runtime's SQLite journal in a data directory through real customer entities on
/// Akka.Persistence.Sql: each customer's orders, saved in the given groups (one save per group, so a customer saved
/// twice has two journal events and the later one is its state).
/// </summary>
internal static class SavedCustomers
{
    private static readonly DateTimeOffset T0 = new(2024, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    /// <summary>Saves, per customer id, its order amounts group by group, in the SQLite journal of <paramref name="dataDir"/>.</summary>
    public static Task WriteAsync(string dataDir, IReadOnlyDictionary<string, decimal[][]> saves) =>
        WriteAsync(new ActorStoreOptions { Provider = StoreProvider.Sqlite, DataDir = dataDir }, saves);

    /// <summary>
    /// The same in the journal of <paramref name="store"/>, evaluated under <paramref name="rules"/> (default: the default
    /// pack) and saved as partition <paramref name="partition"/>'s checkpoints 1, 2, ….
    /// </summary>
    public static async Task WriteAsync(ActorStoreOptions store, IReadOnlyDictionary<string, decimal[][]> saves, RuleSet? rules = null, int partition = 0)
    {
        var book = new RuleBook(rules ?? RuleSetLoader.Default);
        var system = ActorSystem.Create("saved-customers", ActorStore.Setup(store));
        try
        {
            var clock = new PartitionClock(T0.UtcTicks, 0, book.Latest.Version, 0, 1);
            foreach (var (id, groups) in saves)
            {
                var entity = system.ActorOf(CustomerEntity.Props(id, new CustomerEntityOptions(), book));
                var offset = 0;
                for (var g = 0; g < groups.Length; g++)
                {
                    foreach (var amount in groups[g])
                    {
                        var order = new OrderEvent { EventId = id + "-e" + offset, CustomerId = id, OccurredAt = T0.AddHours(offset), Type = EventType.OrderPlaced, OrderId = id + "-o" + offset, Amount = amount, ItemCount = 1 };
                        var changed = await entity.Ask<CustomerChanged>(new ApplyRecord(id, partition, "orders", offset++, order, clock), Wait);
                        Assert.Equal(ChangeOutcome.Applied, changed.Outcome);
                    }

                    Assert.True((await entity.Ask<CustomerSaved>(new SaveCustomer(id, partition, g + 1), Wait)).Written);
                }
            }
        }
        finally
        {
            await system.Terminate();
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        }
    }
}
