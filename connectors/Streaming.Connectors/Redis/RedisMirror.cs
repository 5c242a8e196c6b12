using System.Diagnostics.Metrics;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;
using Streaming.Engine.Runtime;

namespace Streaming.Connectors.Redis;

/// <summary>Settings of the Redis mirror (configuration section <c>Streaming:Redis</c>).</summary>
public sealed record RedisMirrorOptions
{
    /// <summary>A StackExchange.Redis connection string naming one server, e.g. <c>127.0.0.1:6379</c>.</summary>
    public required string Connection { get; init; }

    public string Prefix { get; init; } = RedisKeySchema.DefaultPrefix;

    /// <summary>Customers per pipelined batch.</summary>
    public int BatchSize { get; init; } = 500;

    /// <summary>How long one batch (or the probe of a failed connection) may take before it counts as failed.</summary>
    public TimeSpan OperationTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Retry delays double from <see cref="InitialBackoff"/> up to this.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(4);

    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>While failing, the failure is logged again at most this often.</summary>
    public TimeSpan FailureLogInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// What each customer hash's <c>seq</c> is: the node's checkpoint number (the default, one node per prefix) or the
    /// customer's durable version (a cluster, whose nodes all write the prefix). Recorded in the marker hash
    /// (<c>seqSource</c>); a prefix written the other way is refused (<see cref="RedisMirror.CheckSeqSourceAsync"/>).
    /// </summary>
    public MirrorSeqSource SeqSource { get; init; } = MirrorSeqSource.Checkpoint;
}

/// <summary>
/// Mirrors each checkpoint's changed customers into Redis (schema: <see cref="RedisKeySchema"/>). <see cref="Publish"/>
/// only merges into a pending map, keeping each customer's latest projection, so the engine thread never waits; a
/// background loop writes the map in pipelined batches through a Lua script that never moves a key backwards. While
/// Redis is away the map holds at most one entry per customer changed meanwhile; the loop backs off, reconnects and
/// catches up.
/// </summary>
public sealed partial class RedisMirror : IStateMirror, IAsyncDisposable, IDisposable
{
    /// <summary>How long <see cref="Dispose"/> tries to write what is pending.</summary>
    public static readonly TimeSpan DefaultDrainTimeout = TimeSpan.FromSeconds(5);

    private readonly RedisMirrorOptions _options;
    private readonly RedisKeySchema _schema;
    private readonly ConfigurationOptions _connectionOptions;
    private readonly string _endpoint;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly MirrorInstruments _instruments;
    private readonly RedisScript _write = new(RedisKeySchema.WriteScript);
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    // Guarded by _gate: the pending map, the sequence numbers and the idle signal.
    private readonly Lock _gate = new();
    private Dictionary<string, PendingWrite> _pending = new(StringComparer.Ordinal);

    // The drain loop's own: the map it took last (kept for reuse) and its entries in write order.
    private Dictionary<string, PendingWrite> _taken = new(StringComparer.Ordinal);
    private readonly List<PendingWrite> _work = [];
    private long _publishedSeq;
    private long _mirroredSeq;

    /// <summary>The checkpoint the marker in Redis was last set to by this mirror.</summary>
    private long _markedSeq;
    private int _inFlight;
    private TaskCompletionSource _idle = NewCompleted();

    private ConnectionMultiplexer? _connection;
    private int _failures;
    private long _failingSince;
    private long _lastFailureLog;
    private long _errors;
    private long _writes;
    private long _newerPresent;
    private int _disposed;
    private bool _claimed;

    public RedisMirror(RedisMirrorOptions options, ILogger logger, IMeterFactory? meterFactory = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        _options = options;
        _schema = new RedisKeySchema(options.Prefix);
        _connectionOptions = RedisConnection.Parse(options.Connection);
        _endpoint = RedisConnection.Describe(_connectionOptions);
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _instruments = new MirrorInstruments(meterFactory, () => Pending, () => LagCheckpoints);
        _loop = Task.Run(() => RunAsync(_stop.Token));
    }

    public RedisKeySchema Schema => _schema;

    /// <inheritdoc />
    public MirrorSeqSource SeqSource => _options.SeqSource;

    /// <summary>The server, as logs show it (never the password of the connection string).</summary>
    public string Endpoint => _endpoint;

    /// <summary>
    /// Customers changed but not yet written: pending, or in the batches being written (a customer that changes again
    /// while its write is in flight counts twice until that write ends).
    /// </summary>
    public int Pending
    {
        get
        {
            lock (_gate)
            {
                return _pending.Count + _inFlight;
            }
        }
    }

    /// <summary>The highest checkpoint whose changes (and all earlier ones') are all in Redis.</summary>
    public long MirroredSeq => Interlocked.Read(ref _mirroredSeq);

