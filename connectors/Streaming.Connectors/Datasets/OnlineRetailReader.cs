using System.Globalization;
using Streaming.Engine.Events;

namespace Streaming.Connectors.Datasets;

/// <summary>
/// UCI Online Retail (CONTRACTS.md §4): one <c>orders</c> event per invoice. An invoice's rows are summed exactly; its
/// <c>occurredAt</c> is the InvoiceDate of its first row, read as Europe/London. The file is in time order but a few
/// invoices straddle a minute or are interleaved with others, so invoices stay open for an hour of file time before
/// they are emitted.
/// </summary>
public static class OnlineRetailReader
{
    private static readonly TimeSpan s_holdOpen = TimeSpan.FromHours(1);

    public static IEnumerable<ReplayRecord> Read(DatasetFile file)
    {
        var london = TimeZoneInfo.FindSystemTimeZoneById("Europe/London");
        var header = file.ReadLine() ?? throw new InvalidDataException($"{file.Path}: empty file");
        if (!header.StartsWith("InvoiceNo,", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{file.Path}: not the Online Retail CSV (header '{header}')");
        }

        var open = new Dictionary<string, Invoice>(StringComparer.Ordinal);
        var order = new List<Invoice>();
        var fields = new List<string>(8);
        var json = new EventJson();
        string? line;
        while ((line = file.ReadLine()) is not null)
        {
            Csv.Split(line, ',', fields);
            if (fields.Count < 8)
            {
                throw new InvalidDataException($"{file.Path}:{file.LineNumber}: expected 8 columns, found {fields.Count}");
            }

            var invoiceNo = fields[0];
            var customer = fields[6];
            if (customer.Length == 0 || invoiceNo.StartsWith('A'))
            {
                continue;
            }

            var at = DateTime.ParseExact(fields[4], "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);

            // Emit invoices whose last row is more than an hour older than this row.
            if (order.Count > 0 && at - order[0].LastRowAt > s_holdOpen)
            {
                var keep = new List<Invoice>();
                foreach (var inv in order)
                {
                    if (at - inv.LastRowAt > s_holdOpen)
                    {
                        open.Remove(inv.InvoiceNo);
                        yield return ToRecord(inv, london, json);
                    }
                    else
                    {
                        keep.Add(inv);
                    }
                }

                order = keep;
            }

            if (!open.TryGetValue(invoiceNo, out var invoice))
            {
                invoice = new Invoice(invoiceNo, CustomerIdOf(customer, file), at, fields[7]);
                open.Add(invoiceNo, invoice);
                order.Add(invoice);
            }

            var quantity = decimal.Parse(fields[3], NumberStyles.Integer | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
            var unitPrice = decimal.Parse(fields[5], NumberStyles.Number, CultureInfo.InvariantCulture);
            invoice.Total += quantity * unitPrice;
            invoice.LastRowAt = at;
            invoice.Items.Add(new Item(fields[1], fields[2], quantity, unitPrice));
        }

        foreach (var inv in order)
        {
            yield return ToRecord(inv, london, json);
        }
    }

    /// <summary>"17850.0" → "17850".</summary>
    internal static string CustomerIdOf(string raw, DatasetFile? file = null)
    {
        var dot = raw.IndexOf('.');
        var integer = dot < 0 ? raw : raw[..dot];
        if (integer.Length == 0 || !integer.All(char.IsAsciiDigit))
        {
            throw new InvalidDataException($"{file?.Path}:{file?.LineNumber}: CustomerID '{raw}' is not a number");
        }

        return integer;
    }

    private static ReplayRecord ToRecord(Invoice inv, TimeZoneInfo london, EventJson json)
    {
        var cancelled = inv.InvoiceNo.StartsWith('C');
        var w = json.Begin("online-retail:" + inv.InvoiceNo, inv.CustomerId, EventJson.Local(inv.FirstRowAt, london), cancelled ? "order_cancelled" : "order_placed");
        w.WriteString("orderId", inv.InvoiceNo);
        w.WriteNumber("amount", Math.Abs(inv.Total));
        w.WriteString("currency", "GBP");
        w.WriteString("channel", "online");
        w.WriteString("country", inv.Country);
        w.WriteStartArray("items");
        foreach (var item in inv.Items)
        {
            w.WriteStartObject();
            w.WriteString("sku", item.Sku);
            w.WriteString("description", item.Description);
            w.WriteNumber("quantity", item.Quantity);
            w.WriteNumber("unitPrice", item.UnitPrice);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        return new ReplayRecord(Topics.Orders, inv.CustomerId, json.End());
    }

    private sealed class Invoice(string invoiceNo, string customerId, DateTime firstRowAt, string country)
    {
        public string InvoiceNo { get; } = invoiceNo;
        public string CustomerId { get; } = customerId;
        public DateTime FirstRowAt { get; } = firstRowAt;
        public string Country { get; } = country;
        public DateTime LastRowAt { get; set; } = firstRowAt;
        public decimal Total { get; set; }
        public List<Item> Items { get; } = [];
    }

    private readonly record struct Item(string Sku, string Description, decimal Quantity, decimal UnitPrice);
}
