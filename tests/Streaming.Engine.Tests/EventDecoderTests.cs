using System.Text;
using Streaming.Engine.Events;
using static Streaming.Engine.Tests.TestEvents;

namespace Streaming.Engine.Tests;

public sealed class EventDecoderTests
{
    private const string Head = "'eventId':'e1','customerId':'c1','occurredAt':'2024-01-02T03:04:05Z'";

    private const string ValidOrder = "{" + Head + ",'type':'order_placed','orderId':'o1','amount':10.5}";

    private readonly EventDecoder _decoder = new();

    private static readonly byte[] Key = Encoding.UTF8.GetBytes("c1");

    private (bool Ok, CustomerEvent? Event, DecodeError Error) Decode(InputTopic topic, byte[] value, byte[]? key = null)
    {
        var ok = _decoder.TryDecode(topic, key ?? Key, value, out var evt, out var error);
        return (ok, evt, error);
    }

    private T DecodeOk<T>(InputTopic topic, string singleQuotedJson)
        where T : CustomerEvent
    {
        var (ok, evt, error) = Decode(topic, Json(singleQuotedJson));
        Assert.True(ok, $"expected success, got {error}");
        Assert.Equal(default, error);
        return Assert.IsType<T>(evt);
    }

    // ---- valid events of each topic ----

    [Fact]
    public void Order_decodes_with_all_fields_and_amount_as_exact_decimal()
    {
        var evt = DecodeOk<OrderEvent>(
            InputTopic.Orders,
            "{'eventId':'e-1','customerId':'c1','occurredAt':'2024-03-05T10:15:30.123+01:00','type':'order_placed'," +
            "'orderId':'o-9','amount':1234567.8912345678,'currency':'EUR','channel':'online','country':'DE'," +
            "'items':[{'sku':'s1','description':'shirt','quantity':2,'unitPrice':10.5},{'sku':42,'quantity':1,'unitPrice':3}]}");

        Assert.Equal("e-1", evt.EventId);
        Assert.Equal("c1", evt.CustomerId);
        Assert.Equal(EventType.OrderPlaced, evt.Type);
        Assert.Equal("o-9", evt.OrderId);

        // A double cannot hold 17 significant digits; as decimal the value is exact, including its scale.
        Assert.Equal(1234567.8912345678m, evt.Amount);
        Assert.Equal(10, evt.Amount.Scale);
        Assert.NotEqual((decimal)1234567.8912345678d, evt.Amount);

        Assert.Equal("EUR", evt.Currency);
        Assert.Equal("online", evt.Channel);
        Assert.Equal("DE", evt.Country);
        Assert.Equal(2, evt.ItemCount);
        Assert.Equal(new DateTimeOffset(2024, 3, 5, 10, 15, 30, 123, TimeSpan.FromHours(1)), evt.OccurredAt);
        Assert.Equal(new DateTime(2024, 3, 5, 9, 15, 30, 123, DateTimeKind.Utc).Ticks, evt.OccurredAt.UtcTicks);
    }

    [Fact]
    public void Order_amounts_that_are_inexact_in_binary_stay_exact()
    {
        var a = DecodeOk<OrderEvent>(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'o1','amount':0.1}");
        var b = DecodeOk<OrderEvent>(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'o1','amount':0.2}");

        Assert.Equal(0.3m, a.Amount + b.Amount);
        Assert.NotEqual(0.3d, 0.1d + 0.2d); // The reason money must not go through double.
    }

    [Fact]
    public void Order_cancelled_with_zero_amount_and_largest_decimal_decode()
    {
        var cancelled = DecodeOk<OrderEvent>(InputTopic.Orders, "{" + Head + ",'type':'order_cancelled','orderId':7,'amount':0}");
        Assert.Equal(EventType.OrderCancelled, cancelled.Type);
        Assert.Equal(0m, cancelled.Amount);
        Assert.Equal("7", cancelled.OrderId);
        Assert.Equal(0, cancelled.ItemCount);
        Assert.Null(cancelled.Channel);

        var max = DecodeOk<OrderEvent>(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'o1','amount':79228162514264337593543950335,'channel':'store'}");
        Assert.Equal(decimal.MaxValue, max.Amount);
        Assert.Equal("store", max.Channel);
    }

