using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace Streaming.Host.Tests;

/// <summary>
/// An independent batch computation of every customer's <c>orders</c> block straight from the Online Retail CSV,
/// following CONTRACTS.md §4/§5 and sharing no code with the engine or the replay: all rows of an invoice are summed
/// wherever they appear in the file, and an invoice's time is the earliest of its rows.
/// </summary>
public static class OnlineRetailBatch
{
    public sealed record Expected(int Count, int CancelledCount, decimal Gross, decimal Refund, DateTimeOffset? FirstAt, DateTimeOffset? LastAt)
    {
        public decimal Net => Gross - Refund;
    }

    public sealed record Result(IReadOnlyDictionary<string, Expected> Customers, int Invoices);

    public static Result Compute(string path)
    {
        var london = TimeZoneInfo.FindSystemTimeZoneById("Europe/London");
        var invoices = new Dictionary<string, (string Customer, decimal Sum, DateTime At)>();
        using (var reader = new StreamReader(new GZipStream(File.OpenRead(path), CompressionMode.Decompress), Encoding.UTF8))
        {
            reader.ReadLine();
            string? line;
            while ((line = reader.ReadLine()) is not null)
            {
                var f = ParseCsv(line);
                var invoice = f[0];
                var customer = f[6];
                if (customer.Length == 0 || invoice.StartsWith('A'))
                {
                    continue;
                }

                var id = customer.Split('.')[0];
                var value = decimal.Parse(f[3], CultureInfo.InvariantCulture) * decimal.Parse(f[5], CultureInfo.InvariantCulture);
                var at = DateTime.Parse(f[4], CultureInfo.InvariantCulture);
                invoices[invoice] = invoices.TryGetValue(invoice, out var acc)
                    ? (acc.Customer, acc.Sum + value, at < acc.At ? at : acc.At)
                    : (id, value, at);
            }
        }

        var work = new Dictionary<string, (int Count, int Cancelled, decimal Gross, decimal Refund, DateTimeOffset? First, DateTimeOffset? Last)>();
        foreach (var (invoice, (customer, sum, at)) in invoices)
        {
            var local = DateTime.SpecifyKind(at, DateTimeKind.Unspecified);
            var instant = new DateTimeOffset(local, london.GetUtcOffset(local));
            work.TryGetValue(customer, out var c);
            if (invoice.StartsWith('C'))
            {
                c.Cancelled++;
                c.Refund += Math.Abs(sum);
            }
            else
            {
                c.Count++;
                c.Gross += Math.Abs(sum);
                c.First = c.First is null || instant < c.First ? instant : c.First;
                c.Last = c.Last is null || instant > c.Last ? instant : c.Last;
            }

            work[customer] = c;
        }

        return new Result(
            work.ToDictionary(kv => kv.Key, kv => new Expected(kv.Value.Count, kv.Value.Cancelled, kv.Value.Gross, kv.Value.Refund, kv.Value.First, kv.Value.Last)),
            invoices.Count);
    }

    /// <summary>A minimal CSV field splitter: commas, and double-quoted fields with "" escapes.</summary>
    private static List<string> ParseCsv(string line)
    {
        var fields = new List<string>();
        var current = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < line.Length; i++)
        {
            var ch = line[i];
            if (quoted)
            {
                if (ch == '"' && i + 1 < line.Length && line[i + 1] == '"')
                {
                    current.Append('"');
                    i++;
                }
                else if (ch == '"')
                {
                    quoted = false;
                }
                else
                {
                    current.Append(ch);
                }
            }
            else if (ch == '"')
            {
                quoted = true;
            }
            else if (ch == ',')
            {
                fields.Add(current.ToString());
                current.Clear();
            }
            else
            {
                current.Append(ch);
            }
        }

        fields.Add(current.ToString());
        return fields;
    }
}
