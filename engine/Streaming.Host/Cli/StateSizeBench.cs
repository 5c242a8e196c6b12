using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;

namespace Streaming.Host.Cli;

/// <summary>One cell of <see cref="StateSizeBench"/>: a customer's size for one event-id window and order count.</summary>
/// <param name="Window">The event-id window (<c>Streaming:Engine:RecentEventIds</c>).</param>
/// <param name="Orders">Distinct <c>order_placed</c> events per customer (each kept as an order-id hash, for good).</param>
/// <param name="Events">Events per customer: the orders plus one product view per window slot (so the window is full).</param>
/// <param name="EncodedBytesPerCustomer">Mean size of the state as the store and checkpoints write it (<see cref="CustomerStateCodec"/>), bytes.</param>
/// <param name="ManagedBytesPerCustomer">Mean managed heap held by one cached customer's state (<see cref="GC.GetTotalMemory(bool)"/> after a full collection, before and after building them), bytes.</param>
/// <param name="EventIdWindowEncodedBytes">Of the encoded bytes, those of the event-id window: the state encoded again with an empty window, subtracted.</param>
/// <param name="EventIdWindowManagedBytes">Of the managed bytes, those the window holds: freed when every customer's window is replaced by an empty one.</param>
/// <param name="OrderIdsEncodedBytes">Of the encoded bytes, those of the placed order-id set (measured as for the window).</param>
/// <param name="OrderIdsManagedBytes">Of the managed bytes, those the order-id set holds (measured as for the window).</param>
public sealed record StateSizeRow(
    int Window,
    int Orders,
    int Events,
    double EncodedBytesPerCustomer,
    double ManagedBytesPerCustomer,
    double EventIdWindowEncodedBytes,
    double EventIdWindowManagedBytes,
    double OrderIdsEncodedBytes,
    double OrderIdsManagedBytes);

/// <summary>
/// <c>streaming bench --state-size</c>: measures what one customer costs, encoded (store, checkpoints) and in memory
/// (the engine caches up to <c>Streaming:Engine:MaxCachedCustomers</c>), as a function of the event-id window and of
/// the number of distinct orders. Synthetic customers, the default rule pack, no broker and no store: a few seconds.
/// </summary>
public static class StateSizeBench
{
    /// <summary>Windows measured (the default, 32, first).</summary>
    public static readonly int[] Windows = [32, 128, 512];

    /// <summary>Distinct orders per customer measured.</summary>
    public static readonly int[] OrderCounts = [0, 10, 100, 1000];

    private static readonly DateTimeOffset Start = new(2011, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Measures every (window, orders) cell on <paramref name="customers"/> customers each.</summary>
    public static List<StateSizeRow> Run(int customers, Action<string> progress)
    {
        var rules = RuleSetLoader.Default;
        var ctx = new EvalContext();
        var rows = new List<StateSizeRow>();
        foreach (var window in Windows)
        {
            foreach (var orders in OrderCounts)
            {
                var row = Measure(customers, window, orders, rules, ctx);
                progress($"window {window,4}, {orders,5} orders: {row.Events,5} events/customer; per customer {row.EncodedBytesPerCustomer,7:N0} bytes encoded, {row.ManagedBytesPerCustomer,7:N0} in memory; " +
                    $"of which event-id window {row.EventIdWindowEncodedBytes,5:N0} / {row.EventIdWindowManagedBytes,5:N0}, order ids {row.OrderIdsEncodedBytes,5:N0} / {row.OrderIdsManagedBytes,5:N0}");
                rows.Add(row);
            }
        }

        return rows;
    }

    private static StateSizeRow Measure(int customers, int window, int orders, RuleSet rules, EvalContext ctx)
    {
        var options = new ActorOptions { RecentIdCapacity = window };
        var states = new CustomerState[customers];
        var before = GC.GetTotalMemory(forceFullCollection: true);
        long encoded = 0;
        var events = orders + window;
        for (var c = 0; c < customers; c++)
        {
            var id = "size-" + c.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var state = new CustomerState(id);
            for (var i = 0; i < events; i++)
            {
                // Spread over 300 days, orders interleaved with views of 20 products in 5 categories.
                var at = Start.AddMinutes((long)i * 300 * 24 * 60 / events);
                CustomerEvent evt = OrderIndex(i, orders, events) is { } n
                    ? new OrderEvent { EventId = $"{id}:o{n}", CustomerId = id, OccurredAt = at, Type = EventType.OrderPlaced, OrderId = "order-" + n, Amount = 10m + (n % 7), Currency = "GBP", Channel = "online", ItemCount = 1 }
                    : new ClickEvent { EventId = $"{id}:v{i}", CustomerId = id, OccurredAt = at, Type = EventType.ProductView, ProductId = "p" + (i % 20), CategoryId = "k" + (i % 5), Channel = "web" };
                CustomerActor.Apply(state, evt, options, rules, ctx, sink: null);
            }

            states[c] = state;
        }

        var after = GC.GetTotalMemory(forceFullCollection: true);
        long withoutWindow = 0, withoutOrders = 0;
        foreach (var state in states)
        {
            encoded += CustomerStateCodec.Encode(state).Length;
        }

        // The window's share: the same states with an empty window (encoded again, and the memory it freed).
        foreach (var state in states)
        {
            state.RecentEventIds = new RecentIds();
            withoutWindow += CustomerStateCodec.Encode(state).Length;
        }

        var noWindow = GC.GetTotalMemory(forceFullCollection: true);
        foreach (var state in states)
        {
            state.PlacedOrderIds = new IdSet();
            withoutOrders += CustomerStateCodec.Encode(state).Length;
        }

        var noOrders = GC.GetTotalMemory(forceFullCollection: true);
        GC.KeepAlive(states);
        double PerCustomer(long bytes) => Math.Round((double)bytes / customers, 1);
        return new StateSizeRow(
            window,
            orders,
            events,
            PerCustomer(encoded),
            PerCustomer(after - before),
            PerCustomer(encoded - withoutWindow),
            PerCustomer(after - noWindow),
            PerCustomer(withoutWindow - withoutOrders),
            PerCustomer(noWindow - noOrders));
    }

    /// <summary>The order number of event <paramref name="i"/> if it is an order: orders are spread evenly over the events.</summary>
    private static int? OrderIndex(int i, int orders, int events)
    {
        if (orders == 0)
        {
            return null;
        }

        // Event i is an order when it starts a new order slot of events/orders events.
        var slot = (long)i * orders / events;
        var previous = i == 0 ? -1 : (long)(i - 1) * orders / events;
        return slot != previous ? (int)slot : null;
    }
}
