using System.Globalization;
using System.Net;
using System.Text.Json;

namespace Streaming.Host.WebConsole;

/// <summary>
/// How the console writes numbers and times for people: thousands separators, two decimals for money, percentages,
/// UTC times to the minute; each wrapped with its raw value (as the API gives it) in a tooltip and a
/// <c>data-raw</c> attribute. Everything returned is HTML, encoded.
/// </summary>
public static class ConsoleFormat
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>HTML-encodes text (null is empty).</summary>
    public static string E(string? text) => WebUtility.HtmlEncode(text ?? "");

    /// <summary>A whole count with thousands separators: <c>1234567</c> → <c>1,234,567</c>.</summary>
    public static string Count(long value) => value.ToString("N0", Invariant);

    /// <summary>An amount of money with thousands separators and two decimals: <c>-1234.5</c> → <c>−1,234.50</c>.</summary>
    public static string Money(decimal value) => (value < 0 ? "\u2212" : "") + Math.Abs(value).ToString("N2", Invariant);

    /// <summary>A rate 0–1 as a percentage with one decimal: <c>0.1234</c> → <c>12.3 %</c>.</summary>
    public static string Percent(decimal rate) => (rate * 100).ToString("N1", Invariant) + " %";

    /// <summary>A signed difference: <c>+1,234</c>, <c>−56</c>, <c>0</c>.</summary>
    public static string Signed(long value) => value > 0 ? "+" + Count(value) : value < 0 ? "\u2212" + Count(-value) : "0";

    /// <summary>An instant in UTC to the minute: <c>2011-12-09 12:50 UTC</c>.</summary>
    public static string When(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm", Invariant) + " UTC";

    /// <summary>A number from the API as HTML: formatted by <paramref name="kind"/>, the raw JSON value in the tooltip; null/absent as a dash.</summary>
    public static string Num(JsonElement value, NumberKind kind = NumberKind.Count)
    {
        if (value.ValueKind != JsonValueKind.Number)
        {
            return "<span class=\"num none\" title=\"no value\">\u2013</span>";
        }

        var raw = value.GetRawText();
        var text = kind switch
        {
            NumberKind.Money => Money(value.GetDecimal()),
            NumberKind.Percent => Percent(value.GetDecimal()),
            NumberKind.Signed => Signed(value.GetInt64()),
            NumberKind.Decimal => value.GetDecimal().ToString("#,##0.##", Invariant),
            _ => value.TryGetInt64(out var n) ? Count(n) : value.GetDecimal().ToString("#,##0.##", Invariant),
        };
        return $"<span class=\"num\" title=\"{E(raw)}\" data-raw=\"{E(raw)}\">{E(text)}</span>";
    }

    /// <summary>A count as HTML with its raw value in the tooltip.</summary>
    public static string Num(long value) => $"<span class=\"num\" title=\"{value.ToString(Invariant)}\" data-raw=\"{value.ToString(Invariant)}\">{Count(value)}</span>";

    /// <summary>A time from the API (RFC 3339 string) as HTML: UTC to the minute, the raw value in the tooltip; null as a dash.</summary>
    public static string Time(JsonElement value) =>
        value.ValueKind == JsonValueKind.String && value.TryGetDateTimeOffset(out var at)
            ? $"<time datetime=\"{E(value.GetString())}\" title=\"{E(value.GetString())}\">{E(When(at))}</time>"
            : "<span class=\"none\">\u2013</span>";

    /// <summary>A stage or segment name for people: <c>at_risk</c> → <c>at risk</c>.</summary>
    public static string Label(string? name) => E((name ?? "").Replace('_', ' '));

    /// <summary>Property <paramref name="name"/> of an object, or an undefined element.</summary>
    public static JsonElement Get(this JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var v) ? v : default;

    /// <summary>A string property, or null.</summary>
    public static string? Str(this JsonElement element, string name) =>
        element.Get(name) is { ValueKind: JsonValueKind.String } v ? v.GetString() : null;

    /// <summary>A whole-number property, or 0.</summary>
    public static long Long(this JsonElement element, string name) =>
        element.Get(name) is { ValueKind: JsonValueKind.Number } v && v.TryGetInt64(out var n) ? n : 0;

    /// <summary>The properties of an object (none for anything else).</summary>
    public static IEnumerable<JsonProperty> Props(this JsonElement element) =>
        element.ValueKind == JsonValueKind.Object ? element.EnumerateObject() : [];

    /// <summary>The items of an array (none for anything else).</summary>
    public static IEnumerable<JsonElement> Items(this JsonElement element) =>
        element.ValueKind == JsonValueKind.Array ? element.EnumerateArray() : [];
}

/// <summary>How <see cref="ConsoleFormat.Num(JsonElement, NumberKind)"/> formats a number.</summary>
public enum NumberKind
{
    Count,
    Money,
    Percent,
    Signed,
    Decimal,
}
