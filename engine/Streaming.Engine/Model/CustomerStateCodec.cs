using System.Buffers;

namespace Streaming.Engine.Model;

/// <summary>
/// Binary encoding of <see cref="CustomerState"/> for the state store. The first byte is the format version; readers
/// accept every version ever written (add a new version, never change an old one).
/// </summary>
public static class CustomerStateCodec
{
    /// <summary>The version written by this build.</summary>
    public const byte CurrentVersion = 4;

    /// <summary>
    /// The encoding of <paramref name="s"/> as an array of exactly its length. It is written into the thread's
    /// <see cref="ThreadBuffer"/>, so growing to a large customer's size happens once per thread rather than at every call.
    /// </summary>
    public static byte[] Encode(CustomerState s)
    {
        var w = ThreadBuffer.Take();
        Encode(s, w);
        return ThreadBuffer.ToArray(w);
    }

    public static void Encode(CustomerState s, ArrayBufferWriter<byte> w)
    {
        var b = new FieldWriter(w);
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

        // Version 2: the customer model (activity, per-day buckets, derived values, timers).
        b.Long(s.LastCallTicks);
        b.Long(s.LastCartAddTicks);
        b.Int(s.CartAddsSinceOrder);
        b.Byte((byte)s.ChannelsUsed);
        WriteTop(ref b, s.TopCategories);
        WriteTop(ref b, s.TopProducts);
        var days = s.Days.Items;
        b.Int(days.Length);
        foreach (ref readonly var d in days)
        {
            b.Int(d.Day);
            b.Int(d.Orders);
            b.Decimal(d.Net);
            b.Long(d.Points);
            b.Int(d.Calls);
            b.Int(d.Abandoned);
            b.Int(d.CartAdds);
        }

        b.Int(s.Frequency);
        b.Decimal(s.Monetary);
        b.Byte(s.RScore);
        b.Byte(s.FScore);
        b.Byte(s.MScore);
        b.String(s.RfmSegment);
        b.Int(s.ChurnRisk);
        b.Int(s.Stages.Count);
        foreach (var (ladder, stage) in s.Stages)
        {
            b.String(ladder);
            b.String(stage.Name);
            b.Long(stage.SinceTicks);
        }

        b.String(s.TierName);
        b.Long(s.TierPoints);
        b.String(s.TierProjected);
        b.Long(s.TierReviewTicks);
        b.Int(s.Tags.Length);
        foreach (var tag in s.Tags)
        {
            b.String(tag);
        }

        b.String(s.RuleVersion);
        b.Long(s.EvaluatedAtTicks);
        b.Long(s.WakeTicks);

        // Version 3: triggers and contact history.
        b.Bool(s.DoNotContact);
        b.Int(s.Triggers.Count);
        foreach (var (id, memory) in s.Triggers)
        {
            b.String(id);
            b.Bool(memory.Holds);
            b.Long(memory.LastFiredTicks);
            b.Byte(memory.LastDelivery);
            b.Bool(memory.Converted);
        }

        b.Int(s.Contacts.Count);
        foreach (var contact in s.Contacts)
        {
            b.Byte(contact.Channel);
            b.Long(contact.Ticks);
        }

        b.Int(s.RecentFirings.Count);
        foreach (var f in s.RecentFirings)
        {
            b.String(f.Id);
            b.String(f.Rule);
            b.String(f.RuleVersion);
            b.Long(f.AtTicks);
            b.Byte(f.Channel);
            b.Byte(f.Delivery);
            b.String(f.SuppressedBy);
            b.Long(f.DueTicks);
            b.Int(f.Reason.Count);
            foreach (var part in f.Reason)
            {
                b.String(part);
            }

            b.String(f.Outcome);
        }

        foreach (var n in s.OutcomeCounts)
        {
            b.Int(n);
        }

        foreach (var n in s.AnsweredHours)
        {
            b.Int(n);
        }

        // Version 4: event times of attribute and consent fields (latest wins), placed order ids (idempotent orders).
        foreach (var ticks in s.FieldTicks)
        {
            b.Long(ticks);
        }

        var orders = s.PlacedOrderIds.Raw;
        b.Int(orders.Length);
        foreach (var id in orders)
        {
            b.ULong(id);
        }
    }

    private static void ReadVersion4(ref FieldReader r, CustomerState s)
    {
        for (var i = 0; i < s.FieldTicks.Length; i++)
        {
            s.FieldTicks[i] = r.Long();
        }

        var orders = new ulong[r.Count(1 << 24)];
        for (var i = 0; i < orders.Length; i++)
        {
            orders[i] = r.ULong();
        }

        s.PlacedOrderIds = new IdSet(orders);
    }

