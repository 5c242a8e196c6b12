using System.IO.Hashing;
using System.Text;

namespace Streaming.Runtime.Customers;

/// <summary>
/// The customers of one partition that may have been saved, as 64-bit XxHash64 hashes of their ids (UTF-8): a superset
/// that the partition's coordinator keeps durable in its journal, adding customers before they first save. A customer
/// outside it was never saved, so its entity starts empty without asking the store (see <see cref="KnownCustomerRegistry"/>).
/// A hash collision only makes a new customer recover normally.
/// </summary>
/// <remarks>Thread-safe: the coordinator adds, the partition's entities read from their own threads. About 20 bytes per customer in memory, 8 in snapshots.</remarks>
public sealed class KnownCustomers
{
    private readonly HashSet<ulong> _hashes = [];
    private readonly Lock _lock = new();

    /// <summary>Customers held.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _hashes.Count;
            }
        }
    }

    /// <summary>The hash under which <paramref name="customerId"/> is held.</summary>
    public static ulong Hash(string customerId) => XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(customerId));

    /// <summary>Whether <paramref name="hash"/> is held.</summary>
    public bool Contains(ulong hash)
    {
        lock (_lock)
        {
            return _hashes.Contains(hash);
        }
    }

    /// <summary>Adds <paramref name="hashes"/>.</summary>
    public void Add(IEnumerable<ulong> hashes)
    {
        lock (_lock)
        {
            _hashes.UnionWith(hashes);
        }
    }

    /// <summary>Every hash held, for a snapshot.</summary>
    public ulong[] ToArray()
    {
        lock (_lock)
        {
            return [.. _hashes];
        }
    }
}

/// <summary>
/// The node's <see cref="KnownCustomers"/> by partition, registered by each partition's coordinator once it has recovered
/// (and removed when it stops). Entities consult it when they start: a partition without a registered set answers
/// "not new", so a customer recovers normally whenever the node does not know better.
/// </summary>
/// <remarks>
/// It also holds the customers an entity saved outside any checkpoint on this node (<see cref="SavedOutsideCheckpoint"/>):
/// kept apart from the coordinators' sets, which must still make them durable at their next checkpoint, and kept across
/// coordinator restarts. A few hashes: such a save happens when the shard stops an entity the coordinator did not ask to
/// stop (a read passivated it while its first record was on the way).
/// </remarks>
public sealed class KnownCustomerRegistry
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, KnownCustomers> _partitions = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(int Partition, ulong Hash), byte> _savedOutside = new();

    /// <summary>Makes <paramref name="known"/> the set of <paramref name="partition"/>.</summary>
    public void Register(int partition, KnownCustomers known) => _partitions[partition] = known;

    /// <summary>Removes the set of <paramref name="partition"/> if it is still <paramref name="known"/>.</summary>
    public void Unregister(int partition, KnownCustomers known) => _partitions.TryRemove(new KeyValuePair<int, KnownCustomers>(partition, known));

    /// <summary>
    /// Records that <paramref name="customerId"/> of <paramref name="partition"/> is about to be saved outside a checkpoint:
    /// from then on <see cref="IsNew"/> is false for it on this node.
    /// </summary>
    public void SavedOutsideCheckpoint(int partition, string customerId) => _savedOutside.TryAdd((partition, KnownCustomers.Hash(customerId)), 0);

    /// <summary>True when <paramref name="customerId"/> of <paramref name="partition"/> has surely never been saved.</summary>
    public bool IsNew(int partition, string customerId)
    {
        if (!_partitions.TryGetValue(partition, out var known))
        {
            return false;
        }

        var hash = KnownCustomers.Hash(customerId);
        return !known.Contains(hash) && !_savedOutside.ContainsKey((partition, hash));
    }
}
