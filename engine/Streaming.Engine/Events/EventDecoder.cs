using System.Text;
using System.Text.Json;

namespace Streaming.Engine.Events;

/// <summary>Why an input record was rejected: a stable code (a metric label) and a human-readable detail.</summary>
public readonly record struct DecodeError(string Code, string Detail)
{
    /// <summary>Every code the decoder gives (dead-letter reasons; metrics pre-create a series for each).</summary>
    public static readonly IReadOnlyList<string> Codes =
    [
        "empty", "invalid-field", "invalid-json", "key-mismatch", "missing-field", "missing-key", "not-an-object", "oversized",
        "processing-error", "time-in-future", "time-out-of-range", "unknown-topic", "unknown-type", "wrong-type",
    ];

    public override string ToString() => Code + ": " + Detail;
}

/// <summary>Limits applied while decoding input records.</summary>
public sealed record DecoderOptions
{
    /// <summary>Records larger than this are rejected unread.</summary>
    public int MaxRecordBytes { get; init; } = 256 * 1024;

    /// <summary>
    /// Longest <c>customerId</c> and <c>eventId</c> in characters (Unicode scalar values, so an emoji counts once);
    /// CONTRACTS.md §2 v1.1 fixes 256 for customer ids.
    /// </summary>
    public int MaxIdLength { get; init; } = 256;

    public int MaxDepth { get; init; } = 16;

