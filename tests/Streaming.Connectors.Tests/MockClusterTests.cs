using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Streaming.Connectors.Datasets;
using Streaming.Connectors.Kafka;
using Streaming.Engine.Events;

namespace Streaming.Connectors.Tests;

/// <summary>Kafka tests share one collection: each has its own cluster, but running them one at a time keeps a 2-core machine responsive.</summary>
[CollectionDefinition(Name)]
public sealed class KafkaCollection
{
    public const string Name = "kafka";
}

[Collection(KafkaCollection.Name)]
public sealed class MockClusterTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static IConsumer<byte[], byte[]> Consumer(MockCluster cluster, string groupId) =>
        new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = groupId,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
        }).SetLogHandler((_, _) => { }).Build();

    [Fact]
    public void Cluster_reports_a_loopback_bootstrap_address()
    {
        using var cluster = MockCluster.Start();
        cluster.CreateTopics(Topics.All, 4);

        Assert.Matches(@"^(127\.0\.0\.1|localhost):\d+$", cluster.BootstrapServers);
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers })
            .SetLogHandler((_, _) => { }).Build();
        var metadata = admin.GetMetadata(TimeSpan.FromSeconds(10));
        foreach (var topic in Topics.All)
        {
            var t = Assert.Single(metadata.Topics, m => m.Topic == topic);
            Assert.Equal(4, t.Partitions.Count);
        }
    }

    /// <summary>
    /// The mock cluster and Confluent.Kafka run on one librdkafka, the redist package's 2.16 next to the test assembly,
    /// never the operating system's (Debian's librdkafka1 is installed on test machines for kcat).
    /// </summary>
    [Fact]
    public void Cluster_and_clients_share_the_redist_librdkafka()
    {
        using var cluster = MockCluster.Start();
        cluster.CreateTopics([Topics.Orders], 1);
        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers })
            .SetLogHandler((_, _) => { }).Build();

        Assert.Equal("2.16.0", KafkaNative.Version);
        var mapped = File.ReadLines("/proc/self/maps")
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(fields => fields.Length >= 6 && Path.GetFileName(fields[5]).Contains("librdkafka", StringComparison.Ordinal))
            .Select(fields => fields[5])
            .Distinct(StringComparer.Ordinal)
            .ToList();
        var file = Assert.Single(mapped);
        var native = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");
        Assert.StartsWith(native + Path.DirectorySeparatorChar, file, StringComparison.Ordinal);
    }

    [Fact]
    public void ReplayProducer_delivers_every_record_exactly_once()
    {
        using var cluster = MockCluster.Start();
        cluster.CreateTopics(Topics.All, 4);
        const int count = 1000;
        var templates = new[]
        {
            (Topics.Orders, "alice"),
            (Topics.Clickstream, "bob"),
            (Topics.Callcenter, "carol"),
            (Topics.CustomerUpdates, "dave"),
            (Topics.OutreachOutcomes, "Ωmega"),
        };
        var records = new List<ReplayRecord>(count);
        for (var i = 0; i < count; i++)
        {
            var (topic, customer) = templates[i % templates.Length];
            var key = customer + "-" + (i % 37).ToString(CultureInfo.InvariantCulture);
            records.Add(new ReplayRecord(topic, key, Encoding.UTF8.GetBytes($"{{\"n\":{i},\"customerId\":\"{key}\"}}")));
        }

        var producer = new ReplayProducer(new ReplayOptions { BootstrapServers = cluster.BootstrapServers, PaceGroup = null }, TimeProvider.System);
        var progress = new List<ReplayProgress>();
        var acknowledged = producer.Run(records, () => 0.5, progress.Add, null, CancellationToken.None);

        Assert.Equal(count, acknowledged);
        var last = Assert.Single(progress, p => p.FileShare == 1);
        Assert.Equal(count, last.Produced);
        Assert.Equal(count, last.Acknowledged);

        var expected = records.ToDictionary(r => Encoding.UTF8.GetString(r.Value), r => (r.Topic, r.Key), StringComparer.Ordinal);
        var received = new Dictionary<string, (string Topic, string Key)>(StringComparer.Ordinal);
        using var consumer = Consumer(cluster, "replay-" + Guid.NewGuid().ToString("N"));
        var partitions = Topics.Inputs.SelectMany(t => Enumerable.Range(0, 4).Select(p => new TopicPartition(t, p))).ToList();
        consumer.Assign(partitions);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (received.Count < count && clock.Elapsed < Deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result?.Message is null)
            {
                continue;
            }

            var value = Encoding.UTF8.GetString(result.Message.Value);
            Assert.True(received.TryAdd(value, (result.Topic, Encoding.UTF8.GetString(result.Message.Key))), $"received twice: {value}");
        }

        Assert.Equal(count, received.Count);
        foreach (var (value, (topic, key)) in expected)
        {
            Assert.True(received.TryGetValue(value, out var got), $"never received: {value}");
            Assert.Equal(topic, got.Topic);
            Assert.Equal(key, got.Key);
        }

        // Nothing more than the 1,000 records is stored: the partitions' end offsets (as last fetched; the topics are
        // new, so they start at 0) add up to exactly that.
        long total = 0;
        foreach (var tp in partitions)
        {
            var high = consumer.GetWatermarkOffsets(tp).High.Value;
            total += high < 0 ? consumer.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(10)).High.Value : high;
        }

        Assert.Equal(count, total);
    }

    [Fact]
    public void Records_of_one_key_stay_on_one_partition_in_order()
    {
        using var cluster = MockCluster.Start();
        cluster.CreateTopics(Topics.All, 4);
        var records = Enumerable.Range(0, 50)
            .Select(i => new ReplayRecord(Topics.Orders, "same-customer", Encoding.UTF8.GetBytes(i.ToString(CultureInfo.InvariantCulture))))
            .ToList();

        var acknowledged = new ReplayProducer(new ReplayOptions { BootstrapServers = cluster.BootstrapServers, PaceGroup = null }, TimeProvider.System)
            .Run(records, () => 1.0, null, null, CancellationToken.None);
        Assert.Equal(50, acknowledged);

        using var consumer = Consumer(cluster, "order-" + Guid.NewGuid().ToString("N"));
        consumer.Assign(Enumerable.Range(0, 4).Select(p => new TopicPartition(Topics.Orders, p)));
        var got = new List<(int Partition, int Value)>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (got.Count < 50 && clock.Elapsed < Deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result?.Message is not null)
            {
                got.Add((result.Partition.Value, int.Parse(Encoding.UTF8.GetString(result.Message.Value), CultureInfo.InvariantCulture)));
            }
        }

        Assert.Equal(50, got.Count);
        Assert.Single(got.Select(g => g.Partition).Distinct());
        Assert.Equal(Enumerable.Range(0, 50), got.Select(g => g.Value));
    }

    [Fact]
    public async Task Creating_a_topic_twice_is_a_clear_error_and_the_broker_stays_usable()
    {
        using var cluster = MockCluster.Start();
        cluster.CreateTopic("twice", 2);

        var ex = Assert.Throws<InvalidOperationException>(() => cluster.CreateTopic("twice", 2));
        Assert.Contains("twice", ex.Message, StringComparison.Ordinal);

        await AssertUsable(cluster, "twice");
    }

    [Fact]
    public async Task Creating_a_topic_without_partitions_is_refused_and_the_broker_stays_usable()
    {
        using var cluster = MockCluster.Start();

        // librdkafka's mock broker would accept 0 partitions and create an unusable topic: the wrapper refuses it.
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => cluster.CreateTopic("empty-topic", 0));
        Assert.Contains("empty-topic", error.Message, StringComparison.Ordinal);

        cluster.CreateTopic("after", 1);
        await AssertUsable(cluster, "after");
    }

    [Fact]
    public void Disposed_cluster_refuses_new_topics()
    {
        var cluster = MockCluster.Start();
        cluster.Dispose();
        cluster.Dispose();

        Assert.Throws<ObjectDisposedException>(() => cluster.CreateTopic("late", 1));
    }

    private static async Task AssertUsable(MockCluster cluster, string topic)
    {
        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers })
            .SetLogHandler((_, _) => { }).Build();
        var report = await producer.ProduceAsync(topic, new Message<byte[], byte[]> { Key = "k"u8.ToArray(), Value = "still-works"u8.ToArray() })
            .WaitAsync(Deadline);
        Assert.Equal(PersistenceStatus.Persisted, report.Status);

        using var consumer = Consumer(cluster, "usable-" + Guid.NewGuid().ToString("N"));
        consumer.Assign(new TopicPartitionOffset(report.TopicPartition, report.Offset));
        var result = consumer.Consume(Deadline);
        Assert.NotNull(result);
        Assert.Equal("still-works", Encoding.UTF8.GetString(result.Message.Value));
    }
}
