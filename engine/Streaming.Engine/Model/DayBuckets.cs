namespace Streaming.Engine.Model;

/// <summary>What one customer did on one UTC day: the unit of every trailing window.</summary>
public struct DayBucket
{
    /// <summary>Days since 0001-01-01 (UTC): <c>ticks / TimeSpan.TicksPerDay</c>.</summary>
    public int Day;
    public int Orders;

    /// <summary>Placed minus cancelled amounts.</summary>
    public decimal Net;

    /// <summary>Membership points earned (whole currency units per placed order, minus refunds).</summary>
    public long Points;
    public int Calls;
    public int Abandoned;
    public int CartAdds;
}

/// <summary>The series a window function can read (rule language: <c>count_in(orders, 365d)</c>).</summary>
public enum DaySeries : byte
{
    Orders,
    Net,
    Points,
    Calls,
    Abandoned,
    CartAdds,
}

/// <summary>
/// Per-day activity of one customer, ordered by day, oldest first. Bounded: days older than the retention the rule
/// set needs are dropped, so memory never grows with history.
/// </summary>
public sealed class DayBuckets
{
    private DayBucket[] _items = [];
    private int _count;

    public int Count => _count;

    public ReadOnlySpan<DayBucket> Items => _items.AsSpan(0, _count);

    internal void Load(DayBucket[] items)
    {
        _items = items;
        _count = items.Length;
    }

    /// <summary>Becomes a copy of <paramref name="source"/>, reusing this instance's array when it is large enough.</summary>
    internal void CopyFrom(DayBuckets source)
    {
        if (_items.Length < source._count)
        {
            _items = new DayBucket[source._items.Length];
        }

        source._items.AsSpan(0, source._count).CopyTo(_items);
        _count = source._count;
    }

    /// <summary>The bucket of <paramref name="day"/>, created if missing.</summary>
    public ref DayBucket At(int day)
    {
        // Events mostly arrive in time order: look from the newest end.
        var i = _count - 1;
        while (i >= 0 && _items[i].Day > day)
        {
            i--;
        }

        if (i >= 0 && _items[i].Day == day)
        {
            return ref _items[i];
        }

        if (_count == _items.Length)
        {
            Array.Resize(ref _items, Math.Max(4, _items.Length * 2));
        }

        var at = i + 1;
        Array.Copy(_items, at, _items, at + 1, _count - at);
        _items[at] = new DayBucket { Day = day };
        _count++;
        return ref _items[at];
    }

    /// <summary>Drops days before <paramref name="firstKeptDay"/>.</summary>
    public void DropBefore(int firstKeptDay)
    {
        var drop = 0;
        while (drop < _count && _items[drop].Day < firstKeptDay)
        {
            drop++;
        }

        if (drop == 0)
        {
            return;
        }

        Array.Copy(_items, drop, _items, 0, _count - drop);
        _count -= drop;
        Array.Clear(_items, _count, drop);
    }

    /// <summary>
    /// Sum of <paramref name="series"/> over the <paramref name="days"/> days ending with <paramref name="today"/>
    /// (days after today count too), and the day on which the value next changes by time alone: the day the oldest
    /// contributing bucket leaves the window (<see cref="int.MaxValue"/> if none).
    /// </summary>
    public decimal Sum(DaySeries series, int today, int days, out int nextChangeDay)
    {
        var first = today - days + 1;
        decimal sum = 0;
        nextChangeDay = int.MaxValue;
        for (var i = _count - 1; i >= 0 && _items[i].Day >= first; i--)
        {
            var value = Value(in _items[i], series);
            if (value != 0)
            {
                sum += value;
                nextChangeDay = _items[i].Day + days;
            }
        }

        return sum;
    }

    private static decimal Value(in DayBucket b, DaySeries series) => series switch
    {
        DaySeries.Orders => b.Orders,
        DaySeries.Net => b.Net,
        DaySeries.Points => b.Points,
        DaySeries.Calls => b.Calls,
        DaySeries.Abandoned => b.Abandoned,
        _ => b.CartAdds,
    };
}

/// <summary>
/// Approximate top-k counts of keys (the Space-Saving algorithm): exact while fewer than k keys were seen, otherwise
/// a newcomer replaces the smallest count and inherits it. Bounded memory, deterministic.
/// </summary>
public sealed class TopCounts
{
    public const int Capacity = 5;

    private readonly List<KeyValuePair<string, int>> _items = [];

    public IReadOnlyList<KeyValuePair<string, int>> Items => _items;

    public void Add(string key)
    {
        var min = -1;
        for (var i = 0; i < _items.Count; i++)
        {
            if (string.Equals(_items[i].Key, key, StringComparison.Ordinal))
            {
                _items[i] = new(key, _items[i].Value + 1);
                return;
            }

            if (min < 0 || _items[i].Value < _items[min].Value)
            {
                min = i;
            }
        }

        if (_items.Count < Capacity)
        {
            _items.Add(new(key, 1));
        }
        else
        {
            _items[min] = new(key, _items[min].Value + 1);
        }
    }

    internal void Set(string key, int count) => _items.Add(new(key, count));

    /// <summary>Becomes a copy of <paramref name="source"/>.</summary>
    internal void CopyFrom(TopCounts source)
    {
        _items.Clear();
        _items.AddRange(source._items);
    }

    /// <summary>Keys by descending count, then ordinally.</summary>
    public string[] Ranked()
    {
        var copy = _items.ToArray();
        Array.Sort(copy, static (a, b) => a.Value != b.Value ? b.Value.CompareTo(a.Value) : string.CompareOrdinal(a.Key, b.Key));
        return Array.ConvertAll(copy, static p => p.Key);
    }
}
