using System.Text;
using Confluent.Kafka;
using Streaming.Connectors.Datasets;

namespace Streaming.Connectors.Kafka;

/// <summary>Options of a replay run.</summary>
public sealed record ReplayOptions
{
    public required string BootstrapServers { get; init; }

    /// <summary>Events per second, or null for as fast as pacing allows.</summary>
    public double? Rate { get; init; }

    /// <summary>Consumer group whose committed offsets pace the producer; null disables pacing.</summary>
    public string? PaceGroup { get; init; } = "streaming-engine";

    /// <summary>
    /// Unconsumed bytes allowed per partition. The embedded broker keeps ~5 MiB of batches per partition; budget plus
    /// in-flight bytes stay under that even for incompressible values.
    /// </summary>
    public long PaceBudgetBytes { get; init; } = 3584 * 1024;

    /// <summary>Bytes allowed in flight (sent, not yet acknowledged) before the producer waits.</summary>
    public long MaxInFlightBytes { get; init; } = 1024 * 1024;
}

/// <summary>Progress of a replay, reported about twice a second.</summary>
public readonly record struct ReplayProgress(long Produced, long Acknowledged, double FileShare, long BacklogBytes, bool Waiting);

/// <summary>
/// Produces a dataset's events into the input topics, keyed by customer id, lz4-compressed, with an idempotent producer.
/// Paced by the engine's consumer-group lag (see <see cref="ReplayPacer"/>) and optionally by a fixed rate.
/// </summary>
public sealed class ReplayProducer(ReplayOptions options, TimeProvider time)
{
    /// <summary>Produces every record; returns the number acknowledged by the broker.</summary>
    /// <exception cref="KafkaException">A record could not be delivered.</exception>
    public long Run(IEnumerable<ReplayRecord> records, Func<double> fileShare, Action<ReplayProgress>? progress, Action<string>? notice, CancellationToken cancellationToken)
    {
        using var pacer = options.PaceGroup is { } group ? new ReplayPacer(options.BootstrapServers, group, options.PaceBudgetBytes, time) : null;
        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig
        {
            BootstrapServers = options.BootstrapServers,
            EnableIdempotence = true,
            Acks = Acks.All,
            CompressionType = CompressionType.Lz4,
            LingerMs = 10,
            BatchSize = 512 * 1024,
            ClientId = "streaming-replay",
        }).SetLogHandler((_, m) =>
        {
            if (m.Level <= SyslogLevel.Warning)
            {
                notice?.Invoke($"kafka: {m.Message}");
            }
        }).Build();

        long produced = 0;
        long acknowledged = 0;
        long inFlight = 0;
        Error? failure = null;
        var started = time.GetTimestamp();
        var lastProgress = started;
        foreach (var record in records)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (failure is { } f)
            {
                throw new KafkaException(f);
            }

            if (options.Rate is { } rate)
            {
                // Hold the cumulative rate: wait until this record's slot comes.
                var due = TimeSpan.FromSeconds(produced / rate);
                var elapsed = time.GetElapsedTime(started);
                if (due > elapsed)
                {
                    cancellationToken.WaitHandle.WaitOne(due - elapsed);
                }
            }

            pacer?.WaitForRoom(Interlocked.Read(ref inFlight), backlog => notice?.Invoke(
                $"waiting for consumer group '{pacer.GroupId}' to catch up: {backlog / 1024} KiB unconsumed on one partition (budget {options.PaceBudgetBytes / 1024} KiB)"), cancellationToken);
            while (Interlocked.Read(ref inFlight) > options.MaxInFlightBytes)
            {
                producer.Poll(TimeSpan.FromMilliseconds(50));
            }

            var size = record.Value.Length + record.Key.Length;
            Interlocked.Add(ref inFlight, size);
            producer.Produce(record.Topic, new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(record.Key), Value = record.Value }, report =>
            {
                if (report.Error.IsError)
                {
                    failure = report.Error;
                }
                else
                {
                    pacer?.Acknowledged(report.TopicPartition, report.Offset.Value, size);
                    Interlocked.Increment(ref acknowledged);
                }

                Interlocked.Add(ref inFlight, -size);
            });
            produced++;
            if (progress is not null && time.GetElapsedTime(lastProgress) > TimeSpan.FromMilliseconds(500))
            {
                lastProgress = time.GetTimestamp();
                progress(new ReplayProgress(produced, Interlocked.Read(ref acknowledged), fileShare(), pacer?.MaxBacklogBytes() ?? 0, false));
            }
        }

        while (producer.Flush(TimeSpan.FromSeconds(1)) > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
        }

        if (failure is { } error)
        {
            throw new KafkaException(error);
        }

        progress?.Invoke(new ReplayProgress(produced, Interlocked.Read(ref acknowledged), 1, pacer?.MaxBacklogBytes() ?? 0, false));
        return Interlocked.Read(ref acknowledged);
    }
}
