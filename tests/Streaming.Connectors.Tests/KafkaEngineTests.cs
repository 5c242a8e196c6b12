using System.Diagnostics.Metrics;
using System.Text;
using Confluent.Kafka;
using Microsoft.Extensions.Logging.Abstractions;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Sql;
using Streaming.Connectors.Telemetry;
using Streaming.Engine.Events;
using Streaming.Engine.Runtime;
using Streaming.Tests.Shared;

namespace Streaming.Connectors.Tests;

[Collection(KafkaCollection.Name)]
public sealed class KafkaEngineTests : IDisposable
{
    private const int Partitions = 4;
    // Joining a fresh consumer group on the mock cluster can take tens of seconds while a whole test run loads both cores.
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private readonly MockCluster _cluster = MockCluster.Start();
    private readonly TempDirectory _dir = new();

    public KafkaEngineTests()
    {
        _cluster.CreateTopics(Topics.All, Partitions);
    }

    public void Dispose()
    {
        _cluster.Dispose();
        _dir.Dispose();
    }

    /// <summary>An <c>orders</c> event written by hand after CONTRACTS.md §2.</summary>
    private static byte[] Order(string eventId, string customerId, string occurredAt, string type, string orderId, string amount, int items)
    {
        var itemsJson = string.Join(",", Enumerable.Range(1, items).Select(i =>
            $$"""{"sku":"SKU-{{i}}","description":"item {{i}}","quantity":1,"unitPrice":1.5}"""));
        return Encoding.UTF8.GetBytes(
            $$"""{"eventId":"{{eventId}}","customerId":"{{customerId}}","occurredAt":"{{occurredAt}}","type":"{{type}}","orderId":"{{orderId}}","amount":{{amount}},"currency":"GBP","channel":"online","country":"United Kingdom","items":[{{itemsJson}}]}""");
    }

