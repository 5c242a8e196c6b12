using System.Globalization;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;

namespace Streaming.Host.Tests;

/// <summary>One customer's events as far as the model needs them: placed and cancelled orders, and calls.</summary>
public sealed record CustomerHistory(
    string CustomerId,
    IReadOnlyList<(DateTimeOffset At, decimal Amount)> Placed,
    IReadOnlyList<(DateTimeOffset At, decimal Amount)> Cancelled,
    IReadOnlyList<(DateTimeOffset At, bool Abandoned)> Calls)
{
    /// <summary>
    /// The latest event time over every event the replay produces for the customer, whichever its topic and whether or
    /// not the model reads it (Taobao clicks included; a repeated bank call, a duplicate, changes nothing): what moves
    /// its partition's clock.
    /// </summary>
    public DateTimeOffset? LastEventAt { get; init; }
}

/// <summary>The customer model's fields (CONTRACTS.md §6, default rule pack) as the batch computation expects them.</summary>
public sealed record ExpectedModel(int? RecencyDays, int Frequency, decimal Monetary, string LifecycleStage, int ChurnRisk, long Points, string ProjectedTier);

/// <summary>
/// An independent batch computation of the customer model from the raw dataset files, for end-to-end checks of the
/// engine's live profiles. It shares no code with the engine or the connectors: the gzip files are parsed here, the
/// dataset mappings follow CONTRACTS.md §4 and the model follows the written definitions (all in UTC, whole days by
/// floor). Loaders give every customer with at least one mapped event an entry, even when none of the events matter
/// to the model (Taobao click-only users, for instance), so the result covers every profile the engine creates.
/// </summary>
public static class ModelBatch
{
    private const int YearDays = 365;

