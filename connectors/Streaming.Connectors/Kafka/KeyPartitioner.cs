namespace Streaming.Connectors.Kafka;

/// <summary>
/// The partition a keyed record goes to when produced with librdkafka's default partitioner
/// (<c>consistent_random</c>): the CRC-32 (IEEE, as zlib) of the key bytes modulo the partition count. This is what
/// <c>streaming replay</c> and every Confluent.Kafka producer use unless configured otherwise; it is not the Java
/// client's murmur2 partitioner, which places keys differently.
/// </summary>
public static class KeyPartitioner
{
    private static readonly uint[] Table = BuildTable();

    /// <summary>The partition of a non-empty key (empty keys are placed at random by librdkafka).</summary>
    public static int Partition(ReadOnlySpan<byte> key, int partitions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        if (key.IsEmpty)
        {
            throw new ArgumentException("an empty key has no fixed partition", nameof(key));
        }

        return (int)(Crc32(key) % (uint)partitions);
    }

    /// <summary>CRC-32 with the reflected polynomial 0xEDB88320, initial value and final XOR 0xFFFFFFFF.</summary>
    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return crc ^ 0xFFFFFFFFu;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (var n = 0u; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            table[n] = c;
        }

        return table;
    }
}
