using Akka.Actor;
using Akka.Serialization;
using Streaming.Engine.Model;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Partitions;

namespace Streaming.Runtime.Serialization;

/// <summary>
/// Binary serializer of the queries one node sends another in a cluster: <see cref="GetCustomer"/> (manifest
/// <c>gc1</c>) and its answer <see cref="CustomerFound"/> (<c>cf1</c>, the state as <see cref="CustomerStateCodec"/>
/// writes it for the journal), <see cref="GetPartitionWatermark"/> (<c>gw1</c>) and <see cref="PartitionWatermark"/>
/// (<c>pw1</c>). Identifier 7302. Nothing it writes is persisted.
/// </summary>
public sealed class QuerySerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    /// <summary>The serializer id.</summary>
    public const int Id = 7302;

    /// <inheritdoc />
    public override int Identifier => Id;

    /// <inheritdoc />
    public override string Manifest(object o) => o switch
    {
        GetCustomer => "gc1",
        CustomerFound => "cf1",
        GetPartitionWatermark => "gw1",
        PartitionWatermark => "pw1",
        _ => throw new ArgumentException($"{o.GetType()} is not a cluster query", nameof(o)),
    };

    /// <inheritdoc />
    public override byte[] ToBinary(object obj)
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream))
        {
            switch (obj)
            {
                case GetCustomer q:
                    w.Write(q.CustomerId);
                    w.Write(q.Partition);
                    break;
                case CustomerFound f:
                    w.Write(f.CustomerId);
                    w.Write(f.Partition);
                    w.Write(f.State is not null);
                    if (f.State is { } state)
                    {
                        var bytes = CustomerStateCodec.Encode(state);
                        w.Write(bytes.Length);
                        w.Write(bytes);
                    }

                    break;
                case GetPartitionWatermark q:
                    w.Write(q.Partition);
                    break;
                case PartitionWatermark a:
                    w.Write(a.Partition);
                    w.Write(a.Owned);
                    w.Write(a.WatermarkTicks);
                    break;
                default:
                    throw new ArgumentException($"{obj.GetType()} is not a cluster query", nameof(obj));
            }
        }

        return stream.ToArray();
    }

    /// <inheritdoc />
    public override object FromBinary(byte[] bytes, string manifest)
    {
        using var r = new BinaryReader(new MemoryStream(bytes));
        switch (manifest)
        {
            case "gc1":
                return new GetCustomer(r.ReadString(), r.ReadInt32());
            case "cf1":
                var id = r.ReadString();
                var partition = r.ReadInt32();
                return new CustomerFound(id, partition, r.ReadBoolean() ? CustomerStateCodec.Decode(id, r.ReadBytes(r.ReadInt32())) : null);
            case "gw1":
                return new GetPartitionWatermark(r.ReadInt32());
            case "pw1":
                return new PartitionWatermark(r.ReadInt32(), r.ReadBoolean(), r.ReadInt64());
            default:
                throw new System.Runtime.Serialization.SerializationException($"unknown query manifest '{manifest}'");
        }
    }
}