    /// <summary>
    /// Online Retail: one order event per invoice; rows without CustomerID and <c>A</c> invoices skipped; <c>C</c>
    /// invoices are cancellations; amount = |Σ Quantity × UnitPrice| over all the invoice's rows wherever they are in
    /// the file; time = the earliest row's InvoiceDate read as Europe/London local time.
    /// </summary>
    public static IReadOnlyDictionary<string, CustomerHistory> LoadOnlineRetail(string path)
    {
        var london = TimeZoneInfo.FindSystemTimeZoneById("Europe/London");
        var invoices = new Dictionary<string, Invoice>(32_768, StringComparer.Ordinal);
        var customers = new Dictionary<string, string>(8_192, StringComparer.Ordinal);
        using (var reader = OpenGzipText(path))
        {
            var header = reader.ReadLine();
            if (header is null || !header.StartsWith("InvoiceNo,", StringComparison.Ordinal))
            {
                throw new InvalidDataException($"{path}: not the Online Retail CSV (header '{header}')");
            }

            var lookup = invoices.GetAlternateLookup<ReadOnlySpan<char>>();
            var customerLookup = customers.GetAlternateLookup<ReadOnlySpan<char>>();
            var lineNumber = 1;
            string? text;
            while ((text = reader.ReadLine()) is not null)
            {
                lineNumber++;
                var line = text.AsSpan();
                if (line.IsEmpty)
                {
                    continue;
                }

                var invoiceNo = line[..line.IndexOf(',')];
                if (invoiceNo.StartsWith('A'))
                {
                    continue;
                }

                // Only Description may be quoted (and hold commas), so the last five fields are found from the right:
                // Quantity, InvoiceDate, UnitPrice, CustomerID, Country.
                var rest = line;
                var country = CutLast(ref rest);
                var customerField = CutLast(ref rest);
                if (customerField.IsEmpty)
                {
                    continue;
                }

                var unitPrice = CutLast(ref rest);
                var invoiceDate = CutLast(ref rest);
                var quantity = CutLast(ref rest);
                if (country.Contains('"') || quantity.Contains('"'))
                {
                    throw new InvalidDataException($"{path}:{lineNumber}: unexpected quoting in '{text}'");
                }

                var value = decimal.Parse(quantity, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture)
                    * decimal.Parse(unitPrice, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
                var at = DateTime.ParseExact(invoiceDate, "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture, DateTimeStyles.None);
                var dot = customerField.IndexOf('.');
                var customerDigits = dot < 0 ? customerField : customerField[..dot];

                ref var invoice = ref CollectionsMarshal.GetValueRefOrAddDefault(lookup, invoiceNo, out var seen);
                if (!seen)
                {
                    if (!customerLookup.TryGetValue(customerDigits, out var customerId))
                    {
                        customerId = customerDigits.ToString();
                        customers.Add(customerId, customerId);
                    }

                    invoice = new Invoice(customerId, value, at);
                }
                else
                {
                    if (!customerDigits.SequenceEqual(invoice.CustomerId))
                    {
                        throw new InvalidDataException($"{path}:{lineNumber}: invoice {invoiceNo} has rows of two customers");
                    }

                    invoice = new Invoice(invoice.CustomerId, invoice.Sum + value, at < invoice.EarliestLocal ? at : invoice.EarliestLocal);
                }
            }
        }

        var builders = new Dictionary<string, Builder>(StringComparer.Ordinal);
        foreach (var (invoiceNo, invoice) in invoices)
        {
            var builder = GetBuilder(builders, invoice.CustomerId);
            var order = (FromLocal(invoice.EarliestLocal, london), Math.Abs(invoice.Sum));
            (invoiceNo.StartsWith('C') ? builder.Cancelled : builder.Placed).Add(order);
            builder.Seen(order.Item1);
        }

        return Build(builders);
    }

    /// <summary>
    /// Taobao UserBehavior: customer <c>"tb-" + user_id</c>; each <c>buy</c> row is a placed order with amount 0 at the
    /// Unix-seconds timestamp. The other rows are clicks: they only make the customer known.
    /// </summary>
    public static IReadOnlyDictionary<string, CustomerHistory> LoadTaobao(string path)
    {
        var builders = new Dictionary<string, Builder>(StringComparer.Ordinal);
        using var reader = OpenGzipText(path);
        var header = reader.ReadLine();
        if (header is null || !header.StartsWith("user_id,", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path}: not a Taobao UserBehavior CSV (header '{header}')");
        }

        var lineNumber = 1;
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            lineNumber++;
            if (line.Length == 0)
            {
                continue;
            }

            var fields = Split(line, ',', 5, path, lineNumber);
            var builder = GetBuilder(builders, "tb-" + fields[0]);
            var at = DateTimeOffset.FromUnixTimeSeconds(long.Parse(fields[4], NumberStyles.None, CultureInfo.InvariantCulture));
            builder.Seen(at);
            if (fields[3] == "buy")
            {
                builder.Placed.Add((at, 0m));
            }
        }

        return Build(builders);
    }

    /// <summary>
    /// Anonymous Bank call centre: rows with customer_id 0 skipped; customer <c>"bank-" + customer_id</c> (the field as
    /// written); outcome AGENT is a completed call, anything else abandoned; time = date (YYMMDD) + vru_entry read as
    /// Asia/Jerusalem local time. Calls with the same event id (<c>vru+line:call_id</c>) for the same customer count
    /// once: the engine drops the later duplicates of a replay in (time, file) order, so the first in that order is kept.
    /// </summary>
    public static IReadOnlyDictionary<string, CustomerHistory> LoadBankCallcenter(string path)
    {
        var jerusalem = TimeZoneInfo.FindSystemTimeZoneById("Asia/Jerusalem");
        var calls = new List<(string CustomerId, string EventId, DateTimeOffset At, bool Abandoned)>();
        var builders = new Dictionary<string, Builder>(StringComparer.Ordinal);
        using (var reader = OpenGzipText(path))
        {
            var header = reader.ReadLine();
            if (header is null || !header.StartsWith("vru+line\t", StringComparison.Ordinal))
            {
                throw new InvalidDataException($"{path}: not the bank call-centre TSV (header '{header}')");
            }

            var lineNumber = 1;
            string? line;
            while ((line = reader.ReadLine()) is not null)
            {
                lineNumber++;
                if (line.Length == 0)
                {
                    continue;
                }

                var fields = Split(line, '\t', 17, path, lineNumber);
                var customer = fields[2].Trim();
                if (customer == "0")
                {
                    continue;
                }

                var date = DateTime.ParseExact(fields[5].Trim(), "yyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.None);
                var entry = TimeSpan.ParseExact(fields[6].Trim(), @"h\:mm\:ss", CultureInfo.InvariantCulture);
                var eventId = "bank:" + fields[0].Trim() + ":" + fields[1].Trim();
                calls.Add(("bank-" + customer, eventId, FromLocal(date + entry, jerusalem), fields[12].Trim() != "AGENT"));
            }
        }

        // A stable sort keeps file order among equal times, like the replay.
        var seen = new HashSet<(string, string)>();
        foreach (var call in calls.OrderBy(c => c.At))
        {
            var builder = GetBuilder(builders, call.CustomerId);
            if (seen.Add((call.CustomerId, call.EventId)))
            {
                builder.Calls.Add((call.At, call.Abandoned));
                builder.Seen(call.At); // a repeated call changes nothing, its partition's clock included
            }
        }

        return Build(builders);
    }

    /// <summary>The model of one customer at <paramref name="asOf"/>, from the definitions in the file's summary.</summary>
    public static ExpectedModel Evaluate(CustomerHistory history, DateTimeOffset asOf)
    {
        ArgumentNullException.ThrowIfNull(history);
        var placed = history.Placed.Select(p => p.At).Order().ToList();
        var n = placed.Count;

        var frequency = 0;
        var placedAmount = 0m;
        var placedPoints = 0L;
        var placedIn90 = false;
        foreach (var (at, amount) in history.Placed)
        {
            placedIn90 |= InWindow(at, asOf, 90);
            if (InWindow(at, asOf, YearDays))
            {
                frequency++;
                placedAmount += amount;
                placedPoints += (long)decimal.Floor(amount);
            }
        }

        var cancelledAmount = 0m;
        var cancelledPoints = 0L;
        foreach (var (at, amount) in history.Cancelled)
        {
            if (InWindow(at, asOf, YearDays))
            {
                cancelledAmount += amount;
                cancelledPoints += (long)decimal.Floor(amount);
            }
        }

        int? recencyDays = n == 0 ? null : (int)Math.Max(0, DaysBetween(placed[^1], asOf));
        var points = Math.Max(0, placedPoints - cancelledPoints);

        var r = recencyDays switch
        {
            null => 0,
            > 365 => 50,
            > 180 => 40,
            > 90 => 25,
            > 30 => 10,
            _ => 0,
        };
        var f = n >= 2 && frequency == 0 ? 20 : n >= 2 && !placedIn90 ? 10 : 0;
        var calls30 = 0;
        var abandoned30 = 0;
        foreach (var (at, abandoned) in history.Calls)
        {
            if (InWindow(at, asOf, 30))
            {
                calls30++;
                abandoned30 += abandoned ? 1 : 0;
            }
        }

        var s = Math.Min(30, (10 * abandoned30) + (5 * calls30));

        return new ExpectedModel(
            recencyDays,
            frequency,
            placedAmount - cancelledAmount,
            LifecycleStage(placed, asOf),
            Math.Min(100, r + f + s),
            points,
            points >= 5000 ? "platinum" : points >= 2000 ? "gold" : points >= 500 ? "silver" : "member");
    }

    public static IReadOnlyDictionary<string, ExpectedModel> EvaluateAll(IReadOnlyDictionary<string, CustomerHistory> histories, Func<string, DateTimeOffset> asOfFor)
    {
        ArgumentNullException.ThrowIfNull(histories);
        ArgumentNullException.ThrowIfNull(asOfFor);
        var result = new Dictionary<string, ExpectedModel>(histories.Count, StringComparer.Ordinal);
        foreach (var (customerId, history) in histories)
        {
            result.Add(customerId, Evaluate(history, asOfFor(customerId)));
        }

        return result;
    }

    /// <summary>Placed-order times in ascending order; every order counts, also those after <paramref name="asOf"/>.</summary>
    private static string LifecycleStage(List<DateTimeOffset> placed, DateTimeOffset asOf)
    {
        if (placed.Count == 0)
        {
            return "prospect";
        }

        DateTimeOffset? winBack = null;
        for (var i = 1; i < placed.Count; i++)
        {
            if (DaysBetween(placed[i - 1], placed[i]) > 180)
            {
                winBack = placed[i];
            }
        }

        if (winBack is { } w && DaysBetween(w, asOf) < 90)
        {
            return "won_back";
        }

        if (placed.Count == 1 && DaysBetween(placed[0], asOf) < 30)
        {
            return "new";
        }

        return DaysBetween(placed[^1], asOf) switch
        {
            <= 90 => "active",
            <= 180 => "at_risk",
            <= 365 => "dormant",
            _ => "churned",
        };
    }

    private static long Day(DateTimeOffset t) => t.UtcTicks / TimeSpan.TicksPerDay;

    /// <summary>Whole days from a to b, rounded down (so negative when b is before a).</summary>
    private static long DaysBetween(DateTimeOffset a, DateTimeOffset b)
    {
        var ticks = b.UtcTicks - a.UtcTicks;
        var days = ticks / TimeSpan.TicksPerDay;
        return ticks < 0 && ticks % TimeSpan.TicksPerDay != 0 ? days - 1 : days;
    }

    private static bool InWindow(DateTimeOffset at, DateTimeOffset now, int days) => Day(at) > Day(now) - days;

    private static DateTimeOffset FromLocal(DateTime local, TimeZoneInfo zone)
    {
        var unspecified = DateTime.SpecifyKind(local, DateTimeKind.Unspecified);
        return new DateTimeOffset(unspecified, zone.GetUtcOffset(unspecified)).ToUniversalTime();
    }

    private static StreamReader OpenGzipText(string path) =>
        new(new GZipStream(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16), CompressionMode.Decompress), Encoding.UTF8, false, 1 << 16);

    /// <summary>The text after the last comma of <paramref name="rest"/>, which is shortened to the text before it.</summary>
    private static ReadOnlySpan<char> CutLast(ref ReadOnlySpan<char> rest)
    {
        var comma = rest.LastIndexOf(',');
        if (comma < 0)
        {
            throw new InvalidDataException("too few fields in an Online Retail row");
        }

        var field = rest[(comma + 1)..];
        rest = rest[..comma];
        return field;
    }

    /// <summary>Splits an unquoted delimited line that must have exactly <paramref name="count"/> fields.</summary>
    private static string[] Split(string line, char separator, int count, string path, int lineNumber)
    {
        var fields = line.Split(separator);
        return fields.Length == count ? fields : throw new InvalidDataException($"{path}:{lineNumber}: expected {count} fields in '{line}'");
    }

    private static Builder GetBuilder(Dictionary<string, Builder> builders, string customerId)
    {
        if (!builders.TryGetValue(customerId, out var builder))
        {
            builder = new Builder();
            builders.Add(customerId, builder);
        }

        return builder;
    }

    private static Dictionary<string, CustomerHistory> Build(Dictionary<string, Builder> builders)
    {
        var result = new Dictionary<string, CustomerHistory>(builders.Count, StringComparer.Ordinal);
        foreach (var (customerId, b) in builders)
        {
            b.Placed.Sort((x, y) => x.At.CompareTo(y.At));
            b.Cancelled.Sort((x, y) => x.At.CompareTo(y.At));
            result.Add(customerId, new CustomerHistory(customerId, b.Placed, b.Cancelled, b.Calls) { LastEventAt = b.Latest });
        }

        return result;
    }

    private readonly record struct Invoice(string CustomerId, decimal Sum, DateTime EarliestLocal);

    private sealed class Builder
    {
        public List<(DateTimeOffset At, decimal Amount)> Placed { get; } = [];

        public List<(DateTimeOffset At, decimal Amount)> Cancelled { get; } = [];

        public List<(DateTimeOffset At, bool Abandoned)> Calls { get; } = [];

        public DateTimeOffset? Latest { get; private set; }

        public void Seen(DateTimeOffset at)
        {
            if (Latest is not { } latest || at > latest)
            {
                Latest = at;
            }
        }
    }
}
