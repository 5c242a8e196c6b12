using System.Runtime.InteropServices;
using System.Text;

namespace Streaming.Connectors.Kafka;

/// <summary>
/// An in-process Kafka-protocol broker: librdkafka's mock cluster, reached over P/Invoke. Real clients (Confluent.Kafka,
/// kcat) talk to it over loopback TCP. It keeps everything in memory and, per partition, only the newest ~5 MiB of
/// produce batches: producers must be paced by consumer lag (see <see cref="ReplayPacer"/>).
/// </summary>
public sealed partial class MockCluster : IDisposable
{
    private const int ProducerType = 0;

    // Kafka protocol: the Produce request's API key, and the error code NOT_ENOUGH_REPLICAS.
    private const short ProduceApiKey = 0;
    private const int NotEnoughReplicas = 19;
    private const short OffsetCommitApiKey = 8;
    private const int RebalanceInProgress = 27;

    private IntPtr _client;
    private IntPtr _cluster;

    private MockCluster(IntPtr client, IntPtr cluster, string bootstrapServers)
    {
        _client = client;
        _cluster = cluster;
        BootstrapServers = bootstrapServers;
    }

    /// <summary>Comma-separated host:port list of the mock brokers.</summary>
    public string BootstrapServers { get; }

    /// <summary>Starts a cluster of <paramref name="brokers"/> brokers on loopback.</summary>
    public static MockCluster Start(int brokers = 1)
    {
        KafkaNative.EnsureLoaded();
        var conf = rd_kafka_conf_new();
        var err = new byte[512];
        // The mock cluster needs a client instance to own its threads; a quiet producer handle serves.
        Set(conf, "log_level", "3", err);
        var client = rd_kafka_new(ProducerType, conf, err, (nuint)err.Length);
        if (client == IntPtr.Zero)
        {
            throw new InvalidOperationException("librdkafka could not create a client for the mock cluster: " + Message(err));
        }

        var cluster = rd_kafka_mock_cluster_new(client, brokers);
        if (cluster == IntPtr.Zero)
        {
            rd_kafka_destroy(client);
            throw new InvalidOperationException("librdkafka could not start its mock cluster");
        }

        var bootstraps = Marshal.PtrToStringUTF8(rd_kafka_mock_cluster_bootstraps(cluster))
            ?? throw new InvalidOperationException("the mock cluster reported no bootstrap address");
        return new MockCluster(client, cluster, bootstraps);
    }

    /// <summary>Creates a topic (the mock broker has no admin API of its own).</summary>
    public void CreateTopic(string topic, int partitions, int replicationFactor = 1)
    {
        ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
        if (partitions < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(partitions), partitions, $"topic '{topic}' needs at least one partition");
        }

