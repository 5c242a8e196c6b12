using System.Globalization;
using System.Text;
using System.Text.Json;
using Streaming.Connectors.Datasets;
using Streaming.Engine.Events;

namespace Streaming.Connectors.Tests;

/// <summary>Reads the Online Retail file twice: through the production reader, and row by row with the test's own CSV code.</summary>
public sealed class OnlineRetailFixture
{
    public const string FileName = "online_retail_2010_2011.csv.gz";

    public OnlineRetailFixture()
    {
        var path = TestData.PathOf(FileName);
        using (var file = new DatasetFile(path))
        {
            Records = [.. Datasets.Datasets.Read(Datasets.Datasets.OnlineRetail, file)];
        }

        var lines = TestData.ReadGzipLines(path);
        Assert.Equal("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country", lines[0]);
        for (var i = 1; i < lines.Count; i++)
        {
            var f = ReferenceCsv.Split(lines[i], ',');
            Assert.Equal(8, f.Count);
            var invoiceNo = f[0];
            if (f[6].Length == 0 || invoiceNo.StartsWith('A'))
            {
                continue;
            }

            if (!Invoices.TryGetValue(invoiceNo, out var invoice))
            {
                invoice = new RawInvoice(invoiceNo, f[6], f[4], f[7]);
                Invoices.Add(invoiceNo, invoice);
            }

            invoice.Rows.Add((f[1], f[2], f[3], f[5]));
        }
    }

    public List<ReplayRecord> Records { get; }

    /// <summary>Invoices with a CustomerID and not starting with 'A', keyed by InvoiceNo.</summary>
    public Dictionary<string, RawInvoice> Invoices { get; } = new(StringComparer.Ordinal);

    public sealed class RawInvoice(string invoiceNo, string customerId, string firstDate, string country)
    {
        public string InvoiceNo { get; } = invoiceNo;
        public string CustomerIdRaw { get; } = customerId;
        public string FirstDate { get; } = firstDate;
        public string Country { get; } = country;
        public List<(string Sku, string Description, string Quantity, string UnitPrice)> Rows { get; } = [];

        public decimal Sum()
        {
            var sum = 0m;
            foreach (var row in Rows)
            {
                sum += decimal.Parse(row.Quantity, NumberStyles.Float, CultureInfo.InvariantCulture)
                    * decimal.Parse(row.UnitPrice, NumberStyles.Float, CultureInfo.InvariantCulture);
            }

            return sum;
        }
    }
}

public sealed class OnlineRetailReaderTests(OnlineRetailFixture data) : IClassFixture<OnlineRetailFixture>
{
    private static JsonElement Json(ReplayRecord r) => JsonSerializer.Deserialize<JsonElement>(r.Value);

    private static string OrderIdOf(ReplayRecord r) => Json(r).GetProperty("orderId").GetString()!;

    private ReplayRecord Find(string invoiceNo) => Assert.Single(data.Records, r => OrderIdOf(r) == invoiceNo);

    /// <summary>UK summer time in 2011: from 27 March 01:00 GMT (02:00 local) to 30 October 01:00 GMT (02:00 local BST).</summary>
    private static TimeSpan LondonOffset(DateTime local) =>
        local >= new DateTime(2011, 3, 27, 2, 0, 0) && local < new DateTime(2011, 10, 30, 1, 0, 0) ? TimeSpan.FromHours(1) : TimeSpan.Zero;

    [Fact]
    public void One_event_per_distinct_invoice_with_a_customer()
    {
        Assert.True(data.Invoices.Count > 20_000, $"only {data.Invoices.Count} invoices parsed");
        Assert.Equal(data.Invoices.Count, data.Records.Count);
    }

