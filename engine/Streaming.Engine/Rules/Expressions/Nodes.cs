using Streaming.Engine.Model;

namespace Streaming.Engine.Rules.Expressions;

/// <summary>The type of a rule expression.</summary>
public enum ValueKind
{
    Bool,
    Number,
    String,
    Instant,
    Duration,
    StringSet,
    List,
}

/// <summary>
/// A compiled, typed expression node. Numbers are <see cref="decimal"/>; instants and durations are UTC ticks. A
/// missing value (an instant that never happened, a field of another event type) is null and makes every comparison
/// false. Nodes whose value changes with time alone report the next such instant to the context.
/// </summary>
internal abstract class Node(int offset, ValueKind kind, Inputs reads)
{
    public int Offset { get; } = offset;

    public ValueKind Kind { get; } = kind;

    public Inputs Reads { get; } = reads;

    public bool TimeDependent => (Reads & Inputs.Time) != 0;

    /// <summary>How explanations name this node's value (a field or a function call), or null.</summary>
    public string? Label { get; set; }

    /// <summary>The node's current value as text, for explanations.</summary>
    public string Describe(EvalContext c) => Kind switch
    {
        ValueKind.Bool => EvalBool(c) ? "true" : "false",
        ValueKind.Number => EvalNumber(c)?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "null",
        ValueKind.String => EvalString(c) ?? "null",
        ValueKind.Instant => EvalTicks(c) is { } t ? new DateTime(t, DateTimeKind.Utc).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture) : "null",
        ValueKind.Duration => EvalTicks(c) is { } d ? TimeSpan.FromTicks(d).ToString("c", System.Globalization.CultureInfo.InvariantCulture) : "null",
        ValueKind.StringSet => string.Join(",", EvalSet(c)),
        _ => "",
    };

    public virtual bool EvalBool(EvalContext c) => throw new InvalidOperationException(nameof(EvalBool));

    public virtual decimal? EvalNumber(EvalContext c) => throw new InvalidOperationException(nameof(EvalNumber));

    public virtual string? EvalString(EvalContext c) => throw new InvalidOperationException(nameof(EvalString));

    /// <summary>Instants and durations.</summary>
    public virtual long? EvalTicks(EvalContext c) => throw new InvalidOperationException(nameof(EvalTicks));

    public virtual IReadOnlyList<string> EvalSet(EvalContext c) => throw new InvalidOperationException(nameof(EvalSet));
}

/// <summary>
/// A node whose value never decreases as time passes, with no other time dependence (now, now − x, days_since). A
/// comparison of it with a time-independent value knows the exact instant its result flips.
/// </summary>
internal interface IMonotone
{
    /// <summary>When false, the node reports no wake-up itself: the comparison above it does, exactly.</summary>
    bool Registers { get; set; }

    /// <summary>
    /// The earliest instant at which the value is at least (or, if <paramref name="strict"/>, above)
    /// <paramref name="threshold"/>; <see cref="long.MaxValue"/> if never.
    /// </summary>
    long Earliest(EvalContext c, decimal threshold, bool strict);
}

internal sealed class ConstNode(int offset, ValueKind kind, object? value) : Node(offset, kind, Inputs.None)
{
    public object? Value { get; } = value;

    public override bool EvalBool(EvalContext c) => (bool)Value!;

    public override decimal? EvalNumber(EvalContext c) => (decimal?)Value;

    public override string? EvalString(EvalContext c) => (string?)Value;

    public override long? EvalTicks(EvalContext c) => (long?)Value;
}

/// <summary>A literal list of strings or numbers, for <c>in</c>.</summary>
internal sealed class ListNode(int offset, ValueKind itemKind, object[] items) : Node(offset, ValueKind.List, Inputs.None)
{
    public ValueKind ItemKind { get; } = itemKind;

    public object[] Items { get; } = items;
}

internal sealed class BoolField(int offset, Inputs reads, Func<EvalContext, bool> read) : Node(offset, ValueKind.Bool, reads)
{
    public override bool EvalBool(EvalContext c) => read(c);
}

internal sealed class NumberField(int offset, Inputs reads, Func<EvalContext, decimal?> read) : Node(offset, ValueKind.Number, reads)
{
    public override decimal? EvalNumber(EvalContext c) => read(c);
}

internal sealed class StringField(int offset, Inputs reads, Func<EvalContext, string?> read) : Node(offset, ValueKind.String, reads)
{
    public override string? EvalString(EvalContext c) => read(c);
}

/// <summary>An instant field; 0 ticks means "never" and reads as null.</summary>
internal sealed class InstantField(int offset, Inputs reads, Func<EvalContext, long> read) : Node(offset, ValueKind.Instant, reads)
{
    public override long? EvalTicks(EvalContext c)
    {
        var ticks = read(c);
        return ticks == 0 ? null : ticks;
    }
}

