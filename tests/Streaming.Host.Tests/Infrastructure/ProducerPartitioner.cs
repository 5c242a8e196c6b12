using System.Text;

namespace Streaming.Host.Tests.Infrastructure;

/// <summary>
/// The partition a librdkafka producer (what <c>streaming replay</c> and kcat use) puts a keyed record in, computed
/// here independently of the engine's and the connectors' code: librdkafka's default partitioner for a keyed record is
/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) of the key bytes modulo the partition count, not the Java
/// client's murmur2. <see cref="BacktestTests.Customers_are_partitioned_as_a_librdkafka_producer_partitions_them"/>
/// checks it against a real producer.
/// </summary>
public static class ProducerPartitioner
{
    /// <summary>CRC-32 of <paramref name="data"/>, bit by bit (the check value of "123456789" is 0xCBF43926).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var bit = 0; bit < 8; bit++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }
        }

        return ~crc;
    }

    /// <summary>The partition, 0 to <paramref name="partitions"/> − 1, of a record keyed by the UTF-8 bytes of <paramref name="key"/>.</summary>
    public static int PartitionOf(string key, int partitions) => (int)(Crc32(Encoding.UTF8.GetBytes(key)) % (uint)partitions);

    /// <summary>
    /// Each partition's expected watermark once every record is processed: the latest event time of the customers it
    /// holds minus the allowed lateness (README "Time and timers"). Partition <c>p</c> of every input topic feeds the
    /// same clock, so the customers' latest times are taken over all their topics.
    /// </summary>
    /// <param name="latestByCustomer">Each customer's latest event time over every record the replay produced for it.</param>
    /// <param name="partitions">Partitions of the input topics.</param>
    /// <param name="lateness">The engine's <c>AllowedLatenessSeconds</c> (default 300 s).</param>
    public static Dictionary<int, DateTimeOffset> ExpectedWatermarks(IEnumerable<(string CustomerId, DateTimeOffset Latest)> latestByCustomer, int partitions, TimeSpan lateness)
    {
        var result = new Dictionary<int, DateTimeOffset>();
        foreach (var (id, latest) in latestByCustomer)
        {
            var p = PartitionOf(id, partitions);
            if (!result.TryGetValue(p, out var max) || latest > max)
            {
                result[p] = latest;
            }
        }

        foreach (var p in result.Keys.ToList())
        {
            result[p] -= lateness;
        }

        return result;
    }
}
