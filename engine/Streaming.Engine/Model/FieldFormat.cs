using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Streaming.Engine.Model;

/// <summary>
/// Little-endian fixed-width fields, tri-state booleans and length-prefixed UTF-8 strings (-1 for null), written to a
/// buffer: the field format of every binary record the core writes (customer states, firings).
/// </summary>
public readonly ref struct FieldWriter(ArrayBufferWriter<byte> w)
{
    private readonly ArrayBufferWriter<byte> _w = w;

    public void Byte(byte v)
    {
        _w.GetSpan(1)[0] = v;
        _w.Advance(1);
    }

    public void Int(int v)
    {
        BinaryPrimitives.WriteInt32LittleEndian(_w.GetSpan(4), v);
        _w.Advance(4);
    }

    public void Long(long v)
    {
        BinaryPrimitives.WriteInt64LittleEndian(_w.GetSpan(8), v);
        _w.Advance(8);
    }

    public void ULong(ulong v)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(_w.GetSpan(8), v);
        _w.Advance(8);
    }

    public void Decimal(decimal v)
    {
        Span<int> bits = stackalloc int[4];
        decimal.GetBits(v, bits);
        foreach (var part in bits)
        {
            Int(part);
        }
    }

    /// <summary>Tri-state: 0 null, 1 false, 2 true.</summary>
    public void Bool(bool? v) => Byte(v switch { null => 0, false => 1, true => 2 });

    /// <summary>Length-prefixed UTF-8; length -1 for null.</summary>
    public void String(string? v)
    {
        if (v is null)
        {
            Int(-1);
            return;
        }

        var n = Encoding.UTF8.GetByteCount(v);
        Int(n);
        Encoding.UTF8.GetBytes(v, _w.GetSpan(n));
        _w.Advance(n);
    }
}

/// <summary>Reads what <see cref="FieldWriter"/> wrote; corrupt or truncated input throws <see cref="InvalidDataException"/>.</summary>
public ref struct FieldReader(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _pos;

    /// <summary>Bytes read so far.</summary>
    public readonly int Position => _pos;

    public byte Byte() => Take(1)[0];

    /// <summary>A collection length, checked against a sanity bound.</summary>
    public int Count(int max)
    {
        var n = Int();
        if (n < 0 || n > max)
        {
            throw new InvalidDataException($"corrupt collection length {n}");
        }

        return n;
    }

    public int Int() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

    /// <summary>The next <paramref name="n"/> raw bytes.</summary>
    public ReadOnlySpan<byte> Bytes(int n) => Take(n);

    /// <summary>Passes over <paramref name="n"/> bytes another reader consumed.</summary>
    public void Skip(int n) => Take(n);

    public long Long() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    public ulong ULong() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    public decimal Decimal()
    {
        Span<int> bits = [Int(), Int(), Int(), Int()];
        return new decimal(bits);
    }

    public bool? Bool() => Byte() switch
    {
        0 => null,
        1 => false,
        2 => true,
        var other => throw new InvalidDataException($"corrupt boolean {other}"),
    };

    public string? String()
    {
        var n = Int();
        if (n == -1)
        {
            return null;
        }

        if (n < 0)
        {
            throw new InvalidDataException($"corrupt string length {n}");
        }

        return Encoding.UTF8.GetString(Take(n));
    }

    /// <summary>Throws unless every byte was read: <c>{owner}: n unexpected trailing bytes in {record}</c>.</summary>
    public readonly void End(string owner, string record)
    {
        if (_pos != _data.Length)
        {
            throw new InvalidDataException($"{owner}: {_data.Length - _pos} unexpected trailing bytes in {record}");
        }
    }

    private ReadOnlySpan<byte> Take(int n)
    {
        if (n > _data.Length - _pos)
        {
            throw new InvalidDataException("state record is truncated");
        }

        var s = _data.Slice(_pos, n);
        _pos += n;
        return s;
    }
}
