using System.Collections.Concurrent;
using Confluent.Kafka;
using Streaming.Connectors.Kafka;

namespace Streaming.Connectors.Tests;

[Collection(KafkaCollection.Name)]
public sealed class ReplayPacerTests : IDisposable
{
    private const int RecordBytes = 4096;
    private const int Budget = 64 * 1024;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private readonly MockCluster _cluster = MockCluster.Start();
    private readonly string _topic = "paced-" + Guid.NewGuid().ToString("N");
    private readonly string _group = "pacer-" + Guid.NewGuid().ToString("N");

    public ReplayPacerTests()
    {
        _cluster.CreateTopic(_topic, 2);
    }

    public void Dispose() => _cluster.Dispose();

    /// <summary>Produces <paramref name="count"/> records of <see cref="RecordBytes"/> (key + value) to one partition.</summary>
    private async Task<List<DeliveryResult<byte[], byte[]>>> Produce(int partition, int count)
    {
        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers, EnableIdempotence = true })
            .SetLogHandler((_, _) => { }).Build();
        var tp = new TopicPartition(_topic, partition);
        var reports = new List<DeliveryResult<byte[], byte[]>>(count);
        for (var i = 0; i < count; i++)
        {
            var key = new byte[8];
            var value = new byte[RecordBytes - key.Length];
            Random.Shared.NextBytes(value);
            reports.Add(await producer.ProduceAsync(tp, new Message<byte[], byte[]> { Key = key, Value = value }).WaitAsync(Deadline));
        }

        Assert.All(reports, r => Assert.Equal(PersistenceStatus.Persisted, r.Status));
        return reports;
    }

    /// <summary>Commits <paramref name="nextOffset"/> for the paced group, as the engine does after a checkpoint.</summary>
    private void CommitAsGroup(TopicPartition tp, long nextOffset)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = _cluster.BootstrapServers,
            GroupId = _group,
            EnableAutoCommit = false,
        }).SetLogHandler((_, _) => { }).Build();
        consumer.Assign(tp);
        consumer.Commit([new TopicPartitionOffset(tp, nextOffset)]);
        consumer.Close();
    }

    [Fact]
    public async Task Backlog_is_the_largest_per_partition_total_not_the_sum()
    {
        var p0 = await Produce(0, 3);
        var p1 = await Produce(1, 5);
        using var pacer = new ReplayPacer(_cluster.BootstrapServers, _group, Budget, TimeProvider.System);
        Assert.Equal(0, pacer.MaxBacklogBytes());

        foreach (var r in p0.Concat(p1))
        {
            pacer.Acknowledged(r.TopicPartition, r.Offset.Value, RecordBytes);
        }

        Assert.Equal(5 * RecordBytes, pacer.MaxBacklogBytes());

        // Under budget, including the bytes still in flight: no wait and no broker round trip needed.
        var waited = false;
        pacer.WaitForRoom(Budget - (5 * RecordBytes), _ => waited = true, CancellationToken.None);
        Assert.False(waited);

        CommitAsGroup(p1[0].TopicPartition, p1[^1].Offset.Value + 1);
        pacer.Refresh();
        Assert.Equal(3 * RecordBytes, pacer.MaxBacklogBytes());
    }

    [Fact]
    public async Task WaitForRoom_blocks_over_budget_until_the_group_commits_enough()
    {
        const int records = 24;
        var reports = await Produce(0, records);
        var tp = reports[0].TopicPartition;

        // Each read of this clock moves it 6 s, so the pacer reports its backlog after every refresh of committed offsets.
        using var pacer = new ReplayPacer(_cluster.BootstrapServers, _group, Budget, new SteppingTimeProvider(TimeSpan.FromSeconds(6)));
        Assert.Equal(_group, pacer.GroupId);
        foreach (var r in reports)
        {
            pacer.Acknowledged(r.TopicPartition, r.Offset.Value, RecordBytes);
        }

        Assert.Equal(records * RecordBytes, pacer.MaxBacklogBytes());

        var notices = new ConcurrentQueue<long>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var wait = Task.Factory.StartNew(
            () => pacer.WaitForRoom(0, notices.Enqueue, cts.Token),
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
        try
        {
            // Several refreshes with nothing committed: still waiting, reporting the whole backlog.
            await Eventually.Require(Deadline, () => notices.Count >= 3 || wait.IsCompleted, () => $"{notices.Count} notices");
            Assert.False(wait.IsCompleted, "WaitForRoom returned although nothing was consumed");
            Assert.All(notices, b => Assert.Equal(records * RecordBytes, b));

            // The group consumed 7 records: 17 × 4 KiB = 68 KiB remain, still over the 64 KiB budget.
            CommitAsGroup(tp, reports[6].Offset.Value + 1);
            await Eventually.Require(Deadline, () => notices.Contains(17 * RecordBytes) || wait.IsCompleted, () => string.Join(",", notices));
            var before = notices.Count;
            await Eventually.Require(Deadline, () => notices.Count >= before + 2 || wait.IsCompleted, () => $"{notices.Count} notices");
            Assert.False(wait.IsCompleted, "WaitForRoom returned while 68 KiB were unconsumed");

            // One more record consumed: exactly 64 KiB remain, which fits the budget.
            CommitAsGroup(tp, reports[7].Offset.Value + 1);
            await wait.WaitAsync(Deadline);
            Assert.Equal(16 * RecordBytes, pacer.MaxBacklogBytes());
        }
        finally
        {
            await cts.CancelAsync();
            await Task.WhenAny(wait, Task.Delay(Deadline));
        }
    }

    [Fact]
    public async Task WaitForRoom_stops_when_cancelled()
    {
        var reports = await Produce(1, 17);
        using var pacer = new ReplayPacer(_cluster.BootstrapServers, _group, Budget, new SteppingTimeProvider(TimeSpan.FromSeconds(6)));
        foreach (var r in reports)
        {
            pacer.Acknowledged(r.TopicPartition, r.Offset.Value, RecordBytes);
        }

        var notices = 0;
        using var cts = new CancellationTokenSource();
        var wait = Task.Factory.StartNew(
            () => pacer.WaitForRoom(0, _ => Interlocked.Increment(ref notices), cts.Token),
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);

        await Eventually.Require(Deadline, () => Volatile.Read(ref notices) >= 1 || wait.IsCompleted, () => "no notice");
        Assert.False(wait.IsCompleted);
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(Deadline));
    }
}
