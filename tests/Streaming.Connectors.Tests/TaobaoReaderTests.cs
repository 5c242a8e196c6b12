using System.Globalization;
using System.Text;
using System.Text.Json;
using Streaming.Connectors.Datasets;
using Streaming.Engine.Events;

namespace Streaming.Connectors.Tests;

public sealed class TaobaoFixture
{
    public const string FileName = "taobao_userbehavior_814_users.csv.gz";

    public TaobaoFixture()
    {
        var path = TestData.PathOf(FileName);
        using (var file = new DatasetFile(path))
        {
            Records = [.. Datasets.Datasets.Read(Datasets.Datasets.Taobao, file)];
        }

        Lines = TestData.ReadGzipLines(path);
    }

    public List<ReplayRecord> Records { get; }

    /// <summary>Every line of the file, header first (index i is line number i + 1).</summary>
    public List<string> Lines { get; }
}

public sealed class TaobaoReaderTests(TaobaoFixture data) : IClassFixture<TaobaoFixture>
{
    private static JsonElement Json(ReplayRecord r) => JsonSerializer.Deserialize<JsonElement>(r.Value);

    [Fact]
    public void One_event_per_data_row()
    {
        Assert.Equal("user_id,item_id,category_id,behavior_type,timestamp", data.Lines[0]);
        var dataRows = data.Lines.Skip(1).Count(l => l.Length > 0);

        Assert.True(dataRows > 80_000, $"only {dataRows} rows");
        Assert.Equal(dataRows, data.Records.Count);
    }

    [Fact]
    public void First_data_row_is_line_two()
    {
        // 1,2268318,2520377,pv,1511544070
        var json = Json(data.Records[0]);

        Assert.Equal("taobao:2", json.GetProperty("eventId").GetString());
        Assert.Equal("tb-1", json.GetProperty("customerId").GetString());
        Assert.Equal("product_view", json.GetProperty("type").GetString());
        Assert.Equal("2268318", json.GetProperty("productId").GetString());
        Assert.Equal("2520377", json.GetProperty("categoryId").GetString());
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1511544070), json.GetProperty("occurredAt").GetDateTimeOffset());
        Assert.Equal("2017-11-24T17:21:10+00:00", json.GetProperty("occurredAt").GetString());
        Assert.Equal(Topics.Clickstream, data.Records[0].Topic);
    }

    [Fact]
    public void Every_row_maps_to_its_event()
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < data.Records.Count; i++)
        {
            var record = data.Records[i];
            var lineNumber = i + 2;
            var f = data.Lines[lineNumber - 1].Split(',');
            var json = Json(record);
            var customerId = "tb-" + f[0];
            var behavior = f[3];
            counts[behavior] = counts.GetValueOrDefault(behavior) + 1;

            Assert.Equal("taobao:" + lineNumber.ToString(CultureInfo.InvariantCulture), json.GetProperty("eventId").GetString());
            Assert.Equal(customerId, record.Key);
            Assert.Equal(customerId, json.GetProperty("customerId").GetString());
            var at = DateTimeOffset.UnixEpoch.AddSeconds(long.Parse(f[4], CultureInfo.InvariantCulture));
            Assert.Equal(at, json.GetProperty("occurredAt").GetDateTimeOffset());

            if (behavior == "buy")
            {
                Assert.Equal(Topics.Orders, record.Topic);
                Assert.Equal("order_placed", json.GetProperty("type").GetString());
                Assert.Equal(0m, json.GetProperty("amount").GetDecimal());
                Assert.Equal(0, json.GetProperty("items").GetArrayLength());
                Assert.False(string.IsNullOrEmpty(json.GetProperty("orderId").GetString()));
            }
            else
            {
                var expectedType = behavior switch
                {
                    "pv" => "product_view",
                    "cart" => "add_to_cart",
                    "fav" => "favorite",
                    _ => throw new InvalidDataException($"line {lineNumber}: unexpected behavior '{behavior}'"),
                };
                Assert.Equal(Topics.Clickstream, record.Topic);
                Assert.Equal(expectedType, json.GetProperty("type").GetString());
                Assert.Equal(f[1], json.GetProperty("productId").GetString());
                Assert.Equal(f[2], json.GetProperty("categoryId").GetString());
            }
        }

        Assert.Equal(data.Records.Count(r => r.Topic == Topics.Orders), counts.GetValueOrDefault("buy"));
        Assert.True(counts.GetValueOrDefault("buy") > 0);
        Assert.True(counts.GetValueOrDefault("cart") > 0);
        Assert.True(counts.GetValueOrDefault("fav") > 0);
    }

    [Fact]
    public void Event_ids_are_unique()
    {
        var ids = data.Records.Select(r => Json(r).GetProperty("eventId").GetString()).ToHashSet(StringComparer.Ordinal);

        Assert.Equal(data.Records.Count, ids.Count);
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
            Assert.Equal(record.Key, evt!.CustomerId);
            if (topic == InputTopic.Orders)
            {
                Assert.Equal(0m, Assert.IsType<OrderEvent>(evt).Amount);
            }
            else
            {
                Assert.IsType<ClickEvent>(evt);
            }
        }
    }
}
