using System.Buffers.Binary;
using System.Text;
using Streaming.Engine.Model;

namespace Streaming.Engine.Tests;

public sealed class CustomerStateCodecTests
{
    private const string Id = "cust-Ω";

    private static CustomerState Rich(string? sessionId, string? country, string? birthday, string? timeZone, bool? voice, bool? sms, bool? email)
    {
        var s = new CustomerState(Id)
        {
            FirstSeenTicks = new DateTime(2023, 12, 31, 23, 59, 59, DateTimeKind.Utc).Ticks + 1234567,
            LastSeenTicks = new DateTime(2024, 6, 1, 8, 0, 0, DateTimeKind.Utc).Ticks,
            EventsApplied = 123_456_789_012,
            OrderCount = 17,
            CancelledCount = 3,
            GrossAmount = 12.3400m,
            RefundAmount = 0.0000000000000000000000000001m,
            FirstOrderTicks = new DateTime(2024, 1, 2, 0, 0, 0, DateTimeKind.Utc).Ticks,
            LastOrderTicks = new DateTime(2024, 5, 30, 0, 0, 0, DateTimeKind.Utc).Ticks,
            ItemsBought = 41,
            PageViews = 101,
            ProductViews = 102,
            CartAdds = 103,
            Favorites = 104,
            Searches = 105,
            Logins = 106,
            Sessions = 107,
            LastSessionId = sessionId,
            CallsCompleted = 5,
            CallsAbandoned = 6,
            WaitSecondsTotal = 5_000_000_000L,
            TalkSecondsTotal = 7_000_000_001L,
            Country = country,
            Birthday = birthday,
            TimeZone = timeZone,
            ConsentVoice = voice,
            ConsentSms = sms,
            ConsentEmail = email,
            OutcomesReceived = 9,
        };

        // 40 ids through a memory of 32: the ring has wrapped, so its write position is not at the end.
        for (var i = 0; i < 40; i++)
        {
            s.RecentEventIds.Add(IdHash.Fnv1a64("id-" + i), 32);
        }

        // Version 2: the customer model.
        s.LastCallTicks = 11;
        s.LastCartAddTicks = 12;
        s.CartAddsSinceOrder = 13;
        s.ChannelsUsed = Channels.Online | Channels.Voice;
        foreach (var key in new[] { "a", "b", "a", "c", "d", "e", "f", "a" })
        {
            s.TopCategories.Add(key);
        }

        s.TopProducts.Add("p1");
        s.Days.At(739_000).Orders = 2;
        s.Days.At(739_000).Net = -1.50m;
        s.Days.At(738_990).Points = long.MaxValue;
        s.Days.At(739_001).Abandoned = 3;
        s.Frequency = 4;
        s.Monetary = 99.99m;
        (s.RScore, s.FScore, s.MScore) = (5, 1, 3);
        s.RfmSegment = "loyal";
        s.ChurnRisk = 42;
        s.Stages["lifecycle"] = new StageValue("won_back", 123);
        s.Stages["aarrr"] = new StageValue("revenue", 456);
        s.TierName = "gold";
        s.TierPoints = 2500;
        s.TierProjected = "silver";
        s.TierReviewTicks = 789;
        s.Tags = ["lapsed", "vip"];
        s.RuleVersion = "default@0123456789ab";
        s.EvaluatedAtTicks = 1011;
        s.WakeTicks = 1213;

        // Version 3: triggers and contact history.
        s.DoNotContact = true;
        s.Triggers["win-back"] = new TriggerMemory { Holds = true, LastFiredTicks = 77, LastDelivery = 2, Converted = true };
        s.Contacts.Add(new ContactEntry(1, 88));
        s.RecentFirings.Add(new FiringSummary
        {
            Id = "f1", Rule = "win-back", RuleVersion = "v", AtTicks = 99, Channel = 1, Delivery = 1, SuppressedBy = null, DueTicks = 100,
            Reason = ["orders.count=2", "days_since(orders.lastAt)=91"], Outcome = "answered",
        });
        s.OutcomeCounts[4] = 5;
        s.AnsweredHours[23] = 6;
        return s;
    }

