namespace Streaming.Connectors.Sql;

/// <summary>
/// A consistent, read-only view of the customers a runtime stored, with the checkpoint number they are covered by: what
/// <c>streaming mirror resync</c> and the mirror's start-up catch-up write to Redis.
/// </summary>
public interface ICustomerSnapshot : IDisposable
{
    /// <summary>The checkpoint number the snapshot's customers are written with (the mirror's <c>seq</c>).</summary>
    long Seq { get; }

    /// <summary>How many customers the snapshot holds.</summary>
    long Customers { get; }

    /// <summary>Every customer's id, partition (-1 when the store does not keep it) and state encoded by <c>CustomerStateCodec</c>, streamed.</summary>
    IEnumerable<(string CustomerId, int Partition, byte[] State)> ReadCustomers();
}