    [Fact]
    public async Task Engine_applies_orders_dead_letters_garbage_and_checkpoints_state_with_offsets()
    {
        var input = new List<(string Key, byte[] Value)>
        {
            ("c-1", Order("e-1", "c-1", "2024-05-01T10:00:00+02:00", "order_placed", "o-1", "10.50", 2)),
            ("c-1", Order("e-2", "c-1", "2024-05-02T11:00:00Z", "order_placed", "o-2", "20.25", 0)),
            ("c-2", Order("e-5", "c-2", "2024-05-03T09:30:00+00:00", "order_placed", "o-5", "99.99", 1)),
            ("c-1", Order("e-3", "c-1", "2024-05-04T12:00:00+01:00", "order_cancelled", "o-1", "4.10", 0)),
            ("c-1", Order("e-4", "c-1", "2024-05-05T08:15:00Z", "order_placed", "o-3", "5", 1)),
            ("c-1", Order("e-2", "c-1", "2024-05-02T11:00:00Z", "order_placed", "o-2", "20.25", 0)),
            ("c-bad", "{not json"u8.ToArray()),
        };

        var reports = new List<DeliveryResult<byte[], byte[]>>();
        using (var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers, EnableIdempotence = true })
            .SetLogHandler((_, _) => { }).Build())
        {
            foreach (var (key, value) in input)
            {
                reports.Add(await producer.ProduceAsync(Topics.Orders, new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(key), Value = value }).WaitAsync(Deadline));
            }
        }

        var bad = reports[^1];
        var c1Partition = reports[0].Partition.Value;
        var expectedOffsets = reports
            .GroupBy(r => r.Partition.Value)
            .ToDictionary(g => new TopicPartitionKey(Topics.Orders, g.Key), g => g.Max(r => r.Offset.Value) + 1);

        var dbPath = _dir.File("state.db");
        var store = new SqliteStateStore(dbPath);
        var log = new RecordingLogger();
        var engine = new KafkaEngine(
            new EngineOptions
            {
                BootstrapServers = _cluster.BootstrapServers,
                GroupId = "engine-" + Guid.NewGuid().ToString("N"),
                CheckpointInterval = TimeSpan.FromMilliseconds(100),
            },
            store,
            TimeProvider.System,
            log);
        try
        {
            engine.Start();
            await Eventually.Require(
                Deadline,
                () => (engine.EventsProcessed >= input.Count && engine.Checkpoints >= 1) || engine.Stopped.IsCompleted,
                () => $"processed {engine.EventsProcessed} of {input.Count}, checkpoints {engine.Checkpoints}; the engine's log:\n{log}");
            Assert.False(engine.Stopped.IsCompleted, "the engine thread ended early: " + engine.Stopped.Exception);
            Assert.Equal(input.Count, engine.EventsProcessed);
            Assert.Equal(1, engine.DeadLetters);
            Assert.Equal(1, engine.Duplicates);

            // Placed: 10.50 + 20.25 + 5 = 35.75 (the redelivered e-2 counts once); refunded 4.10.
            var c1 = await engine.QueryAsync(v => v.FindCustomer("c-1"), CancellationToken.None).WaitAsync(Deadline);
            Assert.NotNull(c1);
            Assert.Equal(c1Partition, c1.Partition);
            Assert.Equal(3, c1.Orders.Count);
            Assert.Equal(35.75m, c1.Orders.GrossAmount);
            Assert.Equal(1, c1.Orders.CancelledCount);
            Assert.Equal(4.10m, c1.Orders.RefundAmount);
            Assert.Equal(31.65m, c1.Orders.NetAmount);
            Assert.Equal(3, c1.Orders.Items);
            Assert.Equal(new DateTimeOffset(2024, 5, 1, 8, 0, 0, TimeSpan.Zero), c1.Orders.FirstAt);
            Assert.Equal(new DateTimeOffset(2024, 5, 5, 8, 15, 0, TimeSpan.Zero), c1.Orders.LastAt);
            Assert.Equal(4, c1.EventsApplied);

            var c2 = await engine.QueryAsync(v => v.FindCustomer("c-2"), CancellationToken.None).WaitAsync(Deadline);
            Assert.NotNull(c2);
            Assert.Equal(1, c2.Orders.Count);
            Assert.Equal(99.99m, c2.Orders.GrossAmount);
            Assert.Null(await engine.QueryAsync(v => v.FindCustomer("c-bad"), CancellationToken.None).WaitAsync(Deadline));

            await AssertDeadLetter(bad);

            await engine.StopAsync(TimeSpan.FromSeconds(15));
            Assert.True(engine.Stopped.IsCompletedSuccessfully);
            await Assert.ThrowsAsync<EngineStoppedException>(() => engine.QueryAsync(v => v.FindCustomer("c-1"), CancellationToken.None));
        }
        finally
        {
            engine.Dispose();
            store.Dispose();
        }

        var reopened = new SqliteStateStore(dbPath);
        try
        {
            AssertCheckpointed(reopened, c1Partition, expectedOffsets);

            // The rule set the state was evaluated under is stored with it (none was stored before this run).
            Assert.Equal(Streaming.Engine.Rules.RuleSetLoader.Default.Version, RuleSetStorage.StoredVersion(reopened, KafkaEngine.RulesSettingKey));
            await AssertRestartResumesFromStore(reopened);
        }
        finally
        {
            reopened.Dispose();
        }
    }

    private static byte[] Click(string eventId, string customerId, string occurredAt) =>
        Encoding.UTF8.GetBytes($$"""{"eventId":"{{eventId}}","customerId":"{{customerId}}","occurredAt":"{{occurredAt}}","type":"page_view"}""");

    /// <summary>
    /// Through the broker: a record whose rule fails, a wake-up whose rule fails, and a record with a broker timestamp
    /// beyond 9999-12-31 (which once ended the engine thread at every start). Each is counted in its instrument, by
    /// reason for dead letters, and the partition goes on.
    /// </summary>
    [Fact]
    public async Task Failing_records_wake_ups_and_unusable_timestamps_are_counted_and_the_partition_goes_on()
    {
        // Fails for a customer whose net amount reaches 1000 (at apply), and when evaluated 31 days after its last
        // order (at the wake-up it asks for).
        var rules = InjectedRules.DefaultWith("boom", c =>
        {
            if (c.State.NetAmount >= 1000)
            {
                throw new InvalidOperationException("injected rule failure");
            }

            if (c.State.LastOrderTicks == 0)
            {
                return false;
            }

            var due = c.State.LastOrderTicks + TimeSpan.FromDays(31).Ticks;
            if (c.Now >= due)
            {
                throw new InvalidOperationException("injected wake-up failure");
            }

            c.WakeAt(due);
            return false;
        });

        // Another customer on the sleeper's partition moves its watermark.
        var partition = KeyPartitioner.Partition("sleeper"u8, Partitions);
        var other = Enumerable.Range(0, 1000).Select(i => "other-" + i).First(k => KeyPartitioner.Partition(Encoding.UTF8.GetBytes(k), Partitions) == partition);
        var input = new List<(string Key, byte[] Value, long? Timestamp)>
        {
            ("sleeper", Order("s-1", "sleeper", "2011-07-10T10:00:00Z", "order_placed", "o-1", "10", 0), null),
            ("sleeper", Order("s-2", "sleeper", "2011-07-11T10:00:00Z", "order_placed", "o-2", "5000", 0), null), // the rule fails
            (other, Click("x-1", other, "2011-09-08T10:00:00Z"), null),                                           // the sleeper's wake-up fails
            (other, Click("x-2", other, "2011-09-08T11:00:00Z"), 253402300800000),                               // 10000-01-01
            (other, Click("x-3", other, "2011-09-09T10:00:00Z"), null),
        };

        using (var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers, EnableIdempotence = true })
            .SetLogHandler((_, _) => { }).Build())
        {
            foreach (var (key, value, timestamp) in input)
            {
                var topic = value.AsSpan().IndexOf("page_view"u8) >= 0 ? Topics.Clickstream : Topics.Orders;
                var message = new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(key), Value = value, Timestamp = timestamp is { } ms ? new Timestamp(ms, TimestampType.CreateTime) : Timestamp.Default };
                var report = await producer.ProduceAsync(topic, message).WaitAsync(Deadline);
                Assert.Equal(partition, report.Partition.Value);
            }
        }

        using var meters = new RedisMirrorTests.TestMeterFactory();
        var counted = new Dictionary<string, long>(StringComparer.Ordinal);
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (meters.Created.Contains(instrument.Meter) && instrument.Name is InstrumentNames.DeadLetters or InstrumentNames.TimersFailed)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var name = instrument.Name;
            foreach (var tag in tags)
            {
                name += "/" + tag.Value;
            }

            lock (counted)
            {
                counted[name] = counted.GetValueOrDefault(name) + value;
            }
        });
        listener.Start();
        long Counted(string name)
        {
            lock (counted)
            {
                return counted.GetValueOrDefault(name);
            }
        }

        using var store = new SqliteStateStore(_dir.File("failures.db"));
        var log = new RecordingLogger();
        using var engine = new KafkaEngine(
            new EngineOptions
            {
                BootstrapServers = _cluster.BootstrapServers,
                GroupId = "engine-failures-" + Guid.NewGuid().ToString("N"),
                CheckpointInterval = TimeSpan.FromMilliseconds(100),
            },
            store,
            TimeProvider.System,
            log,
            rules,
            instruments: new EngineInstruments(meters));
        engine.Start();
        await Eventually.Require(
            Deadline,
            () => (engine.EventsProcessed >= input.Count && Counted(InstrumentNames.TimersFailed) >= 1) || engine.Stopped.IsCompleted,
            () => $"processed {engine.EventsProcessed} of {input.Count}, wake-up failures counted {Counted(InstrumentNames.TimersFailed)}; the engine's log:\n{log}");

        Assert.False(engine.Stopped.IsCompleted, "the engine thread ended: " + engine.Stopped.Exception);
        Assert.Equal(input.Count, engine.EventsProcessed);
        Assert.Equal(2, engine.DeadLetters);
        Assert.Equal(1, Counted(InstrumentNames.DeadLetters + "/processing-error"));
        Assert.Equal(1, Counted(InstrumentNames.DeadLetters + "/time-out-of-range"));
        Assert.Equal(1, Counted(InstrumentNames.TimersFailed));

        // The sleeper kept its first order only; the other customer's records after the refused one applied.
        var sleeper = await engine.QueryAsync(v => v.FindCustomer("sleeper"), CancellationToken.None).WaitAsync(Deadline);
        Assert.Equal((1, 10m), (sleeper!.Orders.Count, sleeper.Orders.GrossAmount));
        var next = await engine.QueryAsync(v => v.FindCustomer(other), CancellationToken.None).WaitAsync(Deadline);
        Assert.Equal(2, next!.EventsApplied);
        await engine.StopAsync(TimeSpan.FromSeconds(15));
    }

    private static void AssertCheckpointed(SqliteStateStore reopened, int c1Partition, Dictionary<TopicPartitionKey, long> expectedOffsets)
    {
        Assert.True(reopened.LastCheckpointSeq >= 1);
        Assert.Equal(2, reopened.CountCustomers());
        var state = reopened.LoadCustomer("c-1");
        Assert.NotNull(state);
        Assert.Equal(3, state.OrderCount);
        Assert.Equal(35.75m, state.GrossAmount);
        Assert.Equal(1, state.CancelledCount);
        Assert.Equal(4.10m, state.RefundAmount);
        Assert.Equal(c1Partition, reopened.FindPartition("c-1"));
        Assert.Equal(99.99m, reopened.LoadCustomer("c-2")?.GrossAmount);
        Assert.Null(reopened.LoadCustomer("c-bad"));
        Assert.Equal(expectedOffsets, reopened.LoadOffsets());
        Assert.Equal(new DateTimeOffset(2024, 5, 5, 8, 15, 0, TimeSpan.Zero).UtcTicks, reopened.LoadMaxEventTicks(c1Partition));
    }

    /// <summary>
    /// A new engine on the same store, in a group with no Kafka commits, starts from the store's offsets: only a new
    /// record is read. Had it re-read c-1's partition from the start, the five earlier records would precede the new one
    /// there and count as duplicates.
    /// </summary>
    private async Task AssertRestartResumesFromStore(SqliteStateStore store)
    {
        using (var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers })
            .SetLogHandler((_, _) => { }).Build())
        {
            var value = Order("e-6", "c-1", "2024-05-06T10:00:00Z", "order_placed", "o-6", "1.25", 0);
            await producer.ProduceAsync(Topics.Orders, new Message<byte[], byte[]> { Key = "c-1"u8.ToArray(), Value = value }).WaitAsync(Deadline);
        }

        using var engine = new KafkaEngine(
            new EngineOptions
            {
                BootstrapServers = _cluster.BootstrapServers,
                GroupId = "engine-restart-" + Guid.NewGuid().ToString("N"),
                CheckpointInterval = TimeSpan.FromMilliseconds(100),
            },
            store,
            TimeProvider.System,
            NullLogger.Instance);
        engine.Start();
        int? orders = null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (orders != 4 && clock.Elapsed < Deadline && !engine.Stopped.IsCompleted)
        {
            if (engine.EventsProcessed > 0)
            {
                var profile = await engine.QueryAsync(v => v.FindCustomer("c-1"), CancellationToken.None).WaitAsync(Deadline);
                orders = profile?.Orders.Count;
            }

            if (orders != 4)
            {
                await Task.Delay(50);
            }
        }

        Assert.Equal(4, orders);
        Assert.Equal(0, engine.Duplicates);
        var c1 = await engine.QueryAsync(v => v.FindCustomer("c-1"), CancellationToken.None).WaitAsync(Deadline);
        Assert.Equal(37.00m, c1!.Orders.GrossAmount);
        await engine.StopAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(4, store.LoadCustomer("c-1")?.OrderCount);
    }

    private async Task AssertDeadLetter(DeliveryResult<byte[], byte[]> bad)
    {
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = _cluster.BootstrapServers,
            GroupId = "dlq-reader-" + Guid.NewGuid().ToString("N"),
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
        }).SetLogHandler((_, _) => { }).Build();
        var partitions = Enumerable.Range(0, Partitions).Select(p => new TopicPartition(Topics.DeadLetters, p)).ToList();
        consumer.Assign(partitions.Select(tp => new TopicPartitionOffset(tp, Offset.Beginning)));

        ConsumeResult<byte[], byte[]>? result = null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (result?.Message is null && clock.Elapsed < Deadline)
        {
            result = await Task.Run(() => consumer.Consume(TimeSpan.FromMilliseconds(200)));
        }

        Assert.NotNull(result?.Message);
        Assert.Equal("c-bad", Encoding.UTF8.GetString(result.Message.Key));
        Assert.Equal("{not json", Encoding.UTF8.GetString(result.Message.Value));
        string Header(string name) => Encoding.UTF8.GetString(result.Message.Headers.GetLastBytes(name));
        Assert.StartsWith("invalid-json", Header("error"), StringComparison.Ordinal);
        Assert.Equal(Topics.Orders, Header("source-topic"));
        Assert.Equal(bad.Partition.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), Header("source-partition"));
        Assert.Equal(bad.Offset.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), Header("source-offset"));

        // Exactly one dead letter was written.
        long total = 0;
        foreach (var tp in partitions)
        {
            total += consumer.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(10)).High.Value;
        }

        Assert.Equal(1, total);
    }
}
