using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary>
/// An external Kafka client (kcat) produces good, duplicate and malformed events into a running engine and reads
/// <c>dead-letters</c> back: each bad record arrives there unchanged with the contract's headers; good ones are applied
/// once.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed class KcatDeadLetterTests
{
    private const string Good = """{"eventId":"k-1","customerId":"kc-1","occurredAt":"2024-03-01T10:00:00+01:00","type":"order_placed","orderId":"o-1","amount":12.50,"currency":"EUR"}""";
    private const string GoodCancel = """{"eventId":"k-2","customerId":"kc-1","occurredAt":"2024-03-02T10:00:00Z","type":"order_cancelled","orderId":"o-1","amount":2.25}""";

    /// <summary>(key, value, expected error code); values contain no tabs or newlines.</summary>
    private static readonly (string Key, string Value, string Code)[] s_bad =
    [
        ("kc-2", """{"eventId":"k-3","customerId":"kc-2",""", "invalid-json"),
        ("kc-2", "[1,2,3]", "not-an-object"),
        ("kc-2", """{"customerId":"kc-2","occurredAt":"2024-03-01T10:00:00Z","type":"order_placed","orderId":"o","amount":1}""", "missing-field"),
        ("kc-2", """{"eventId":"k-4","customerId":"kc-2","occurredAt":"2024-03-01T10:00:00Z","type":"order_placed","orderId":"o","amount":"12"}""", "wrong-type"),
        ("kc-2", """{"eventId":"k-5","customerId":"kc-2","occurredAt":"2024-03-01T10:00:00Z","type":"teleport","orderId":"o","amount":1}""", "unknown-type"),
        ("kc-9", """{"eventId":"k-6","customerId":"kc-2","occurredAt":"2024-03-01T10:00:00Z","type":"order_placed","orderId":"o","amount":1}""", "key-mismatch"),
        ("kc-2", """{"eventId":"k-7","customerId":"kc-2","occurredAt":"1901-03-01T10:00:00Z","type":"order_placed","orderId":"o","amount":1}""", "time-out-of-range"),
        // Above the default 256 KiB record limit: rejected unread.
        ("kc-2", "{\"eventId\":\"k-8\",\"customerId\":\"kc-2\",\"occurredAt\":\"2024-03-01T10:00:00Z\",\"type\":\"order_placed\",\"orderId\":\"o\",\"amount\":1,\"note\":\"" + new string('x', 300 * 1024) + "\"}", "oversized"),
    ];

    [Fact]
    public async Task Kcat_events_are_applied_or_dead_lettered_with_reasons()
    {
        await using var broker = await BrokerProcess.StartAsync(partitions: 4);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        await using var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir);

        var lines = new List<string> { "kc-1\t" + Good, "kc-1\t" + Good, "kc-1\t" + GoodCancel };
        lines.AddRange(s_bad.Select(b => b.Key + "\t" + b.Value));
        // Where each record lands, computed here: kcat's partitioner for a keyed record is CRC-32 of the key modulo the
        // partition count, and a fresh broker numbers each partition's records from 0 in the order they were produced.
        var expectedPlace = new Dictionary<string, (int Partition, long Offset)>(StringComparer.Ordinal);
        var nextOffset = new long[4];
        foreach (var line in lines)
        {
            var (key, value) = (line[..line.IndexOf('\t', StringComparison.Ordinal)], line[(line.IndexOf('\t', StringComparison.Ordinal) + 1)..]);
            var partition = (int)(ProducerPartitioner.Crc32(Encoding.UTF8.GetBytes(key)) % 4);
            expectedPlace[value] = (partition, nextOffset[partition]++);
        }

        var input = Path.Combine(dataDir, "events.txt");
        await File.WriteAllLinesAsync(input, lines);
        var (code, _, err) = await Kcat.RunAsync(["-P", "-b", broker.BootstrapServers, "-t", "orders", "-K", "\t", "-l", input]);
        Assert.True(code == 0, "kcat produce failed: " + err);

        // The good customer: one order of 12.50 and one refund of 2.25; the duplicate changed nothing.
        await Eventually.WaitAsync(async () => (await engine.Http.GetAsync("/v1/customers/kc-1")).IsSuccessStatusCode, TimeSpan.FromSeconds(60), () => "kc-1 known");
        await Eventually.WaitAsync(async () => (await engine.StatusAsync()).GetProperty("deadLetters").GetInt64() == s_bad.Length, TimeSpan.FromSeconds(60), () => "dead letters counted");
        var profile = await engine.Http.GetFromJsonAsync<JsonElement>("/v1/customers/kc-1");
        var orders = profile.GetProperty("orders");
        Assert.Equal(1, orders.GetProperty("count").GetInt32());
        Assert.Equal(1, orders.GetProperty("cancelledCount").GetInt32());
        Assert.Equal(12.50m, orders.GetProperty("grossAmount").GetDecimal());
        Assert.Equal(2.25m, orders.GetProperty("refundAmount").GetDecimal());
        Assert.Equal(10.25m, orders.GetProperty("netAmount").GetDecimal());
        Assert.Equal(new DateTimeOffset(2024, 3, 1, 9, 0, 0, TimeSpan.Zero), orders.GetProperty("firstAt").GetDateTimeOffset());
        // The status is refreshed about twice a second: it may not count the duplicate yet when the profile shows its
        // customer (failed once in a full run with 0).
        await Eventually.WaitAsync(async () => (await engine.StatusAsync()).GetProperty("duplicates").GetInt64() >= 1, TimeSpan.FromSeconds(30), () => "the duplicate counted");
        Assert.Equal(1, (await engine.StatusAsync()).GetProperty("duplicates").GetInt64());
        Assert.Equal(HttpStatusCode.NotFound, (await engine.Http.GetAsync("/v1/customers/kc-2")).StatusCode);

        // dead-letters, read by kcat: original bytes, and the headers of CONTRACTS.md §2.
        List<string[]> records = [];
        await Eventually.WaitAsync(
            async () =>
            {
                var (c, output, _) = await Kcat.RunAsync(["-C", "-b", broker.BootstrapServers, "-t", "dead-letters", "-o", "beginning", "-e", "-q", "-f", "%h\t%s\n"]);
                records = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t', 2)).ToList();
                return c == 0 && records.Count >= s_bad.Length;
            },
            TimeSpan.FromSeconds(60),
            () => $"{s_bad.Length} dead letters, have {records.Count}");
        Assert.Equal(s_bad.Length, records.Count);
        foreach (var (_, value, expectedCode) in s_bad)
        {
            var match = records.SingleOrDefault(r => r[1] == value);
            Assert.True(match is not null, $"dead letter for {expectedCode} missing; got:\n{string.Join('\n', records.Select(r => string.Join(" | ", r)))}");
            var headers = ParseHeaders(match[0]);
            Assert.StartsWith(expectedCode + ":", headers["error"], StringComparison.Ordinal);
            Assert.Equal("orders", headers["source-topic"]);
            var (partition, offset) = expectedPlace[value];
            Assert.Equal(partition.ToString(CultureInfo.InvariantCulture), headers["source-partition"]);
            Assert.Equal(offset.ToString(CultureInfo.InvariantCulture), headers["source-offset"]);
        }
    }

    /// <summary>kcat prints headers as <c>name=value,name=value</c>; the error text itself may contain commas.</summary>
    private static Dictionary<string, string> ParseHeaders(string text)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        string? current = null;
        foreach (var part in text.Split(','))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            var name = eq > 0 ? part[..eq] : null;
            if (name is "error" or "source-topic" or "source-partition" or "source-offset")
            {
                current = name;
                result[name] = part[(eq + 1)..];
            }
            else if (current is not null)
            {
                result[current] += "," + part;
            }
        }

        return result;
    }
}
