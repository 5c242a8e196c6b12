using System.Globalization;
using Akka.Cluster.Sharding;
using Streaming.Runtime.Customers;

namespace Streaming.Runtime.Sharding;

/// <summary>
/// Routes <see cref="ICustomerCommand"/>s: the entity id is the customer id and the shard id is the customer's Kafka
/// partition number (decimal, invariant culture), so a shard lives where the consumer that owns its partition runs and
/// records never cross the network. Messages of other types are not routed (null).
/// </summary>
public sealed class PartitionMessageExtractor : IMessageExtractor
{
    /// <inheritdoc />
    public string? EntityId(object message) => (message as ICustomerCommand)?.CustomerId;

    /// <inheritdoc />
    public object? EntityMessage(object message) => message;

    /// <inheritdoc />
    public string? ShardId(object message) => message is ICustomerCommand command ? ShardOf(command.Partition) : null;

    /// <inheritdoc />
    public string ShardId(string entityId, object? messageHint = null) =>
        messageHint is ICustomerCommand command
            ? ShardOf(command.Partition)
            : throw new InvalidOperationException($"the shard of customer '{entityId}' is its partition, which only a customer command carries");

    /// <summary>The shard id of Kafka partition <paramref name="partition"/>.</summary>
    public static string ShardOf(int partition) => partition.ToString(CultureInfo.InvariantCulture);
}
