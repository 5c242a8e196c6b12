namespace Streaming.Host.Metrics;

/// <summary>
/// A measurement's tags as a dictionary key, equal to any span holding the same pairs in any order, so the hot path
/// looks series up straight from the listener's tag span without allocating.
/// </summary>
internal sealed class TagSetKey
{
    public TagSetKey(KeyValuePair<string, object?>[] tags, int hash)
    {
        Tags = tags;
        Hash = hash;
    }

    public KeyValuePair<string, object?>[] Tags { get; }

    public int Hash { get; }
}

/// <summary>Compares tag sets as multisets of (key, value) pairs: order does not matter, values by <see cref="object.Equals(object, object)"/>.</summary>
internal sealed class TagSetComparer : IEqualityComparer<TagSetKey>, IAlternateEqualityComparer<ReadOnlySpan<KeyValuePair<string, object?>>, TagSetKey>
{
    private const int StackLimit = 32;

    public static TagSetComparer Instance { get; } = new();

    public bool Equals(TagSetKey? x, TagSetKey? y) =>
        ReferenceEquals(x, y) || (x is not null && y is not null && x.Hash == y.Hash && SameTags(x.Tags, y.Tags));

    public int GetHashCode(TagSetKey obj) => obj.Hash;

    public bool Equals(ReadOnlySpan<KeyValuePair<string, object?>> alternate, TagSetKey other) => SameTags(alternate, other.Tags);

    public int GetHashCode(ReadOnlySpan<KeyValuePair<string, object?>> alternate) => Hash(alternate);

    public TagSetKey Create(ReadOnlySpan<KeyValuePair<string, object?>> alternate) => new(alternate.ToArray(), Hash(alternate));

    /// <summary>Order-independent: a sum of per-pair hashes.</summary>
    public static int Hash(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var hash = tags.Length;
        foreach (var tag in tags)
        {
            hash = unchecked(hash + HashCode.Combine(tag.Key, tag.Value));
        }

        return hash;
    }

    private static bool SameTags(ReadOnlySpan<KeyValuePair<string, object?>> a, ReadOnlySpan<KeyValuePair<string, object?>> b)
    {
        if (a.Length != b.Length)
        {
            return false;
        }

        // Callers almost always pass their tags in the same order: try that first.
        var inOrder = true;
        for (var i = 0; i < a.Length; i++)
        {
            if (!Same(a[i], b[i]))
            {
                inOrder = false;
                break;
            }
        }

        if (inOrder)
        {
            return true;
        }

        Span<bool> used = a.Length <= StackLimit ? stackalloc bool[StackLimit] : new bool[a.Length];
        foreach (var tag in a)
        {
            var found = false;
            for (var j = 0; j < b.Length; j++)
            {
                if (!used[j] && Same(tag, b[j]))
                {
                    used[j] = true;
                    found = true;
                    break;
                }
            }

            if (!found)
            {
                return false;
            }
        }

        return true;
    }

    private static bool Same(KeyValuePair<string, object?> x, KeyValuePair<string, object?> y) =>
        string.Equals(x.Key, y.Key, StringComparison.Ordinal) && Equals(x.Value, y.Value);
}
