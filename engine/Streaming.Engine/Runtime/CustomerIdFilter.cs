using Streaming.Engine.Model;

namespace Streaming.Engine.Runtime;

/// <summary>
/// A Bloom filter over customer ids: "certainly never stored" or "maybe stored". It lets a host skip the store lookup
/// for customers seen for the first time. Adds may run on one thread while another reads: bits only ever turn on, and
/// an id whose add is still in flight is one the reader has in memory anyway.
/// </summary>
public sealed class CustomerIdFilter
{
    private const int Hashes = 7;
    private readonly ulong[] _bits;
    private readonly ulong _bitCount;
    private long _count;

    /// <summary>Sized for <paramref name="capacity"/> ids at about 1% false positives (10 bits per id).</summary>
    public CustomerIdFilter(long capacity)
    {
        Capacity = Math.Max(1024, capacity);
        _bitCount = (ulong)(Capacity * 10);
        _bits = new ulong[(_bitCount + 63) / 64];
    }

    public long Capacity { get; }

    public long Count => Interlocked.Read(ref _count);

    public void Add(string customerId)
    {
        var (h1, h2) = HashPair(customerId);
        for (ulong i = 0; i < Hashes; i++)
        {
            var bit = (h1 + (i * h2)) % _bitCount;
            Interlocked.Or(ref _bits[bit >> 6], 1UL << (int)(bit & 63));
        }

        Interlocked.Increment(ref _count);
    }

    public bool MayContain(string customerId)
    {
        var (h1, h2) = HashPair(customerId);
        for (ulong i = 0; i < Hashes; i++)
        {
            var bit = (h1 + (i * h2)) % _bitCount;
            if ((Volatile.Read(ref _bits[bit >> 6]) & (1UL << (int)(bit & 63))) == 0)
            {
                return false;
            }
        }

        return true;
    }

    private static (ulong, ulong) HashPair(string id)
    {
        var h = IdHash.Fnv1a64(id);
        // Double hashing (Kirsch–Mitzenmacher): a second, odd hash derived by mixing the first.
        var h2 = h ^ (h >> 33);
        h2 *= 0xff51afd7ed558ccdUL;
        h2 ^= h2 >> 33;
        return (h, h2 | 1);
    }
}
