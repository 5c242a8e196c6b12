using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Streaming.Engine.Model;

/// <summary>
/// Binary encoding of <see cref="CustomerState"/> for the state store. The first byte is the format version; readers
/// accept every version ever written (add a new version, never change an old one).
/// </summary>
public static class CustomerStateCodec
{
    /// <summary>The version written by this build.</summary>
    public const byte CurrentVersion = 1;

    public static byte[] Encode(CustomerState s)
    {
        var w = new ArrayBufferWriter<byte>(160);
        Encode(s, w);
        return w.WrittenSpan.ToArray();
    }

    public static void Encode(CustomerState s, ArrayBufferWriter<byte> w)
    {
        var b = new Writer(w);
        b.Byte(CurrentVersion);
        b.Long(s.FirstSeenTicks);
        b.Long(s.LastSeenTicks);
        b.Long(s.EventsApplied);
        b.Int(s.OrderCount);
        b.Int(s.CancelledCount);
        b.Decimal(s.GrossAmount);
        b.Decimal(s.RefundAmount);
        b.Long(s.FirstOrderTicks);
        b.Long(s.LastOrderTicks);
        b.Int(s.ItemsBought);
        b.Int(s.PageViews);
        b.Int(s.ProductViews);
        b.Int(s.CartAdds);
        b.Int(s.Favorites);
        b.Int(s.Searches);
        b.Int(s.Logins);
        b.Int(s.Sessions);
        b.String(s.LastSessionId);
        b.Int(s.CallsCompleted);
        b.Int(s.CallsAbandoned);
        b.Long(s.WaitSecondsTotal);
        b.Long(s.TalkSecondsTotal);
        b.String(s.Country);
        b.String(s.Birthday);
        b.String(s.TimeZone);
        b.Bool(s.ConsentVoice);
        b.Bool(s.ConsentSms);
        b.Bool(s.ConsentEmail);
        b.Int(s.OutcomesReceived);
        var ids = s.RecentEventIds.Raw;
        b.Int(ids.Length);
        b.Int(s.RecentEventIds.Next);
        foreach (var id in ids)
        {
            b.ULong(id);
        }
    }

    /// <exception cref="InvalidDataException">The bytes are truncated or of an unknown version.</exception>
    public static CustomerState Decode(string customerId, ReadOnlySpan<byte> data)
    {
        var r = new Reader(data);
        var version = r.Byte();
        if (version != 1)
        {
            throw new InvalidDataException($"customer {customerId}: state format version {version} is not supported by this build (max {CurrentVersion})");
        }

        var s = new CustomerState(customerId)
        {
            FirstSeenTicks = r.Long(),
            LastSeenTicks = r.Long(),
            EventsApplied = r.Long(),
            OrderCount = r.Int(),
            CancelledCount = r.Int(),
            GrossAmount = r.Decimal(),
            RefundAmount = r.Decimal(),
            FirstOrderTicks = r.Long(),
            LastOrderTicks = r.Long(),
            ItemsBought = r.Int(),
            PageViews = r.Int(),
            ProductViews = r.Int(),
            CartAdds = r.Int(),
            Favorites = r.Int(),
            Searches = r.Int(),
            Logins = r.Int(),
            Sessions = r.Int(),
            LastSessionId = r.String(),
            CallsCompleted = r.Int(),
            CallsAbandoned = r.Int(),
            WaitSecondsTotal = r.Long(),
            TalkSecondsTotal = r.Long(),
            Country = r.String(),
            Birthday = r.String(),
            TimeZone = r.String(),
            ConsentVoice = r.Bool(),
            ConsentSms = r.Bool(),
            ConsentEmail = r.Bool(),
            OutcomesReceived = r.Int(),
        };
        var count = r.Int();
        var next = r.Int();
        if (count < 0 || count > 1 << 16 || next < 0 || next > count)
        {
            throw new InvalidDataException($"customer {customerId}: corrupt recent-id memory ({count}, {next})");
        }

        var ring = new ulong[count];
        for (var i = 0; i < count; i++)
        {
            ring[i] = r.ULong();
        }

        s.RecentEventIds = new RecentIds(ring, count, next);
        r.End(customerId);
        return s;
    }

    private readonly ref struct Writer(ArrayBufferWriter<byte> w)
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

    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos;

        public byte Byte() => Take(1)[0];

        public int Int() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

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

        public readonly void End(string customerId)
        {
            if (_pos != _data.Length)
            {
                throw new InvalidDataException($"customer {customerId}: {_data.Length - _pos} unexpected trailing bytes in state");
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
}
