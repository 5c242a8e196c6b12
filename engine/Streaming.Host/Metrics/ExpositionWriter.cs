using System.Buffers;
using System.Globalization;
using System.Text;

namespace Streaming.Host.Metrics;

/// <summary>Writes exposition lines as UTF-8 straight into a buffer: no strings per sample.</summary>
internal static class ExpositionWriter
{
    // Enough for any double or long in invariant form.
    private const int NumberSpace = 32;

    public static void Write(IBufferWriter<byte> output, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(output.GetSpan(bytes.Length));
        output.Advance(bytes.Length);
    }

    public static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>One sample line: <c>name{labels,extra} value</c>.</summary>
    public static void WriteSample(IBufferWriter<byte> output, ReadOnlySpan<byte> name, ReadOnlySpan<byte> suffix, ReadOnlySpan<byte> labels, ReadOnlySpan<byte> extraLabel, long value)
    {
        WriteSeriesName(output, name, suffix, labels, extraLabel);
        var span = output.GetSpan(NumberSpace + 1);
        value.TryFormat(span, out var written, default, CultureInfo.InvariantCulture);
        span[written] = (byte)'\n';
        output.Advance(written + 1);
    }

    public static void WriteSample(IBufferWriter<byte> output, ReadOnlySpan<byte> name, ReadOnlySpan<byte> suffix, ReadOnlySpan<byte> labels, ReadOnlySpan<byte> extraLabel, double value)
    {
        WriteSeriesName(output, name, suffix, labels, extraLabel);
        var span = output.GetSpan(NumberSpace + 1);
        var written = FormatDouble(value, span);
        span[written] = (byte)'\n';
        output.Advance(written + 1);
    }

    /// <summary>A double as the exposition wants it: <c>+Inf</c>, <c>-Inf</c>, <c>NaN</c>, else the shortest round-trip form.</summary>
    public static int FormatDouble(double value, Span<byte> destination)
    {
        ReadOnlySpan<byte> special = double.IsNaN(value) ? "NaN"u8
            : double.IsPositiveInfinity(value) ? "+Inf"u8
            : double.IsNegativeInfinity(value) ? "-Inf"u8
            : default;
        if (!special.IsEmpty)
        {
            special.CopyTo(destination);
            return special.Length;
        }

        value.TryFormat(destination, out var written, "R", CultureInfo.InvariantCulture);
        return written;
    }

    public static string FormatDouble(double value)
    {
        Span<byte> buffer = stackalloc byte[NumberSpace];
        return Encoding.ASCII.GetString(buffer[..FormatDouble(value, buffer)]);
    }

    private static void WriteSeriesName(IBufferWriter<byte> output, ReadOnlySpan<byte> name, ReadOnlySpan<byte> suffix, ReadOnlySpan<byte> labels, ReadOnlySpan<byte> extraLabel)
    {
        var length = name.Length + suffix.Length + labels.Length + extraLabel.Length + 4;
        var span = output.GetSpan(length);
        var at = 0;
        name.CopyTo(span);
        at += name.Length;
        suffix.CopyTo(span[at..]);
        at += suffix.Length;
        if (!labels.IsEmpty || !extraLabel.IsEmpty)
        {
            span[at++] = (byte)'{';
            labels.CopyTo(span[at..]);
            at += labels.Length;
            if (!labels.IsEmpty && !extraLabel.IsEmpty)
            {
                span[at++] = (byte)',';
            }

            extraLabel.CopyTo(span[at..]);
            at += extraLabel.Length;
            span[at++] = (byte)'}';
        }

        span[at++] = (byte)' ';
        output.Advance(at);
    }
}
