using System.Globalization;
using System.Text;
using System.Text.Json;
using Streaming.Connectors.Datasets;
using Streaming.Engine.Events;

namespace Streaming.Connectors.Tests;

public sealed class BankCallcenterFixture
{
    public const string FileName = "anonymous_bank_callcenter_1999_jan_feb.tsv.gz";

    public BankCallcenterFixture()
    {
        var path = TestData.PathOf(FileName);
        using (var file = new DatasetFile(path))
        {
            Records = [.. Datasets.Datasets.Read(Datasets.Datasets.BankCallcenter, file)];
        }

        var lines = TestData.ReadGzipLines(path);
        Header = lines[0];
        for (var i = 1; i < lines.Count; i++)
        {
            if (lines[i].Length == 0)
            {
                continue;
            }

            var f = lines[i].Split('\t');
            Assert.Equal(17, f.Length);
            TotalRows++;
            if (f[2] == "0")
            {
                continue;
            }

            Identified.Add("bank:" + f[0] + ":" + f[1], new RawCall(i, f));
        }
    }

    public string Header { get; }

    public List<ReplayRecord> Records { get; }

    public int TotalRows { get; }

    /// <summary>Rows with customer_id ≠ 0, keyed by the expected eventId.</summary>
    public Dictionary<string, RawCall> Identified { get; } = new(StringComparer.Ordinal);

    public sealed record RawCall(int Index, string[] Fields)
    {
        /// <summary>date (YYMMDD, 1999) + vru_entry (H:MM:SS) as a wall-clock time.</summary>
        public DateTime LocalTime
        {
            get
            {
                var d = Fields[5];
                var t = Fields[6].Split(':');
                return new DateTime(
                    1900 + int.Parse(d[..2], CultureInfo.InvariantCulture),
                    int.Parse(d[2..4], CultureInfo.InvariantCulture),
                    int.Parse(d[4..6], CultureInfo.InvariantCulture),
                    int.Parse(t[0], CultureInfo.InvariantCulture),
                    int.Parse(t[1], CultureInfo.InvariantCulture),
                    int.Parse(t[2], CultureInfo.InvariantCulture));
            }
        }
    }
}

public sealed class BankCallcenterReaderTests(BankCallcenterFixture data) : IClassFixture<BankCallcenterFixture>
{
    /// <summary>Israel kept standard time (UTC+2) in January and February 1999; summer time began on 2 April.</summary>
    private static readonly TimeSpan IsraelWinter = TimeSpan.FromHours(2);

    private static JsonElement Json(ReplayRecord r) => JsonSerializer.Deserialize<JsonElement>(r.Value);

    [Fact]
    public void Only_identified_customers_are_replayed()
    {
        Assert.StartsWith("vru+line\tcall_id\tcustomer_id", data.Header, StringComparison.Ordinal);
        Assert.True(data.Identified.Count > 20_000 && data.Identified.Count < data.TotalRows, $"{data.Identified.Count} of {data.TotalRows}");
        Assert.Equal(data.Identified.Count, data.Records.Count);
        Assert.All(data.Records, r => Assert.NotEqual("bank-0", r.Key));
    }

    [Fact]
    public void Records_are_in_time_order_with_file_order_for_ties()
    {
        DateTimeOffset? previous = null;
        var previousIndex = -1;
        foreach (var record in data.Records)
        {
            var json = Json(record);
            var at = json.GetProperty("occurredAt").GetDateTimeOffset();
            var index = data.Identified[json.GetProperty("eventId").GetString()!].Index;
            if (previous is { } p)
            {
                Assert.True(at >= p, $"{at:O} after {p:O}");
                if (at == p)
                {
                    Assert.True(index > previousIndex, $"tie at {at:O}: line {index} after line {previousIndex}");
                }
            }

            previous = at;
            previousIndex = index;
        }

        var earliest = data.Identified.Values.Min(c => c.LocalTime);
        Assert.Equal(new DateTimeOffset(earliest, IsraelWinter), Json(data.Records[0]).GetProperty("occurredAt").GetDateTimeOffset());
    }

    [Fact]
    public void Every_record_matches_its_row()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var record in data.Records)
        {
            var json = Json(record);
            var eventId = json.GetProperty("eventId").GetString()!;
            Assert.True(seen.Add(eventId), $"duplicate eventId {eventId}");
            Assert.True(data.Identified.TryGetValue(eventId, out var raw), $"no identified row for {eventId}");
            var f = raw.Fields;

            Assert.Equal(Topics.Callcenter, record.Topic);
            Assert.Equal("bank-" + f[2], record.Key);
            Assert.Equal("bank-" + f[2], json.GetProperty("customerId").GetString());
            Assert.Equal(f[12] == "AGENT" ? "call_completed" : "call_abandoned", json.GetProperty("type").GetString());
            Assert.Equal(f[1], json.GetProperty("callId").GetString());
            Assert.Equal(f[12], json.GetProperty("outcome").GetString());
            Assert.Equal(f[16], json.GetProperty("agent").GetString());
            Assert.Equal(int.Parse(f[11], CultureInfo.InvariantCulture), json.GetProperty("waitSeconds").GetInt32());
            Assert.Equal(int.Parse(f[15], CultureInfo.InvariantCulture), json.GetProperty("talkSeconds").GetInt32());

            var occurredAt = json.GetProperty("occurredAt").GetString()!;
            Assert.EndsWith("+02:00", occurredAt, StringComparison.Ordinal);
            Assert.Equal(new DateTimeOffset(raw.LocalTime, IsraelWinter), json.GetProperty("occurredAt").GetDateTimeOffset());
        }

        Assert.Equal(data.Identified.Count, seen.Count);
    }

    [Fact]
    public void First_call_of_january_spot_check()
    {
        // AA0101  33116  9664491  2  PS  990101  0:00:31  ...  q_time 153  HANG  ...  ser_time 0  NO_SERVER
        var record = Assert.Single(data.Records, r => Json(r).GetProperty("eventId").GetString() == "bank:AA0101:33116");
        var json = Json(record);

        Assert.Equal("bank-9664491", record.Key);
        Assert.Equal("1999-01-01T00:00:31+02:00", json.GetProperty("occurredAt").GetString());
        Assert.Equal("call_abandoned", json.GetProperty("type").GetString());
        Assert.Equal(153, json.GetProperty("waitSeconds").GetInt32());
        Assert.Equal("PS", json.GetProperty("queue").GetString());
        Assert.Equal(2, json.GetProperty("priority").GetInt32());
    }

    [Fact]
    public void Answered_call_becomes_call_completed()
    {
        // AA0101  33118  27997683  2  PS  990101  6:55:20  ...  q_time 17  AGENT  ...  ser_time 54  MICHAL
        var json = Json(Assert.Single(data.Records, r => Json(r).GetProperty("eventId").GetString() == "bank:AA0101:33118"));

        Assert.Equal("call_completed", json.GetProperty("type").GetString());
        Assert.Equal("bank-27997683", json.GetProperty("customerId").GetString());
        Assert.Equal("1999-01-01T06:55:20+02:00", json.GetProperty("occurredAt").GetString());
        Assert.Equal(17, json.GetProperty("waitSeconds").GetInt32());
        Assert.Equal(54, json.GetProperty("talkSeconds").GetInt32());
        Assert.Equal("MICHAL", json.GetProperty("agent").GetString());
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
            var call = Assert.IsType<CallEvent>(evt);
            Assert.Equal(record.Key, call.CustomerId);
        }
    }
}
