namespace Streaming.Runtime.Serialization;

/// <summary>
/// The actor-system configuration that binds what the runtime persists to <see cref="RuntimeSerializer"/>, and the
/// queries nodes send each other to <see cref="QuerySerializer"/>.
/// </summary>
public static class RuntimeSerialization
{
    /// <summary>HOCON: the serializer, its id (<see cref="RuntimeSerializer.Id"/>) and its bindings.</summary>
    public const string Hocon = """
        akka.actor.serializers.streaming = "Streaming.Runtime.Serialization.RuntimeSerializer, Streaming.Runtime"
        akka.actor.serializers.streaming-query = "Streaming.Runtime.Serialization.QuerySerializer, Streaming.Runtime"
        akka.actor.serialization-bindings {
          "Streaming.Runtime.Customers.CustomerCheckpointed, Streaming.Runtime" = streaming
          "Streaming.Runtime.Partitions.PartitionCheckpointed, Streaming.Runtime" = streaming
          "Streaming.Runtime.Partitions.CustomersKnown, Streaming.Runtime" = streaming
          "Streaming.Runtime.Customers.GetCustomer, Streaming.Runtime" = streaming-query
          "Streaming.Runtime.Customers.CustomerFound, Streaming.Runtime" = streaming-query
          "Streaming.Runtime.Partitions.GetPartitionWatermark, Streaming.Runtime" = streaming-query
          "Streaming.Runtime.Partitions.PartitionWatermark, Streaming.Runtime" = streaming-query
        }
        akka.actor.serialization-identifiers {
          "Streaming.Runtime.Serialization.RuntimeSerializer, Streaming.Runtime" = 7301
          "Streaming.Runtime.Serialization.QuerySerializer, Streaming.Runtime" = 7302
        }
        """;
}
