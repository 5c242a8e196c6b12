using System.Globalization;
using Confluent.Kafka;
using Streaming.Engine.Events;

namespace Streaming.Connectors.Kafka;

/// <summary>A record's broker timestamp as the decoder takes it.</summary>
internal static class BrokerTime
{
    /// <summary>The range of Unix milliseconds a <see cref="DateTimeOffset"/> holds (0001-01-01 to 9999-12-31T23:59:59.999).</summary>
    private static readonly long MinUnixMs = DateTimeOffset.MinValue.ToUnixTimeMilliseconds();

    private static readonly long MaxUnixMs = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();

    /// <summary>
    /// The record's broker timestamp as a date: null when it has none; false when no <see cref="DateTimeOffset"/> can
    /// hold it (a producer may set any 64-bit number of milliseconds, e.g. beyond 9999-12-31): the record is
    /// dead-lettered with <see cref="OutOfRange"/>.
    /// </summary>
    public static bool TryGet(Timestamp timestamp, out DateTimeOffset? time)
    {
        time = null;
        if (timestamp.Type == TimestampType.NotAvailable)
        {
            return true;
        }

        var ms = timestamp.UnixTimestampMs;
        if (ms < MinUnixMs || ms > MaxUnixMs)
        {
            return false;
        }

        time = DateTimeOffset.FromUnixTimeMilliseconds(ms);
        return true;
    }

    /// <summary>The dead letter's reason for a timestamp <see cref="TryGet"/> refused.</summary>
    public static DecodeError OutOfRange(Timestamp timestamp) =>
        new("time-out-of-range", $"the record's broker timestamp ({timestamp.UnixTimestampMs.ToString(CultureInfo.InvariantCulture)} ms since 1970) is outside the years 1 to 9999");
}