    [Fact]
    public void Event_ids_are_unique_and_name_the_invoices()
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var record in data.Records)
        {
            var id = Json(record).GetProperty("eventId").GetString()!;
            Assert.True(ids.Add(id), $"duplicate eventId {id}");
        }

        var expected = data.Invoices.Keys.Select(k => "online-retail:" + k).ToHashSet(StringComparer.Ordinal);
        Assert.True(expected.SetEquals(ids));
    }

    [Fact]
    public void Every_event_matches_the_rows_of_its_invoice()
    {
        foreach (var record in data.Records)
        {
            var json = Json(record);
            var orderId = json.GetProperty("orderId").GetString()!;
            var raw = data.Invoices[orderId];
            var customerId = ((long)decimal.Parse(raw.CustomerIdRaw, CultureInfo.InvariantCulture)).ToString(CultureInfo.InvariantCulture);
            var cancelled = orderId.StartsWith('C');

            Assert.Equal(Topics.Orders, record.Topic);
            Assert.Equal(customerId, record.Key);
            Assert.Equal(customerId, json.GetProperty("customerId").GetString());
            Assert.Equal("online-retail:" + orderId, json.GetProperty("eventId").GetString());
            Assert.Equal(cancelled ? "order_cancelled" : "order_placed", json.GetProperty("type").GetString());
            var amount = json.GetProperty("amount").GetDecimal();
            Assert.True(amount >= 0, $"{orderId}: negative amount {amount}");
            Assert.Equal(Math.Abs(raw.Sum()), amount);
            Assert.Equal("GBP", json.GetProperty("currency").GetString());
            Assert.Equal("online", json.GetProperty("channel").GetString());
            Assert.Equal(raw.Country, json.GetProperty("country").GetString());

            var items = json.GetProperty("items");
            Assert.Equal(raw.Rows.Count, items.GetArrayLength());
            var i = 0;
            foreach (var item in items.EnumerateArray())
            {
                var row = raw.Rows[i++];
                Assert.Equal(row.Sku, item.GetProperty("sku").GetString());
                Assert.Equal(row.Description, item.GetProperty("description").GetString());
                Assert.Equal(decimal.Parse(row.Quantity, CultureInfo.InvariantCulture), item.GetProperty("quantity").GetDecimal());
                Assert.Equal(decimal.Parse(row.UnitPrice, CultureInfo.InvariantCulture), item.GetProperty("unitPrice").GetDecimal());
            }

            var local = DateTime.ParseExact(raw.FirstDate, "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
            var expectedAt = new DateTimeOffset(local, LondonOffset(local));
            var occurredAt = json.GetProperty("occurredAt").GetString()!;
            Assert.Equal(expectedAt.ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture), occurredAt);
        }
    }

    [Fact]
    public void Invoice_536365_spot_check()
    {
        var json = Json(Find("536365"));

        Assert.Equal("17850", json.GetProperty("customerId").GetString());
        Assert.Equal("order_placed", json.GetProperty("type").GetString());
        Assert.Equal("2010-12-01T08:26:00+00:00", json.GetProperty("occurredAt").GetString());

        // 6×2.55 + 6×3.39 + 8×2.75 + 6×3.39 + 6×3.39 + 2×7.65 + 6×4.25, by hand.
        Assert.Equal(139.12m, json.GetProperty("amount").GetDecimal());
        Assert.Equal(data.Invoices["536365"].Sum(), json.GetProperty("amount").GetDecimal());
        Assert.Equal(7, json.GetProperty("items").GetArrayLength());
        Assert.Equal("United Kingdom", json.GetProperty("country").GetString());
    }

    [Fact]
    public void Cancellation_invoice_becomes_order_cancelled_with_the_refunded_amount()
    {
        // C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom
        var json = Json(Find("C536379"));

        Assert.Equal("order_cancelled", json.GetProperty("type").GetString());
        Assert.Equal("14527", json.GetProperty("customerId").GetString());
        Assert.Equal(27.5m, json.GetProperty("amount").GetDecimal());
        Assert.Equal("2010-12-01T09:41:00+00:00", json.GetProperty("occurredAt").GetString());

        var cancellations = data.Records.Count(r => OrderIdOf(r).StartsWith('C'));
        Assert.Equal(data.Invoices.Keys.Count(k => k.StartsWith('C')), cancellations);
        Assert.All(
            data.Records.Where(r => OrderIdOf(r).StartsWith('C')),
            r => Assert.Equal("order_cancelled", Json(r).GetProperty("type").GetString()));
    }

    [Fact]
    public void Summer_invoice_has_the_british_summer_time_offset()
    {
        // 558638,...,2011-07-01 08:16:00,...,16317.0: 08:16 BST is 07:16 UTC.
        var json = Json(Find("558638"));

        Assert.Equal("2011-07-01T08:16:00+01:00", json.GetProperty("occurredAt").GetString());
        Assert.Equal(new DateTimeOffset(2011, 7, 1, 7, 16, 0, TimeSpan.Zero), json.GetProperty("occurredAt").GetDateTimeOffset());
        Assert.Equal("16317", json.GetProperty("customerId").GetString());
    }

    [Fact]
    public void Rows_without_customer_and_adjustment_invoices_are_skipped()
    {
        var orderIds = data.Records.Select(OrderIdOf).ToHashSet(StringComparer.Ordinal);

        // 536414 and 536544 have no CustomerID; A563185 is an "Adjust bad debt" invoice.
        Assert.DoesNotContain("536414", orderIds);
        Assert.DoesNotContain("536544", orderIds);
        Assert.DoesNotContain("A563185", orderIds);
        Assert.DoesNotContain(orderIds, id => id.StartsWith('A'));
    }

    [Fact]
    public void Every_record_decodes_with_the_engine_decoder()
    {
        var decoder = new EventDecoder();
        foreach (var record in data.Records)
        {
            Assert.True(Topics.TryParseInput(record.Topic, out var topic), record.Topic);
            var ok = decoder.TryDecode(topic, Encoding.UTF8.GetBytes(record.Key), record.Value, out var evt, out var error);
            Assert.True(ok, $"{Encoding.UTF8.GetString(record.Value)}: {error}");
            var order = Assert.IsType<OrderEvent>(evt);
            Assert.Equal(record.Key, order.CustomerId);
        }
    }
}