        var code = rd_kafka_mock_topic_create(_cluster, topic, partitions, replicationFactor);
        if (code != 0)
        {
            throw new InvalidOperationException($"creating topic '{topic}' on the mock cluster failed: error {code}");
        }
    }

    /// <summary>
    /// Fault injection for tests: the next <paramref name="count"/> Produce requests to any broker of the cluster, from
    /// any client, are answered with <c>NOT_ENOUGH_REPLICAS</c> for every partition in them and append nothing.
    /// Producers treat that error as retriable (the records are not persisted) and keep retrying until their message
    /// timeout. Reads (Fetch, offsets, group membership) are not affected. <see cref="AcceptProduce"/> ends it.
    /// </summary>
    public void RefuseProduce(int count) => PushErrors(ProduceApiKey, NotEnoughReplicas, count);

    /// <summary>
    /// Fault injection for tests: the next <paramref name="count"/> OffsetCommit requests, from any consumer, are answered
    /// with <c>REBALANCE_IN_PROGRESS</c> and commit nothing, as a broker answers while its group rebalances. librdkafka
    /// hands that error to the caller without retrying or leaving the group.
    /// </summary>
    public void RefuseCommits(int count) => PushErrors(OffsetCommitApiKey, RebalanceInProgress, count);

    /// <summary>Answers the next <paramref name="count"/> requests of <paramref name="apiKey"/> with <paramref name="error"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is not positive.</exception>
    private void PushErrors(short apiKey, int error, int count)
    {
        ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var errors = new int[count];
        Array.Fill(errors, error);
        rd_kafka_mock_push_request_errors_array(_cluster, apiKey, (nuint)errors.Length, errors);
    }

    /// <summary>Drops the refusals <see cref="RefuseProduce"/> queued and not used yet: Produce requests succeed again.</summary>
    public void AcceptProduce()
    {
        ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
        rd_kafka_mock_clear_request_errors(_cluster, ProduceApiKey);
    }

    /// <summary>
    /// How long a consumer group with no members waits for more members after the first one joins before it assigns
    /// partitions: Kafka's <c>group.initial.rebalance.delay.ms</c>, 3 s by default there and in this broker. A group
    /// only one process consumes in gains nothing from it; a group whose members start together spares itself a second
    /// rebalance.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative or over a day.</exception>
    public void SetGroupInitialRebalanceDelay(TimeSpan delay)
    {
        ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(delay, TimeSpan.FromDays(1));
        rd_kafka_mock_group_initial_rebalance_delay_ms(_cluster, (int)delay.TotalMilliseconds);
    }

    public void CreateTopics(IEnumerable<string> topics, int partitions)
    {
        foreach (var topic in topics)
        {
            CreateTopic(topic, partitions);
        }
    }

    public void Dispose()
    {
        if (_cluster != IntPtr.Zero)
        {
            rd_kafka_mock_cluster_destroy(_cluster);
            _cluster = IntPtr.Zero;
        }

        if (_client != IntPtr.Zero)
        {
            rd_kafka_destroy(_client);
            _client = IntPtr.Zero;
        }
    }

    private static void Set(IntPtr conf, string name, string value, byte[] err)
    {
        if (rd_kafka_conf_set(conf, name, value, err, (nuint)err.Length) != 0)
        {
            throw new InvalidOperationException($"librdkafka rejected {name}={value}: {Message(err)}");
        }
    }

    private static string Message(byte[] err)
    {
        var n = Array.IndexOf(err, (byte)0);
        return Encoding.UTF8.GetString(err, 0, n < 0 ? err.Length : n);
    }

    [LibraryImport(KafkaNative.LibraryName)]
    private static partial IntPtr rd_kafka_conf_new();

    [LibraryImport(KafkaNative.LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int rd_kafka_conf_set(IntPtr conf, string name, string value, byte[] errstr, nuint errstrSize);

    [LibraryImport(KafkaNative.LibraryName)]
    private static partial IntPtr rd_kafka_new(int type, IntPtr conf, byte[] errstr, nuint errstrSize);

    [LibraryImport(KafkaNative.LibraryName)]
    private static partial void rd_kafka_destroy(IntPtr rk);

    [LibraryImport(KafkaNative.LibraryName)]
    private static partial IntPtr rd_kafka_mock_cluster_new(IntPtr rk, int brokerCount);

    [LibraryImport(KafkaNative.LibraryName)]
    private static partial void rd_kafka_mock_cluster_destroy(IntPtr cluster);

    [LibraryImport(KafkaNative.LibraryName)]
    private static partial IntPtr rd_kafka_mock_cluster_bootstraps(IntPtr cluster);

    [LibraryImport(KafkaNative.LibraryName)]
    private static partial void rd_kafka_mock_push_request_errors_array(IntPtr cluster, short apiKey, nuint count, int[] errors);

    [LibraryImport(KafkaNative.LibraryName)]
    private static partial void rd_kafka_mock_clear_request_errors(IntPtr cluster, short apiKey);

    [LibraryImport(KafkaNative.LibraryName)]
    private static partial void rd_kafka_mock_group_initial_rebalance_delay_ms(IntPtr cluster, int delayMs);

    [LibraryImport(KafkaNative.LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int rd_kafka_mock_topic_create(IntPtr cluster, string topic, int partitionCount, int replicationFactor);
}
