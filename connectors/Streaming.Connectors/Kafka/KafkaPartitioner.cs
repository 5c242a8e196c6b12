namespace Streaming.Connectors.Kafka;

/// <summary>
/// The partition the producer's default partitioner picks for a keyed record. The Confluent.Kafka producer uses
/// librdkafka's default, <c>consistent_random</c>: CRC-32 (IEEE, as zlib) of the key bytes modulo the partition count
/// (records without a key go to a random partition). Java clients use murmur2 instead, so they place keys differently.
/// </summary>
public static class KafkaPartitioner
{
    private static readonly uint[] Table = BuildTable();

    /// <summary>The partition of a non-empty <paramref name="key"/> among <paramref name="partitions"/>.</summary>
    public static int Partition(ReadOnlySpan<byte> key, int partitions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        return (int)(Crc32(key) % (uint)partitions);
    }

    /// <summary>CRC-32 with the reflected polynomial 0xEDB88320 (librdkafka's <c>rd_crc32</c>).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return ~crc;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (var n = 0u; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            }

            table[n] = c;
        }

        return table;
    }
}
