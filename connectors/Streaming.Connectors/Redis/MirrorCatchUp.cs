using Streaming.Connectors.Kafka;
using Streaming.Connectors.Persistence;
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
    /// <summary>
    /// Reads the actor runtime's journal (<paramref name="store"/>: SQLite or PostgreSQL). A customer's latest
    /// journal event names the partition checkpoint that saved it, and <paramref name="counter"/> the node number that checkpoint got
    /// (<see cref="ICheckpointCounter.LoadNumbers"/>; a forgotten one maps to the partition's next kept checkpoint, which
    /// carries the same rule version): customers above the marker are queued under their own checkpoint's number, in
    /// number order. Customers whose checkpoint got no number (a crash between the checkpoint and its numbering, or a
    /// checkpoint held back during a rule switch) are queued under new numbers reserved in <paramref name="counter"/>, one
    /// per checkpoint, older rule versions first (by the last number each version got; <paramref name="runningVersion"/>
    /// last), so a number never carries two rule versions and an older version never follows a newer one. Events written
    /// before journal events recorded their partition are written again only when Redis has no marker.
    /// </summary>
    /// <remarks>Holds the ids of the customers to queue (not their states) while it sorts them; states are read again in lookups of <see cref="JournalSnapshot.MaxLookup"/>.</remarks>
    public static async Task<(int Customers, long? Marker)> RunFromJournalAsync(
        ActorStoreOptions store, RedisMirror mirror, ICheckpointCounter counter, string runningVersion, TimeSpan timeout, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(mirror);
        ArgumentNullException.ThrowIfNull(counter);
        var dataDir = store.DataDir ?? throw new ArgumentException("the store options need the data directory (state.db)", nameof(store));
        var marker = await mirror.ReadMarkerAsync(timeout, ct).ConfigureAwait(false);
        if (!JournalSnapshot.Exists(store))
        {
            return (0, marker);
        }

        // Read in full even when the marker is at the last number: checkpoints completed but not numbered yet (a crash,
        // or held back during a rule switch) have customers no number covers.
        using var snapshot = JournalSnapshot.Open(store, dataDir);
        var kept = counter.LoadNumbers();
        var numbers = kept.GroupBy(n => n.Partition).ToDictionary(g => g.Key, g => g.ToArray());

        // Where a rule version stands: by the last number it got (the set in force last; one never numbered, e.g. held
        // during a switch, after those; the running one last of all).
        var lastNumber = kept.GroupBy(n => n.RuleVersion, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Max(n => n.Number), StringComparer.Ordinal);
        long Order(string version) => version == runningVersion ? long.MaxValue : lastNumber.GetValueOrDefault(version, long.MaxValue - 1);

        var numbered = new List<(long Number, string Id)>();
        var unnumbered = new List<(long Order, string Version, int Partition, long Seq, string Id)>();
        foreach (var (id, saved) in snapshot.ReadSaved(null))
        {
            ct.ThrowIfCancellationRequested();
            if (NumberOf(numbers, saved.Partition, saved.Seq) is { } number)
            {
                if (number > (marker ?? -1))
                {
                    numbered.Add((number, id));
                }

                continue;
            }

            // An event from before the partition was recorded cannot be mapped: with a marker, the mirror is taken to
            // have it (it was written by then); without one (an emptied Redis), it is written again.
            if (saved.Partition < 0 && marker is not null)
            {
                continue;
            }

            var version = CustomerStateCodec.Decode(id, saved.State).RuleVersion ?? "";
            unnumbered.Add((Order(version), version, saved.Partition, saved.Seq, id));
        }

        // New numbers, one per unnumbered checkpoint (and rule version), above every number handed out, older rule
        // versions first, reserved before they are used and recorded (the next start finds them numbered).
        var reserved = counter.Reserved;
        var next = reserved;
        var given = new List<CheckpointNumber>();
        (string, int, long)? previous = null;
        foreach (var u in unnumbered.OrderBy(u => u.Order).ThenBy(u => u.Version, StringComparer.Ordinal).ThenBy(u => u.Partition).ThenBy(u => u.Seq))
        {
            if (previous != (u.Version, u.Partition, u.Seq))
            {
                next++;
                previous = (u.Version, u.Partition, u.Seq);
                if (u.Partition >= 0)
                {
                    given.Add(new CheckpointNumber(u.Partition, u.Seq, next, u.Version));
                }
            }

            numbered.Add((next, u.Id));
        }

        if (next > reserved)
        {
            counter.Reserve(next);
            given.ForEach(counter.Record);
        }

        numbered.Sort();
        var queued = 0;
        for (var i = 0; i < numbered.Count; i += JournalSnapshot.MaxLookup)
        {
            ct.ThrowIfCancellationRequested();
            var chunk = numbered.GetRange(i, Math.Min(JournalSnapshot.MaxLookup, numbered.Count - i));
            var states = snapshot.ReadSaved([.. chunk.Select(c => c.Id)]).ToDictionary(s => s.CustomerId, s => s.Saved, StringComparer.Ordinal);
            foreach (var run in chunk.GroupBy(c => c.Number))
            {
                var page = run.Select(c => CustomerProjection.From(CustomerStateCodec.Decode(c.Id, states[c.Id].State), states[c.Id].Partition)).ToList();
                mirror.Publish(run.Key, page);
                queued += page.Count;
            }
        }

        return (queued, marker);
    }

    /// <summary>
    /// The number of checkpoint <paramref name="seq"/> of <paramref name="partition"/>: its own, or the next kept one's
    /// (numbers the mirror has are forgotten, except the last checkpoint of each run of one rule version, so the next kept
    /// one carries the same version); null when the partition has no numbered checkpoint at or after it.
    /// </summary>
    private static long? NumberOf(Dictionary<int, CheckpointNumber[]> numbers, int partition, long seq)
    {
        if (!numbers.TryGetValue(partition, out var kept))
        {
            return null;
        }

        int lo = 0, hi = kept.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (kept[mid].Seq < seq)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo < kept.Length ? kept[lo].Number : null;
    }
}
