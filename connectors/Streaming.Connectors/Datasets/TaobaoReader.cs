using System.Globalization;
using Streaming.Engine.Events;

namespace Streaming.Connectors.Datasets;

/// <summary>
/// Taobao UserBehavior (CONTRACTS.md §4): each row one event; <c>buy</c> becomes an <c>orders</c> <c>order_placed</c>
/// with amount 0. <c>eventId</c> is <c>taobao:</c> + the 1-based line number in the file (the header is line 1).
/// </summary>
public static class TaobaoReader
{
    public static IEnumerable<ReplayRecord> Read(DatasetFile file)
    {
        var header = file.ReadLine() ?? throw new InvalidDataException($"{file.Path}: empty file");
        if (!header.StartsWith("user_id,", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{file.Path}: not a Taobao UserBehavior CSV (header '{header}')");
        }

        var fields = new List<string>(5);
        var json = new EventJson();
        string? line;
        while ((line = file.ReadLine()) is not null)
        {
            Csv.Split(line, ',', fields);
            if (fields.Count < 5 || !long.TryParse(fields[4], NumberStyles.Integer, CultureInfo.InvariantCulture, out var unix))
            {
                throw new InvalidDataException($"{file.Path}:{file.LineNumber}: expected user_id,item_id,category_id,behavior_type,timestamp");
            }

            var customerId = "tb-" + fields[0];
            var eventId = "taobao:" + file.LineNumber.ToString(CultureInfo.InvariantCulture);
            var at = DateTimeOffset.FromUnixTimeSeconds(unix);
            if (fields[3] == "buy")
            {
                var w = json.Begin(eventId, customerId, at, "order_placed");
                w.WriteString("orderId", eventId);
                w.WriteNumber("amount", 0m);
                w.WriteString("channel", "online");
                w.WriteStartArray("items");
                w.WriteEndArray();
                yield return new ReplayRecord(Topics.Orders, customerId, json.End());
                continue;
            }

            var type = fields[3] switch
            {
                "pv" => "product_view",
                "cart" => "add_to_cart",
                "fav" => "favorite",
                var other => throw new InvalidDataException($"{file.Path}:{file.LineNumber}: unknown behavior_type '{other}'"),
            };
            var c = json.Begin(eventId, customerId, at, type);
            c.WriteString("productId", fields[1]);
            c.WriteString("categoryId", fields[2]);
            c.WriteString("channel", "app");
            yield return new ReplayRecord(Topics.Clickstream, customerId, json.End());
        }
    }
}