internal sealed class SetField(int offset, Inputs reads, Func<EvalContext, IReadOnlyList<string>> read) : Node(offset, ValueKind.StringSet, reads)
{
    public override IReadOnlyList<string> EvalSet(EvalContext c) => read(c);
}

/// <summary>
/// An instant that changes with time, but only at known instants (such as "the latest birthday at 09:00 local"):
/// constant between changes, so durations since it are monotone within each segment.
/// </summary>
internal interface ISegmentedInstant
{
    /// <summary>When the value next changes (<see cref="long.MaxValue"/> if never).</summary>
    long NextChange(EvalContext c);
}

/// <summary>
/// <c>birthday_at('09:00')</c>: the latest occurrence, at or before now, of the customer's birthday at that local time
/// in the customer's time zone (the rule set's default zone when unknown); null without a birthday. 29 February is
/// celebrated on 28 February in other years.
/// </summary>
internal sealed class BirthdayNode(int offset, TimeSpan localTime) : Node(offset, ValueKind.Instant, Inputs.Attributes | Inputs.Time), ISegmentedInstant
{
    public override long? EvalTicks(EvalContext c) => Occurrences(c) is var (latest, _) ? latest : null;

    public long NextChange(EvalContext c) => Occurrences(c) is var (_, next) ? next : long.MaxValue;

    /// <summary>The latest occurrence at or before now and the next one after it, or null without a birthday.</summary>
    private (long Latest, long Next)? Occurrences(EvalContext c)
    {
        if (LocalCalendar.Birthday(c.State.Birthday) is not { } birthday)
        {
            return null;
        }

        var zone = LocalCalendar.Zone(c.State.TimeZone, c.DefaultTimeZone);
        var year = TimeZoneInfo.ConvertTimeFromUtc(new DateTime(c.Now, DateTimeKind.Utc), zone).Year;
        var thisYear = LocalCalendar.Occurrence(birthday, year, localTime, zone);
        return thisYear <= c.Now
            ? (thisYear, LocalCalendar.Occurrence(birthday, year + 1, localTime, zone))
            : (LocalCalendar.Occurrence(birthday, year - 1, localTime, zone), thisYear);
    }
}

/// <summary><c>now</c>: only usable in a direct comparison or as <c>now − instant</c>.</summary>
internal sealed class NowNode(int offset) : Node(offset, ValueKind.Instant, Inputs.Time), IMonotone
{
    public bool Registers { get; set; } = true;

    public override long? EvalTicks(EvalContext c) => c.Now;

    public long Earliest(EvalContext c, decimal threshold, bool strict) => Ticks.Add(Ticks.Ceiling(threshold), strict ? 1 : 0);
}

/// <summary><c>now − instant</c>, a duration growing with time.</summary>
internal sealed class ElapsedNode(int offset, Node instant) : Node(offset, ValueKind.Duration, instant.Reads | Inputs.Time), IMonotone
{
    public bool Registers { get; set; } = true;

    public override long? EvalTicks(EvalContext c) => instant.EvalTicks(c) is { } at ? c.Now - at : null;

    public long Earliest(EvalContext c, decimal threshold, bool strict) =>
        instant.EvalTicks(c) is { } at ? Ticks.Add(Ticks.Add(at, Ticks.Ceiling(threshold)), strict ? 1 : 0) : long.MaxValue;
}

/// <summary><c>days_since(x)</c> and <c>hours_since(x)</c>: whole units elapsed since an instant (floored).</summary>
internal sealed class UnitsSinceNode(int offset, Node instant, long unitTicks, bool clampAtZero)
    : Node(offset, ValueKind.Number, instant.Reads | Inputs.Time), IMonotone
{
    public bool Registers { get; set; } = true;

    public override decimal? EvalNumber(EvalContext c)
    {
        if (instant.EvalTicks(c) is not { } at)
        {
            return null;
        }

        var units = Math.Floor((decimal)(c.Now - at) / unitTicks);
        if (clampAtZero && units < 0)
        {
            units = 0;
        }

        if (Registers)
        {
            // Used inside arithmetic: wake at the next unit boundary (correct, if not minimal).
            c.WakeAt(Ticks.Add(at, Ticks.Multiply((long)units + 1, unitTicks)));
        }

        if (instant is ISegmentedInstant segmented)
        {
            c.WakeAt(segmented.NextChange(c));
        }

        return units;
    }

    public long Earliest(EvalContext c, decimal threshold, bool strict)
    {
        if (instant.EvalTicks(c) is not { } at)
        {
            return long.MaxValue;
        }

        // floor(x) >= t  <=>  x >= ceil(t);   floor(x) > t  <=>  x >= floor(t) + 1.
        var units = strict ? Math.Floor(threshold) + 1 : Math.Ceiling(threshold);
        if (clampAtZero && units <= 0)
        {
            return long.MinValue;
        }

        return units > long.MaxValue / unitTicks ? long.MaxValue : Ticks.Add(at, Ticks.Multiply((long)units, unitTicks));
    }
}

