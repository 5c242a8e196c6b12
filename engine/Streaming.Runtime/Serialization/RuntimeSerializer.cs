using System.Buffers;
using Akka.Actor;
using Akka.Serialization;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Partitions;

namespace Streaming.Runtime.Serialization;

/// <summary>
/// Binary serializer of what the runtime persists, in the journal and as snapshots: <see cref="CustomerCheckpointed"/>
/// (manifest <c>cc1</c>), <see cref="PartitionCheckpointed"/> (manifest <c>pc1</c>) and <see cref="CustomersKnown"/>
/// (manifest <c>ck1</c>); the state inside is versioned by <see cref="CustomerStateCodec"/> and the firings by
/// <see cref="TriggerFiringCodec"/>, so old journals stay readable. Identifier 7301 (Akka reserves 0–40).
/// </summary>
public sealed class RuntimeSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    /// <summary>The serializer id written beside each journal row.</summary>
    public const int Id = 7301;

    private const string CheckpointedManifest = "cc1";
    private const string PartitionManifest = "pc1";
    private const string KnownManifest = "ck1";
    private const int MaxItems = 1 << 20;

    /// <inheritdoc />
    public override int Identifier => Id;

    /// <inheritdoc />
    public override string Manifest(object o) => o switch
    {
        CustomerCheckpointed => CheckpointedManifest,
        PartitionCheckpointed => PartitionManifest,
        CustomersKnown => KnownManifest,
        _ => throw new ArgumentException($"{o.GetType()} is not persisted by the runtime", nameof(o)),
    };

    /// <inheritdoc />
    public override byte[] ToBinary(object obj) => obj switch
    {
        CustomerCheckpointed saved => Encode(saved),
        PartitionCheckpointed saved => Encode(saved),
        CustomersKnown known => Encode(known),
        _ => throw new ArgumentException($"{obj.GetType()} is not persisted by the runtime", nameof(obj)),
    };

    /// <inheritdoc />
    public override object FromBinary(byte[] bytes, string manifest) => manifest switch
    {
        CheckpointedManifest => Decode(bytes),
        PartitionManifest => DecodePartition(bytes),
        KnownManifest => DecodeKnown(bytes),
        _ => throw new System.Runtime.Serialization.SerializationException($"unknown runtime manifest '{manifest}'"),
    };

    /// <summary>Encodes a journal event.</summary>
    public static byte[] Encode(CustomerCheckpointed saved)
    {
        var buffer = ThreadBuffer.Take();
        var w = new FieldWriter(buffer);
        w.Long(saved.Seq);
        w.Long(saved.ReportedRun);
        w.Int(saved.State.Length);
        buffer.Write(saved.State);
        w.Int(saved.NextOffsets.Count);
        foreach (var (topic, next) in saved.NextOffsets)
        {
            w.String(topic);
            w.Long(next);
        }

        w.Int(saved.Unconfirmed.Count);
        foreach (var bundle in saved.Unconfirmed)
        {
            w.Long(bundle.Seq);
            w.Long(bundle.Run);
            w.Int(bundle.Moves.Count);
            foreach (var move in bundle.Moves)
            {
                w.String(move.Dimension);
                w.String(move.From);
                w.String(move.To);
                w.Bool(move.Recount);
            }

            w.Int(bundle.Converted.Count);
            foreach (var conversion in bundle.Converted)
            {
                w.String(conversion.Rule);
                w.Byte((byte)conversion.Delivery);
            }

            TriggerFiringCodec.Encode(bundle.Fired, buffer);
        }

        // Appended later: events written before end here, and decode with no messages handled.
        w.Long(saved.SequenceRun);
        w.Int(saved.Sequence);
        w.Int(saved.Partition);

        // Appended later still: each bundle's earlier labels, in bundle order.
        foreach (var bundle in saved.Unconfirmed)
        {
            w.Int(bundle.Earlier.Count);
            foreach (var label in bundle.Earlier)
            {
                w.Long(label.Run);
                w.Long(label.Seq);
            }
        }

        return ThreadBuffer.ToArray(buffer);
    }

    /// <summary>Decodes a journal event.</summary>
    /// <exception cref="InvalidDataException">The bytes are corrupt or truncated.</exception>
    public static CustomerCheckpointed Decode(ReadOnlySpan<byte> data)
    {
        var r = new FieldReader(data);
        var seq = r.Long();
        var run = r.Long();
        var state = r.Bytes(r.Count(int.MaxValue)).ToArray();
        var offsets = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var i = r.Count(MaxItems); i > 0; i--)
        {
            offsets[Required(r.String())] = r.Long();
        }

        var bundles = new EffectBundle[r.Count(MaxItems)];
        for (var b = 0; b < bundles.Length; b++)
        {
            var bundleSeq = r.Long();
            var bundleRun = r.Long();
            var moves = new StageMove[r.Count(MaxItems)];
            for (var i = 0; i < moves.Length; i++)
            {
                moves[i] = new StageMove(Required(r.String()), r.String(), r.String(), r.Bool() ?? false);
            }

            var conversions = new Conversion[r.Count(MaxItems)];
            for (var i = 0; i < conversions.Length; i++)
            {
                conversions[i] = new Conversion(Required(r.String()), (Delivery)r.Byte());
            }

            var fired = TriggerFiringCodec.Decode(data[r.Position..], out var consumed);
            r.Skip(consumed);
            bundles[b] = new EffectBundle(bundleSeq, moves, fired, conversions) { Run = bundleRun };
        }

        long sequenceRun = 0;
        var sequence = 0;
        if (r.Position < data.Length)
        {
            sequenceRun = r.Long();
            sequence = r.Int();
        }

        var partition = r.Position < data.Length ? r.Int() : -1;
        if (r.Position < data.Length)
        {
            for (var b = 0; b < bundles.Length; b++)
            {
                var earlier = new EffectLabel[r.Count(EffectBundle.MaxEarlier)];
                for (var i = 0; i < earlier.Length; i++)
                {
                    earlier[i] = new EffectLabel(r.Long(), r.Long());
                }

                bundles[b] = bundles[b] with { Earlier = earlier };
            }
        }

        r.End("journal event", "customer checkpoint");
        return new CustomerCheckpointed(seq, state, offsets, run, bundles, sequenceRun, sequence, partition);
    }

    /// <summary>Encodes a partition's journal event or snapshot.</summary>
    public static byte[] Encode(PartitionCheckpointed saved)
    {
        var buffer = ThreadBuffer.Take();
        var w = new FieldWriter(buffer);
        w.Long(saved.Seq);
        w.Long(saved.MaxEventTicks);
        w.Long(saved.WallFloorTicks);
        w.String(saved.RuleVersion);
        w.Int(saved.NextOffsets.Count);
        foreach (var (topic, next) in saved.NextOffsets)
        {
            w.String(topic);
            w.Long(next);
        }

        w.Int(saved.Population.Length);
        buffer.Write(saved.Population);
        w.Int(saved.Wakes.Count);
        foreach (var (customer, wake) in saved.Wakes)
        {
            w.String(customer);
            w.Long(wake);
        }

        TriggerFiringCodec.Encode(saved.Firings, buffer);
        w.Long(saved.Run);
        w.Int(saved.Runs.Count);
        foreach (var (run, last) in saved.Runs)
        {
            w.Long(run);
            w.Long(last);
        }

        Hashes(w, saved.Known);

        // Appended later: events written before end here, and decode with every wake-up held.
        w.Long(saved.PageEnd);
        return ThreadBuffer.ToArray(buffer);
    }

    /// <summary>Encodes the customers a partition makes known before their first save.</summary>
    public static byte[] Encode(CustomersKnown known)
    {
        var buffer = ThreadBuffer.Take();
        var w = new FieldWriter(buffer);
        w.Long(known.Seq);
        Hashes(w, known.Hashes);
        return ThreadBuffer.ToArray(buffer);
    }

    /// <summary>Decodes the customers a partition makes known.</summary>
    /// <exception cref="InvalidDataException">The bytes are corrupt or truncated.</exception>
    public static CustomersKnown DecodeKnown(ReadOnlySpan<byte> data)
    {
        var r = new FieldReader(data);
        var seq = r.Long();
        var hashes = Hashes(ref r, data.Length - r.Position);
        r.End("journal event", "known customers");
        return new CustomersKnown(seq, hashes);
    }

    private static void Hashes(FieldWriter w, IReadOnlyList<ulong> hashes)
    {
        w.Int(hashes.Count);
        foreach (var hash in hashes)
        {
            w.ULong(hash);
        }
    }

    /// <summary>Reads hashes; <paramref name="remaining"/> (bytes left) bounds the count, so a corrupt one cannot allocate.</summary>
    private static ulong[] Hashes(ref FieldReader r, int remaining)
    {
        var hashes = new ulong[r.Count(Math.Max(0, remaining - 4) / 8)];
        for (var i = 0; i < hashes.Length; i++)
        {
            hashes[i] = r.ULong();
        }

        return hashes;
    }

    /// <summary>Decodes a partition's journal event or snapshot.</summary>
    /// <exception cref="InvalidDataException">The bytes are corrupt or truncated.</exception>
    public static PartitionCheckpointed DecodePartition(ReadOnlySpan<byte> data)
    {
        var r = new FieldReader(data);
        var seq = r.Long();
        var maxEvent = r.Long();
        var wallFloor = r.Long();
        var rules = Required(r.String());
        var offsets = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var i = r.Count(MaxItems); i > 0; i--)
        {
            offsets[Required(r.String())] = r.Long();
        }

        var population = r.Bytes(r.Count(int.MaxValue)).ToArray();
        var wakes = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var i = r.Count(int.MaxValue); i > 0; i--)
        {
            wakes[Required(r.String())] = r.Long();
        }

        var firings = TriggerFiringCodec.Decode(data[r.Position..], out var consumed);
        r.Skip(consumed);
        var run = r.Long();
        var runs = new Dictionary<long, long>();
        for (var i = r.Count(MaxItems); i > 0; i--)
        {
            runs[r.Long()] = r.Long();
        }

        var known = Hashes(ref r, data.Length - r.Position);
        var pageEnd = r.Position < data.Length ? r.Long() : long.MaxValue;
        r.End("journal event", "partition checkpoint");
        return new PartitionCheckpointed(seq, offsets, maxEvent, wallFloor, population, wakes, rules, firings, run, runs) { Known = known, PageEnd = pageEnd };
    }

    private static string Required(string? value) => value ?? throw new InvalidDataException("a required field is null");
}
