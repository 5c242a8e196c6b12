using Streaming.Engine.Events;
using Streaming.Engine.Model;

namespace Streaming.Connectors.Datasets;

/// <summary>
/// The demo's single population, joined from the three real datasets (CONTRACTS.md §4 allows it; the single-dataset
/// replays stay exact):
/// <list type="bullet">
/// <item>Ids: the k-th Taobao shopper and the k-th bank caller (in order of first appearance) become the k-th Online
/// Retail customer (in order of first appearance); those beyond the retail population keep their own ids
/// (<c>tb-…</c>, <c>bank-…</c>).</item>
/// <item>Time: Taobao (late November 2017) moves back 6 years and the bank calls (January–February 1999) forward 12
/// years, so all of it falls inside the retail year 2010-12 → 2011-12.</item>
/// <item>Attributes: each retail customer gets synthetic <c>attributes</c> (birthday, time zone Europe/London, country)
/// and <c>consent</c> events derived from a hash of the id, at the start of the stream.</item>
/// <item>Order: the sources are merged by event time into one stream.</item>
/// </list>
/// Everything is deterministic: the same files give the same events.
/// </summary>
public static class DemoPopulation
{
    public const int TaobaoYears = -6;
    public const int BankYears = 12;

    /// <summary>Streams the joined population from <paramref name="dataDir"/>.</summary>
    public static IEnumerable<ReplayRecord> Read(string dataDir)
    {
        var retailPath = Path.Combine(dataDir, Datasets.DefaultFile(Datasets.OnlineRetail));
        var retailIds = RetailCustomerIds(retailPath);
        var start = FirstEventTime(retailPath);

        using var retail = new DatasetFile(retailPath);
        using var taobao = new DatasetFile(Path.Combine(dataDir, Datasets.DefaultFile(Datasets.Taobao)));
        using var bank = new DatasetFile(Path.Combine(dataDir, Datasets.DefaultFile(Datasets.BankCallcenter)));
        var sources = new List<IEnumerator<TimedRecord>>
        {
            Attributes(retailIds, start).GetEnumerator(),
            Datasets.Read(Datasets.OnlineRetail, retail).Select(RecordRewriter.Timed).GetEnumerator(),
            Mapped(Datasets.Read(Datasets.Taobao, taobao), retailIds, TaobaoYears).GetEnumerator(),
            Mapped(Datasets.Read(Datasets.BankCallcenter, bank), retailIds, BankYears).GetEnumerator(),
        };
        foreach (var record in Merge(sources))
        {
            yield return record;
        }
    }

    /// <summary>Synthetic, deterministic birthday and consent for a customer id.</summary>
    public static (DateOnly Birthday, bool Voice, bool Sms, bool Email) Synthetic(string customerId)
    {
        var h = IdHash.Fnv1a64("demo:" + customerId);
        var birthday = new DateOnly(1950, 1, 1).AddDays((int)(h % 18_262));
        return (birthday, (h >> 20) % 10 < 7, (h >> 30) % 10 < 8, (h >> 40) % 10 < 6);
    }

    private static List<string> RetailCustomerIds(string path)
    {
        using var file = new DatasetFile(path);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var ids = new List<string>();
        foreach (var record in Datasets.Read(Datasets.OnlineRetail, file))
        {
            if (seen.Add(record.Key))
            {
                ids.Add(record.Key);
            }
        }

        return ids;
    }

    private static DateTimeOffset FirstEventTime(string path)
    {
        using var file = new DatasetFile(path);
        var first = Datasets.Read(Datasets.OnlineRetail, file).First();
        return RecordRewriter.Timed(first).At;
    }

    private static IEnumerable<TimedRecord> Attributes(List<string> retailIds, DateTimeOffset start)
    {
        var at = new DateTimeOffset(start.Date, TimeSpan.Zero);
        var json = new EventJson();
        foreach (var id in retailIds)
        {
            var (birthday, voice, sms, email) = Synthetic(id);
            var w = json.Begin("demo:attributes:" + id, id, at, "attributes");
            w.WriteStartObject("attributes");
            w.WriteString("birthday", birthday.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture));
            w.WriteString("timeZone", "Europe/London");
            w.WriteEndObject();
            yield return new TimedRecord(at, new ReplayRecord(Topics.CustomerUpdates, id, json.End()));

            var c = json.Begin("demo:consent:" + id, id, at, "consent");
            c.WriteStartObject("consent");
            c.WriteBoolean("voice", voice);
            c.WriteBoolean("sms", sms);
            c.WriteBoolean("email", email);
            c.WriteEndObject();
            yield return new TimedRecord(at, new ReplayRecord(Topics.CustomerUpdates, id, json.End()));
        }
    }

    /// <summary>Maps each source customer, by rank of first appearance, onto a retail customer, and shifts time.</summary>
    private static IEnumerable<TimedRecord> Mapped(IEnumerable<ReplayRecord> records, List<string> retailIds, int addYears)
    {
        var mapping = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var record in records)
        {
            if (!mapping.TryGetValue(record.Key, out var id))
            {
                id = mapping.Count < retailIds.Count ? retailIds[mapping.Count] : record.Key;
                mapping.Add(record.Key, id);
            }

            yield return RecordRewriter.Rewrite(record, id, "", addYears);
        }
    }

    /// <summary>Merges time-ordered sources into one stream ordered by event time (ties: source order).</summary>
    private static IEnumerable<ReplayRecord> Merge(List<IEnumerator<TimedRecord>> sources)
    {
        var heads = new PriorityQueue<int, (DateTimeOffset, int)>();
        for (var i = 0; i < sources.Count; i++)
        {
            if (sources[i].MoveNext())
            {
                heads.Enqueue(i, (sources[i].Current.At, i));
            }
        }

        while (heads.TryDequeue(out var i, out _))
        {
            yield return sources[i].Current.Record;
            if (sources[i].MoveNext())
            {
                heads.Enqueue(i, (sources[i].Current.At, i));
            }
        }

        foreach (var source in sources)
        {
            source.Dispose();
        }
    }
}