    /// <summary>Events before this instant are rejected (corrupt clocks, epoch zero).</summary>
    public DateTimeOffset MinOccurredAt { get; init; } = new(1970, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Events at or after this instant are rejected.</summary>
    public DateTimeOffset MaxOccurredAt { get; init; } = new(2100, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// How far <c>occurredAt</c> may lie after the record's broker timestamp (<c>time-in-future</c> beyond it), so one
    /// record with a wrong clock cannot move its partition's watermark (CONTRACTS.md §2 v1.1,
    /// <c>Streaming:Engine:MaxFutureSkewSeconds</c>, default 3600 s).
    /// </summary>
    public TimeSpan MaxFutureSkew { get; init; } = TimeSpan.FromHours(1);

    /// <summary>
    /// The engine's clock, or null. When set, <c>occurredAt</c> may also lie at most <see cref="MaxFutureSkew"/> after
    /// its "now": the bound is the earlier of the broker timestamp and now, so a producer whose clock runs ahead (and
    /// stamps its records with that clock, CreateTime) cannot move a partition's watermark either. Replays of history
    /// are unaffected: their events lie before both.
    /// </summary>
    public TimeProvider? Clock { get; init; }
}

/// <summary>
/// Reads and validates one input record (UTF-8 JSON) against CONTRACTS.md §2. Allocation is limited to the strings
/// the event keeps; unknown properties are skipped so producers can add fields.
/// </summary>
public sealed class EventDecoder(DecoderOptions options)
{
    public DecoderOptions Options { get; } = options;

    public EventDecoder()
        : this(new DecoderOptions())
    {
    }

    /// <summary>Decodes <paramref name="value"/> read from <paramref name="topic"/> with record key <paramref name="key"/>.</summary>
    public bool TryDecode(InputTopic topic, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, out CustomerEvent? evt, out DecodeError error) =>
        TryDecode(topic, key, value, brokerTime: null, out evt, out error);

    /// <summary>
    /// As above, with the record's broker timestamp: an event whose <c>occurredAt</c> lies more than
    /// <see cref="DecoderOptions.MaxFutureSkew"/> after it is refused as <c>time-in-future</c>. Null (the record has
    /// no timestamp) skips that check.
    /// </summary>
    /// <remarks>
    /// Never throws for a record: a failure the checks did not foresee (the injected clock failing, say) is refused as
    /// <c>processing-error</c>, so no single record can stop the caller's consume loop.
    /// </remarks>
    public bool TryDecode(InputTopic topic, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, DateTimeOffset? brokerTime, out CustomerEvent? evt, out DecodeError error)
    {
        try
        {
            return Decode(topic, key, value, brokerTime, out evt, out error);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            evt = null;
            error = new("processing-error", $"{ex.GetType().Name} while decoding: {Truncate(ex.Message, 200)}");
            return false;
        }
    }

    private bool Decode(InputTopic topic, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, DateTimeOffset? brokerTime, out CustomerEvent? evt, out DecodeError error)
    {
        evt = null;
        if (value.Length > Options.MaxRecordBytes)
        {
            error = new("oversized", $"record of {value.Length} bytes exceeds the limit of {Options.MaxRecordBytes}");
            return false;
        }

        if (value.IsEmpty)
        {
            error = new("empty", "record has no value");
            return false;
        }

        var fields = new Fields();
        try
        {
            var reader = new Utf8JsonReader(value, new JsonReaderOptions { MaxDepth = Options.MaxDepth, CommentHandling = JsonCommentHandling.Disallow });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                error = new("not-an-object", "the value must be a JSON object");
                return false;
            }

            if (!ReadTop(ref reader, ref fields, out error))
            {
                return false;
            }

            if (reader.Read())
            {
                error = new("invalid-json", "trailing content after the JSON object");
                return false;
            }
        }
        catch (JsonException ex)
        {
            error = new("invalid-json", Truncate(ex.Message, 200));
            return false;
        }
        catch (InvalidOperationException ex)
        {
            // Strings that cannot be transcoded: invalid UTF-8 bytes or lone surrogate escapes (\ud800).
            error = new("invalid-json", Truncate(ex.Message, 200));
            return false;
        }

        if (!Build(topic, key, ref fields, out evt, out error))
        {
            return false;
        }

        if (brokerTime is { } appended && evt!.OccurredAt - appended > Options.MaxFutureSkew)
        {
            error = new("time-in-future", $"occurredAt {evt.OccurredAt:O} is more than {Options.MaxFutureSkew.TotalSeconds:0} s after the record's broker timestamp {appended:O}");
            evt = null;
            return false;
        }

        if (Options.Clock is { } clock && evt!.OccurredAt.UtcTicks - Options.MaxFutureSkew.Ticks > _clockSeenTicks)
        {
            // Asks the clock only for an event later than the last "now" seen plus the skew (rare: history lies before
            // it, live events within it), so the check costs nothing per record. Assumes the clock does not move back.
            _clockSeenTicks = Math.Max(_clockSeenTicks, clock.GetUtcNow().UtcTicks);
            if (evt.OccurredAt.UtcTicks - Options.MaxFutureSkew.Ticks > _clockSeenTicks)
            {
                error = new("time-in-future", $"occurredAt {evt.OccurredAt:O} is more than {Options.MaxFutureSkew.TotalSeconds:0} s after the engine's clock {new DateTimeOffset(_clockSeenTicks, TimeSpan.Zero):O}");
                evt = null;
                return false;
            }
        }

        return true;
    }

    /// <summary>The latest "now" read from <see cref="DecoderOptions.Clock"/> (UTC ticks; 0 before the first read).</summary>
    private long _clockSeenTicks;

    private bool ReadTop(ref Utf8JsonReader reader, ref Fields f, out DecodeError error)
    {
        error = default;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndObject)
            {
                error = default;
                return true;
            }

            // Property name, then its value.
            var ok = true;
            if (reader.ValueTextEquals("eventId"u8))
            {
                ok = ReadString(ref reader, "eventId", out f.EventId, out error);
            }
            else if (reader.ValueTextEquals("customerId"u8))
            {
                ok = ReadString(ref reader, "customerId", out f.CustomerId, out error);
            }
            else if (reader.ValueTextEquals("occurredAt"u8))
            {
                ok = ReadTime(ref reader, out f.OccurredAt, out f.HasOccurredAt, out error);
            }
            else if (reader.ValueTextEquals("type"u8))
            {
                ok = ReadString(ref reader, "type", out f.Type, out error);
            }
            else if (reader.ValueTextEquals("orderId"u8))
            {
                ok = ReadId(ref reader, "orderId", out f.OrderId, out error);
            }
            else if (reader.ValueTextEquals("amount"u8))
            {
                ok = ReadAmount(ref reader, ref f, out error);
            }
            else if (reader.ValueTextEquals("currency"u8))
            {
                ok = ReadString(ref reader, "currency", out f.Currency, out error);
            }
            else if (reader.ValueTextEquals("channel"u8))
            {
                ok = ReadString(ref reader, "channel", out f.Channel, out error);
            }
            else if (reader.ValueTextEquals("country"u8))
            {
                ok = ReadString(ref reader, "country", out f.Country, out error);
            }
            else if (reader.ValueTextEquals("items"u8))
            {
                ok = ReadItems(ref reader, ref f, out error);
            }
            else if (reader.ValueTextEquals("sessionId"u8))
            {
                ok = ReadId(ref reader, "sessionId", out f.SessionId, out error);
            }
            else if (reader.ValueTextEquals("productId"u8))
            {
                ok = ReadId(ref reader, "productId", out f.ProductId, out error);
            }
            else if (reader.ValueTextEquals("categoryId"u8))
            {
                ok = ReadId(ref reader, "categoryId", out f.CategoryId, out error);
            }
            else if (reader.ValueTextEquals("callId"u8))
            {
                ok = ReadId(ref reader, "callId", out f.CallId, out error);
            }
            else if (reader.ValueTextEquals("queue"u8))
            {
                ok = ReadId(ref reader, "queue", out f.Queue, out error);
            }
            else if (reader.ValueTextEquals("waitSeconds"u8))
            {
                ok = ReadSeconds(ref reader, "waitSeconds", out f.WaitSeconds, out error);
            }
            else if (reader.ValueTextEquals("talkSeconds"u8))
            {
                ok = ReadSeconds(ref reader, "talkSeconds", out f.TalkSeconds, out error);
            }
            else if (reader.ValueTextEquals("attributes"u8))
            {
                ok = ReadAttributes(ref reader, ref f, out error);
            }
            else if (reader.ValueTextEquals("consent"u8))
            {
                ok = ReadConsent(ref reader, ref f, out error);
            }
            else if (reader.ValueTextEquals("outreachId"u8))
            {
                ok = ReadId(ref reader, "outreachId", out f.OutreachId, out error);
            }
            else if (reader.ValueTextEquals("outcome"u8))
            {
                ok = ReadString(ref reader, "outcome", out f.Outcome, out error);
            }
            else
            {
                // Unknown property (including page, priority, agent, which the model does not keep yet): skip its value.
                reader.Read();
                reader.Skip();
                error = default;
            }

            if (!ok)
            {
                return false;
            }
        }

