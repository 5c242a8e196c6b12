using System.Text;

namespace Streaming.Engine.Model;

/// <summary>
/// 64-bit FNV-1a over the UTF-8 bytes of an id. Persisted (recent-id memory), so the function must never change.
/// </summary>
public static class IdHash
{
    private const ulong OffsetBasis = 14695981039346656037UL;
    private const ulong Prime = 1099511628211UL;

    public static ulong Fnv1a64(string id)
    {
        var hash = OffsetBasis;
        foreach (var c in id)
        {
            if (c < 0x80)
            {
                hash = (hash ^ c) * Prime;
            }
            else
            {
                return Fnv1a64Slow(id);
            }
        }

        return hash;
    }

    public static ulong Fnv1a64(ReadOnlySpan<byte> utf8)
    {
        var hash = OffsetBasis;
        foreach (var b in utf8)
        {
            hash = (hash ^ b) * Prime;
        }

        return hash;
    }

    private static ulong Fnv1a64Slow(string id) => Fnv1a64(Encoding.UTF8.GetBytes(id));
}