    [Fact]
    public void Clickstream_event_decodes_and_numeric_ids_become_strings()
    {
        var evt = DecodeOk<ClickEvent>(
            InputTopic.Clickstream,
            "{" + Head + ",'type':'product_view','sessionId':'s-1','productId':12345,'categoryId':'cat-7','page':'/p/12345','channel':'app'}");

        Assert.Equal(EventType.ProductView, evt.Type);
        Assert.Equal("s-1", evt.SessionId);
        Assert.Equal("12345", evt.ProductId);
        Assert.Equal("cat-7", evt.CategoryId);
        Assert.Equal("app", evt.Channel);
    }

    [Theory]
    [InlineData("page_view", EventType.PageView)]
    [InlineData("product_view", EventType.ProductView)]
    [InlineData("add_to_cart", EventType.AddToCart)]
    [InlineData("favorite", EventType.Favorite)]
    [InlineData("search", EventType.Search)]
    [InlineData("login", EventType.Login)]
    public void Every_clickstream_type_maps_to_its_event_type(string type, EventType expected)
    {
        var evt = DecodeOk<ClickEvent>(InputTopic.Clickstream, "{" + Head + ",'type':'" + type + "'}");
        Assert.Equal(expected, evt.Type);
        Assert.Null(evt.SessionId);
    }

    [Fact]
    public void Callcenter_event_decodes_and_fractional_seconds_are_truncated()
    {
        var evt = DecodeOk<CallEvent>(
            InputTopic.Callcenter,
            "{" + Head + ",'type':'call_completed','callId':'k-1','queue':'billing','priority':2,'waitSeconds':12.7,'talkSeconds':300,'outcome':'resolved','agent':'bob'}");

        Assert.Equal(EventType.CallCompleted, evt.Type);
        Assert.Equal("k-1", evt.CallId);
        Assert.Equal("billing", evt.Queue);
        Assert.Equal(12, evt.WaitSeconds);
        Assert.Equal(300, evt.TalkSeconds);

        var abandoned = DecodeOk<CallEvent>(InputTopic.Callcenter, "{" + Head + ",'type':'call_abandoned','waitSeconds':null}");
        Assert.Equal(EventType.CallAbandoned, abandoned.Type);
        Assert.Equal(0, abandoned.WaitSeconds);
        Assert.Equal(0, abandoned.TalkSeconds);
    }

    [Fact]
    public void Customer_update_attributes_decode()
    {
        var evt = DecodeOk<UpdateEvent>(
            InputTopic.CustomerUpdates,
            "{" + Head + ",'type':'attributes','attributes':{'birthday':'1990-02-28','timeZone':'Europe/Berlin','country':'DE','phone':'+4930123','email':'a@b.example'}}");

        Assert.Equal(EventType.Attributes, evt.Type);
        Assert.Equal("1990-02-28", evt.Birthday);
        Assert.Equal("Europe/Berlin", evt.TimeZone);
        Assert.Equal("DE", evt.Country);
        Assert.Null(evt.ConsentVoice);
        Assert.Null(evt.ConsentSms);
        Assert.Null(evt.ConsentEmail);
    }

    [Fact]
    public void Customer_update_consent_decodes_and_absent_flags_stay_null()
    {
        var evt = DecodeOk<UpdateEvent>(InputTopic.CustomerUpdates, "{" + Head + ",'type':'consent','consent':{'voice':true,'sms':false}}");

        Assert.Equal(EventType.Consent, evt.Type);
        Assert.True(evt.ConsentVoice);
        Assert.False(evt.ConsentSms);
        Assert.Null(evt.ConsentEmail);
        Assert.Null(evt.Birthday);

        var emailOnly = DecodeOk<UpdateEvent>(InputTopic.CustomerUpdates, "{" + Head + ",'type':'consent','consent':{'email':true}}");
        Assert.Null(emailOnly.ConsentVoice);
        Assert.Null(emailOnly.ConsentSms);
        Assert.True(emailOnly.ConsentEmail);
    }

