using System.Net;
using System.Text.Json;

namespace Streaming.Host.Tests;

/// <summary>Compares every customer's API profile with the batch computation.</summary>
public static class ProfileAssert
{
    public static Task OrdersMatchAsync(HttpClient http, OnlineRetailBatch.Result expected, string context) =>
        OrdersMatchAsync([http], expected, context);

    /// <summary>
    /// The same through several engines: each customer is read from the first of <paramref name="nodes"/> that does not
    /// answer 503 (partition not owned there).
    /// </summary>
    /// <param name="retryUnavailable">
    /// In a cluster, a read can meet a moment when its partition's owner is not known or does not answer, and the node
    /// answers 503 with <c>Retry-After</c> (README "Bad input"): such a read is asked again, as a client would, until it is
    /// answered otherwise or this much time has passed (then the 503 is a mismatch). Null: a 503 is a mismatch at once.
    /// </param>
    /// <param name="log">Told how many reads were asked again, if any.</param>
    public static async Task OrdersMatchAsync(IReadOnlyList<HttpClient> nodes, OnlineRetailBatch.Result expected, string context, TimeSpan? retryUnavailable = null, Action<string>? log = null)
    {
        var mismatches = new List<string>();
        var ids = expected.Customers.Keys.ToList();
        var retried = 0;
        await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (id, ct) =>
        {
            var deadline = DateTime.UtcNow + (retryUnavailable ?? TimeSpan.Zero);
            HttpResponseMessage response;
            for (var first = true; ; first = false)
            {
                response = await nodes[0].GetAsync("/v1/customers/" + id, ct);
                for (var n = 1; n < nodes.Count && response.StatusCode == HttpStatusCode.ServiceUnavailable; n++)
                {
                    response.Dispose();
                    response = await nodes[n].GetAsync("/v1/customers/" + id, ct);
                }

                if (response.StatusCode != HttpStatusCode.ServiceUnavailable || DateTime.UtcNow >= deadline)
                {
                    break;
                }

                if (first)
                {
                    Interlocked.Increment(ref retried);
                }

                // The answer's Retry-After, at most a second and never past the deadline.
                var wait = response.Headers.RetryAfter?.Delta is { } after && after < TimeSpan.FromSeconds(1) ? after : TimeSpan.FromSeconds(1);
                var left = deadline - DateTime.UtcNow;
                if (left < wait)
                {
                    wait = left > TimeSpan.Zero ? left : TimeSpan.Zero;
                }

                response.Dispose();
                await Task.Delay(wait, ct);
            }

            using var answered = response;
            if (response.StatusCode != HttpStatusCode.OK)
            {
                // With the problem's title and detail: a 503 says whether no owner was found or the owner did not answer.
                Add(mismatches, $"{id}: HTTP {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
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
        if (retried > 0)
        {
            log?.Invoke($"{context}: {retried} of {ids.Count} reads answered 503 and were asked again");
        }

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
