using System.IO.Hashing;

namespace Streaming.Connectors.Kafka;

/// <summary>
/// The partition a keyed record goes to when produced with librdkafka's default partitioner
/// (<c>consistent_random</c>): the CRC-32 (IEEE 802.3, as zlib; System.IO.Hashing's <see cref="Crc32"/>) of the key
/// bytes modulo the partition count. This is what <c>streaming replay</c> and every Confluent.Kafka producer use unless
/// configured otherwise; it is not the Java client's murmur2 partitioner, which places keys differently.
/// </summary>
public static class KeyPartitioner
{
    /// <summary>The partition, 0 to <paramref name="partitions"/> − 1, of a non-empty key.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="partitions"/> is below 1.</exception>
    /// <exception cref="ArgumentException">The key is empty (librdkafka places empty keys at random).</exception>
    public static int Partition(ReadOnlySpan<byte> key, int partitions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        if (key.IsEmpty)
        {
            throw new ArgumentException("an empty key has no fixed partition", nameof(key));
        }

        return (int)(Crc32.HashToUInt32(key) % (uint)partitions);
    }
}
