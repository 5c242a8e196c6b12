using Streaming.Connectors.Persistence;
using Streaming.Connectors.Sql;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;

namespace Streaming.Connectors.Redis;

/// <summary>
/// Brings a Redis mirror up to the store at start: a crash can come after a checkpoint is durable and before the
/// mirror wrote its customers, and those customers may not change again for a long time. Every customer a checkpoint
/// after the mirror's marker (<see cref="RedisKeySchema.MarkerKey"/>) stored is published again with the checkpoint that
/// stored it; with no marker (a new or emptied Redis, or Redis unreachable) every stored customer is. Runs before the
/// engine publishes its first checkpoint, so the marker cannot pass what this queues.
/// </summary>
public static class MirrorCatchUp
{
    private const int PageSize = 2_000;

    /// <summary>
    /// The same for the actor runtime's SQLite journal in <paramref name="dataDir"/>, which keeps no checkpoint per
    /// customer: when the marker is behind the node's checkpoint number (<see cref="JournalSnapshot.Seq"/>), every stored
    /// customer's latest state is queued with that number.
    /// </summary>
    public static async Task<(int Customers, long? Marker)> RunFromJournalAsync(string dataDir, RedisMirror mirror, TimeSpan timeout, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(mirror);
        var marker = await mirror.ReadMarkerAsync(timeout, ct).ConfigureAwait(false);
        if (!JournalSnapshot.Exists(dataDir))
        {
            return (0, marker);
        }

        using var snapshot = JournalSnapshot.OpenDirectory(dataDir);
        if ((marker ?? -1) >= snapshot.Seq)
        {
            return (0, marker);
        }

        var queued = 0;
        var page = new List<CustomerProjection>(PageSize);
        foreach (var (id, partition, state) in snapshot.ReadCustomers())
        {
            ct.ThrowIfCancellationRequested();
            page.Add(CustomerProjection.From(CustomerStateCodec.Decode(id, state), partition));
            if (page.Count == PageSize)
            {
                mirror.Publish(snapshot.Seq, page);
                queued += page.Count;
                page = new List<CustomerProjection>(PageSize);
            }
        }

        mirror.Publish(snapshot.Seq, page);
        return (queued + page.Count, marker);
    }

    /// <summary>Queues what the mirror misses; returns how many customers were queued and the marker found (null: none).</summary>
    public static async Task<(int Customers, long? Marker)> RunAsync(SqliteStateStore store, RedisMirror mirror, TimeSpan timeout, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(mirror);
        var marker = await mirror.ReadMarkerAsync(timeout, ct).ConfigureAwait(false);
        var after = marker ?? -1;
        if (after >= store.LastCheckpointSeq)
        {
            return (0, marker);
        }

        var queued = 0;
        var afterId = "";
        var bySeq = new Dictionary<long, List<CustomerProjection>>();
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var rows = store.LoadStoredAfter(after, afterId, PageSize);
            foreach (var (id, partition, state, seq) in rows)
            {
                if (!bySeq.TryGetValue(seq, out var list))
                {
                    bySeq[seq] = list = [];
                }

                list.Add(CustomerProjection.From(CustomerStateCodec.Decode(id, state), partition));
            }

            foreach (var (seq, projections) in bySeq)
            {
                mirror.Publish(seq, projections);
                queued += projections.Count;
            }

            bySeq.Clear();
            if (rows.Count < PageSize)
            {
                return (queued, marker);
            }

            afterId = rows[^1].CustomerId;
        }
    }
}
