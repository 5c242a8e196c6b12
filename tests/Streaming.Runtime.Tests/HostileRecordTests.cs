using System.Text;
using Microsoft.Extensions.Time.Testing;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;
using Streaming.Runtime.Partitions;
using Streaming.Runtime.Rules;
using Streaming.Tests.Shared;
using Xunit.Abstractions;
using static Streaming.Engine.Tests.TestEvents;

namespace Streaming.Runtime.Tests;

/// <summary>
/// Field-report faults (issue 12) on the actor runtime: no single record may stop a partition, move its clock, undo a
/// newer decision, count twice, or carry an id that cannot be read back. Raw records are decoded as the Kafka ingestion
/// stage decodes them, then go through the coordinator to the customer entities. Expected values are written out here,
/// never taken from the engine.
/// </summary>
public sealed class HostileRecordTests(ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit(CustomerEntityTests.RuntimeConfig, nameof(HostileRecordTests), output)
{
    private const string MaxDecimal = "79228162514264337593543950335";
    private static readonly DateTimeOffset Appended = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);

    private PartitionHarness NewHost(RuleSet? rules = null, DecoderOptions? decoder = null) =>
        new(this, 0, new RuleBook(rules ?? RuleSetLoader.Default), decoder: decoder);

    private static byte[] Order(string customer, string eventId, string orderId, string amount, string at = "2011-07-10T10:00:00Z", string type = "order_placed") =>
        Encoding.UTF8.GetBytes($$"""{"eventId":"{{eventId}}","customerId":"{{customer}}","occurredAt":"{{at}}","type":"{{type}}","orderId":"{{orderId}}","amount":{{amount}},"currency":"GBP","channel":"online"}""");

    private static byte[] Click(string customer, string eventId, string at) =>
        Encoding.UTF8.GetBytes($$"""{"eventId":"{{eventId}}","customerId":"{{customer}}","occurredAt":"{{at}}","type":"page_view","sessionId":"s"}""");

    private static RecordResult Process(PartitionHarness host, InputTopic topic, long offset, string customer, byte[] value, out DeadLettered? dead, DateTimeOffset? appended = null) =>
        host.Process(topic, offset, Encoding.UTF8.GetBytes(customer), value, appended ?? Appended, out dead);

    private static RecordResult Process(PartitionHarness host, InputTopic topic, long offset, string customer, byte[] value) =>
        Process(host, topic, offset, customer, value, out _);

    private static byte[] Snapshot(PartitionHarness host, string customer) => CustomerStateCodec.Encode(host.Find(customer)!);

    // 1. A record that cannot be applied is dead-lettered; the customer keeps exactly its previous state.

    [Theory]
    [InlineData("order_placed", "order_placed")]       // gross amount and the day's net overflow
    [InlineData("order_cancelled", "order_cancelled")] // refunds and the day's net (negative) overflow
    public void A_sum_that_overflows_dead_letters_the_record_and_leaves_the_state_as_it_was(string firstType, string secondType)
    {
        var host = NewHost();
        Assert.Equal(RecordResult.Applied, Process(host, InputTopic.Orders, 0, "big", Order("big", "e1", "o1", MaxDecimal, type: firstType)));
        var before = Snapshot(host, "big");
        var status = host.Status();
        var population = status.Counts.ToDictionary();
        var firings = status.PendingFirings;

        var outcome = Process(host, InputTopic.Orders, 1, "big", Order("big", "e2", "o2", "1", at: "2011-07-10T11:00:00Z", type: secondType), out var error);

        Assert.Equal(RecordResult.DeadLetter, outcome);
        Assert.Equal("processing-error", error!.Code);
        Assert.StartsWith("OverflowException", error.Detail, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(host, "big"));
        status = host.Status();
        Assert.Equal(population, status.Counts.ToDictionary());
        Assert.Equal(firings, status.PendingFirings);

        // The partition goes on: the next record (another customer, later in time) applies and its offset counts.
        Assert.Equal(RecordResult.Applied, Process(host, InputTopic.Orders, 2, "next", Order("next", "e3", "o3", "5", at: "2011-07-11T10:00:00Z")));
        status = host.Status();
        Assert.Equal(3, status.ProcessedOffsets["orders"]);
        Assert.Equal(new DateTimeOffset(2011, 7, 11, 10, 0, 0, TimeSpan.Zero).UtcTicks, status.MaxEventTicks);
        Assert.Equal(3, host.Checkpoint().NextOffsets["orders"]);
    }

    [Fact]
    public void A_rule_that_fails_dead_letters_the_record_and_a_new_customer_is_not_created()
    {
        // Fails for customers with a net amount of 2 or more.
        var rules = InjectedRules.DefaultWith("boom", c => c.State.NetAmount < 2 ? false : throw new InvalidOperationException("injected rule failure"));
        var host = NewHost(rules);

        Assert.Equal(RecordResult.Applied, Process(host, InputTopic.Orders, 0, "small", Order("small", "e1", "o1", "0.5")));
        var before = Snapshot(host, "small");

        Assert.Equal(RecordResult.DeadLetter, Process(host, InputTopic.Orders, 1, "small", Order("small", "e2", "o2", "10", at: "2011-07-10T11:00:00Z"), out var error));
        Assert.Equal("processing-error", error!.Code);
        Assert.Equal(before, Snapshot(host, "small"));

        // A customer whose first record fails does not exist afterwards.
        Assert.Equal(RecordResult.DeadLetter, Process(host, InputTopic.Orders, 2, "fresh", Order("fresh", "e3", "o3", "10")));
        Assert.Null(host.Find("fresh"));
        Assert.Equal(1L, host.Status().Counts[("lifecycle", "new")]); // only "small" was counted

        // Neither failure consumed the ids: once the rule set is fixed, the same records apply.
        host.SwitchRules(RuleSetLoader.Default);
        Assert.Equal(RecordResult.Applied, Process(host, InputTopic.Orders, 3, "small", Order("small", "e2", "o2", "10", at: "2011-07-10T11:00:00Z")));
        Assert.Equal(10.5m, host.Find("small")!.GrossAmount);
    }

    [Fact]
    public void A_wake_up_that_fails_keeps_the_customer_and_the_partition_goes_on()
    {
        // Fails when evaluated more than 30 days after the last order, i.e. at the wake-up it asks for.
        var rules = InjectedRules.DefaultWith("late_boom", c =>
        {
            if (c.State.LastOrderTicks == 0)
            {
                return false;
            }

            var due = c.State.LastOrderTicks + TimeSpan.FromDays(31).Ticks;
            if (c.Now >= due)
            {
                throw new InvalidOperationException("injected rule failure");
            }

            c.WakeAt(due);
            return false;
        });
        var host = NewHost(rules);
        Assert.Equal(RecordResult.Applied, Process(host, InputTopic.Orders, 0, "sleeper", Order("sleeper", "e1", "o1", "10")));
        var before = Snapshot(host, "sleeper");
        Assert.NotEqual(0L, host.Find("sleeper")!.WakeTicks);

        // Another customer's record 60 days later moves the watermark past the sleeper's wake-up at day 31.
        Assert.Equal(RecordResult.Applied, Process(host, InputTopic.Clickstream, 0, "other", Click("other", "c1", "2011-09-08T10:00:00Z")));

        Assert.Equal(1, host.Status().FailedWakeUps);
        var after = host.Find("sleeper")!;
        Assert.Equal(0L, after.WakeTicks); // dropped, so the failure does not repeat at every page
        after.WakeTicks = CustomerStateCodec.Decode("sleeper", before).WakeTicks;
        Assert.Equal(before, CustomerStateCodec.Encode(after));
        Assert.Equal(RecordResult.Applied, Process(host, InputTopic.Clickstream, 1, "other", Click("other", "c2", "2011-09-09T10:00:00Z")));
    }

    [Fact]
    public void A_snapshot_copied_back_restores_every_persisted_field_whatever_happened_since()
    {
        // The undo of a failed change: checked against the codec, which writes every persisted field.
        var seed = Environment.TickCount;
        var rng = new Random(seed);
        for (var round = 0; round < 50; round++)
        {
            var state = new CustomerState(Customer);
            var n = rng.Next(0, 60);
            for (var i = 0; i < n; i++)
            {
                CustomerActor.Apply(state, Streaming.Engine.Tests.TestEvents.Random(rng, $"a{round}-{i}"), new ActorOptions());
            }

            var before = CustomerStateCodec.Encode(state);
            var snapshot = new CustomerState("scratch");
            snapshot.CopyFrom(state);
            Assert.True(before.AsSpan().SequenceEqual(CustomerStateCodec.Encode(snapshot)), $"seed {seed}, round {round}: copy differs");

            for (var i = 0; i < rng.Next(1, 40); i++)
            {
                CustomerActor.Apply(state, Streaming.Engine.Tests.TestEvents.Random(rng, $"b{round}-{i}"), new ActorOptions());
            }

            state.CopyFrom(snapshot);
            Assert.True(before.AsSpan().SequenceEqual(CustomerStateCodec.Encode(state)), $"seed {seed}, round {round}: restore differs");
        }
    }

    // 2. A future timestamp cannot move the partition's clock.

    [Theory]
    [InlineData("2099-06-01T00:00:00Z", false)]
    [InlineData("2026-11-30T13:00:01Z", false)] // one second beyond the default skew of an hour
    [InlineData("2026-11-30T13:00:00Z", true)]  // exactly at the bound
    [InlineData("2026-11-30T14:30:00+02:00", true)] // 12:30 UTC: the offset counts
    public void An_event_more_than_the_allowed_skew_after_its_broker_timestamp_is_refused(string occurredAt, bool accepted)
    {
        var host = NewHost();
        Process(host, InputTopic.Orders, 0, "a", Order("a", "e1", "o1", "5"));
        var clock = host.Status().MaxEventTicks;

        var outcome = Process(host, InputTopic.Clickstream, 0, "b", Click("b", "c1", occurredAt), out var error);

        if (accepted)
        {
            Assert.Equal(RecordResult.Applied, outcome);
        }
        else
        {
            Assert.Equal(RecordResult.DeadLetter, outcome);
            Assert.Equal("time-in-future", error!.Code);
            Assert.Equal(clock, host.Status().MaxEventTicks);
            Assert.Null(host.Find("b"));
            Assert.Equal("new", host.Find("a")!.Stages["lifecycle"].Name); // one order, no time has passed for it
        }
    }

    [Fact]
    public void The_skew_is_configurable_and_a_record_without_a_broker_timestamp_is_not_judged_by_it()
    {
        var decoder = new EventDecoder(new DecoderOptions { MaxFutureSkew = TimeSpan.FromDays(1) });
        var key = Encoding.UTF8.GetBytes("b");
        Assert.True(decoder.TryDecode(InputTopic.Clickstream, key, Click("b", "c1", "2026-12-01T11:59:00Z"), Appended, out _, out _));
        Assert.False(decoder.TryDecode(InputTopic.Clickstream, key, Click("b", "c1", "2026-12-01T12:00:01Z"), Appended, out _, out var error));
        Assert.Equal("time-in-future", error.Code);
        Assert.True(decoder.TryDecode(InputTopic.Clickstream, key, Click("b", "c1", "2099-06-01T00:00:00Z"), null, out _, out _));
    }

    [Fact]
    public void The_clock_bound_follows_the_clock_as_it_moves_on()
    {
        // A long-running engine: the bound is now + skew at each record, not at the first one the decoder saw.
        var clock = new FakeTimeProvider(Appended);
        var decoder = new EventDecoder(new DecoderOptions { Clock = clock, MaxFutureSkew = TimeSpan.FromHours(1) });
        var key = Encoding.UTF8.GetBytes("b");
        Assert.True(decoder.TryDecode(InputTopic.Clickstream, key, Click("b", "c1", "2026-11-30T12:59:00Z"), null, out _, out _));
        Assert.False(decoder.TryDecode(InputTopic.Clickstream, key, Click("b", "c2", "2026-11-30T14:30:00Z"), null, out _, out var early));
        Assert.Equal("time-in-future", early.Code);

        clock.SetUtcNow(Appended.AddHours(2));
        Assert.True(decoder.TryDecode(InputTopic.Clickstream, key, Click("b", "c3", "2026-11-30T14:30:00Z"), null, out _, out _));
        Assert.True(decoder.TryDecode(InputTopic.Clickstream, key, Click("b", "c4", "2026-11-30T15:00:00Z"), null, out _, out _));
        Assert.False(decoder.TryDecode(InputTopic.Clickstream, key, Click("b", "c5", "2026-11-30T15:00:01Z"), null, out _, out var late));
        Assert.Equal("time-in-future", late.Code);
    }

    /// <summary>A clock that fails when read: a fault injected into decoding.</summary>
    private sealed class FailingClock : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => throw new InvalidOperationException("injected clock failure");
    }

    [Theory]
    [InlineData("2090-01-01T00:00:00Z", "2090-01-01T00:30:00Z", false)] // a producer clock decades ahead: its broker timestamp agrees
    [InlineData(null, "2090-01-01T00:30:00Z", false)]                   // no broker timestamp: the engine's clock still bounds it
    [InlineData("2090-01-01T00:00:00Z", "2026-11-30T13:00:00Z", true)]  // exactly the engine's now plus the skew
    [InlineData("2090-01-01T00:00:00Z", "2026-11-30T13:00:01Z", false)] // one second beyond
    [InlineData("2026-11-30T12:30:00Z", "2026-11-30T13:15:00Z", false)] // the broker timestamp is later than now: now bounds
    [InlineData("2026-11-30T11:00:00Z", "2026-11-30T12:00:01Z", false)] // the broker timestamp is earlier than now: it bounds
    [InlineData("2026-11-30T12:00:00Z", "2011-07-10T11:00:00Z", true)]  // history is unaffected
    public void OccurredAt_is_bounded_by_the_earlier_of_the_broker_timestamp_and_the_engine_clock(string? appended, string occurredAt, bool accepted)
    {
        var host = NewHost(decoder: new DecoderOptions { Clock = new FakeTimeProvider(Appended) });
        Assert.Equal(RecordResult.Applied, Process(host, InputTopic.Orders, 0, "a", Order("a", "e1", "o1", "5")));
        var clock = host.Status().MaxEventTicks;
        var brokerTime = appended is null ? (DateTimeOffset?)null : DateTimeOffset.Parse(appended, System.Globalization.CultureInfo.InvariantCulture);

        var outcome = host.Process(InputTopic.Clickstream, 0, "b"u8.ToArray(), Click("b", "c1", occurredAt), brokerTime, out var error);

        Assert.Equal(accepted ? RecordResult.Applied : RecordResult.DeadLetter, outcome);
        if (!accepted)
        {
            Assert.Equal("time-in-future", error!.Code);
            Assert.Equal(clock, host.Status().MaxEventTicks);
            Assert.Null(host.Find("b"));
        }
    }

    [Fact]
    public void A_failure_while_decoding_is_dead_lettered_as_a_processing_error_and_never_thrown()
    {
        var host = NewHost(decoder: new DecoderOptions { Clock = new FailingClock() });

        for (var offset = 0; offset < 3; offset++)
        {
            DeadLettered? error = null;
            var outcome = RecordResult.Applied;
            var thrown = Record.Exception(() => outcome = host.Process(InputTopic.Clickstream, offset, "b"u8.ToArray(), Click("b", "c" + offset, "2011-07-10T10:00:00Z"), Appended, out error));

            Assert.Null(thrown);
            Assert.Equal(RecordResult.DeadLetter, outcome);
            Assert.Equal("processing-error", error!.Code);
            Assert.Contains("InvalidOperationException", error.Detail, StringComparison.Ordinal);
            Assert.Equal(offset + 1, host.Status().ProcessedOffsets["clickstream"]);
        }

        Assert.Null(host.Find("b"));
        Assert.Equal(0L, host.Status().MaxEventTicks);
    }

    // 3. Latest occurredAt wins, field by field.

    [Fact]
    public void An_older_opt_in_arriving_later_does_not_re_enable_contact()
    {
        var host = NewHost();
        var noon = new DateTimeOffset(2011, 7, 10, 12, 0, 0, TimeSpan.Zero);
        host.Apply(Consent("c-12", noon, voice: false, sms: false, email: false, customerId: "x"));
        host.Apply(Consent("c-11", noon.AddHours(-1), voice: true, sms: true, email: true, customerId: "x"));
        host.Apply(Call("k-13", noon.AddHours(1), completed: false, waitSeconds: 300, talkSeconds: 0, customerId: "x"));

        var state = host.Find("x")!;
        Assert.Equal((false, false, false), (state.ConsentVoice, state.ConsentSms, state.ConsentEmail));
        var recovery = Assert.Single(host.Checkpoint().Firings, f => f.Rule == "service-recovery");
        Assert.Equal(Delivery.Suppressed, recovery.Delivery);
        Assert.Equal("consent", recovery.SuppressedBy);
    }

    [Fact]
    public void Time_zone_country_and_opt_outs_follow_event_time_not_arrival()
    {
        var host = NewHost();
        var t = new DateTimeOffset(2011, 7, 10, 12, 0, 0, TimeSpan.Zero);
        host.Apply(Attributes("a2", t, birthday: null, timeZone: "Asia/Tokyo", country: "JP", customerId: "y"));
        host.Apply(Attributes("a1", t.AddDays(-1), birthday: "1990-01-02", timeZone: "Europe/London", country: "GB", customerId: "y"));
        host.Apply(Placed("o-old", t.AddDays(-2), 5m, country: "FR", customerId: "y"));  // an order's country is an update too
        host.Apply(Consent("c2", t, voice: true, sms: null, email: null, customerId: "y"));
        host.Apply(Outcome("out-old", t.AddHours(-3), "opted_out", customerId: "y") with { Channel = "voice" });     // voice opt-out older than the opt-in

        var state = host.Find("y")!;
        Assert.Equal(("Asia/Tokyo", "JP", "1990-01-02"), (state.TimeZone, state.Country, state.Birthday));
        Assert.True(state.ConsentVoice);

        host.Apply(Outcome("out-new", t.AddHours(1), "opted_out", customerId: "y") with { Channel = "voice" });
        Assert.False(host.Find("y")!.ConsentVoice);
    }

    [Fact]
    public void The_tier_review_follows_the_earliest_order_whatever_arrives_first()
    {
        var host = NewHost();
        host.Apply(Placed("o-sep", new DateTimeOffset(2011, 9, 1, 10, 0, 0, TimeSpan.Zero), 10m, customerId: "z"));
        host.Apply(Placed("o-jul", new DateTimeOffset(2011, 7, 10, 10, 0, 0, TimeSpan.Zero), 10m, customerId: "z"));

        Assert.Equal(new DateTimeOffset(2012, 7, 10, 10, 0, 0, TimeSpan.Zero).UtcTicks, host.Find("z")!.TierReviewTicks);
    }

    [Fact]
    public void Any_order_of_attribute_and_consent_updates_gives_the_same_attributes_and_suppression()
    {
        var t = new DateTimeOffset(2011, 7, 10, 8, 0, 0, TimeSpan.Zero);
        var updates = new CustomerEvent[]
        {
            Attributes("a1", t, birthday: "1980-03-04", timeZone: "Europe/Paris", country: "FR", customerId: "p"),
            Attributes("a2", t.AddMinutes(10), birthday: null, timeZone: "America/Chicago", country: null, customerId: "p"),
            Attributes("a3", t.AddMinutes(20), birthday: "1980-04-03", timeZone: null, country: "US", customerId: "p"),
            Consent("c1", t.AddMinutes(5), voice: true, sms: true, email: true, customerId: "p"),
            Consent("c2", t.AddMinutes(15), voice: false, sms: null, email: null, customerId: "p"),
            Consent("c3", t.AddMinutes(25), voice: null, sms: false, email: null, customerId: "p"),
            new UpdateEvent { EventId = "d1", CustomerId = "p", OccurredAt = t.AddMinutes(30), Type = EventType.Consent, DoNotContact = false },
        };

        // Written out from the timeline above: the latest value of each field.
        var expected = ("1980-04-03", "America/Chicago", "US", (bool?)false, (bool?)false, (bool?)true, (bool?)false);
        var seed = Environment.TickCount;
        var rng = new Random(seed);

        // One partition, one customer per round ("p0", "p1", …): each round's customer starts empty, as a new store did.
        var host = NewHost();
        var arrivals = new List<string>();
        for (var round = 0; round < 200; round++)
        {
            var customer = "p" + round;
            var order = updates.OrderBy(_ => rng.Next()).ToArray();
            foreach (var update in order)
            {
                host.Feed(update with { CustomerId = customer });
            }

            host.Feed(Call("k", t.AddHours(1), completed: false, waitSeconds: 300, talkSeconds: 0, customerId: customer));
            arrivals.Add(string.Join(",", order.Select(e => e.EventId)));
        }

        host.AwaitQuiet();
        var firings = host.Checkpoint().Firings;
        for (var round = 0; round < 200; round++)
        {
            var customer = "p" + round;
            var s = host.Find(customer)!;
            Assert.True(expected == (s.Birthday, s.TimeZone, s.Country, s.ConsentVoice, s.ConsentSms, s.ConsentEmail, s.DoNotContact), $"seed {seed}, arrival {arrivals[round]}");
            var recovery = Assert.Single(firings, f => f.Rule == "service-recovery" && f.CustomerId == customer);
            Assert.True((Delivery.Suppressed, "consent") == (recovery.Delivery, recovery.SuppressedBy), $"seed {seed}, arrival {arrivals[round]}: {recovery.Delivery} {recovery.SuppressedBy}");
        }
    }

    // 5. Duplicates by business key.

    [Fact]
    public void A_re_sent_order_with_a_new_event_id_is_a_duplicate_at_any_distance()
    {
        var host = NewHost();
        Assert.Equal(RecordResult.Applied, Process(host, InputTopic.Orders, 0, "r", Order("r", "e1", "INV-1", "12.50")));
        for (var i = 0; i < 100; i++)
        {
            host.Process(InputTopic.Clickstream, i, Encoding.UTF8.GetBytes("r"), Click("r", "click-" + i, "2011-07-10T10:05:00Z"), Appended, out _);
        }

        Assert.Equal(RecordResult.Duplicate, Process(host, InputTopic.Orders, 1, "r", Order("r", "e1-retry", "INV-1", "12.50")));
        var state = host.Find("r")!;
        Assert.Equal((1, 12.50m), (state.OrderCount, state.GrossAmount));

        // Survives the codec, and a restart of the partition (the entity recovers from its journal).
        var reloaded = CustomerStateCodec.Decode("r", CustomerStateCodec.Encode(state));
        Assert.True(reloaded.PlacedOrderIds.Contains(IdHash.Fnv1a64("INV-1")));
        host.Checkpoint();
        host.Restart();
        Assert.True(host.Find("r")!.PlacedOrderIds.Contains(IdHash.Fnv1a64("INV-1")));
        Assert.Equal(RecordResult.Duplicate, Process(host, InputTopic.Orders, 2, "r", Order("r", "e1-again", "INV-1", "12.50")));

        // A cancellation of that order is not a re-sent placement: it applies.
        Assert.Equal(RecordResult.Applied, Process(host, InputTopic.Orders, 3, "r", Order("r", "e-c", "INV-1", "2.50", type: "order_cancelled")));
        Assert.Equal(2.50m, host.Find("r")!.RefundAmount);
        Assert.Equal((1, 12.50m), (host.Find("r")!.OrderCount, host.Find("r")!.GrossAmount));
    }

    // 4. Customer ids.

    public static TheoryData<string> ValidIds() =>
    [
        "a/b", "a%2Fb", "100%", ".", "..", "a b", "a+b", "a?b=c", "a#b", "😀", "שלום", "e\u0301", "日本/東京", new string('x', 256),
        string.Concat(Enumerable.Repeat("😀", 256)),
    ];

    [Theory]
    [MemberData(nameof(ValidIds))]
    public void Every_id_without_control_characters_up_to_256_characters_is_accepted(string id)
    {
        var decoder = new EventDecoder();
        var json = System.Text.Json.JsonSerializer.Serialize(new { eventId = "e", customerId = id, occurredAt = "2011-07-10T10:00:00Z", type = "page_view" });

        Assert.True(decoder.TryDecode(InputTopic.Clickstream, Encoding.UTF8.GetBytes(id), Encoding.UTF8.GetBytes(json), out var evt, out var error), error.ToString());
        Assert.Equal(id, evt!.CustomerId);
    }

    public static TheoryData<string> InvalidIds() =>
    [
        "a\0b", "\0", "line\nbreak", "tab\t", "del\u007f", "\u001f", new string('x', 257), string.Concat(Enumerable.Repeat("😀", 257)),
    ];

    [Theory]
    [MemberData(nameof(InvalidIds))]
    public void Ids_with_control_characters_or_over_256_characters_are_invalid_fields(string id)
    {
        var decoder = new EventDecoder();
        var json = System.Text.Json.JsonSerializer.Serialize(new { eventId = "e", customerId = id, occurredAt = "2011-07-10T10:00:00Z", type = "page_view" });

        Assert.False(decoder.TryDecode(InputTopic.Clickstream, Encoding.UTF8.GetBytes(id), Encoding.UTF8.GetBytes(json), out _, out var error));
        Assert.Equal("invalid-field", error.Code);
    }

    // Also: RFC 3339 allows lowercase t and z.

    [Theory]
    [InlineData("2011-12-09t12:50:00z")]
    [InlineData("2011-12-09t12:50:00Z")]
    [InlineData("2011-12-09T12:50:00z")]
    [InlineData("2011-12-09t13:50:00+01:00")]
    [InlineData("2011-12-09t12:50:00.000z")]
    public void Lowercase_t_and_z_are_read_as_their_uppercase_forms(string at)
    {
        var decoder = new EventDecoder();
        Assert.True(decoder.TryDecode(InputTopic.Clickstream, "c"u8, Click("c", "e", at), out var evt, out var error), error.ToString());
        Assert.Equal(new DateTimeOffset(2011, 12, 9, 12, 50, 0, TimeSpan.Zero), evt!.OccurredAt);
    }

    [Theory]
    [InlineData("2011-12-09x12:50:00z")]
    [InlineData("2011-12-09t12:50:00")]
    [InlineData("2011-12-09t25:50:00z")]
    public void Other_malformed_times_stay_refused(string at)
    {
        var decoder = new EventDecoder();
        Assert.False(decoder.TryDecode(InputTopic.Clickstream, "c"u8, Click("c", "e", at), out _, out var error));
        Assert.Equal("invalid-field", error.Code);
    }
}
