using System.Text.Json;
using Streaming.Connectors.Triggers;
using Streaming.Engine.Rules;

namespace Streaming.Connectors.Tests;

/// <summary>
/// The CloudEvents record of a firing (CONTRACTS.md §3), read back with a JSON parser. The serializer reuses one buffer
/// per thread (<see cref="Streaming.Engine.Model.ThreadBuffer"/>), so these records are made one after another on a
/// thread and on several threads at once: each must hold exactly its own firing.
/// </summary>
public sealed class CloudEventsTests
{
    private static readonly DateTimeOffset At = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private static TriggerFiring Firing(string id, Delivery delivery, IReadOnlyDictionary<string, object?> profile) => new()
    {
        Id = id,
        CustomerId = "cust-" + id,
        Rule = "win_back",
        RuleVersion = "v7",
        Channel = ContactChannel.Voice,
        Priority = 5,
        AtTicks = At.UtcTicks,
        DueTicks = At.AddHours(2).UtcTicks,
        ExpiresTicks = At.AddDays(3).UtcTicks,
        Delivery = delivery,
        Reason = [new("daysSinceLastOrder", "120")],
        Profile = profile,
    };

    [Fact]
    public void A_small_record_after_a_large_one_on_the_same_thread_holds_only_its_own_fields()
    {
        // 3,000 tags of 40 characters: about 130 KB, a hundred times a usual record, left in the thread's buffer.
        var tags = Enumerable.Range(0, 3000).Select(i => $"tag-{i:D4}-" + new string('x', 30)).ToList();
        var large = Firing("f-large", Delivery.Queued, new Dictionary<string, object?> { ["tags"] = tags, ["tier"] = "gold" });
        var small = Firing("f-small", Delivery.Notify, new Dictionary<string, object?> { ["orders"] = 3 });

        var largeRecord = CloudEvents.Serialize(large);
        var smallRecord = CloudEvents.Serialize(small);
        var smallAgain = CloudEvents.Serialize(small);

        Assert.True(largeRecord.Length > 120_000, $"the large record has {largeRecord.Length} bytes");
        using (var doc = JsonDocument.Parse(largeRecord))
        {
            var data = doc.RootElement.GetProperty("data");
            Assert.Equal("f-large", doc.RootElement.GetProperty("id").GetString());
            Assert.Equal("f-large", data.GetProperty("outreachId").GetString());
            Assert.Equal("2026-06-01T14:00:00Z", data.GetProperty("dueAt").GetString());
            Assert.Equal(tags, data.GetProperty("profile").GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        }

        using (var doc = JsonDocument.Parse(smallRecord))
        {
            var root = doc.RootElement;
            Assert.Equal(
                ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"],
                root.EnumerateObject().Select(p => p.Name));
            Assert.Equal("1.0", root.GetProperty("specversion").GetString());
            Assert.Equal("f-small", root.GetProperty("id").GetString());
            Assert.Equal("streaming.trigger.win_back", root.GetProperty("type").GetString());
            Assert.Equal("cust-f-small", root.GetProperty("subject").GetString());
            Assert.Equal("2026-06-01T12:00:00Z", root.GetProperty("time").GetString());
            var data = root.GetProperty("data");
            Assert.Equal(JsonValueKind.Null, data.GetProperty("outreachId").ValueKind);
            Assert.False(data.TryGetProperty("dueAt", out _));
            Assert.Equal("notify", data.GetProperty("delivery").GetString());
            Assert.Equal("120", data.GetProperty("reason").GetProperty("daysSinceLastOrder").GetString());
            var profile = data.GetProperty("profile");
            Assert.Equal(["orders"], profile.EnumerateObject().Select(p => p.Name));
            Assert.Equal(3, profile.GetProperty("orders").GetInt32());
        }

        Assert.Equal(smallRecord, smallAgain);
    }

    [Fact]
    public void Records_made_on_several_threads_at_once_each_hold_their_own_firing()
    {
        const int Threads = 8;
        const int PerThread = 300;
        var records = new byte[Threads * PerThread][];
        Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, t =>
        {
            for (var i = 0; i < PerThread; i++)
            {
                var n = (t * PerThread) + i;
                // Every seventh firing is large (70 KB), so the threads' buffers grow in between.
                var profile = new Dictionary<string, object?> { ["n"] = n, ["pad"] = new string('p', n % 7 == 0 ? 70_000 : 10) };
                records[n] = CloudEvents.Serialize(Firing("f-" + n, n % 2 == 0 ? Delivery.Queued : Delivery.Notify, profile));
            }
        });

        for (var n = 0; n < records.Length; n++)
        {
            using var doc = JsonDocument.Parse(records[n]);
            var data = doc.RootElement.GetProperty("data");
            Assert.Equal("f-" + n, doc.RootElement.GetProperty("id").GetString());
            Assert.Equal(n, data.GetProperty("profile").GetProperty("n").GetInt32());
            Assert.Equal(n % 7 == 0 ? 70_000 : 10, data.GetProperty("profile").GetProperty("pad").GetString()!.Length);
            Assert.Equal(n % 2 == 0 ? JsonValueKind.String : JsonValueKind.Null, data.GetProperty("outreachId").ValueKind);
        }
    }
}