    /// <summary>The highest checkpoint published to the mirror.</summary>
    public long PublishedSeq => Interlocked.Read(ref _publishedSeq);

    /// <summary>Checkpoints published but not yet all written.</summary>
    public long LagCheckpoints => Math.Max(0, PublishedSeq - MirroredSeq);

    /// <summary>Failed attempts (a batch or a connection probe).</summary>
    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>Customer writes Redis acknowledged.</summary>
    public long Writes => Interlocked.Read(ref _writes);

    /// <summary>Writes Redis refused because the key already held a greater seq (another writer, or a store reset).</summary>
    public long NewerPresent => Interlocked.Read(ref _newerPresent);

    /// <summary>Queues the projections of checkpoint <paramref name="checkpointSeq"/>; returns at once (engine thread).</summary>
    public void Publish(long checkpointSeq, IReadOnlyList<CustomerProjection> customers)
    {
        ArgumentNullException.ThrowIfNull(customers);
        lock (_gate)
        {
            if (checkpointSeq > _publishedSeq)
            {
                Interlocked.Exchange(ref _publishedSeq, checkpointSeq);
            }

            for (var i = 0; i < customers.Count; i++)
            {
                var p = customers[i];
                ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_pending, p.CustomerId, out var exists);
                if (!exists)
                {
                    slot = new PendingWrite(p, checkpointSeq, checkpointSeq);
                }
                else if (IsNewer(p, checkpointSeq, slot))
                {
                    // Only the latest state matters; the oldest unwritten checkpoint still bounds what is mirrored.
                    slot = slot with { Projection = p, Seq = checkpointSeq };
                }
            }

            if (_idle.Task.IsCompleted && (_pending.Count > 0 || _mirroredSeq < _publishedSeq))
            {
                _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }

        _wake.Writer.TryWrite(true);
    }

    /// <summary>
    /// Waits until everything published so far is in Redis (for tests and shutdown); false when
    /// <paramref name="timeout"/> passed first.
    /// </summary>
    public async Task<bool> WaitIdleAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Task idle;
        lock (_gate)
        {
            idle = _idle.Task;
        }

        try
        {
            await idle.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>Tries for at most <paramref name="drainTimeout"/> to write what is pending, then stops and disconnects.</summary>
    public async Task StopAsync(TimeSpan drainTimeout)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (!await WaitIdleAsync(drainTimeout).ConfigureAwait(false))
        {
            LogNotMirroredAtStop(Pending, MirroredSeq, PublishedSeq);
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }

        if (_connection is { } connection)
        {
            await connection.CloseAsync(allowCommandsToComplete: false).ConfigureAwait(false);
            connection.Dispose();
        }

        _instruments.Dispose();
        _stop.Dispose();
    }

    public async ValueTask DisposeAsync() => await StopAsync(DefaultDrainTimeout).ConfigureAwait(false);

    public void Dispose() => StopAsync(DefaultDrainTimeout).GetAwaiter().GetResult();

    private async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (_failures == 0)
                {
                    await _wake.Reader.ReadAsync(ct).ConfigureAwait(false);
                }
                else
                {
                    await Task.Delay(Backoff(_failures), _time, ct).ConfigureAwait(false);
                }

