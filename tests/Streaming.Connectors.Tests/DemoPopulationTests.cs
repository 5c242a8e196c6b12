using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Streaming.Connectors.Datasets;
using Streaming.Engine.Events;

namespace Streaming.Connectors.Tests;

/// <summary>The demo's joined population: deterministic, one population, event-time order, valid events.</summary>
public sealed class DemoPopulationTests
{
    private static readonly Lazy<List<ReplayRecord>> s_records = new(() => DemoPopulation.Read(TestData.Directory).ToList());

    [Fact]
    public void The_same_files_give_the_same_stream()
    {
        var again = DemoPopulation.Read(TestData.Directory).ToList();
        Assert.Equal(s_records.Value.Count, again.Count);
        Assert.Equal(Digest(s_records.Value), Digest(again));
    }

    [Fact]
    public void Every_record_is_a_valid_event_and_ids_are_unique()
    {
        var decoder = new EventDecoder();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var record in s_records.Value)
        {
            Assert.True(Topics.TryParseInput(record.Topic, out var topic), record.Topic);
            var ok = decoder.TryDecode(topic, Encoding.UTF8.GetBytes(record.Key), record.Value, out var evt, out var error);
            Assert.True(ok, $"{error}: {Encoding.UTF8.GetString(record.Value)}");
            Assert.True(ids.Add(evt!.EventId), "duplicate event id " + evt.EventId);
        }
    }

    [Fact]
    public void Sources_are_joined_onto_retail_customers_and_shifted_into_the_retail_year()
    {
        var retailIds = new HashSet<string>(StringComparer.Ordinal);
        var firstRetail = DateTimeOffset.MaxValue;
        var lastRetail = DateTimeOffset.MinValue;
        foreach (var r in s_records.Value.Where(r => EventId(r).StartsWith("online-retail:", StringComparison.Ordinal)))
        {
            retailIds.Add(r.Key);
            var at = OccurredAt(r);
            firstRetail = at < firstRetail ? at : firstRetail;
            lastRetail = at > lastRetail ? at : lastRetail;
        }

        // Every retail customer got its synthetic attributes and consent once.
        var updates = s_records.Value.Where(r => r.Topic == Topics.CustomerUpdates).ToList();
        Assert.Equal(2 * retailIds.Count, updates.Count);
        Assert.True(retailIds.SetEquals(updates.Select(r => r.Key)));

        foreach (var (prefix, own) in new[] { ("taobao:", "tb-"), ("bank:", "bank-") })
        {
            var records = s_records.Value.Where(r => EventId(r).StartsWith(prefix, StringComparison.Ordinal)).ToList();
            var customers = records.Select(r => r.Key).Distinct().ToList();
            var joined = customers.Count(retailIds.Contains);
            Assert.True(customers.All(c => retailIds.Contains(c) || c.StartsWith(own, StringComparison.Ordinal)), prefix + " ids are retail or own");
            // As many shoppers/callers as there are retail customers (or all of them, if fewer) join the retail population.
            Assert.Equal(Math.Min(retailIds.Count, customers.Count), joined);
            Assert.All(records, r => Assert.InRange(OccurredAt(r), firstRetail.AddDays(-1), lastRetail));
        }
    }

    [Fact]
    public void The_stream_is_in_event_time_order_within_the_retail_hold_window()
    {
        // Sources are merged by time; Online Retail itself may emit an invoice up to an hour after a later one.
        var max = OccurredAt(s_records.Value[0]);
        foreach (var record in s_records.Value)
        {
            var at = OccurredAt(record);
            Assert.True(at >= max - TimeSpan.FromHours(1), $"{EventId(record)} at {at:O} is more than an hour before {max:O}");
            max = at > max ? at : max;
        }
    }

    /// <summary>
    /// The birthday and consent the stream carries for each retail customer are those <see cref="DemoPopulation.Synthetic"/>
    /// gives for the id alone, whatever else was computed before (the stream was built in file order; here in reverse).
    /// </summary>
    [Fact]
    public void Synthetic_attributes_depend_only_on_the_id()
    {
        var streamed = new Dictionary<string, (string? Birthday, bool? Voice, bool? Sms, bool? Email)>(StringComparer.Ordinal);
        foreach (var record in s_records.Value.Where(r => r.Topic == "customer-updates"))
        {
            using var doc = JsonDocument.Parse(record.Value);
            var root = doc.RootElement;
            var seen = streamed.GetValueOrDefault(record.Key);
            streamed[record.Key] = root.GetProperty("type").GetString() == "attributes"
                ? seen with { Birthday = root.GetProperty("attributes").GetProperty("birthday").GetString() }
                : seen with
                {
                    Voice = root.GetProperty("consent").GetProperty("voice").GetBoolean(),
                    Sms = root.GetProperty("consent").GetProperty("sms").GetBoolean(),
                    Email = root.GetProperty("consent").GetProperty("email").GetBoolean(),
                };
        }

        Assert.Equal(4372, streamed.Count);
        foreach (var (id, values) in streamed.Reverse())
        {
            var (birthday, voice, sms, email) = DemoPopulation.Synthetic(id);
            Assert.Equal((birthday.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), voice, sms, email), (values.Birthday, values.Voice!.Value, values.Sms!.Value, values.Email!.Value));
        }

        var birthdays = Enumerable.Range(0, 200).Select(i => DemoPopulation.Synthetic(i.ToString(CultureInfo.InvariantCulture)).Birthday).Distinct().Count();
        Assert.True(birthdays > 150, $"birthdays should spread out, got {birthdays} distinct of 200");
        Assert.All(Enumerable.Range(0, 200), i => Assert.InRange(DemoPopulation.Synthetic(i.ToString(CultureInfo.InvariantCulture)).Birthday, new DateOnly(1950, 1, 1), new DateOnly(2000, 1, 1)));
    }

    private static string EventId(ReplayRecord r)
    {
        using var doc = JsonDocument.Parse(r.Value);
        return doc.RootElement.GetProperty("eventId").GetString()!;
    }

    private static DateTimeOffset OccurredAt(ReplayRecord r)
    {
        using var doc = JsonDocument.Parse(r.Value);
        return doc.RootElement.GetProperty("occurredAt").GetDateTimeOffset();
    }

    private static string Digest(List<ReplayRecord> records)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var r in records)
        {
            sha.AppendData(Encoding.UTF8.GetBytes(r.Topic + "\n" + r.Key + "\n"));
            sha.AppendData(r.Value);
        }

        return Convert.ToHexString(sha.GetHashAndReset());
    }
}
