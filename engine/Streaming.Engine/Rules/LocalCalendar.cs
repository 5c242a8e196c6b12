using System.Collections.Concurrent;
using System.Globalization;

namespace Streaming.Engine.Rules;

/// <summary>Local-time arithmetic for rules: customers' time zones (IANA), birthdays, quiet hours.</summary>
public static class LocalCalendar
{
    private static readonly ConcurrentDictionary<string, TimeZoneInfo?> Zones = new(StringComparer.Ordinal);

    /// <summary>The customer's zone, or <paramref name="fallback"/> when none or unknown.</summary>
    public static TimeZoneInfo Zone(string? id, TimeZoneInfo fallback)
    {
        if (string.IsNullOrEmpty(id))
        {
            return fallback;
        }

        return Zones.GetOrAdd(id, static key =>
        {
            try
            {
                return TimeZoneInfo.FindSystemTimeZoneById(key);
            }
            catch (Exception ex) when (ex is TimeZoneNotFoundException or InvalidTimeZoneException)
            {
                return null;
            }
        }) ?? fallback;
    }

    /// <summary>Month and day of a <c>YYYY-MM-DD</c> birthday, or null if it is not one.</summary>
    public static (int Month, int Day)? Birthday(string? text)
    {
        if (text is null || !DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
        {
            return null;
        }

        return (date.Month, date.Day);
    }

    /// <summary>The UTC instant of <paramref name="birthday"/> in <paramref name="year"/> at a local time of day.</summary>
    public static long Occurrence((int Month, int Day) birthday, int year, TimeSpan localTime, TimeZoneInfo zone)
    {
        year = Math.Clamp(year, 2, 9998);
        var day = Math.Min(birthday.Day, DateTime.DaysInMonth(year, birthday.Month));
        return ToUtc(new DateTime(year, birthday.Month, day, 0, 0, 0, DateTimeKind.Unspecified) + localTime, zone);
    }

    /// <summary>Local wall-clock time to UTC; a time skipped by a daylight-saving change moves forward past the gap.</summary>
    public static long ToUtc(DateTime local, TimeZoneInfo zone)
    {
        while (zone.IsInvalidTime(local))
        {
            local = local.AddMinutes(30);
        }

        return TimeZoneInfo.ConvertTimeToUtc(local, zone).Ticks;
    }

    /// <summary>
    /// The first instant at or after <paramref name="utcTicks"/> outside the quiet hours [<paramref name="from"/>,
    /// <paramref name="to"/>) local time (a window may span midnight).
    /// </summary>
    public static long NextAllowed(long utcTicks, TimeSpan from, TimeSpan to, TimeZoneInfo zone)
    {
        if (from == to)
        {
            return utcTicks;
        }

        var local = TimeZoneInfo.ConvertTimeFromUtc(new DateTime(utcTicks, DateTimeKind.Utc), zone);
        var time = local.TimeOfDay;
        var quiet = from < to ? time >= from && time < to : time >= from || time < to;
        if (!quiet)
        {
            return utcTicks;
        }

        var endDate = from < to || time < to ? local.Date : local.Date.AddDays(1);
        return ToUtc(DateTime.SpecifyKind(endDate + to, DateTimeKind.Unspecified), zone);
    }

    /// <summary>The local hour (0–23) of an instant.</summary>
    public static int LocalHour(long utcTicks, TimeZoneInfo zone) =>
        TimeZoneInfo.ConvertTimeFromUtc(new DateTime(utcTicks, DateTimeKind.Utc), zone).Hour;
}
