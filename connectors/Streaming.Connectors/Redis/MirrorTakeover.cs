using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Streaming.Connectors.Persistence;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;

namespace Streaming.Connectors.Redis;

/// <summary>
/// The cluster's mirror catch-up. A node can die after a checkpoint made its customers durable and before its mirror
/// wrote them, and those customers may not change again for a long time. So whenever this node takes a partition over
/// (at its start too), every customer the journal holds for that partition is published again with its durable version
/// (<see cref="MirrorSeqSource.CustomerVersion"/>): Redis keeps what it already has at that version or later (the write
/// script refuses an equal or smaller <c>seq</c>), and writes what the dead node left out. Partitions taken over together
/// share one read of the journal; the reads run in the background, so consumption never waits for them.
/// </summary>
/// <remarks>
/// Costs one read of the whole journal per takeover (each customer's latest event is decoded to learn its partition)
/// and one script call per customer of the partitions taken. Pending customers are held in the mirror's map, one entry per
/// customer, as after any outage.
/// </remarks>
public sealed partial class MirrorTakeover : IAsyncDisposable
{
    /// <summary>How long after a failed read (the store away) the partitions are read again.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(5);

    private readonly ActorStoreOptions _store;
    private readonly IStateMirror _mirror;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Channel<int> _taken = Channel.CreateUnbounded<int>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _published;
    private long _rounds;

    /// <param name="store">The journal to read (PostgreSQL in a cluster; SQLite works too).</param>
    /// <param name="mirror">A mirror writing customer versions.</param>
    /// <exception cref="ArgumentException">The mirror orders writes by checkpoint numbers, which a re-publication would move forward wrongly.</exception>
    public MirrorTakeover(ActorStoreOptions store, IStateMirror mirror, ILogger logger, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(mirror);
        if (mirror.SeqSource != MirrorSeqSource.CustomerVersion)
        {
            throw new ArgumentException("a takeover catch-up needs a mirror that orders writes by customer version", nameof(mirror));
        }

        _store = store;
        _mirror = mirror;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _loop = Task.Run(() => RunAsync(_stop.Token));
    }

    /// <summary>Customers published again so far.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Journal reads completed so far (one per batch of partitions taken over together).</summary>
    public long Rounds => Interlocked.Read(ref _rounds);

    /// <summary>Queues <paramref name="partition"/>, just taken over; returns at once (any thread).</summary>
    public void Add(int partition) => _taken.Writer.TryWrite(partition);

    /// <summary>
    /// Publishes every customer of <paramref name="partitions"/> in the journal with its version; returns how many.
    /// </summary>
    /// <exception cref="System.Data.Common.DbException">The store cannot be read.</exception>
    public int CatchUp(IReadOnlySet<int> partitions, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        if (partitions.Count == 0 || !JournalSnapshot.Exists(_store))
        {
            return 0;
        }

        using var snapshot = JournalSnapshot.Open(_store, _store.DataDir ?? ".");
        var batch = new List<CustomerProjection>(JournalSnapshot.MaxLookup);
        var published = 0;
        foreach (var (id, saved, version) in snapshot.ReadVersioned())
        {
            ct.ThrowIfCancellationRequested();
            if (!partitions.Contains(saved.Partition))
            {
                continue;
            }

            batch.Add(CustomerProjection.From(CustomerStateCodec.Decode(id, saved.State), saved.Partition) with { Version = version });
            if (batch.Count == JournalSnapshot.MaxLookup)
            {
                published += Flush(batch);
            }
        }

        published += Flush(batch);
        Interlocked.Add(ref _published, published);
        return published;
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _taken.Writer.TryComplete();
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }

        _stop.Dispose();
    }

    /// <summary>Hands a batch to the mirror under its current number (the numbers only measure its lag here).</summary>
    private int Flush(List<CustomerProjection> batch)
    {
        var count = batch.Count;
        if (count > 0)
        {
            _mirror.Publish(_mirror.MirroredSeq, [.. batch]);
            batch.Clear();
        }

        return count;
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var partitions = new HashSet<int>();
        while (await _taken.Reader.WaitToReadAsync(ct).ConfigureAwait(false))
        {
            // Partitions assigned together (a rebalance) arrive within moments: one read serves them all.
            while (_taken.Reader.TryRead(out var p))
            {
                partitions.Add(p);
            }

            try
            {
                var started = _time.GetTimestamp();
                var published = await Task.Run(() => CatchUp(partitions, ct), ct).ConfigureAwait(false);
                Interlocked.Increment(ref _rounds);
                LogCaughtUp(string.Join(", ", partitions.Order()), published, _time.GetElapsedTime(started).TotalSeconds);
                partitions.Clear();
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // The loop must outlive a store outage: it reads again, with what was taken over meanwhile.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                LogFailed(ex, string.Join(", ", partitions.Order()), RetryAfter.TotalSeconds);
                await Task.Delay(RetryAfter, _time, ct).ConfigureAwait(false);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis mirror: partitions {Partitions} taken over, {Customers} customers published again with their versions in {Seconds:0.0} s (Redis keeps those it already has)")]
    private partial void LogCaughtUp(string partitions, int customers, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis mirror: reading the journal for partitions {Partitions} taken over failed; trying again in {Seconds} s")]
    private partial void LogFailed(Exception ex, string partitions, double seconds);
}
