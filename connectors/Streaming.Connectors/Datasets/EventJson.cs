using System.Buffers;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Streaming.Connectors.Datasets;

/// <summary>Writes input events as the UTF-8 JSON of CONTRACTS.md §2.</summary>
internal sealed class EventJson
{
    private readonly ArrayBufferWriter<byte> _buffer = new(1024);
    private readonly Utf8JsonWriter _writer;

    public EventJson()
    {
        // Relaxed escaping keeps '+' in offsets and non-ASCII text readable; these payloads never reach HTML.
        _writer = new Utf8JsonWriter(_buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    public Utf8JsonWriter Begin(string eventId, string customerId, DateTimeOffset occurredAt, string type)
    {
        _buffer.Clear();
        _writer.Reset(_buffer);
        _writer.WriteStartObject();
        _writer.WriteString("eventId", eventId);
        _writer.WriteString("customerId", customerId);
        _writer.WriteString("occurredAt", FormatTime(occurredAt));
        _writer.WriteString("type", type);
        return _writer;
    }

    public byte[] End()
    {
        _writer.WriteEndObject();
        _writer.Flush();
        return _buffer.WrittenSpan.ToArray();
    }

    /// <summary>RFC 3339 with the numeric offset, second precision: 2011-12-09T12:50:00+00:00.</summary>
    public static string FormatTime(DateTimeOffset t) => t.ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture);

    /// <summary>Interprets a local wall-clock time in <paramref name="zone"/> (ambiguous times take standard time).</summary>
    public static DateTimeOffset Local(DateTime wallClock, TimeZoneInfo zone)
    {
        var unspecified = DateTime.SpecifyKind(wallClock, DateTimeKind.Unspecified);
        if (zone.IsInvalidTime(unspecified))
        {
            // Skipped by a spring-forward transition: move past the gap.
            unspecified = unspecified.AddHours(1);
        }

        return new DateTimeOffset(unspecified, zone.GetUtcOffset(unspecified));
    }
}
