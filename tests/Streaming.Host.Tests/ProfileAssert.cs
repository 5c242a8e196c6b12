using System.Net;
using System.Text.Json;

namespace Streaming.Host.Tests;

/// <summary>Compares every customer's API profile with the batch computation.</summary>
public static class ProfileAssert
{
    public static async Task OrdersMatchAsync(HttpClient http, OnlineRetailBatch.Result expected, string context)
    {
        var mismatches = new List<string>();
        var ids = expected.Customers.Keys.ToList();
        await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (id, ct) =>
        {
            using var response = await http.GetAsync("/v1/customers/" + id, ct);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                Add(mismatches, $"{id}: HTTP {(int)response.StatusCode}");
                return;
            }

            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
            var orders = doc.RootElement.GetProperty("orders");
            var want = expected.Customers[id];
            Check(mismatches, id, "count", want.Count, orders.GetProperty("count").GetInt32());
            Check(mismatches, id, "cancelledCount", want.CancelledCount, orders.GetProperty("cancelledCount").GetInt32());
            Check(mismatches, id, "grossAmount", want.Gross, orders.GetProperty("grossAmount").GetDecimal());
            Check(mismatches, id, "refundAmount", want.Refund, orders.GetProperty("refundAmount").GetDecimal());
            Check(mismatches, id, "netAmount", want.Net, orders.GetProperty("netAmount").GetDecimal());
            Check(mismatches, id, "firstAt", want.FirstAt, Time(orders.GetProperty("firstAt")));
            Check(mismatches, id, "lastAt", want.LastAt, Time(orders.GetProperty("lastAt")));
        });
        Assert.True(mismatches.Count == 0, $"{context}: {mismatches.Count} mismatches of {ids.Count} customers, e.g.\n{string.Join('\n', mismatches.Take(20))}");
    }

    private static DateTimeOffset? Time(JsonElement e) => e.ValueKind == JsonValueKind.Null ? null : e.GetDateTimeOffset();

    private static void Check<T>(List<string> mismatches, string id, string field, T expected, T actual)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
        {
            Add(mismatches, $"{id}.{field}: expected {expected}, got {actual}");
        }
    }

    private static void Add(List<string> list, string message)
    {
        lock (list)
        {
            list.Add(message);
        }
    }
}
