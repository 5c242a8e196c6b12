using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Microsoft.Extensions.Logging.Abstractions;
using Streaming.Connectors.Datasets;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Sql;
using Streaming.Connectors.Triggers;
using Streaming.Engine.Events;

namespace Streaming.Host.Cli;

/// <summary>
/// The Kafka bench's latency phase: event → trigger on <c>customer-triggers</c>, measured on a running engine under a
/// steady load. The trigger relay runs as in <c>streaming run</c>; the firings left from the throughput phase are published
/// first. Then the bench's records are produced again (new event ids; new customers in the datasets scenario, the same
/// customers in the Zipf one) at a fixed rate, and every 100 ms a probe: the first order of a customer never seen, which
/// the default rule set's <c>welcome</c> trigger fires on at once. A probe's latency runs from the producer's send to the
/// arrival of its <c>streaming.trigger.welcome</c> at a consumer of <c>customer-triggers</c>; it includes the checkpoint
/// the firing waits for (<c>Streaming:Engine:CheckpointIntervalMs</c>) and the relay.
/// </summary>
internal static class TriggerLatencyBench
{
    /// <summary>Probes sent per second.</summary>
    private const double ProbesPerSecond = 10;

    /// <summary>How long after the last probe its trigger may still arrive before it counts as missing.</summary>
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(60);

