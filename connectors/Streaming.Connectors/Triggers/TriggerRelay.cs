using System.Text;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Streaming.Connectors.Telemetry;
using Streaming.Engine.Events;

namespace Streaming.Connectors.Triggers;

/// <summary>
/// Publishes the outbox to <c>customer-triggers</c> in order with an idempotent producer and deletes what the broker
/// acknowledged. The outbox is written in the checkpoint transaction that caused the firings, so a crash loses none;
/// after a crash between publish and delete a firing may be published again with the same CloudEvent id, which
/// consumers use to de-duplicate. Also produces dialers' outcomes to <c>outreach-outcomes</c>.
/// In a cluster the outbox is shared, and only the node that holds the relay's cluster singleton publishes it
/// (<see cref="Lead"/>): otherwise every node would publish every firing.
/// </summary>
public sealed partial class TriggerRelay : IAsyncDisposable
{
    private const int BatchSize = 500;

    private readonly ITriggerOutbox _store;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly EngineInstruments? _instruments;
    private readonly IProducer<byte[], byte[]> _producer;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _signal = new(0, int.MaxValue);
    private Task? _loop;
    private long _published;
    private volatile bool _leading;
    private int _disposed;

    /// <param name="leading">
    /// Whether this relay publishes from the start: true for a single node; false on a cluster node, which publishes
    /// only while <see cref="Lead"/> says it holds the relay's cluster singleton.
    /// </param>
    public TriggerRelay(string bootstrapServers, ITriggerOutbox store, TimeProvider time, ILogger logger, EngineInstruments? instruments = null, bool leading = true)
    {
        _leading = leading;
        _store = store;
        _time = time;
        _logger = logger;
        _instruments = instruments;
        _producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 5,
            CompressionType = CompressionType.Lz4,
            ClientId = "streaming-trigger-relay",
            MessageTimeoutMs = 30_000,
        }).Build();
    }

    /// <summary>True while this node publishes the outbox (always on a single node; on the singleton's node in a cluster).</summary>
    public bool Leading => _leading;

    /// <summary>
    /// Starts (true) or stops (false) publishing the outbox: called as the relay's cluster singleton starts on this node
    /// or stops here (hand-over to another node, or this node leaving). A batch under way when it stops is finished.
    /// </summary>
    public void Lead(bool leading)
    {
        if (_leading != leading)
        {
            _leading = leading;
            LogLeadership(leading ? "publishes" : "no longer publishes");
            Wake();
        }
    }

    /// <summary>Firings published since start.</summary>
    public long Published => Interlocked.Read(ref _published);

    public void Start() => _loop = Task.Factory.StartNew(Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Something was added to the outbox: look now rather than at the next poll.</summary>
    public void Signal() => Wake();

    /// <summary>
    /// Wakes the loop, unless the relay is disposed: the engine's last checkpoint and the cluster singleton's stop may
    /// still tell it something while the host shuts down.
    /// </summary>
    private void Wake()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        try
        {
            _signal.Release();
        }
        catch (ObjectDisposedException)
        {
            // Disposed between the check and the release: nothing left to wake.
        }
    }

    /// <summary>Produces a dialer's outcome as an <c>outreach_outcome</c> event, waiting for the broker's acknowledgement.</summary>
    public async Task ProduceOutcomeAsync(string customerId, string outreachId, string channel, string outcome, int attempt, CancellationToken ct)
    {
        var at = _time.GetUtcNow();
        var json = $$"""{"eventId":"outcome:{{outreachId}}:{{outcome}}","customerId":{{Quote(customerId)}},"occurredAt":"{{at:O}}","type":"outreach_outcome","outreachId":"{{outreachId}}","channel":"{{channel}}","outcome":"{{outcome}}","attempt":{{attempt}}}""";
        await _producer.ProduceAsync(
            Topics.OutreachOutcomes,
            new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(customerId), Value = Encoding.UTF8.GetBytes(json) },
            ct).ConfigureAwait(false);
    }

    private static string Quote(string s) => System.Text.Json.JsonSerializer.Serialize(s);

    private void Run()
    {
        var backoff = TimeSpan.FromMilliseconds(100);
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                if (!_leading)
                {
                    _signal.Wait(TimeSpan.FromMilliseconds(500), _stop.Token);
                    continue;
                }

                var rows = _store.ReadOutbox(0, BatchSize);
                if (rows.Count == 0)
                {
                    _signal.Wait(TimeSpan.FromMilliseconds(500), _stop.Token);
                    continue;
                }

                var acked = PublishBatch(rows);
                _store.DeleteOutbox(acked);
                if (acked.Count < rows.Count)
                {
                    LogPublishIncomplete(acked.Count, rows.Count);
                    _stop.Token.WaitHandle.WaitOne(backoff);
                    backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
                }
                else
                {
                    backoff = TimeSpan.FromMilliseconds(100);
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (Exception ex) when (ex is KafkaException or System.Data.Common.DbException or InvalidOperationException)
            {
                LogRelayFailed(ex.Message);
                _stop.Token.WaitHandle.WaitOne(backoff);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }

    private List<long> PublishBatch(IReadOnlyList<OutboxRow> rows)
    {
        var acked = new List<long>(rows.Count);
        var gate = new object();
        foreach (var row in rows)
        {
            var seq = row.Seq;
            var created = row.CreatedTicks;
            _producer.Produce(
                Topics.CustomerTriggers,
                new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(row.CustomerId), Value = row.Payload },
                report =>
                {
                    if (report.Error.IsError)
                    {
                        return;
                    }

                    lock (gate)
                    {
                        acked.Add(seq);
                    }

                    _instruments?.TriggerLatency.Record(TimeSpan.FromTicks(Math.Max(0, _time.GetUtcNow().UtcTicks - created)).TotalSeconds);
                });
        }

        _producer.Flush(TimeSpan.FromSeconds(30));
        lock (gate)
        {
            Interlocked.Add(ref _published, acked.Count);
            _instruments?.TriggersPublished.Add(acked.Count);
            return [.. acked];
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        _producer.Flush(TimeSpan.FromSeconds(5));
        _producer.Dispose();
        _stop.Dispose();
        _signal.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Trigger relay: {Acked} of {Total} firings acknowledged; retrying the rest")]
    private partial void LogPublishIncomplete(int acked, int total);

    [LoggerMessage(Level = LogLevel.Information, Message = "Trigger relay: this node {What} the outbox to customer-triggers")]
    private partial void LogLeadership(string what);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Trigger relay failed, retrying: {Reason}")]
    private partial void LogRelayFailed(string reason);
}