    [Theory]
    [InlineData("answered")]
    [InlineData("no_answer")]
    [InlineData("converted")]
    [InlineData("opted_out")]
    [InlineData("failed")]
    public void Outreach_outcome_decodes(string outcome)
    {
        var evt = DecodeOk<OutcomeEvent>(InputTopic.OutreachOutcomes, "{" + Head + ",'type':'outreach_outcome','outreachId':'r-1','channel':'voice','outcome':'" + outcome + "'}");

        Assert.Equal(EventType.OutreachOutcome, evt.Type);
        Assert.Equal("r-1", evt.OutreachId);
        Assert.Equal("voice", evt.Channel);
        Assert.Equal(outcome, evt.Outcome);
    }

    [Fact]
    public void Unknown_extra_properties_are_ignored()
    {
        var plain = DecodeOk<OrderEvent>(InputTopic.Orders, ValidOrder);
        var extended = DecodeOk<OrderEvent>(
            InputTopic.Orders,
            "{'zzz':true,'nested':{'a':[1,2,{'b':null}],'c':'d'}," + Head + ",'type':'order_placed','orderId':'o1','amount':10.5,'newField':[[]],'priority':3}");

        Assert.Equal(plain, extended);
    }

    [Theory]
    [InlineData("1970-01-01T00:00:00Z")]
    [InlineData("2099-12-31T23:59:59.9999999Z")]
    [InlineData("2100-01-01T00:30:00+01:00")] // 2099-12-31T23:30Z: the limit applies to the instant, not the local date.
    [InlineData("2024-01-02T03:04:05-08:00")]
    public void Occurred_at_inside_the_window_is_accepted(string occurredAt)
    {
        var evt = DecodeOk<OrderEvent>(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','occurredAt':'" + occurredAt + "','type':'order_placed','orderId':'o1','amount':1}");
        Assert.Equal(DateTimeOffset.Parse(occurredAt, System.Globalization.CultureInfo.InvariantCulture), evt.OccurredAt);
    }

    // ---- rejections ----

    [Theory]
    // not an object
    [InlineData(InputTopic.Orders, "[1,2]", "not-an-object")]
    [InlineData(InputTopic.Orders, "42", "not-an-object")]
    [InlineData(InputTopic.Orders, "'text'", "not-an-object")]
    [InlineData(InputTopic.Orders, "null", "not-an-object")]
    // invalid JSON
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1'", "invalid-json")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','custo", "invalid-json")]
    [InlineData(InputTopic.Orders, ValidOrder + "x", "invalid-json")]
    [InlineData(InputTopic.Orders, ValidOrder + "{}", "invalid-json")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1',}", "invalid-json")]
    [InlineData(InputTopic.Orders, "{/*c*/'eventId':'e1'}", "invalid-json")]
    // missing fields
    [InlineData(InputTopic.Orders, "{'customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}", "missing-field")]
    [InlineData(InputTopic.Orders, "{'eventId':null,'customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}", "missing-field")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':null,'occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}", "missing-field")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':null,'orderId':'o1','amount':1}", "missing-field")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':null,'amount':1}", "missing-field")]
    // present but empty: a value the contract does not allow (ids are 1 to 256 characters)
    [InlineData(InputTopic.Orders, "{'eventId':'','customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}", "invalid-field")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}", "invalid-field")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'','amount':1}", "invalid-field")]
    [InlineData(InputTopic.OutreachOutcomes, "{" + Head + ",'type':'outreach_outcome','outreachId':'','outcome':'answered'}", "invalid-field")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'','orderId':'o1','amount':1}", "unknown-type")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}", "missing-field")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','type':'order_placed','orderId':'o1','amount':1}", "missing-field")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'orderId':'o1','amount':1}", "missing-field")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'order_placed','amount':1}", "missing-field")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'o1'}", "missing-field")]
    [InlineData(InputTopic.OutreachOutcomes, "{" + Head + ",'type':'outreach_outcome','outcome':'answered'}", "missing-field")]
    // wrong types
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'o1','amount':'10.5'}", "wrong-type")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'o1','amount':1e30}", "wrong-type")]
    [InlineData(InputTopic.Orders, "{'eventId':5,'customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}", "wrong-type")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','occurredAt':1704164645,'type':'order_placed','orderId':'o1','amount':1}", "wrong-type")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':1.5,'amount':1}", "wrong-type")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'o1','amount':1,'items':{}}", "wrong-type")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'o1','amount':1,'items':[1]}", "wrong-type")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'o1','amount':1,'items':[{'quantity':'2'}]}", "wrong-type")]
    [InlineData(InputTopic.Callcenter, "{" + Head + ",'type':'call_completed','waitSeconds':-1}", "wrong-type")]
    [InlineData(InputTopic.Callcenter, "{" + Head + ",'type':'call_completed','talkSeconds':'60'}", "wrong-type")]
    [InlineData(InputTopic.CustomerUpdates, "{" + Head + ",'type':'consent','consent':{'voice':'yes'}}", "wrong-type")]
    [InlineData(InputTopic.CustomerUpdates, "{" + Head + ",'type':'consent','consent':{'sms':1}}", "wrong-type")]
    [InlineData(InputTopic.CustomerUpdates, "{" + Head + ",'type':'attributes','attributes':[]}", "wrong-type")]
    // unknown types
    [InlineData(InputTopic.Clickstream, "{" + Head + ",'type':'order_placed','orderId':'o1','amount':1}", "unknown-type")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'foo','orderId':'o1','amount':1}", "unknown-type")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'ORDER_PLACED','orderId':'o1','amount':1}", "unknown-type")]
    [InlineData(InputTopic.Callcenter, "{" + Head + ",'type':'page_view'}", "unknown-type")]
    [InlineData(InputTopic.OutreachOutcomes, "{" + Head + ",'type':'consent','outreachId':'r1','outcome':'answered'}", "unknown-type")]
    // event time outside the accepted window
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','occurredAt':'1900-01-01T00:00:00Z','type':'order_placed','orderId':'o1','amount':1}", "time-out-of-range")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','occurredAt':'2200-01-01T00:00:00Z','type':'order_placed','orderId':'o1','amount':1}", "time-out-of-range")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','occurredAt':'1969-12-31T23:59:59Z','type':'order_placed','orderId':'o1','amount':1}", "time-out-of-range")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','occurredAt':'2100-01-01T00:00:00Z','type':'order_placed','orderId':'o1','amount':1}", "time-out-of-range")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','occurredAt':'1970-01-01T00:30:00+01:00','type':'order_placed','orderId':'o1','amount':1}", "time-out-of-range")]
    // invalid field values
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','occurredAt':'2024-01-02T03:04:05','type':'order_placed','orderId':'o1','amount':1}", "invalid-field")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','occurredAt':'2024-01-02T03:04:05.1234567','type':'order_placed','orderId':'o1','amount':1}", "invalid-field")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','occurredAt':'2024-01-02','type':'order_placed','orderId':'o1','amount':1}", "invalid-field")]
    [InlineData(InputTopic.Orders, "{'eventId':'e1','customerId':'c1','occurredAt':'yesterday','type':'order_placed','orderId':'o1','amount':1}", "invalid-field")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'o1','amount':-0.01}", "invalid-field")]
    [InlineData(InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'o1','amount':1,'channel':'web'}", "invalid-field")]
    [InlineData(InputTopic.Clickstream, "{" + Head + ",'type':'page_view','channel':'online'}", "invalid-field")]
    [InlineData(InputTopic.CustomerUpdates, "{" + Head + ",'type':'attributes','attributes':{'birthday':'02/28/1990'}}", "invalid-field")]
    [InlineData(InputTopic.CustomerUpdates, "{" + Head + ",'type':'attributes','attributes':{'birthday':'1990-2-28'}}", "invalid-field")]
    [InlineData(InputTopic.CustomerUpdates, "{" + Head + ",'type':'attributes','attributes':{'birthday':'1990-02-30'}}", "invalid-field")]
    [InlineData(InputTopic.CustomerUpdates, "{" + Head + ",'type':'attributes','attributes':{'timeZone':'Mars/Olympus_Mons'}}", "invalid-field")]
    [InlineData(InputTopic.OutreachOutcomes, "{" + Head + ",'type':'outreach_outcome','outreachId':'r1','outcome':'maybe'}", "invalid-field")]
    [InlineData(InputTopic.OutreachOutcomes, "{" + Head + ",'type':'outreach_outcome','outreachId':'r1'}", "invalid-field")]
    public void Invalid_record_is_rejected_with_its_code(InputTopic topic, string singleQuotedJson, string expectedCode)
    {
        var (ok, evt, error) = Decode(topic, Json(singleQuotedJson));

        Assert.False(ok);
        Assert.Null(evt);
        Assert.Equal(expectedCode, error.Code);
        Assert.False(string.IsNullOrWhiteSpace(error.Detail));
    }

    [Theory]
    [InlineData("z", false)]
    [InlineData("Z", false)]
    [InlineData("+01:00", false)]
    [InlineData("z", true)] // the same, with escapes (the escaped path copies the text)
    public void A_multi_megabyte_occurred_at_is_an_invalid_field_not_a_stack_overflow(string end, bool escaped)
    {
        // The record limit allows it (MaxRecordBytes may be set high); the time's own length must bound every buffer.
        var decoder = new EventDecoder(new DecoderOptions { MaxRecordBytes = 16 * 1024 * 1024 });
        var body = "2011-12-09t12:50:00." + new string('1', 8 * 1024 * 1024) + end;
        if (escaped)
        {
            body = "\\u0032" + body[1..];
        }

        var value = Json("{'eventId':'e1','customerId':'c1','occurredAt':'" + body + "','type':'page_view'}");
        Assert.True(value.Length > 8 * 1024 * 1024);

        Assert.False(decoder.TryDecode(InputTopic.Clickstream, Key, value, out var evt, out var error));
        Assert.Null(evt);
        Assert.Equal("invalid-field", error.Code);
        Assert.Contains("occurredAt", error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_field_detail_names_the_field()
    {
        var (_, _, noOrderId) = Decode(InputTopic.Orders, Json("{" + Head + ",'type':'order_placed','amount':1}"));
        var (_, _, noAmount) = Decode(InputTopic.Orders, Json("{" + Head + ",'type':'order_placed','orderId':'o1'}"));
        var (_, _, noOutreachId) = Decode(InputTopic.OutreachOutcomes, Json("{" + Head + ",'type':'outreach_outcome','outcome':'failed'}"));

        Assert.Contains("orderId", noOrderId.Detail, StringComparison.Ordinal);
        Assert.Contains("amount", noAmount.Detail, StringComparison.Ordinal);
        Assert.Contains("outreachId", noOutreachId.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Oversized_record_is_rejected_before_reading()
    {
        var small = new EventDecoder(new DecoderOptions { MaxRecordBytes = 64 });
        var value = Json(ValidOrder);
        Assert.True(value.Length > 64);

        Assert.False(small.TryDecode(InputTopic.Orders, Key, value, out var evt, out var error));
        Assert.Null(evt);
        Assert.Equal("oversized", error.Code);

        // With the default limit (256 KiB) one byte over is enough, whatever the content.
        var huge = new byte[(256 * 1024) + 1];
        Assert.False(_decoder.TryDecode(InputTopic.Orders, Key, huge, out _, out var hugeError));
        Assert.Equal("oversized", hugeError.Code);

        // Exactly at the limit the record is read and accepted.
        var atLimit = new EventDecoder(new DecoderOptions { MaxRecordBytes = value.Length });
        Assert.True(atLimit.TryDecode(InputTopic.Orders, Key, value, out _, out var atLimitError), atLimitError.ToString());
    }

    [Fact]
    public void Empty_record_is_rejected()
    {
        Assert.False(_decoder.TryDecode(InputTopic.Orders, Key, ReadOnlySpan<byte>.Empty, out var evt, out var error));
        Assert.Null(evt);
        Assert.Equal("empty", error.Code);
    }

    [Fact]
    public void Empty_key_is_rejected_as_missing_key()
    {
        var (ok, _, error) = Decode(InputTopic.Orders, Json(ValidOrder), []);

        Assert.False(ok);
        Assert.Equal("missing-key", error.Code);
    }

    [Theory]
    [InlineData("c2")]
    [InlineData("C1")]
    [InlineData("c1 ")]
    [InlineData("c")]
    public void Key_different_from_customer_id_is_rejected(string key)
    {
        var (ok, _, error) = Decode(InputTopic.Orders, Json(ValidOrder), Utf8(key));

        Assert.False(ok);
        Assert.Equal("key-mismatch", error.Code);
    }

    [Fact]
    public void Key_matches_non_ascii_and_long_customer_ids_by_utf8_bytes()
    {
        const string shortId = "Zoë-東京-😀";
        var (ok, evt, error) = Decode(InputTopic.Orders, Json("{'eventId':'e1','customerId':'" + shortId + "','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}"), Utf8(shortId));
        Assert.True(ok, error.ToString());
        Assert.Equal(shortId, evt!.CustomerId);

        // 200 three-byte characters: longer than any small stack buffer used for the comparison.
        var longId = new string('東', 200);
        var longJson = Json("{'eventId':'e1','customerId':'" + longId + "','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}");
        var (longOk, _, longError) = Decode(InputTopic.Orders, longJson, Utf8(longId));
        Assert.True(longOk, longError.ToString());

        var (wrongOk, _, wrongError) = Decode(InputTopic.Orders, longJson, Utf8(longId[..^1] + "京"));
        Assert.False(wrongOk);
        Assert.Equal("key-mismatch", wrongError.Code);
    }

    [Fact]
    public void Ids_longer_than_the_limit_are_rejected()
    {
        var options = new DecoderOptions();
        var tooLong = new string('x', options.MaxIdLength + 1);
        var json = Json("{'eventId':'" + tooLong + "','customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}");
        var (ok, _, error) = Decode(InputTopic.Orders, json);

        Assert.False(ok);
        Assert.Equal("invalid-field", error.Code);

        var atLimit = new string('x', options.MaxIdLength);
        var (okAtLimit, _, errorAtLimit) = Decode(InputTopic.Orders, Json("{'eventId':'" + atLimit + "','customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}"));
        Assert.True(okAtLimit, errorAtLimit.ToString());
    }

    [Fact]
    public void Nesting_deeper_than_max_depth_is_invalid_json_and_does_not_throw()
    {
        var maxDepth = _decoder.Options.MaxDepth;

        // The top-level object is one level; (maxDepth - 1) nested arrays reach exactly the limit.
        var atLimit = "{" + Head + ",'type':'order_placed','orderId':'o1','amount':1,'x':" + new string('[', maxDepth - 1) + new string(']', maxDepth - 1) + "}";
        var (okAtLimit, _, errorAtLimit) = Decode(InputTopic.Orders, Json(atLimit));
        Assert.True(okAtLimit, errorAtLimit.ToString());

        foreach (var depth in new[] { maxDepth, 100, 10_000 })
        {
            var deep = "{" + Head + ",'type':'order_placed','orderId':'o1','amount':1,'x':" + new string('[', depth) + new string(']', depth) + "}";
            var result = Record.Exception(() => Decode(InputTopic.Orders, Json(deep)));
            Assert.Null(result);
            var (ok, evt, error) = Decode(InputTopic.Orders, Json(deep));
            Assert.False(ok, $"depth {depth} accepted");
            Assert.Null(evt);
            Assert.Equal("invalid-json", error.Code);
        }

        // Deep nesting inside a field the decoder reads itself (attributes) is rejected the same way.
        var deepAttributes = "{" + Head + ",'type':'attributes','attributes':{'extra':" + new string('[', 50) + new string(']', 50) + "}}";
        var (attrOk, _, attrError) = Decode(InputTopic.CustomerUpdates, Json(deepAttributes));
        Assert.False(attrOk);
        Assert.Equal("invalid-json", attrError.Code);
    }

    [Theory]
    [InlineData("{'eventId':'\\ud800','customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}")]
    [InlineData("{'eventId':'e1','customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1,'currency':'\\udc00x'}")]
    [InlineData("{'eventId':'e1','customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'\\ud83d','amount':1}")]
    [InlineData("{'eventId':'e1','customerId':'c1','occurredAt':'2024-01-02T03:04:05\\ud800Z','type':'order_placed','orderId':'o1','amount':1}")]
    [InlineData("{'eventId':'e1','customerId':'c1','occurredAt':'2024-01-02T03:04:05.12\\udc00+01:00','type':'order_placed','orderId':'o1','amount':1}")]
    public void Lone_surrogate_escapes_in_strings_are_rejected_without_throwing(string singleQuotedJson)
    {
        (bool Ok, CustomerEvent? Event, DecodeError Error) result = default;
        var thrown = Record.Exception(() => result = Decode(InputTopic.Orders, Json(singleQuotedJson)));

        Assert.Null(thrown);
        Assert.False(result.Ok);
        Assert.False(string.IsNullOrEmpty(result.Error.Code));
    }

    [Fact]
    public void Invalid_utf8_bytes_in_strings_are_rejected_without_throwing()
    {
        var value = Json("{'eventId':'eX','customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}");
        var at = Array.IndexOf(value, (byte)'X');
        value[at] = 0xFF; // Never valid in UTF-8.

        (bool Ok, CustomerEvent? Event, DecodeError Error) result = default;
        var thrown = Record.Exception(() => result = Decode(InputTopic.Orders, value));

        Assert.Null(thrown);
        Assert.False(result.Ok);
    }

    // ---- robustness: TryDecode never throws ----

    private static readonly (InputTopic Topic, string Json)[] ValidSamples =
    [
        (InputTopic.Orders, "{" + Head + ",'type':'order_placed','orderId':'o1','amount':1234567.8912345678,'currency':'EUR','channel':'online','country':'DE','items':[{'sku':'s1','quantity':2,'unitPrice':10.5}]}"),
        (InputTopic.Clickstream, "{" + Head + ",'type':'add_to_cart','sessionId':'s1','productId':42,'categoryId':'c','page':'/x','channel':'web'}"),
        (InputTopic.Callcenter, "{" + Head + ",'type':'call_abandoned','callId':'k1','queue':'q','waitSeconds':12,'talkSeconds':0,'agent':'a'}"),
        (InputTopic.CustomerUpdates, "{" + Head + ",'type':'attributes','attributes':{'birthday':'1990-02-28','timeZone':'Europe/Berlin','country':'DE'},'consent':{'voice':true,'sms':false,'email':true}}"),
        (InputTopic.OutreachOutcomes, "{" + Head + ",'type':'outreach_outcome','outreachId':'r1','channel':'sms','outcome':'opted_out'}"),
    ];

    [Fact]
    public void Every_valid_sample_used_for_fuzzing_decodes()
    {
        foreach (var (topic, json) in ValidSamples)
        {
            var (ok, _, error) = Decode(topic, Json(json));
            Assert.True(ok, $"{topic}: {error}");
        }
    }

    [Fact]
    public void Try_decode_never_throws_on_random_or_mutated_input()
    {
        const int seed = 20_240_917;
        var rng = new Random(seed);
        var interesting = Encoding.UTF8.GetBytes("{}[]\":,\\u0123456789abcdefDdEe+-.tnfrlsZT \t\r\n").Concat(new byte[] { 0x00, 0x7F, 0x80, 0xBF, 0xC0, 0xC3, 0xE2, 0xED, 0xF0, 0xF4, 0xFF }).ToArray();
        var topics = Enum.GetValues<InputTopic>();
        var cases = 0;
        var failures = new List<string>();

        void Check(InputTopic topic, byte[] key, byte[] value, string what)
        {
            cases++;
            bool ok;
            CustomerEvent? evt;
            DecodeError error;
            try
            {
                ok = _decoder.TryDecode(topic, key, value, out evt, out error);
            }
            catch (Exception ex)
            {
                // Keep going, so one run reports how widespread a failure is.
                failures.Add($"{ex.GetType().Name} ({ex.Message}) for {what} on {topic}; value (base64) {Convert.ToBase64String(value)}");
                return;
            }

            // Whatever the input, the result is consistent: an event without an error, or an error without an event.
            if (ok)
            {
                Assert.True(evt is not null && error == default, $"seed {seed}: success without an event for {what}");
            }
            else
            {
                Assert.True(evt is null && !string.IsNullOrEmpty(error.Code), $"seed {seed}: failure without a code for {what}");
            }
        }

        // Random bytes: uniformly random, and drawn from JSON-significant bytes (more likely to get past the first token).
        for (var i = 0; i < 3000; i++)
        {
            var value = new byte[rng.Next(0, 80)];
            if (i % 2 == 0)
            {
                rng.NextBytes(value);
            }
            else
            {
                for (var j = 0; j < value.Length; j++)
                {
                    value[j] = interesting[rng.Next(interesting.Length)];
                }

                if (value.Length > 0)
                {
                    value[0] = (byte)'{';
                }
            }

            Check(topics[rng.Next(topics.Length)], Key, value, $"random bytes #{i}");
        }

        foreach (var (topic, json) in ValidSamples)
        {
            var valid = Json(json);

            // Truncation at every position.
            for (var n = 0; n < valid.Length; n++)
            {
                Check(topic, Key, valid[..n], $"truncation at {n}");
            }

            // One to three random byte replacements.
            for (var i = 0; i < 1500; i++)
            {
                var mutated = (byte[])valid.Clone();
                var flips = rng.Next(1, 4);
                for (var f = 0; f < flips; f++)
                {
                    var pos = rng.Next(mutated.Length);
                    mutated[pos] = rng.Next(3) switch
                    {
                        0 => (byte)rng.Next(256),
                        1 => (byte)(mutated[pos] ^ (1 << rng.Next(8))),
                        _ => interesting[rng.Next(interesting.Length)],
                    };
                }

                Check(topic, Key, mutated, $"mutation #{i}");
            }

            // Insertion of escape sequences into string values (lone surrogates, control characters).
            foreach (var escape in new[] { "\\ud800", "\\udfff", "\\u0000", "\\ud83d\\ude00", "\\uD834x" })
            {
                var text = Encoding.UTF8.GetString(valid);
                var pos = text.IndexOf("\"e1\"", StringComparison.Ordinal) + 1;
                Check(topic, Key, Encoding.UTF8.GetBytes(text.Insert(pos, escape)), $"escape {escape} in eventId");
            }
        }

        Assert.True(cases > 10_000, $"only {cases} cases ran");
        Assert.True(
            failures.Count == 0,
            $"seed {seed}: TryDecode threw in {failures.Count} of {cases} cases ("
            + string.Join(", ", failures.GroupBy(f => f[..f.IndexOf(' ', StringComparison.Ordinal)]).Select(g => $"{g.Key} x{g.Count()}"))
            + "); first ones:\n" + string.Join("\n", failures.Take(5)));
    }
}