        error = new("invalid-json", "unterminated object");
        return false;
    }

    private static bool ReadAmount(ref Utf8JsonReader reader, ref Fields f, out DecodeError error)
    {
        reader.Read();
        if (reader.TokenType != JsonTokenType.Number || !reader.TryGetDecimal(out f.Amount))
        {
            error = new("wrong-type", "amount must be a JSON number within decimal range");
            return false;
        }

        f.HasAmount = true;
        error = default;
        return true;
    }

    private bool Build(InputTopic topic, ReadOnlySpan<byte> key, ref Fields f, out CustomerEvent? evt, out DecodeError error)
    {
        evt = null;

        // Absent (or null) is missing-field; present but empty is a value the contract does not allow: invalid-field
        // for ids (CONTRACTS.md §2 v1.1: 1 to 256 characters), unknown-type for the type.
        if (f.EventId is null)
        {
            error = new("missing-field", "eventId is required");
            return false;
        }

        if (f.CustomerId is null)
        {
            error = new("missing-field", "customerId is required");
            return false;
        }

        if (!f.HasOccurredAt)
        {
            error = new("missing-field", "occurredAt is required");
            return false;
        }

        if (f.Type is null)
        {
            error = new("missing-field", "type is required");
            return false;
        }

        if (f.EventId.Length == 0)
        {
            error = new("invalid-field", $"eventId must be 1 to {Options.MaxIdLength} characters");
            return false;
        }

        if (!IsValidId(f.CustomerId, Options.MaxIdLength))
        {
            error = new("invalid-field", $"customerId must be 1 to {Options.MaxIdLength} characters without control characters (U+0000-U+001F, U+007F)");
            return false;
        }

        if (f.EventId.Length > Options.MaxIdLength)
        {
            error = new("invalid-field", $"eventId is limited to {Options.MaxIdLength} characters");
            return false;
        }

        if (f.OccurredAt < Options.MinOccurredAt || f.OccurredAt >= Options.MaxOccurredAt)
        {
            error = new("time-out-of-range", $"occurredAt {f.OccurredAt:O} is outside [{Options.MinOccurredAt:O}, {Options.MaxOccurredAt:O})");
            return false;
        }

        if (key.IsEmpty)
        {
            error = new("missing-key", "the record key must be the customerId");
            return false;
        }

        if (!KeyMatches(key, f.CustomerId))
        {
            error = new("key-mismatch", "the record key differs from customerId");
            return false;
        }

        if (!TryParseType(topic, f.Type, out var type))
        {
            error = new("unknown-type", $"type '{Truncate(f.Type, 64)}' is not valid on topic {topic.Name()}");
            return false;
        }

        switch (topic)
        {
            case InputTopic.Orders:
                if (f.OrderId is null)
                {
                    error = new("missing-field", "orderId is required");
                    return false;
                }

                if (f.OrderId.Length == 0)
                {
                    error = new("invalid-field", $"orderId must be 1 to {Options.MaxIdLength} characters");
                    return false;
                }

                if (!f.HasAmount)
                {
                    error = new("missing-field", "amount is required");
                    return false;
                }

                if (f.Amount < 0)
                {
                    error = new("invalid-field", "amount must not be negative");
                    return false;
                }

                if (f.Channel is not (null or "online" or "store"))
                {
                    error = new("invalid-field", "channel must be 'online' or 'store'");
                    return false;
                }

                evt = new OrderEvent
                {
                    EventId = f.EventId,
                    CustomerId = f.CustomerId,
                    OccurredAt = f.OccurredAt,
                    Type = type,
                    OrderId = f.OrderId,
                    Amount = f.Amount,
                    Currency = f.Currency,
                    Channel = f.Channel,
                    Country = f.Country,
                    ItemCount = f.ItemCount,
                };
                break;
            case InputTopic.Clickstream:
                if (f.Channel is not (null or "web" or "app"))
                {
                    error = new("invalid-field", "channel must be 'web' or 'app'");
                    return false;
                }

                evt = new ClickEvent
                {
                    EventId = f.EventId,
                    CustomerId = f.CustomerId,
                    OccurredAt = f.OccurredAt,
                    Type = type,
                    SessionId = f.SessionId,
                    ProductId = f.ProductId,
                    CategoryId = f.CategoryId,
                    Channel = f.Channel,
                };
                break;
            case InputTopic.Callcenter:
                evt = new CallEvent
                {
                    EventId = f.EventId,
                    CustomerId = f.CustomerId,
                    OccurredAt = f.OccurredAt,
                    Type = type,
                    CallId = f.CallId,
                    Queue = f.Queue,
                    WaitSeconds = f.WaitSeconds,
                    TalkSeconds = f.TalkSeconds,
                };
                break;
            case InputTopic.CustomerUpdates:
                if (type == EventType.Attributes && f.Birthday is not null && !DateOnly.TryParseExact(f.Birthday, "yyyy-MM-dd", out _))
                {
                    error = new("invalid-field", "attributes.birthday must be YYYY-MM-DD");
                    return false;
                }

                if (type == EventType.Attributes && f.TimeZone is not null && !TimeZoneInfo.TryFindSystemTimeZoneById(f.TimeZone, out _))
                {
                    error = new("invalid-field", $"attributes.timeZone '{Truncate(f.TimeZone, 64)}' is not a known IANA time zone");
                    return false;
                }

                evt = new UpdateEvent
                {
                    EventId = f.EventId,
                    CustomerId = f.CustomerId,
                    OccurredAt = f.OccurredAt,
                    Type = type,
                    Birthday = f.Birthday,
                    TimeZone = f.TimeZone,
                    Country = f.AttrCountry,
                    ConsentVoice = f.ConsentVoice,
                    ConsentSms = f.ConsentSms,
                    ConsentEmail = f.ConsentEmail,
                    DoNotContact = f.DoNotContact,
                };
                break;
            case InputTopic.OutreachOutcomes:
                if (f.OutreachId is null)
                {
                    error = new("missing-field", "outreachId is required");
                    return false;
                }

                if (f.OutreachId.Length == 0)
                {
                    error = new("invalid-field", $"outreachId must be 1 to {Options.MaxIdLength} characters");
                    return false;
                }

                if (f.Outcome is not ("answered" or "no_answer" or "converted" or "opted_out" or "failed"))
                {
                    error = new("invalid-field", "outcome must be one of answered, no_answer, converted, opted_out, failed");
                    return false;
                }

                evt = new OutcomeEvent
                {
                    EventId = f.EventId,
                    CustomerId = f.CustomerId,
                    OccurredAt = f.OccurredAt,
                    Type = type,
                    OutreachId = f.OutreachId,
                    Channel = f.Channel,
                    Outcome = f.Outcome,
                };
                break;
            default:
                error = new("unknown-topic", $"topic {topic} is not an input topic");
                return false;
        }

        error = default;
        return true;
    }

    internal static bool TryParseType(InputTopic topic, string type, out EventType result)
    {
        result = (topic, type) switch
        {
            (InputTopic.Orders, "order_placed") => EventType.OrderPlaced,
            (InputTopic.Orders, "order_cancelled") => EventType.OrderCancelled,
            (InputTopic.Clickstream, "page_view") => EventType.PageView,
            (InputTopic.Clickstream, "product_view") => EventType.ProductView,
            (InputTopic.Clickstream, "add_to_cart") => EventType.AddToCart,
            (InputTopic.Clickstream, "favorite") => EventType.Favorite,
            (InputTopic.Clickstream, "search") => EventType.Search,
            (InputTopic.Clickstream, "login") => EventType.Login,
            (InputTopic.Callcenter, "call_completed") => EventType.CallCompleted,
            (InputTopic.Callcenter, "call_abandoned") => EventType.CallAbandoned,
            (InputTopic.CustomerUpdates, "attributes") => EventType.Attributes,
            (InputTopic.CustomerUpdates, "consent") => EventType.Consent,
            (InputTopic.OutreachOutcomes, "outreach_outcome") => EventType.OutreachOutcome,
            _ => 0,
        };
        return result != 0;
    }

    /// <summary>
    /// A valid id (CONTRACTS.md §2 v1.1): 1 to <paramref name="max"/> characters (Unicode scalar values), none of them a
    /// C0 control character or DEL. Every other character is allowed and must round-trip through every interface.
    /// </summary>
    public static bool IsValidId(string id, int max)
    {
        if (id.Length == 0 || id.Length > max * 2)
        {
            return false;
        }

        var count = 0;
        foreach (var rune in id.EnumerateRunes())
        {
            if (rune.Value is < 0x20 or 0x7F || ++count > max)
            {
                return false;
            }
        }

        return true;
    }

    private static bool KeyMatches(ReadOnlySpan<byte> key, string customerId)
    {
        Span<byte> buffer = stackalloc byte[512];
        var max = Encoding.UTF8.GetMaxByteCount(customerId.Length);
        if (max > buffer.Length)
        {
            return key.SequenceEqual(Encoding.UTF8.GetBytes(customerId));
        }

        var n = Encoding.UTF8.GetBytes(customerId, buffer);
        return key.SequenceEqual(buffer[..n]);
    }

    private bool ReadString(ref Utf8JsonReader reader, string name, out string? value, out DecodeError error)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.Null)
        {
            value = null;
            error = default;
            return true;
        }

        if (reader.TokenType != JsonTokenType.String)
        {
            value = null;
            error = new("wrong-type", $"{name} must be a string");
            return false;
        }

        value = reader.GetString();
        if (value!.Length > Options.MaxIdLength * 4)
        {
            error = new("invalid-field", $"{name} is longer than {Options.MaxIdLength * 4} characters");
            return false;
        }

        error = default;
        return true;
    }

    /// <summary>Identifiers may arrive as strings or integers (datasets often use numeric ids).</summary>
    private bool ReadId(ref Utf8JsonReader reader, string name, out string? value, out DecodeError error)
    {
        reader.Read();
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                value = null;
                break;
            case JsonTokenType.String:
                value = reader.GetString();
                break;
            case JsonTokenType.Number when reader.TryGetInt64(out var n):
                value = n.ToString(System.Globalization.CultureInfo.InvariantCulture);
                break;
            default:
                value = null;
                error = new("wrong-type", $"{name} must be a string or an integer");
                return false;
        }

        if (value is not null && value.Length > Options.MaxIdLength)
        {
            error = new("invalid-field", $"{name} is longer than {Options.MaxIdLength} characters");
            return false;
        }

        error = default;
        return true;
    }

    private static bool ReadSeconds(ref Utf8JsonReader reader, string name, out int value, out DecodeError error)
    {
        reader.Read();
        value = 0;
        if (reader.TokenType == JsonTokenType.Null)
        {
            error = default;
            return true;
        }

        if (reader.TokenType != JsonTokenType.Number || !reader.TryGetDecimal(out var d) || d < 0 || d > int.MaxValue)
        {
            error = new("wrong-type", $"{name} must be a non-negative number of seconds");
            return false;
        }

        value = (int)decimal.Truncate(d);
        error = default;
        return true;
    }

    /// <summary>Longest <c>occurredAt</c> read, in bytes (as sent, escapes included); longer is <c>invalid-field</c>.</summary>
    private const int MaxTimeLength = 64;

    private static bool ReadTime(ref Utf8JsonReader reader, out DateTimeOffset value, out bool has, out DecodeError error)
    {
        reader.Read();
        value = default;
        has = false;
        if (reader.TokenType != JsonTokenType.String)
        {
            error = new("wrong-type", "occurredAt must be an RFC 3339 string");
            return false;
        }

        // RFC 3339 requires an explicit offset: 'Z' or ±hh:mm at the end. Escaped text (\u002B for '+') is unescaped first.
        // Longer text than any RFC 3339 time (the longest the reader takes, 2024-01-02T03:04:05.1234567+01:00, has 33
        // characters) is refused before anything is copied: the input bounds no buffer.
        Span<byte> scratch = stackalloc byte[MaxTimeLength];
        scoped ReadOnlySpan<byte> raw;
        var length = reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length;
        if (length > MaxTimeLength)
        {
            error = new("invalid-field", $"occurredAt is too long for an RFC 3339 time ({length} bytes)");
            return false;
        }

        if (reader.HasValueSequence || reader.ValueIsEscaped)
        {
            raw = scratch[..reader.CopyString(scratch)];
        }
        else
        {
            raw = reader.ValueSpan;
        }

        var hasOffset = raw.Length >= 20
            && (raw[^1] is (byte)'Z' or (byte)'z' || (raw.Length >= 25 && raw[^3] == (byte)':' && (raw[^6] == (byte)'+' || raw[^6] == (byte)'-')));
        if (!hasOffset || !(raw[10] is (byte)'t' || raw[^1] is (byte)'z' ? TryParseLowercase(raw, out value) : reader.TryGetDateTimeOffset(out value)))
        {
            error = new("invalid-field", "occurredAt must be RFC 3339 with an offset, e.g. 2011-12-09T12:50:00Z");
            return false;
        }

        has = true;
        error = default;
        return true;
    }

    /// <summary>
    /// RFC 3339 §5.6 allows a lowercase <c>t</c> and <c>z</c>; System.Text.Json's ISO 8601 reader does not. Parses a
    /// copy with them in upper case, through the same reader, so both spellings follow exactly the same rules.
    /// </summary>
    private static bool TryParseLowercase(ReadOnlySpan<byte> raw, out DateTimeOffset value)
    {
        value = default;
        if (raw.Length > MaxTimeLength)
        {
            return false;
        }

        Span<byte> json = stackalloc byte[MaxTimeLength + 2];
        json = json[..(raw.Length + 2)];
        json[0] = (byte)'"';
        raw.CopyTo(json[1..]);
        json[^1] = (byte)'"';
        if (json[11] == (byte)'t')
        {
            json[11] = (byte)'T';
        }

        if (json[^2] == (byte)'z')
        {
            json[^2] = (byte)'Z';
        }

        var reader = new Utf8JsonReader(json);
        return reader.Read() && reader.TryGetDateTimeOffset(out value);
    }

    private bool ReadItems(ref Utf8JsonReader reader, ref Fields f, out DecodeError error)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.Null)
        {
            error = default;
            return true;
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            error = new("wrong-type", "items must be an array");
            return false;
        }

        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                error = new("wrong-type", "each item must be an object");
                return false;
            }

            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                if (reader.ValueTextEquals("quantity"u8) || reader.ValueTextEquals("unitPrice"u8))
                {
                    var isQuantity = reader.ValueTextEquals("quantity"u8);
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetDecimal(out _))
                    {
                        error = new("wrong-type", isQuantity ? "items[].quantity must be a number" : "items[].unitPrice must be a number");
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("sku"u8))
                {
                    if (!ReadId(ref reader, "items[].sku", out _, out error))
                    {
                        return false;
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            f.ItemCount++;
        }

        error = default;
        return true;
    }

    private bool ReadAttributes(ref Utf8JsonReader reader, ref Fields f, out DecodeError error)
    {
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            error = new("wrong-type", "attributes must be an object");
            return false;
        }

        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            if (reader.ValueTextEquals("birthday"u8))
            {
                if (!ReadString(ref reader, "attributes.birthday", out f.Birthday, out error))
                {
                    return false;
                }
            }
            else if (reader.ValueTextEquals("timeZone"u8))
            {
                if (!ReadString(ref reader, "attributes.timeZone", out f.TimeZone, out error))
                {
                    return false;
                }
            }
            else if (reader.ValueTextEquals("country"u8))
            {
                if (!ReadString(ref reader, "attributes.country", out f.AttrCountry, out error))
                {
                    return false;
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        error = default;
        return true;
    }

    private static bool ReadConsent(ref Utf8JsonReader reader, ref Fields f, out DecodeError error)
    {
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            error = new("wrong-type", "consent must be an object");
            return false;
        }

        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            ref bool? target = ref f.ConsentEmail;
            string name;
            if (reader.ValueTextEquals("voice"u8))
            {
                target = ref f.ConsentVoice;
                name = "voice";
            }
            else if (reader.ValueTextEquals("sms"u8))
            {
                target = ref f.ConsentSms;
                name = "sms";
            }
            else if (reader.ValueTextEquals("email"u8))
            {
                name = "email";
            }
            else if (reader.ValueTextEquals("doNotContact"u8))
            {
                target = ref f.DoNotContact;
                name = "doNotContact";
            }
            else
            {
                reader.Read();
                reader.Skip();
                continue;
            }

            reader.Read();
            if (reader.TokenType == JsonTokenType.Null)
            {
                // Like other optional fields, null means "not given": the previous consent stays.
                continue;
            }

            if (reader.TokenType is not (JsonTokenType.True or JsonTokenType.False))
            {
                error = new("wrong-type", $"consent.{name} must be a boolean");
                return false;
            }

            target = reader.GetBoolean();
        }

        error = default;
        return true;
    }

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max] + "…";

    /// <summary>The fields seen while reading; validated together once the object is complete.</summary>
    private struct Fields
    {
        public string? EventId;
        public string? CustomerId;
        public DateTimeOffset OccurredAt;
        public bool HasOccurredAt;
        public string? Type;
        public string? OrderId;
        public decimal Amount;
        public bool HasAmount;
        public string? Currency;
        public string? Channel;
        public string? Country;
        public int ItemCount;
        public string? SessionId;
        public string? ProductId;
        public string? CategoryId;
        public string? CallId;
        public string? Queue;
        public int WaitSeconds;
        public int TalkSeconds;
        public string? Birthday;
        public string? TimeZone;
        public string? AttrCountry;
        public bool? ConsentVoice;
        public bool? ConsentSms;
        public bool? ConsentEmail;
        public bool? DoNotContact;
        public string? OutreachId;
        public string? Outcome;
    }
}