    private static void AssertSameModel(CustomerState expected, CustomerState actual)
    {
        Assert.Equal(expected.LastCallTicks, actual.LastCallTicks);
        Assert.Equal(expected.LastCartAddTicks, actual.LastCartAddTicks);
        Assert.Equal(expected.CartAddsSinceOrder, actual.CartAddsSinceOrder);
        Assert.Equal(expected.ChannelsUsed, actual.ChannelsUsed);
        Assert.Equal(expected.TopCategories.Items, actual.TopCategories.Items);
        Assert.Equal(expected.TopProducts.Items, actual.TopProducts.Items);
        Assert.Equal(expected.Days.Items.ToArray(), actual.Days.Items.ToArray());
        Assert.Equal(expected.Frequency, actual.Frequency);
        Assert.Equal(expected.Monetary, actual.Monetary);
        Assert.Equal((expected.RScore, expected.FScore, expected.MScore), (actual.RScore, actual.FScore, actual.MScore));
        Assert.Equal(expected.RfmSegment, actual.RfmSegment);
        Assert.Equal(expected.ChurnRisk, actual.ChurnRisk);
        Assert.Equal(expected.Stages.OrderBy(p => p.Key, StringComparer.Ordinal), actual.Stages.OrderBy(p => p.Key, StringComparer.Ordinal));
        Assert.Equal(expected.TierName, actual.TierName);
        Assert.Equal(expected.TierPoints, actual.TierPoints);
        Assert.Equal(expected.TierProjected, actual.TierProjected);
        Assert.Equal(expected.TierReviewTicks, actual.TierReviewTicks);
        Assert.Equal(expected.Tags, actual.Tags);
        Assert.Equal(expected.RuleVersion, actual.RuleVersion);
        Assert.Equal(expected.EvaluatedAtTicks, actual.EvaluatedAtTicks);
        Assert.Equal(expected.WakeTicks, actual.WakeTicks);
        Assert.Equal(expected.DoNotContact, actual.DoNotContact);
        Assert.Equal(expected.Triggers, actual.Triggers);
        Assert.Equal(expected.Contacts, actual.Contacts);
        Assert.Equal(expected.RecentFirings.Count, actual.RecentFirings.Count);
        for (var i = 0; i < expected.RecentFirings.Count; i++)
        {
            Assert.Equal(expected.RecentFirings[i] with { Reason = [] }, actual.RecentFirings[i] with { Reason = [] });
            Assert.Equal(expected.RecentFirings[i].Reason, actual.RecentFirings[i].Reason);
        }

        Assert.Equal(expected.OutcomeCounts, actual.OutcomeCounts);
        Assert.Equal(expected.AnsweredHours, actual.AnsweredHours);
    }

    private static void AssertSameState(CustomerState expected, CustomerState actual)
    {
        Assert.Equal(expected.CustomerId, actual.CustomerId);
        Assert.Equal(expected.FirstSeenTicks, actual.FirstSeenTicks);
        Assert.Equal(expected.LastSeenTicks, actual.LastSeenTicks);
        Assert.Equal(expected.EventsApplied, actual.EventsApplied);
        Assert.Equal(expected.OrderCount, actual.OrderCount);
        Assert.Equal(expected.CancelledCount, actual.CancelledCount);
        Assert.Equal(expected.GrossAmount, actual.GrossAmount);
        Assert.Equal(expected.GrossAmount.Scale, actual.GrossAmount.Scale);
        Assert.Equal(expected.RefundAmount, actual.RefundAmount);
        Assert.Equal(expected.RefundAmount.Scale, actual.RefundAmount.Scale);
        Assert.Equal(expected.FirstOrderTicks, actual.FirstOrderTicks);
        Assert.Equal(expected.LastOrderTicks, actual.LastOrderTicks);
        Assert.Equal(expected.ItemsBought, actual.ItemsBought);
        Assert.Equal(expected.PageViews, actual.PageViews);
        Assert.Equal(expected.ProductViews, actual.ProductViews);
        Assert.Equal(expected.CartAdds, actual.CartAdds);
        Assert.Equal(expected.Favorites, actual.Favorites);
        Assert.Equal(expected.Searches, actual.Searches);
        Assert.Equal(expected.Logins, actual.Logins);
        Assert.Equal(expected.Sessions, actual.Sessions);
        Assert.Equal(expected.LastSessionId, actual.LastSessionId);
        Assert.Equal(expected.CallsCompleted, actual.CallsCompleted);
        Assert.Equal(expected.CallsAbandoned, actual.CallsAbandoned);
        Assert.Equal(expected.WaitSecondsTotal, actual.WaitSecondsTotal);
        Assert.Equal(expected.TalkSecondsTotal, actual.TalkSecondsTotal);
        Assert.Equal(expected.Country, actual.Country);
        Assert.Equal(expected.Birthday, actual.Birthday);
        Assert.Equal(expected.TimeZone, actual.TimeZone);
        Assert.Equal(expected.ConsentVoice, actual.ConsentVoice);
        Assert.Equal(expected.ConsentSms, actual.ConsentSms);
        Assert.Equal(expected.ConsentEmail, actual.ConsentEmail);
        Assert.Equal(expected.OutcomesReceived, actual.OutcomesReceived);
        Assert.Equal(expected.RecentEventIds.Count, actual.RecentEventIds.Count);
    }