    private static void ReadTriggers(ref FieldReader r, CustomerState s)
    {
        s.DoNotContact = r.Bool();
        var triggers = r.Count(1 << 12);
        for (var i = 0; i < triggers; i++)
        {
            var id = r.String() ?? "";
            var memory = new TriggerMemory { Holds = r.Bool() == true, LastFiredTicks = r.Long(), LastDelivery = r.Byte(), Converted = r.Bool() == true };

            // States saved before memories became sparse hold an entry for every trigger of the rule set.
            if (!memory.IsDefault)
            {
                s.Triggers[id] = memory;
            }
        }

        var contacts = r.Count(1 << 12);
        for (var i = 0; i < contacts; i++)
        {
            s.Contacts.Add(new ContactEntry(r.Byte(), r.Long()));
        }

        var firings = r.Count(1 << 10);
        for (var i = 0; i < firings; i++)
        {
            var id = r.String() ?? "";
            var rule = r.String() ?? "";
            var version = r.String() ?? "";
            var at = r.Long();
            var channel = r.Byte();
            var delivery = r.Byte();
            var suppressedBy = r.String();
            var due = r.Long();
            var reason = new string[r.Count(1 << 10)];
            for (var j = 0; j < reason.Length; j++)
            {
                reason[j] = r.String() ?? "";
            }

            s.RecentFirings.Add(new FiringSummary
            {
                Id = id,
                Rule = rule,
                RuleVersion = version,
                AtTicks = at,
                Channel = channel,
                Delivery = delivery,
                SuppressedBy = suppressedBy,
                DueTicks = due,
                Reason = reason,
                Outcome = r.String(),
            });
        }

        for (var i = 0; i < s.OutcomeCounts.Length; i++)
        {
            s.OutcomeCounts[i] = r.Int();
        }

        for (var i = 0; i < s.AnsweredHours.Length; i++)
        {
            s.AnsweredHours[i] = r.Int();
        }
    }

    private static void WriteTop(ref FieldWriter b, TopCounts top)
    {
        b.Int(top.Items.Count);
        foreach (var (key, count) in top.Items)
        {
            b.String(key);
            b.Int(count);
        }
    }

    private static TopCounts ReadTop(ref FieldReader r)
    {
        var top = new TopCounts();
        var n = r.Count(TopCounts.Capacity);
        for (var i = 0; i < n; i++)
        {
            top.Set(r.String() ?? "", r.Int());
        }

        return top;
    }

    private static void ReadModel(ref FieldReader r, CustomerState s)
    {
        s.LastCallTicks = r.Long();
        s.LastCartAddTicks = r.Long();
        s.CartAddsSinceOrder = r.Int();
        s.ChannelsUsed = (Channels)r.Byte();
        s.TopCategories = ReadTop(ref r);
        s.TopProducts = ReadTop(ref r);
        var days = new DayBucket[r.Count(1 << 16)];
        for (var i = 0; i < days.Length; i++)
        {
            days[i] = new DayBucket
            {
                Day = r.Int(),
                Orders = r.Int(),
                Net = r.Decimal(),
                Points = r.Long(),
                Calls = r.Int(),
                Abandoned = r.Int(),
                CartAdds = r.Int(),
            };
        }

        s.Days.Load(days);
        s.Frequency = r.Int();
        s.Monetary = r.Decimal();
        s.RScore = r.Byte();
        s.FScore = r.Byte();
        s.MScore = r.Byte();
        s.RfmSegment = r.String();
        s.ChurnRisk = r.Int();
        var stages = r.Count(1 << 10);
        for (var i = 0; i < stages; i++)
        {
            var ladder = r.String() ?? "";
            s.Stages[ladder] = new StageValue(r.String() ?? "", r.Long());
        }

        s.TierName = r.String();
        s.TierPoints = r.Long();
        s.TierProjected = r.String();
        s.TierReviewTicks = r.Long();
        var tags = new string[r.Count(1 << 12)];
        for (var i = 0; i < tags.Length; i++)
        {
            tags[i] = r.String() ?? "";
        }

        s.Tags = tags;
        s.RuleVersion = r.String();
        s.EvaluatedAtTicks = r.Long();
        s.WakeTicks = r.Long();
    }

    /// <exception cref="InvalidDataException">The bytes are truncated or of an unknown version.</exception>
    public static CustomerState Decode(string customerId, ReadOnlySpan<byte> data)
    {
        var r = new FieldReader(data);
        var version = r.Byte();
        if (version is < 1 or > CurrentVersion)
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
        if (version >= 2)
        {
            ReadModel(ref r, s);
        }

        if (version >= 3)
        {
            ReadTriggers(ref r, s);
        }

        // States before version 4 know no field times (the next update of each field wins) and no order ids.
        if (version >= 4)
        {
            ReadVersion4(ref r, s);
        }

        // A version-1 state has no derived values: its null rule version makes the next touch re-derive them.
        r.End("customer " + customerId, "state");
        return s;
    }
}
