using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Streaming.Connectors.Kafka;
using Streaming.Engine.Events;

namespace Streaming.Connectors.Tests;

[Collection(KafkaCollection.Name)]
public sealed class KeyPartitionerTests
{
    [Fact]
    public void An_empty_key_has_no_partition() =>
        Assert.Throws<ArgumentException>(() => KeyPartitioner.Partition([], 3));

    [Fact]
    public async Task Partition_is_the_one_the_producer_picks_for_the_key()
    {
        const int partitions = 7;
        using var cluster = MockCluster.Start();
        cluster.CreateTopics([Topics.Orders], partitions);
        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers })
            .SetLogHandler((_, _) => { }).Build();

        var keys = Enumerable.Range(0, 200).Select(i => (i % 3) switch
        {
            0 => i.ToString(CultureInfo.InvariantCulture),
            1 => "tb-" + i.ToString(CultureInfo.InvariantCulture) + "~3",
            _ => "Ωmega-" + i.ToString(CultureInfo.InvariantCulture),
        });
        foreach (var key in keys)
        {
            var bytes = Encoding.UTF8.GetBytes(key);
            var delivered = await producer.ProduceAsync(Topics.Orders, new Message<byte[], byte[]> { Key = bytes, Value = [1] });
            Assert.Equal(delivered.Partition.Value, KeyPartitioner.Partition(bytes, partitions));
        }
    }
}
