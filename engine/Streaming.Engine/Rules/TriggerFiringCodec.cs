using System.Buffers;
using Streaming.Engine.Model;

namespace Streaming.Engine.Rules;

/// <summary>
/// Binary encoding of <see cref="TriggerFiring"/>s, stored with the customer state that caused them (so a firing is
/// durable exactly when its cause is). The first byte is the format version; readers accept every version ever written.
/// Profile values may be null, <see cref="string"/>, <see cref="int"/>, <see cref="long"/>, <see cref="decimal"/>,
/// <see cref="bool"/> or a string array; any other type is refused with <see cref="NotSupportedException"/>.
/// </summary>
public static class TriggerFiringCodec
{
    /// <summary>The version written by this build.</summary>
    public const byte CurrentVersion = 1;

    private const int MaxItems = 1 << 20;

    /// <summary>Appends <paramref name="firings"/> (count first) to <paramref name="buffer"/>.</summary>
    public static void Encode(IReadOnlyList<TriggerFiring> firings, ArrayBufferWriter<byte> buffer)
    {
        var w = new FieldWriter(buffer);
        w.Byte(CurrentVersion);
        w.Int(firings.Count);
        foreach (var f in firings)
        {
            w.String(f.Id);
            w.String(f.CustomerId);
            w.String(f.Rule);
            w.String(f.RuleVersion);
            w.Byte((byte)f.Channel);
            w.Int(f.Priority);
            w.Long(f.AtTicks);
            w.Long(f.DueTicks);
            w.Long(f.ExpiresTicks);
            w.Byte((byte)f.Delivery);
            w.String(f.SuppressedBy);
            w.Int(f.Reason.Count);
            foreach (var (key, value) in f.Reason)
            {
                w.String(key);
                w.String(value);
            }

            w.Bool(f.Late);
            w.Int(f.Attempt);
            w.Int(f.Partition);
            w.Int(f.Profile.Count);
            foreach (var (key, value) in f.Profile)
            {
                w.String(key);
                WriteValue(ref w, key, value);
            }
        }
    }

    /// <summary>Reads what <see cref="Encode"/> wrote, advancing <paramref name="consumed"/> past it.</summary>
    /// <exception cref="InvalidDataException">Corrupt, truncated, or of an unknown version.</exception>
    public static List<TriggerFiring> Decode(ReadOnlySpan<byte> data, out int consumed)
    {
        var r = new FieldReader(data);
        var version = r.Byte();
        if (version != CurrentVersion)
        {
            throw new InvalidDataException($"unknown firing format version {version}");
        }

        var count = r.Count(MaxItems);
        var firings = new List<TriggerFiring>(count);
        for (var i = 0; i < count; i++)
        {
            var id = Required(r.String());
            var customer = Required(r.String());
            var rule = Required(r.String());
            var ruleVersion = Required(r.String());
            var channel = (ContactChannel)r.Byte();
            var priority = r.Int();
            var at = r.Long();
            var due = r.Long();
            var expires = r.Long();
            var delivery = (Delivery)r.Byte();
            var suppressedBy = r.String();
            var reason = new KeyValuePair<string, string>[r.Count(MaxItems)];
            for (var k = 0; k < reason.Length; k++)
            {
                reason[k] = new(Required(r.String()), Required(r.String()));
            }

            var late = r.Bool() ?? false;
            var attempt = r.Int();
            var partition = r.Int();
            var fields = r.Count(MaxItems);
            var profile = new Dictionary<string, object?>(fields, StringComparer.Ordinal);
            for (var k = 0; k < fields; k++)
            {
                profile[Required(r.String())] = ReadValue(ref r);
            }

            firings.Add(new TriggerFiring
            {
                Id = id,
                CustomerId = customer,
                Rule = rule,
                RuleVersion = ruleVersion,
                Channel = channel,
                Priority = priority,
                AtTicks = at,
                DueTicks = due,
                ExpiresTicks = expires,
                Delivery = delivery,
                SuppressedBy = suppressedBy,
                Reason = reason,
                Late = late,
                Attempt = attempt,
                Partition = partition,
                Profile = profile,
            });
        }

        consumed = r.Position;
        return firings;
    }

    private static string Required(string? value) => value ?? throw new InvalidDataException("a required firing field is null");

    private static void WriteValue(ref FieldWriter w, string key, object? value)
    {
        switch (value)
        {
            case null:
                w.Byte(0);
                break;
            case string s:
                w.Byte(1);
                w.String(s);
                break;
            case int i:
                w.Byte(2);
                w.Int(i);
                break;
            case long l:
                w.Byte(3);
                w.Long(l);
                break;
            case decimal d:
                w.Byte(4);
                w.Decimal(d);
                break;
            case bool b:
                w.Byte(5);
                w.Bool(b);
                break;
            case IReadOnlyList<string> list:
                w.Byte(6);
                w.Int(list.Count);
                foreach (var item in list)
                {
                    w.String(item);
                }

                break;
            default:
                throw new NotSupportedException($"profile field '{key}' of type {value.GetType().Name} cannot be stored with a firing");
        }
    }

    private static object? ReadValue(ref FieldReader r)
    {
        var tag = r.Byte();
        switch (tag)
        {
            case 0:
                return null;
            case 1:
                return r.String();
            case 2:
                return r.Int();
            case 3:
                return r.Long();
            case 4:
                return r.Decimal();
            case 5:
                return r.Bool() ?? false;
            case 6:
                var items = new string[r.Count(MaxItems)];
                for (var i = 0; i < items.Length; i++)
                {
                    items[i] = Required(r.String());
                }

                return items;
            default:
                throw new InvalidDataException($"unknown profile value tag {tag}");
        }
    }
}
