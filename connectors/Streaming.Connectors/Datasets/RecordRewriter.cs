using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Streaming.Connectors.Datasets;

/// <summary>Rewrites a replay record's customer id, event id and time (for the demo's joined population and the bench).</summary>
public static class RecordRewriter
{
    /// <summary>
    /// Returns the record with <paramref name="customerId"/> as key and <c>customerId</c>, <paramref name="eventIdSuffix"/>
    /// appended to <c>eventId</c>, and <c>occurredAt</c> moved by <paramref name="addYears"/> (same wall clock and offset).
    /// </summary>
    public static TimedRecord Rewrite(ReplayRecord record, string customerId, string eventIdSuffix, int addYears)
    {
        var node = JsonNode.Parse(record.Value)!.AsObject();
        node["customerId"] = customerId;
        if (eventIdSuffix.Length > 0)
        {
            node["eventId"] = node["eventId"]!.GetValue<string>() + eventIdSuffix;
        }

        var at = DateTimeOffset.Parse(node["occurredAt"]!.GetValue<string>(), CultureInfo.InvariantCulture).AddYears(addYears);
        node["occurredAt"] = EventJson.FormatTime(at);
        return new TimedRecord(at, new ReplayRecord(record.Topic, customerId, Encoding.UTF8.GetBytes(node.ToJsonString())));
    }

    /// <summary>The record with its event time read from the JSON.</summary>
    public static TimedRecord Timed(ReplayRecord record)
    {
        var node = JsonNode.Parse(record.Value)!.AsObject();
        return new TimedRecord(DateTimeOffset.Parse(node["occurredAt"]!.GetValue<string>(), CultureInfo.InvariantCulture), record);
    }
}

/// <summary>A replay record with its event time.</summary>
public readonly record struct TimedRecord(DateTimeOffset At, ReplayRecord Record);