                await DrainAsync(ct).ConfigureAwait(false);
                await MarkAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // The loop must outlive any failure: the engine never learns of them, the metrics do.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                OnFailure(ex);
            }
        }
    }

    /// <summary>Writes everything pending, oldest checkpoint first; on failure puts the rest back (merged) and throws.</summary>
    private async Task DrainAsync(CancellationToken ct)
    {
        long upTo;
        lock (_gate)
        {
            if (_pending.Count == 0)
            {
                CaughtUp();
                return;
            }

            // Swap maps: the engine thread never waits for more than this.
            (_taken, _pending) = (_pending, _taken);
            _inFlight = _taken.Count;
            upTo = _publishedSeq;
        }

        _work.Clear();
        _work.AddRange(_taken.Values);
        _taken.Clear();

        // Oldest first, so the mirrored checkpoint advances with each batch.
        _work.Sort(static (a, b) => a.FirstSeq.CompareTo(b.FirstSeq));
        var done = 0;
        try
        {
            var connection = await ConnectAsync(ct).ConfigureAwait(false);
            var db = connection.GetDatabase();
            while (done < _work.Count)
            {
                var count = Math.Min(_options.BatchSize, _work.Count - done);
                await WriteBatchAsync(connection, db, done, count, ct).ConfigureAwait(false);
                done += count;
                lock (_gate)
                {
                    _inFlight -= count;
                    var mirrored = done < _work.Count ? _work[done].FirstSeq - 1 : upTo;
                    if (mirrored > _mirroredSeq)
                    {
                        Interlocked.Exchange(ref _mirroredSeq, mirrored);
                    }
                }
            }
        }
        catch
        {
            lock (_gate)
            {
                for (var i = done; i < _work.Count; i++)
                {
                    Merge(_work[i]);
                }

                _inFlight = 0;
            }

            throw;
        }

        if (_failures > 0)
        {
            LogRecovered(_time.GetElapsedTime(_failingSince).TotalSeconds, _failures, Pending);
            _failures = 0;
        }

        lock (_gate)
        {
            if (_pending.Count == 0)
            {
                CaughtUp();
            }
        }
    }

    /// <summary>Nothing pending: every published checkpoint is mirrored (caller holds the gate).</summary>
    private void CaughtUp()
    {
        if (_publishedSeq > _mirroredSeq)
        {
            Interlocked.Exchange(ref _mirroredSeq, _publishedSeq);
        }

        _idle.TrySetResult();
    }

    /// <summary>Puts back an unwritten entry, unless a newer one arrived meanwhile (caller holds the gate).</summary>
    private void Merge(PendingWrite unwritten)
    {
        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_pending, unwritten.Projection.CustomerId, out var exists);
        if (!exists)
        {
            slot = unwritten;
        }
        else
        {
            slot = (IsNewer(unwritten.Projection, unwritten.Seq, slot) ? unwritten : slot) with { FirstSeq = Math.Min(slot.FirstSeq, unwritten.FirstSeq) };
        }
    }

    /// <summary>
    /// Whether a projection published with checkpoint <paramref name="checkpointSeq"/> replaces the pending
    /// <paramref name="slot"/>: a later (or equal) checkpoint, or with customer versions a later (or equal) version, so a
    /// takeover's re-published older state never replaces a newer one waiting.
    /// </summary>
    private bool IsNewer(CustomerProjection projection, long checkpointSeq, PendingWrite slot) =>
        _options.SeqSource == MirrorSeqSource.CustomerVersion ? projection.Version >= slot.Projection.Version : checkpointSeq >= slot.Seq;

    /// <summary>The <c>seq</c> a pending write carries to Redis (see <see cref="RedisMirrorOptions.SeqSource"/>).</summary>
    private long KeySeq(in PendingWrite entry) =>
        _options.SeqSource == MirrorSeqSource.CustomerVersion ? entry.Projection.Version : entry.Seq;

    private async Task WriteBatchAsync(ConnectionMultiplexer connection, IDatabase db, int from, int count, CancellationToken ct)
    {
        var sha = await _write.ShaAsync(connection).ConfigureAwait(false);
        for (var attempt = 0; ; attempt++)
        {
            var batch = db.CreateBatch();
            var tasks = new Task<RedisResult>[count];
            for (var i = 0; i < count; i++)
            {
                var entry = _work[from + i];
                var (keys, args) = _schema.WriteArguments(entry.Projection, KeySeq(entry), replaceEqual: false);
                tasks[i] = batch.ScriptEvaluateAsync(sha, keys, args);
            }

            batch.Execute();
            var all = Task.WhenAll(tasks);
            try
            {
                // Our own bound on a batch, whatever the client's timeouts: a hung server must not hold the writer for ever.
                await all.WaitAsync(_options.OperationTimeout, _time, ct).ConfigureAwait(false);
            }
            catch (RedisServerException) when (attempt == 0 && RedisScript.FailedWithNoScript(all))
            {
                // A restarted or flushed server forgot the script: load it again and rewrite the batch (idempotent).
                sha = await _write.ShaAsync(connection, reload: true).ConfigureAwait(false);
                continue;
            }

            long newer = 0;
            foreach (var task in tasks)
            {
                if ((long)task.Result == RedisKeySchema.NewerPresent)
                {
                    newer++;
                }
            }

            Interlocked.Add(ref _writes, count);
            _instruments.Writes.Add(count);
            if (newer > 0)
            {
                Interlocked.Add(ref _newerPresent, newer);
                LogNewerPresent(newer, _schema.Prefix);
            }

            return;
        }
    }

    /// <summary>
    /// Records in Redis (<see cref="RedisKeySchema.MarkerKey"/>) that every checkpoint up to <see cref="MirroredSeq"/> is
    /// written. The script keeps the greater value, so the marker never moves back.
    /// </summary>
    private async Task MarkAsync(CancellationToken ct)
    {
        var seq = MirroredSeq;
        if (seq <= _markedSeq || _options.SeqSource != MirrorSeqSource.Checkpoint)
        {
            return;
        }

        var connection = await ConnectAsync(ct).ConfigureAwait(false);
        await connection.GetDatabase()
            .ScriptEvaluateAsync(RedisKeySchema.RaiseMarkerScript, [_schema.MarkerKey], [seq])
            .WaitAsync(_options.OperationTimeout, _time, ct)
            .ConfigureAwait(false);
        _markedSeq = seq;
    }

    /// <summary>
    /// The checkpoint up to which Redis holds every customer, as the marker says: null when Redis holds no marker (a
    /// new or emptied server) or cannot be reached within <paramref name="timeout"/>.
    /// </summary>
    public async Task<long?> ReadMarkerAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        try
        {
            var connection = await ConnectAsync(ct).WaitAsync(timeout, _time, ct).ConfigureAwait(false);
            var value = await connection.GetDatabase().HashGetAsync(_schema.MarkerKey, "seq").WaitAsync(timeout, _time, ct).ConfigureAwait(false);
            return value.IsNull ? null : (long)value;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>The connection, created on first use; after a failure, a PING must answer before a batch is sent.</summary>
    private async Task<ConnectionMultiplexer> ConnectAsync(CancellationToken ct)
    {
        if (_connection is null)
        {
            var connection = await RedisConnection.ConnectAsync(_connectionOptions).WaitAsync(ct).ConfigureAwait(false);
            connection.ConnectionFailed += (_, e) => LogConnectionFailed(e.EndPoint?.ToString() ?? "?", e.FailureType.ToString(), e.Exception?.Message ?? "");
            connection.ConnectionRestored += (_, e) => LogConnectionRestored(e.EndPoint?.ToString() ?? "?");
            _connection = connection;
        }

        if (!_connection.IsConnected)
        {
            throw new InvalidOperationException($"not connected to {_endpoint}");
        }

        if (_failures > 0)
        {
            // Do not queue a batch behind a hung server: it would run late (harmlessly, seq decides) but tie up memory.
            await _connection.GetDatabase().PingAsync().WaitAsync(_options.OperationTimeout, _time, ct).ConfigureAwait(false);
        }

        if (!_claimed)
        {
            // Before the first write to this server: a prefix whose seq means something else would be corrupted.
            if (await ClaimAsync(_connection, ct).ConfigureAwait(false) is { } refusal)
            {
                throw new InvalidOperationException(refusal);
            }

            _claimed = true;
        }

        return _connection;
    }

    /// <summary>
    /// Checks before the engine starts that the prefix's keys carry the same kind of <c>seq</c> as this mirror writes
    /// (<see cref="RedisMirrorOptions.SeqSource"/>), and records it in the marker hash: null when they do (or the prefix is
    /// new, or Redis does not answer within <paramref name="timeout"/>: the writer checks again before its first write
    /// and, refused, keeps retrying with the error logged), else why not and what to do.
    /// </summary>
    public async Task<string?> CheckSeqSourceAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        try
        {
            var connection = await RedisConnection.ConnectAsync(_connectionOptions).WaitAsync(timeout, _time, ct).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                return await ClaimAsync(connection, ct).WaitAsync(timeout, _time, ct).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return null;
        }
    }

    /// <summary>Runs <see cref="RedisKeySchema.ClaimScript"/>: null when the prefix is this mirror's kind, else the refusal.</summary>
    private async Task<string?> ClaimAsync(ConnectionMultiplexer connection, CancellationToken ct)
    {
        var mine = RedisKeySchema.SeqSourceName(_options.SeqSource);
        var found = (string?)await connection.GetDatabase()
            .ScriptEvaluateAsync(RedisKeySchema.ClaimScript, [_schema.MarkerKey], [mine])
            .WaitAsync(_options.OperationTimeout, _time, ct)
            .ConfigureAwait(false);
        return found == mine ? null : RedisKeySchema.SeqSourceRefusal(_schema.Prefix, found ?? "?", mine);
    }

    private void OnFailure(Exception ex)
    {
        Interlocked.Increment(ref _errors);
        _instruments.Errors.Add(1);
        var now = _time.GetTimestamp();
        if (_failures++ == 0)
        {
            _failingSince = now;
            _lastFailureLog = now;
            LogWriteFailed(ex, _endpoint, Pending, LagCheckpoints, Backoff(_failures).TotalMilliseconds);
        }
        else if (_time.GetElapsedTime(_lastFailureLog, now) >= _options.FailureLogInterval)
        {
            _lastFailureLog = now;
            LogStillFailing(_endpoint, _failures, _time.GetElapsedTime(_failingSince, now).TotalSeconds, Pending, LagCheckpoints, ex.Message);
        }
    }

    private TimeSpan Backoff(int failures)
    {
        var ms = _options.InitialBackoff.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 20));
        return TimeSpan.FromMilliseconds(Math.Min(ms, _options.MaxBackoff.TotalMilliseconds));
    }

    private static TaskCompletionSource NewCompleted()
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        tcs.SetResult();
        return tcs;
    }

    /// <summary>A customer's latest unwritten projection; <paramref name="FirstSeq"/> is the oldest checkpoint not yet in Redis.</summary>
    private readonly record struct PendingWrite(CustomerProjection Projection, long Seq, long FirstSeq);
}