/// <summary><c>count_in(series, Nd)</c> / <c>sum_in(series, Nd)</c> over whole UTC days.</summary>
internal sealed class WindowNode(int offset, DaySeries series, int days, Inputs reads) : Node(offset, ValueKind.Number, reads | Inputs.Time)
{
    public int Days { get; } = days;

    public override decimal? EvalNumber(EvalContext c)
    {
        var sum = c.State.Days.Sum(series, c.Today, Days, out var changeDay);
        if (changeDay != int.MaxValue)
        {
            c.WakeAt((long)changeDay * TimeSpan.TicksPerDay);
        }

        return sum;
    }
}

internal sealed class NegateNode(int offset, Node operand) : Node(offset, operand.Kind, operand.Reads)
{
    public override decimal? EvalNumber(EvalContext c) => -operand.EvalNumber(c);

    public override long? EvalTicks(EvalContext c) => -operand.EvalTicks(c);
}

internal sealed class NotNode(int offset, Node operand) : Node(offset, ValueKind.Bool, operand.Reads)
{
    public override bool EvalBool(EvalContext c) => !operand.EvalBool(c);
}

internal sealed class AndNode(int offset, Node left, Node right) : Node(offset, ValueKind.Bool, left.Reads | right.Reads)
{
    public override bool EvalBool(EvalContext c) => left.EvalBool(c) && right.EvalBool(c);
}

internal sealed class OrNode(int offset, Node left, Node right) : Node(offset, ValueKind.Bool, left.Reads | right.Reads)
{
    public override bool EvalBool(EvalContext c) => left.EvalBool(c) || right.EvalBool(c);
}

/// <summary>Number arithmetic; division by zero gives null.</summary>
internal sealed class ArithmeticNode(int offset, char op, Node left, Node right) : Node(offset, ValueKind.Number, left.Reads | right.Reads)
{
    public override decimal? EvalNumber(EvalContext c)
    {
        if (left.EvalNumber(c) is not { } a || right.EvalNumber(c) is not { } b)
        {
            return null;
        }

        try
        {
            return op switch
            {
                '+' => a + b,
                '-' => a - b,
                '*' => a * b,
                _ => b == 0 ? null : a / b,
            };
        }
        catch (OverflowException)
        {
            return null;
        }
    }
}

/// <summary>Instant ± duration, duration ± duration, instant − instant.</summary>
internal sealed class TicksArithmeticNode(int offset, ValueKind kind, bool subtract, Node left, Node right)
    : Node(offset, kind, left.Reads | right.Reads)
{
    public override long? EvalTicks(EvalContext c)
    {
        if (left.EvalTicks(c) is not { } a || right.EvalTicks(c) is not { } b)
        {
            return null;
        }

        return subtract ? Ticks.Add(a, -b) : Ticks.Add(a, b);
    }
}

internal sealed class MinMaxNode(int offset, bool max, Node left, Node right) : Node(offset, ValueKind.Number, left.Reads | right.Reads)
{
    public override decimal? EvalNumber(EvalContext c)
    {
        if (left.EvalNumber(c) is not { } a || right.EvalNumber(c) is not { } b)
        {
            return null;
        }

        return max ? Math.Max(a, b) : Math.Min(a, b);
    }
}

internal sealed class FloorNode(int offset, Node operand) : Node(offset, ValueKind.Number, operand.Reads)
{
    public override decimal? EvalNumber(EvalContext c) => operand.EvalNumber(c) is { } v ? Math.Floor(v) : null;
}

/// <summary><c>if(condition, then, else)</c>: only the chosen branch is evaluated.</summary>
internal sealed class IfNode(int offset, Node condition, Node then, Node otherwise)
    : Node(offset, then.Kind, condition.Reads | then.Reads | otherwise.Reads)
{
    public override bool EvalBool(EvalContext c) => condition.EvalBool(c) ? then.EvalBool(c) : otherwise.EvalBool(c);

    public override decimal? EvalNumber(EvalContext c) => condition.EvalBool(c) ? then.EvalNumber(c) : otherwise.EvalNumber(c);

    public override string? EvalString(EvalContext c) => condition.EvalBool(c) ? then.EvalString(c) : otherwise.EvalString(c);

    public override long? EvalTicks(EvalContext c) => condition.EvalBool(c) ? then.EvalTicks(c) : otherwise.EvalTicks(c);
}