    /// <summary>How long the firings of the throughput phase may take to reach the topic.</summary>
    private static readonly TimeSpan DrainLimit = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Runs the phase on <paramref name="engine"/> (started, its outbox in <paramref name="store"/>), loading it at
    /// <paramref name="rate"/> events/s for <paramref name="duration"/> with <paramref name="records"/> (their ids
    /// rewritten; keys too unless <paramref name="sameCustomers"/>).
    /// </summary>
    /// <exception cref="TimeoutException">The throughput phase's firings did not reach the topic within five minutes.</exception>
    public static async Task<TriggerLatency> RunAsync(
        string bootstrap,
        int partitions,
        SqliteStateStore store,
        IStreamingEngine engine,
        IReadOnlyList<ReplayRecord> records,
        bool sameCustomers,
        double rate,
        TimeSpan duration,
        Action<string> progress,
        CancellationToken ct)
    {
        await using var relay = new TriggerRelay(bootstrap, store, TimeProvider.System, NullLogger.Instance);
        engine.FiringsCommitted = relay.Signal;
        relay.Start();
        await DrainAsync(store, relay, progress, ct).ConfigureAwait(false);

        var load = records.Take((int)Math.Clamp(rate * duration.TotalSeconds, 1, records.Count))
            .Select(r => RecordRewriter.Rewrite(r, sameCustomers ? r.Key : r.Key + "~lat", "~lat", addYears: 0).Record)
            .ToList();
        var orders = records.Where(r => r.Topic == Topics.Orders && Encoding.UTF8.GetString(r.Value).Contains("\"order_placed\"", StringComparison.Ordinal)).Take(1000).ToList();
        if (orders.Count == 0)
        {
            throw new InvalidOperationException("the bench's records hold no order_placed to make probes of");
        }

        progress($"latency: {load.Count:N0} events at {rate:N0} events/s (half the measured rate) with a probe every {1000 / ProbesPerSecond:N0} ms");
        var sent = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        var arrived = new ConcurrentDictionary<string, double>(StringComparer.Ordinal);
        using var stopConsumer = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var consumer = TriggerConsumer(bootstrap, partitions);
        var consuming = Task.Factory.StartNew(() => Consume(consumer, sent, arrived, stopConsumer.Token), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            var loading = Task.Run(() => new ReplayProducer(new ReplayOptions { BootstrapServers = bootstrap, Rate = rate, PaceGroup = BenchCommand.EngineGroup }, TimeProvider.System).Run(load, () => 1, null, null, ct), ct);
            var probes = 0;
            using (var producer = ProbeProducer(bootstrap))
            {
                var started = Stopwatch.GetTimestamp();
                while (!loading.IsCompleted || probes == 0)
                {
                    var id = "bench-probe-" + probes.ToString(CultureInfo.InvariantCulture);
                    var probe = RecordRewriter.Rewrite(orders[probes % orders.Count], id, "~probe" + probes.ToString(CultureInfo.InvariantCulture), addYears: 0).Record;
                    sent[id] = Stopwatch.GetTimestamp();
                    producer.Produce(probe.Topic, new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(probe.Key), Value = probe.Value });
                    probes++;
                    var next = TimeSpan.FromSeconds(probes / ProbesPerSecond) - Stopwatch.GetElapsedTime(started);
                    if (next > TimeSpan.Zero)
                    {
                        await Task.Delay(next, ct).ConfigureAwait(false);
                    }
                }

                producer.Flush(TimeSpan.FromSeconds(30));
            }

            await loading.ConfigureAwait(false);
            var deadline = Stopwatch.StartNew();
            while (arrived.Count < probes && deadline.Elapsed < Grace)
            {
                await Task.Delay(50, ct).ConfigureAwait(false);
            }

            var latencies = arrived.Values.Order().ToArray();
            progress($"latency: {latencies.Length} of {probes} probes' triggers arrived; p50 {BenchCommand.Percentile(latencies, 0.5):N0} ms, p99 {BenchCommand.Percentile(latencies, 0.99):N0} ms");
            return new TriggerLatency(rate, load.Count, probes, latencies.Length, Round(BenchCommand.Percentile(latencies, 0.5)), Round(BenchCommand.Percentile(latencies, 0.99)), Round(latencies.Length == 0 ? 0 : latencies[^1]));
        }
        finally
        {
            await stopConsumer.CancelAsync().ConfigureAwait(false);
            await consuming.ConfigureAwait(false);
            engine.FiringsCommitted = null;
        }
    }

    /// <summary>Waits until the outbox is empty: the throughput phase's firings are on the topic.</summary>
    private static async Task DrainAsync(SqliteStateStore store, TriggerRelay relay, Action<string> progress, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        var reported = TimeSpan.Zero;
        while (store.OutboxBacklog() is > 0 and var backlog)
        {
            if (watch.Elapsed > DrainLimit)
            {
                throw new TimeoutException($"the trigger relay still had {backlog:N0} firings to publish after {DrainLimit}");
            }

            if (watch.Elapsed - reported >= TimeSpan.FromSeconds(5))
            {
                reported = watch.Elapsed;
                progress($"latency: publishing the throughput phase's firings first ({relay.Published:N0} published, {backlog:N0} to go)");
            }

            relay.Signal();
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }

    /// <summary>A consumer of every partition of <c>customer-triggers</c> from its current end (what was published before is not read).</summary>
    private static IConsumer<byte[], byte[]> TriggerConsumer(string bootstrap, int partitions)
    {
        var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = "bench-latency",
            EnableAutoCommit = false,
            FetchWaitMaxMs = 10,
        }).SetLogHandler((_, _) => { }).Build();
        var start = new List<TopicPartitionOffset>(partitions);
        for (var p = 0; p < partitions; p++)
        {
            var tp = new TopicPartition(Topics.CustomerTriggers, p);
            start.Add(new TopicPartitionOffset(tp, consumer.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(10)).High));
        }

        consumer.Assign(start);
        return consumer;
    }

    private static IProducer<byte[], byte[]> ProbeProducer(string bootstrap) =>
        new ProducerBuilder<byte[], byte[]>(new ProducerConfig
        {
            BootstrapServers = bootstrap,
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 0,
            ClientId = "streaming-bench-probe",
        }).SetLogHandler((_, _) => { }).Build();

    /// <summary>Records the first <c>welcome</c> trigger of each probe: milliseconds since its send.</summary>
    private static void Consume(IConsumer<byte[], byte[]> consumer, ConcurrentDictionary<string, long> sent, ConcurrentDictionary<string, double> arrived, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var result = consumer.Consume(50);
            if (result?.Message?.Value is not { } value)
            {
                continue;
            }

            var now = Stopwatch.GetTimestamp();
            using var cloudEvent = JsonDocument.Parse(value);
            var root = cloudEvent.RootElement;
            if (root.TryGetProperty("subject", out var subject) && subject.GetString() is { } customer
                && sent.TryGetValue(customer, out var at)
                && root.TryGetProperty("type", out var type) && type.GetString() == "streaming.trigger.welcome")
            {
                arrived.TryAdd(customer, Stopwatch.GetElapsedTime(at, now).TotalMilliseconds);
            }
        }

        consumer.Close();
    }

    private static double Round(double ms) => Math.Round(ms, 1);
}

/// <summary>What the latency phase measured.</summary>
/// <param name="RateEventsPerSec">The load's rate: half the engine's measured events/s.</param>
/// <param name="Events">Events of the load.</param>
/// <param name="Probes">Probes sent.</param>
/// <param name="Arrived">Probes whose trigger reached the topic within a minute of the last probe.</param>
/// <param name="P50Ms">Median latency from a probe's send to its trigger's arrival, in milliseconds.</param>
/// <param name="P99Ms">99th percentile of the same (nearest rank).</param>
/// <param name="MaxMs">The largest.</param>
internal sealed record TriggerLatency(double RateEventsPerSec, long Events, int Probes, int Arrived, double P50Ms, double P99Ms, double MaxMs);