    [Fact]
    public void Richly_populated_state_round_trips_exactly()
    {
        var state = Rich("sess-ü", "DE", "1990-02-28", "Europe/Berlin", voice: true, sms: false, email: null);

        var bytes = CustomerStateCodec.Encode(state);
        var decoded = CustomerStateCodec.Decode(Id, bytes);

        AssertSameState(state, decoded);
        Assert.Equal(12.3400m, decoded.GrossAmount);
        Assert.Equal(4, decoded.GrossAmount.Scale);
        Assert.Equal("12.3400", decoded.GrossAmount.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(28, decoded.RefundAmount.Scale);
        for (var i = 0; i < 40; i++)
        {
            // The memory holds the last 32 ids, id-8..id-39.
            Assert.Equal(i >= 8, decoded.RecentEventIds.Contains(IdHash.Fnv1a64("id-" + i)));
        }

        Assert.Equal(bytes, CustomerStateCodec.Encode(decoded));
    }

    public static TheoryData<string?, string?, string?, string?, bool?, bool?, bool?> NullableVariants => new()
    {
        { null, null, null, null, null, null, null },
        { "", "", "", "", false, false, false },
        { "s", null, "", "Asia/Tokyo", true, null, false },
        { null, "東京", null, "", null, true, true },
        { "😀 emoji session", "", "2000-01-01", null, false, true, null },
    };

    [Theory]
    [MemberData(nameof(NullableVariants))]
    public void Null_and_empty_strings_and_tri_state_booleans_survive(string? sessionId, string? country, string? birthday, string? timeZone, bool? voice, bool? sms, bool? email)
    {
        var state = Rich(sessionId, country, birthday, timeZone, voice, sms, email);

        var bytes = CustomerStateCodec.Encode(state);
        var decoded = CustomerStateCodec.Decode(Id, bytes);

        AssertSameState(state, decoded);
        Assert.Equal(bytes, CustomerStateCodec.Encode(decoded));
    }

    [Theory]
    [InlineData("79228162514264337593543950335", "-79228162514264337593543950335")]
    [InlineData("0.00", "-1.000000000000000000000000000")]
    [InlineData("100", "1E-28")]
    public void Extreme_decimals_round_trip_with_their_scale(string gross, string refund)
    {
        var state = new CustomerState(Id)
        {
            GrossAmount = decimal.Parse(gross, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture),
            RefundAmount = decimal.Parse(refund, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture),
        };

        var decoded = CustomerStateCodec.Decode(Id, CustomerStateCodec.Encode(state));

        Assert.Equal(state.GrossAmount, decoded.GrossAmount);
        Assert.Equal(state.GrossAmount.Scale, decoded.GrossAmount.Scale);
        Assert.Equal(state.RefundAmount, decoded.RefundAmount);
        Assert.Equal(state.RefundAmount.Scale, decoded.RefundAmount.Scale);
    }

    [Fact]
    public void Rows_of_triggers_a_customer_never_met_are_dropped_on_decode()
    {
        // Saved before memories became sparse: a row for every trigger of the rule set, most of them empty.
        var s = new CustomerState("c-rows");
        s.Triggers["never-held"] = default;
        s.Triggers["holds"] = new TriggerMemory { Holds = true };
        s.Triggers["fired"] = new TriggerMemory { LastFiredTicks = 5, LastDelivery = 1 };

        var decoded = CustomerStateCodec.Decode("c-rows", CustomerStateCodec.Encode(s));

        Assert.Equal(["fired", "holds"], decoded.Triggers.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(5, decoded.Triggers["fired"].LastFiredTicks);
        Assert.True(decoded.Triggers["holds"].Holds);
    }

    [Fact]
    public void Fresh_state_round_trips()
    {
        var state = new CustomerState("x");
        var decoded = CustomerStateCodec.Decode("x", CustomerStateCodec.Encode(state));

        AssertSameState(state, decoded);
        Assert.Equal(0, decoded.RecentEventIds.Count);
    }

    /// <summary>Builds a version-1 record by hand, field by field, to freeze the persisted layout.</summary>
    private sealed class V1Writer
    {
        private readonly List<byte> _bytes = [];

        public V1Writer Byte(byte v)
        {
            _bytes.Add(v);
            return this;
        }

        public V1Writer Int(int v)
        {
            var b = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(b, v);
            _bytes.AddRange(b);
            return this;
        }

        public V1Writer Long(long v)
        {
            var b = new byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(b, v);
            _bytes.AddRange(b);
            return this;
        }

        public V1Writer ULong(ulong v)
        {
            var b = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(b, v);
            _bytes.AddRange(b);
            return this;
        }

        /// <summary>A decimal as lo, mid, hi, flags (sign in bit 31, scale in bits 16-23).</summary>
        public V1Writer Decimal(int lo, int mid, int hi, bool negative, byte scale) =>
            Int(lo).Int(mid).Int(hi).Int((negative ? int.MinValue : 0) | (scale << 16));

        public V1Writer String(string? v)
        {
            if (v is null)
            {
                return Int(-1);
            }

            var b = Encoding.UTF8.GetBytes(v);
            Int(b.Length);
            _bytes.AddRange(b);
            return this;
        }

        public byte[] ToArray() => [.. _bytes];

        /// <summary>The version-2 part of a state that has none of the customer model yet.</summary>
        public V1Writer EmptyModel() =>
            Long(0).Long(0)                      // last call, last cart add
            .Int(0)                              // cart adds since the last order
            .Byte(0)                             // channels
            .Int(0).Int(0)                       // top categories, top products
            .Int(0)                              // day buckets
            .Int(0).Decimal(0, 0, 0, false, 0)   // frequency, monetary
            .Byte(0).Byte(0).Byte(0)             // r, f, m
            .String(null).Int(0)                 // segment, churn risk
            .Int(0)                              // stages
            .String(null).Long(0).String(null).Long(0) // tier name, points, projected, review
            .Int(0)                              // tags
            .String(null).Long(0).Long(0);       // rule version, evaluated at, wake

        /// <summary>The version-3 part of a state without triggers or contacts.</summary>
        public V1Writer EmptyTriggers()
        {
            Byte(0).Int(0).Int(0).Int(0);        // do-not-contact, triggers, contacts, recent firings
            for (var i = 0; i < 9 + 24; i++)
            {
                Int(0);                          // outcome counts, answered hours
            }

            return this;
        }

        /// <summary>Version 4's tail of a fresh state: seven field times, no placed order ids.</summary>
        public V1Writer EmptyVersion4()
        {
            for (var i = 0; i < 7; i++)
            {
                Long(0);                         // event time of each attribute and consent field
            }

            return Int(0);                       // placed order ids
        }
    }

    /// <summary>Version 1 of a fresh state (what builds before the customer model wrote).</summary>
    private static V1Writer FreshV1(byte version) => new V1Writer()
        .Byte(version)
        .Long(0).Long(0).Long(0)
        .Int(0).Int(0)
        .Decimal(0, 0, 0, false, 0).Decimal(0, 0, 0, false, 0)
        .Long(0).Long(0)
        .Int(0).Int(0).Int(0).Int(0).Int(0).Int(0).Int(0).Int(0)
        .String(null)
        .Int(0).Int(0)
        .Long(0).Long(0)
        .String(null).String(null).String(null)
        .Byte(0).Byte(0).Byte(0)
        .Int(0)
        .Int(0).Int(0);

    [Fact]
    public void Fresh_state_encodes_to_the_frozen_version_4_layout()
    {
        var expected = FreshV1(version: 4).EmptyModel().EmptyTriggers().EmptyVersion4().ToArray();

        Assert.Equal(168 + 116 + 13 + (33 * 4) + (7 * 8) + 4, expected.Length);
        Assert.Equal(expected, CustomerStateCodec.Encode(new CustomerState("anyone")));
    }

    [Fact]
    public void Fresh_version_1_record_decodes_without_a_model_and_is_re_evaluated_later()
    {
        var v1 = FreshV1(version: 1).ToArray();
        Assert.Equal(168, v1.Length);

        var s = CustomerStateCodec.Decode("old", v1);

        Assert.Null(s.RuleVersion); // a null version makes the next touch re-derive everything
        Assert.Equal(0, s.Days.Count);
        Assert.Equal(FreshV1(version: 4).EmptyModel().EmptyTriggers().EmptyVersion4().ToArray(), CustomerStateCodec.Encode(s));
    }

    [Fact]
    public void Customer_model_round_trips_exactly()
    {
        var state = Rich("s", "DE", null, null, true, null, false);

        var decoded = CustomerStateCodec.Decode(Id, CustomerStateCodec.Encode(state));

        AssertSameState(state, decoded);
        AssertSameModel(state, decoded);
        // Space-saving: f found five keys held, replaced b (the first of the smallest counts) and inherited its 1.
        Assert.Equal(new[] { "a", "f", "c", "d", "e" }, decoded.TopCategories.Ranked());
    }

    [Fact]
    public void Hand_written_version_1_record_decodes_and_re_encodes_as_the_current_version()
    {
        var bytes = new V1Writer()
            .Byte(1)
            .Long(1000).Long(2000).Long(7)                  // first seen, last seen, events applied
            .Int(3).Int(1)                                  // orders, cancelled
            .Decimal(123400, 0, 0, false, 4)                // gross 12.3400
            .Decimal(5, 0, 0, true, 1)                      // refund -0.5
            .Long(1500).Long(1800)                          // first / last order
            .Int(4)                                         // items
            .Int(10).Int(11).Int(12).Int(13).Int(14).Int(15) // page views .. logins
            .Int(2)                                         // sessions
            .String("s-2")
            .Int(8).Int(9)                                  // calls completed, abandoned
            .Long(30).Long(40)                              // wait, talk
            .String("DE").String(null).String("")           // country, birthday, time zone
            .Byte(2).Byte(1).Byte(0)                        // voice true, sms false, email null
            .Int(6)                                         // outcomes
            .Int(3).Int(1)                                  // recent ids: count 3, next 1
            .ULong(0xcbf29ce484222325).ULong(42).ULong(ulong.MaxValue)
            .ToArray();

        var s = CustomerStateCodec.Decode("z", bytes);

        Assert.Equal("z", s.CustomerId);
        Assert.Equal(1000L, s.FirstSeenTicks);
        Assert.Equal(2000L, s.LastSeenTicks);
        Assert.Equal(7L, s.EventsApplied);
        Assert.Equal(3, s.OrderCount);
        Assert.Equal(1, s.CancelledCount);
        Assert.Equal(12.3400m, s.GrossAmount);
        Assert.Equal(4, s.GrossAmount.Scale);
        Assert.Equal(-0.5m, s.RefundAmount);
        Assert.Equal(12.84m, s.NetAmount); // 12.3400 - (-0.5)
        Assert.Equal(1500L, s.FirstOrderTicks);
        Assert.Equal(1800L, s.LastOrderTicks);
        Assert.Equal(4, s.ItemsBought);
        Assert.Equal(10, s.PageViews);
        Assert.Equal(11, s.ProductViews);
        Assert.Equal(12, s.CartAdds);
        Assert.Equal(13, s.Favorites);
        Assert.Equal(14, s.Searches);
        Assert.Equal(15, s.Logins);
        Assert.Equal(2, s.Sessions);
        Assert.Equal("s-2", s.LastSessionId);
        Assert.Equal(8, s.CallsCompleted);
        Assert.Equal(9, s.CallsAbandoned);
        Assert.Equal(30L, s.WaitSecondsTotal);
        Assert.Equal(40L, s.TalkSecondsTotal);
        Assert.Equal("DE", s.Country);
        Assert.Null(s.Birthday);
        Assert.Equal("", s.TimeZone);
        Assert.True(s.ConsentVoice);
        Assert.False(s.ConsentSms);
        Assert.Null(s.ConsentEmail);
        Assert.Equal(6, s.OutcomesReceived);
        Assert.Equal(3, s.RecentEventIds.Count);
        Assert.True(s.RecentEventIds.Contains(IdHash.Fnv1a64("")));
        Assert.True(s.RecentEventIds.Contains(42));
        Assert.True(s.RecentEventIds.Contains(ulong.MaxValue));

        var upgraded = (byte[])bytes.Clone();
        upgraded[0] = 4;
        var tail = new V1Writer().EmptyModel().EmptyTriggers().EmptyVersion4().ToArray();
        Assert.Equal([.. upgraded, .. tail], CustomerStateCodec.Encode(s));
    }

    [Fact]
    public void Every_truncation_throws_invalid_data()
    {
        var bytes = CustomerStateCodec.Encode(Rich("sess", "DE", "1990-02-28", "Europe/Berlin", true, false, null));

        for (var n = 0; n < bytes.Length; n++)
        {
            var prefix = bytes[..n];
            var ex = Record.Exception(() => CustomerStateCodec.Decode(Id, prefix));
            Assert.True(ex is InvalidDataException, $"prefix of {n}/{bytes.Length} bytes: {(ex is null ? "no exception" : ex.GetType().Name)}");
        }
    }

    [Fact]
    public void Trailing_bytes_throw_invalid_data()
    {
        var bytes = CustomerStateCodec.Encode(new CustomerState(Id));
        var longer = new byte[bytes.Length + 1];
        bytes.CopyTo(longer, 0);

        Assert.Throws<InvalidDataException>(() => CustomerStateCodec.Decode(Id, longer));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(255)]
    public void Unknown_version_throws_invalid_data_naming_the_version(byte version)
    {
        var bytes = CustomerStateCodec.Encode(Rich("s", "DE", null, null, null, null, null));
        Assert.Equal(4, bytes[0]);
        bytes[0] = version;

        var ex = Assert.Throws<InvalidDataException>(() => CustomerStateCodec.Decode(Id, bytes));
        Assert.Contains("version " + version, ex.Message, StringComparison.Ordinal);
    }

    // Offset of LastSessionId's length: version (1) + 3 longs (24) + 2 ints (8) + 2 decimals (32) + 2 longs (16) + 8 ints (32).
    private const int SessionIdLengthOffset = 113;

    [Theory]
    [InlineData(-2)]
    [InlineData(1_000)]
    [InlineData(int.MaxValue)]
    public void String_length_that_is_negative_or_beyond_the_data_throws_invalid_data(int length)
    {
        var bytes = CustomerStateCodec.Encode(Rich("abc", null, null, null, null, null, null));
        Assert.Equal(3, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(SessionIdLengthOffset)));
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(SessionIdLengthOffset), length);

        var ex = Record.Exception(() => CustomerStateCodec.Decode(Id, bytes));

        Assert.True(ex is InvalidDataException, $"length {length}: got {(ex is null ? "no exception" : ex.GetType().FullName + ": " + ex.Message)}");
    }

    [Fact]
    public void Corrupt_boolean_and_recent_id_header_throw_invalid_data()
    {
        // A version-1 record ends with the recent-id memory, which makes the offsets below easy to name.
        var bytes = FreshV1(version: 1).ToArray();

        // In a fresh state the three consent bytes sit right before the outcome count and the two recent-id ints.
        var voiceOffset = bytes.Length - 3 - 4 - 8;
        var badBool = (byte[])bytes.Clone();
        badBool[voiceOffset] = 3;
        Assert.Throws<InvalidDataException>(() => CustomerStateCodec.Decode(Id, badBool));

        var negativeCount = (byte[])bytes.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(negativeCount.AsSpan(bytes.Length - 8), -1);
        Assert.Throws<InvalidDataException>(() => CustomerStateCodec.Decode(Id, negativeCount));

        var nextBeyondCount = (byte[])bytes.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(nextBeyondCount.AsSpan(bytes.Length - 4), 1);
        Assert.Throws<InvalidDataException>(() => CustomerStateCodec.Decode(Id, nextBeyondCount));
    }
}