/// <summary><c>x in [..]</c> and <c>'tag' in tags</c>.</summary>
internal sealed class InNode(int offset, Node item, Node collection) : Node(offset, ValueKind.Bool, item.Reads | collection.Reads)
{
    public override bool EvalBool(EvalContext c)
    {
        if (collection is ListNode list)
        {
            object? value = list.ItemKind == ValueKind.Number ? item.EvalNumber(c) : item.EvalString(c);
            if (value is null)
            {
                return false;
            }

            foreach (var candidate in list.Items)
            {
                if (candidate.Equals(value))
                {
                    return true;
                }
            }

            return false;
        }

        var text = item.EvalString(c);
        if (text is null)
        {
            return false;
        }

        foreach (var member in collection.EvalSet(c))
        {
            if (string.Equals(member, text, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>
/// A comparison. When one side is monotone in time and the other does not depend on time, the exact instant at which
/// the result flips is reported; otherwise time-dependent operands report their own next change.
/// </summary>
internal sealed class CompareNode : Node
{
    private readonly string _op;
    private readonly Node _left;
    private readonly Node _right;
    private readonly IMonotone? _monotone;
    private readonly bool _monotoneOnLeft;

    public CompareNode(int offset, string op, Node left, Node right)
        : base(offset, ValueKind.Bool, left.Reads | right.Reads)
    {
        _op = op;
        _left = left;
        _right = right;
        if (left is IMonotone l && !right.TimeDependent)
        {
            _monotone = l;
            _monotoneOnLeft = true;
        }
        else if (right is IMonotone r && !left.TimeDependent)
        {
            _monotone = r;
        }

        if (_monotone is not null)
        {
            _monotone.Registers = false;
        }
    }

    public override bool EvalBool(EvalContext c)
    {
        int order;
        decimal leftValue, rightValue;
        switch (_left.Kind)
        {
            case ValueKind.Number:
                if (_left.EvalNumber(c) is not { } ln || _right.EvalNumber(c) is not { } rn)
                {
                    return false;
                }

                (leftValue, rightValue) = (ln, rn);
                break;
            case ValueKind.Instant or ValueKind.Duration:
                if (_left.EvalTicks(c) is not { } lt || _right.EvalTicks(c) is not { } rt)
                {
                    return false;
                }

                (leftValue, rightValue) = (lt, rt);
                break;
            case ValueKind.String:
                var ls = _left.EvalString(c);
                var rs = _right.EvalString(c);
                if (ls is null || rs is null)
                {
                    return false;
                }

                var equal = string.Equals(ls, rs, StringComparison.Ordinal);
                return _op == "==" ? equal : !equal;
            default:
                var lb = _left.EvalBool(c);
                var rb = _right.EvalBool(c);
                return _op == "==" ? lb == rb : lb != rb;
        }

        order = leftValue.CompareTo(rightValue);
        var result = _op switch
        {
            "==" => order == 0,
            "!=" => order != 0,
            "<" => order < 0,
            "<=" => order <= 0,
            ">" => order > 0,
            _ => order >= 0,
        };

        if (_monotone is not null)
        {
            RegisterFlip(c, _monotoneOnLeft ? leftValue : rightValue, _monotoneOnLeft ? rightValue : leftValue, result);
        }

        return result;
    }

    /// <summary>Reports when "monotone OP constant" (operator mirrored if the monotone side is on the right) flips.</summary>
    private void RegisterFlip(EvalContext c, decimal value, decimal constant, bool result)
    {
        var op = _monotoneOnLeft ? _op : Mirror(_op);
        long flip;
        switch (op)
        {
            case ">=" or ">":
                if (result)
                {
                    return;
                }

                flip = _monotone!.Earliest(c, constant, strict: op == ">");
                break;
            case "<" or "<=":
                if (!result)
                {
                    return;
                }

                flip = _monotone!.Earliest(c, constant, strict: op == "<=");
                break;
            default:
                if (value > constant)
                {
                    return;
                }

                flip = _monotone!.Earliest(c, constant, strict: value == constant);
                break;
        }

        c.WakeAt(flip);
    }

    private static string Mirror(string op) => op switch
    {
        "<" => ">",
        "<=" => ">=",
        ">" => "<",
        ">=" => "<=",
        _ => op,
    };
}

/// <summary>Saturating tick arithmetic.</summary>
internal static class Ticks
{
    public static long Add(long a, long b)
    {
        var sum = a + b;
        if (((a ^ sum) & (b ^ sum)) < 0)
        {
            return a > 0 ? long.MaxValue : long.MinValue;
        }

        return sum;
    }

    public static long Multiply(long a, long b)
    {
        try
        {
            return checked(a * b);
        }
        catch (OverflowException)
        {
            return (a > 0) == (b > 0) ? long.MaxValue : long.MinValue;
        }
    }

    public static long Ceiling(decimal value) =>
        value >= long.MaxValue ? long.MaxValue : value <= long.MinValue ? long.MinValue : (long)Math.Ceiling(value);
}
