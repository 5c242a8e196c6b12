using System.Diagnostics.Metrics;
using System.Text;
using Confluent.Kafka;
using Microsoft.Extensions.Logging.Abstractions;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Persistence;
using Streaming.Connectors.Sql;
using Streaming.Connectors.Telemetry;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;

namespace Streaming.Connectors.Tests;

/// <summary>
/// The actor runtime's metrics on a cluster of one over the embedded broker and the SQLite journal: entities per shard
/// equal the customers the broker put on each partition (read from the producer's delivery reports, not from the
/// engine), every customer's recovery and save is measured, and no journal write failed.
/// </summary>
[Collection(KafkaCollection.Name)]
public sealed class ShardedEngineMetricsTests : IDisposable
{
    private const int Partitions = 4;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    private readonly MockCluster _cluster = MockCluster.Start();
    private readonly TempDirectory _dir = new();

    public ShardedEngineMetricsTests()
    {
        // Members of these tests' groups start one at a time: the first join waits for nobody.
        _cluster.SetGroupInitialRebalanceDelay(TimeSpan.Zero);
        _cluster.CreateTopics(Topics.All, Partitions);
    }

    public void Dispose()
    {
        _cluster.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task Entities_per_shard_persistence_latency_and_recoveries_are_reported()
    {
        // 30 customers, the first ten with two orders: 40 records.
        var customersByPartition = new Dictionary<int, HashSet<string>>();
        var records = 0;
        using (var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers, EnableIdempotence = true })
            .SetLogHandler((_, _) => { }).Build())
        {
            for (var i = 0; i < 30; i++)
            {
                var customer = "m-" + i;
                for (var n = 0; n < (i < 10 ? 2 : 1); n++)
                {
                    var value = Encoding.UTF8.GetBytes(
                        $$"""{"eventId":"e-{{i}}-{{n}}","customerId":"{{customer}}","occurredAt":"2024-06-0{{n + 1}}T10:00:00Z","type":"order_placed","orderId":"o-{{i}}-{{n}}","amount":12.5,"currency":"GBP","channel":"online","country":"United Kingdom","items":[]}""");
                    var report = await producer.ProduceAsync(Topics.Orders, new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(customer), Value = value }).WaitAsync(Deadline);
                    if (!customersByPartition.TryGetValue(report.Partition.Value, out var set))
                    {
                        customersByPartition[report.Partition.Value] = set = [];
                    }

                    set.Add(customer);
                    records++;
                }
            }
        }

        using var meters = new RedisMirrorTests.TestMeterFactory();
        var gauges = new Dictionary<string, long>(StringComparer.Ordinal);
        var histogramCounts = new Dictionary<string, long>(StringComparer.Ordinal);
        var counters = new Dictionary<string, long>(StringComparer.Ordinal);
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (meters.Created.Contains(instrument.Meter) && (instrument.Name.StartsWith("streaming.actors.", StringComparison.Ordinal) || instrument.Name.StartsWith("streaming.persistence.", StringComparison.Ordinal)))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        static string Key(Instrument instrument, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var name = instrument.Name;
            foreach (var tag in tags)
            {
                name += "/" + tag.Key + "=" + tag.Value;
            }

            return name;
        }

        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            lock (gauges)
            {
                if (instrument is ObservableGauge<long>)
                {
                    gauges[Key(instrument, tags)] = value;
                }
                else
                {
                    counters[Key(instrument, tags)] = counters.GetValueOrDefault(Key(instrument, tags)) + value;
                }
            }
        });
        listener.SetMeasurementEventCallback<double>((instrument, _, tags, _) =>
        {
            lock (gauges)
            {
                histogramCounts[Key(instrument, tags)] = histogramCounts.GetValueOrDefault(Key(instrument, tags)) + 1;
            }
        });
        listener.Start();
        long Read(Dictionary<string, long> values, string key)
        {
            lock (gauges)
            {
                return values.GetValueOrDefault(key);
            }
        }

        var dataDir = _dir.File("akka");
        Directory.CreateDirectory(dataDir);
        using var outbox = SqliteStateStore.OpenDirectory(dataDir);
        using var engine = new ShardedEngine(
            new EngineOptions
            {
                BootstrapServers = _cluster.BootstrapServers,
                GroupId = "actor-metrics-" + Guid.NewGuid().ToString("N"),
                CheckpointInterval = TimeSpan.FromMilliseconds(200),
            },
            new ActorStoreOptions { Provider = StoreProvider.Sqlite, DataDir = dataDir },
            TimeProvider.System,
            NullLogger.Instance,
            RuleSetLoader.Default,
            outbox,
            new EngineInstruments(meters));
        engine.Start();

        // Every record applied and checkpointed, and a status poll after that (the gauges read its snapshot).
        bool Settled()
        {
            listener.RecordObservableInstruments();
            return engine.EventsProcessed >= records
                && engine.Status.CheckpointSeq > 0
                && customersByPartition.All(p => Read(gauges, $"streaming.actors.entities/partition={p.Key}") == p.Value.Count)
                && Read(histogramCounts, "streaming.persistence.latency/actor=customer") >= 30;
        }

        await Eventually.Require(Deadline, () => Settled() || engine.Stopped.IsCompleted, () =>
            $"processed {engine.EventsProcessed} of {records}; gauges: {string.Join(", ", gauges.Select(g => g.Key + "=" + g.Value))}; histograms: {string.Join(", ", histogramCounts.Select(g => g.Key + "=" + g.Value))}");
        Assert.False(engine.Stopped.IsCompleted, "the engine stopped: " + engine.Stopped.Exception);

        foreach (var (partition, customers) in customersByPartition)
        {
            Assert.Equal(customers.Count, Read(gauges, $"streaming.actors.entities/partition={partition}"));
            Assert.Equal(0, Read(gauges, $"streaming.actors.backlog/partition={partition}/state=waiting"));
        }

        // Each customer started once and recovered once (no restarts here); each partition's coordinator likewise.
        Assert.Equal(30, Read(histogramCounts, "streaming.persistence.recovery/actor=customer"));
        Assert.True(Read(histogramCounts, "streaming.persistence.recovery/actor=partition") >= customersByPartition.Count);
        Assert.True(Read(histogramCounts, "streaming.persistence.latency/actor=partition") >= customersByPartition.Count);
        foreach (var actor in new[] { "customer", "partition" })
        {
            foreach (var outcome in new[] { "failed", "rejected" })
            {
                var key = $"streaming.persistence.failures/actor={actor}/outcome={outcome}";
                lock (gauges)
                {
                    Assert.True(counters.ContainsKey(key), key + " is not reported");
                }

                Assert.Equal(0, Read(counters, key));
            }
        }

        await engine.StopAsync(TimeSpan.FromSeconds(30));
    }
}
