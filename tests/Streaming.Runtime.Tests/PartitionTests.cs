using System.Globalization;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Runtime.Partitions;
using Streaming.Runtime.Rules;
using Xunit.Abstractions;
using static Streaming.Engine.Tests.TestEvents;

namespace Streaming.Runtime.Tests;

/// <summary>
/// One partition of the actor runtime as the old single-node host's tests saw it: records applied, offsets per topic,
/// dead letters, duplicates, checkpoints and recovery from the journal, the watermark, wake-ups after a restart, and the
/// bound on customers in memory. Expected values are sums, offsets and instants worked out here.
/// </summary>
public sealed class PartitionTests(ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit(CustomerEntityTests.RuntimeConfig, nameof(PartitionTests), output)
{
    private const int PartitionNo = 3;

    private PartitionHarness NewHost(PartitionCoordinatorOptions? options = null) => new(this, PartitionNo, new RuleBook(RuleSetLoader.Default), options);

    private static byte[] OrderJson(string eventId, string customerId, string occurredAt, string amount) =>
        Json("{'eventId':'" + eventId + "','customerId':'" + customerId + "','occurredAt':'" + occurredAt + "','type':'order_placed','orderId':'o-" + eventId + "','amount':" + amount + "}");

    private static byte[] ClickJson(string eventId, string customerId, string occurredAt) =>
        Json("{'eventId':'" + eventId + "','customerId':'" + customerId + "','occurredAt':'" + occurredAt + "','type':'page_view','sessionId':'s1'}");

    private static RecordResult Process(PartitionHarness host, InputTopic topic, long offset, string customerId, byte[] value)
    {
        var outcome = host.Process(topic, offset, Utf8(customerId), value, appended: null, out var dead);
        Assert.True(outcome == RecordResult.DeadLetter || dead is null, $"{dead}");
        return outcome;
    }

    private static long Ticks(string iso) => DateTimeOffset.Parse(iso, CultureInfo.InvariantCulture).UtcTicks;

    private static PartitionCoordinatorOptions Options(int maxCached = 250_000, TimeSpan? lateness = null) => new()
    {
        QuietCheckpointAfter = TimeSpan.FromHours(1),
        MaxCachedCustomers = maxCached,
        AllowedLateness = lateness ?? TimeSpan.FromMinutes(5),
    };

    [Fact]
    public void Processing_a_valid_record_applies_it_and_the_next_checkpoint_saves_the_customer()
    {
        var host = NewHost();

        var outcome = Process(host, InputTopic.Orders, 7, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "19.99"));

        Assert.Equal(RecordResult.Applied, outcome);
        var status = host.Status();
        Assert.Equal(1, status.Cached);
        Assert.Equal(8L, status.ProcessedOffsets["orders"]);
        var state = host.Find("c1");
        Assert.NotNull(state);
        Assert.Equal(1, state.OrderCount);
        Assert.Equal(19.99m, state.GrossAmount);
        Assert.Equal(["c1"], host.Checkpoint().ChangedCustomers);
    }

    [Fact]
    public void A_checkpoint_saves_the_changed_customers_the_offsets_and_the_clock_and_a_restart_reads_them_back()
    {
        var host = NewHost();
        Process(host, InputTopic.Orders, 7, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "19.99"));
        Process(host, InputTopic.Clickstream, 100, "c2", ClickJson("e2", "c2", "2024-01-02T03:10:00Z"));
        Process(host, InputTopic.Orders, 8, "c1", OrderJson("e3", "c1", "2024-01-02T03:05:00Z", "0.01"));

        var done = host.Checkpoint();
        Assert.Equal(PartitionNo, done.Partition);
        Assert.Equal(["c1", "c2"], done.ChangedCustomers.Order(StringComparer.Ordinal));

        // The next offset to read is the last processed offset plus one, per topic.
        Assert.Equal(2, done.NextOffsets.Count);
        Assert.Equal(9, done.NextOffsets["orders"]);
        Assert.Equal(101, done.NextOffsets["clickstream"]);
        var counts = host.Status().Counts;
        Assert.Equal(1, counts[("lifecycle", "active")]); // c1: two orders, the last within 90 days; c2 has none
        Assert.Equal(0, counts.GetValueOrDefault(("lifecycle", "new")));

        host.Restart();
        var status = host.Status();
        Assert.Equal(Ticks("2024-01-02T03:10:00Z"), status.MaxEventTicks);
        Assert.Equal(done.NextOffsets, status.CommittedOffsets);
        Assert.Equal(counts, status.Counts);
        var c1 = host.Find("c1")!;
        Assert.Equal(2, c1.OrderCount);
        Assert.Equal(20.00m, c1.GrossAmount);
        Assert.Equal(1, host.Find("c2")!.PageViews);
    }

    [Fact]
    public void After_a_checkpoint_nothing_is_changed_and_the_next_checkpoint_saves_no_customer()
    {
        var host = NewHost();
        Process(host, InputTopic.Orders, 7, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "1"));
        Assert.Single(host.Checkpoint().ChangedCustomers);

        var next = host.Checkpoint();
        Assert.Empty(next.ChangedCustomers);
        Assert.Empty(next.Firings);
        Assert.Equal(8, next.NextOffsets["orders"]);
    }

    [Fact]
    public void Dead_letter_still_advances_the_next_offset()
    {
        var host = NewHost();
        Process(host, InputTopic.Orders, 10, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "1"));
        host.Checkpoint();

        var outcome = host.Process(InputTopic.Orders, 11, Utf8("c1"), Json("{'eventId':"), appended: null, out var error);

        Assert.Equal(RecordResult.DeadLetter, outcome);
        Assert.Equal("invalid-json", error!.Code);
        Assert.Equal(12L, host.Status().ProcessedOffsets["orders"]);

        var done = host.Checkpoint();
        Assert.Empty(done.ChangedCustomers);
        Assert.Equal(12, Assert.Single(done.NextOffsets).Value);
    }

    [Fact]
    public void Undecodable_string_is_a_dead_letter_not_an_exception()
    {
        var host = NewHost();
        var value = Json("{'eventId':'\\ud800','customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}");

        var outcome = RecordResult.Applied;
        DeadLettered? error = null;
        var thrown = Record.Exception(() => outcome = host.Process(InputTopic.Orders, 20, Utf8("c1"), value, appended: null, out error));

        Assert.Null(thrown);
        Assert.Equal(RecordResult.DeadLetter, outcome);
        Assert.False(string.IsNullOrEmpty(error!.Code));
        var status = host.Status();
        Assert.Equal(21L, status.ProcessedOffsets["orders"]);
        Assert.Equal(0, status.Cached);
    }

    [Fact]
    public void Duplicate_record_advances_the_offset_but_changes_no_customer()
    {
        var host = NewHost();
        var value = OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "5");
        Process(host, InputTopic.Orders, 0, "c1", value);
        host.Checkpoint();

        Assert.Equal(RecordResult.Duplicate, Process(host, InputTopic.Orders, 1, "c1", value));
        Assert.Equal(2L, host.Status().ProcessedOffsets["orders"]);
        Assert.Equal(5m, host.Find("c1")!.GrossAmount);
        Assert.Equal(1, host.Find("c1")!.OrderCount);
    }

    [Fact]
    public void Customers_beyond_the_bound_are_passivated_after_a_checkpoint_and_a_later_record_reloads_them_intact()
    {
        // A bound of one: after the checkpoint both customers go (down to nine tenths of the bound, i.e. none).
        var host = NewHost(Options(maxCached: 1));
        Process(host, InputTopic.Orders, 0, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "10.10"));
        Process(host, InputTopic.Orders, 1, "c2", OrderJson("e2", "c2", "2024-01-02T03:04:06Z", "3"));
        host.Checkpoint();

        var status = host.AwaitQuiet();
        Assert.Equal(0, status.Cached);
        Assert.Equal(2, status.Passivations);
        AwaitCondition(() => !host.Resident("c1") && !host.Resident("c2"), TimeSpan.FromSeconds(30));

        Assert.Equal(RecordResult.Applied, Process(host, InputTopic.Orders, 2, "c1", OrderJson("e3", "c1", "2024-01-03T00:00:00Z", "0.90")));

        var state = host.Find("c1")!;
        Assert.Equal(2, state.OrderCount);
        Assert.Equal(11.00m, state.GrossAmount);
        Assert.Equal(Ticks("2024-01-02T03:04:05Z"), state.FirstOrderTicks);
        Assert.Equal(Ticks("2024-01-03T00:00:00Z"), state.LastOrderTicks);

        // The reloaded memory of event ids still recognises the event applied before passivation.
        Assert.Equal(RecordResult.Duplicate, Process(host, InputTopic.Orders, 3, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "10.10")));

        // c2 is reloaded on demand too, unchanged.
        var c2 = host.Find("c2");
        Assert.NotNull(c2);
        Assert.Equal(3m, c2.GrossAmount);
    }

    [Fact]
    public void Passivation_takes_the_least_recently_used_customers_down_to_nine_tenths_of_the_bound()
    {
        // A bound of ten: an eleventh customer passes it; after the checkpoint the two least recently used go (to nine).
        var host = NewHost(Options(maxCached: 10));
        for (var i = 0; i < 11; i++)
        {
            Process(host, InputTopic.Orders, i, "c" + i, OrderJson("e" + i, "c" + i, "2024-01-02T03:04:05Z", "1"));
        }

        // c0 is used again: c1 and c2 are now the least recently used.
        Process(host, InputTopic.Orders, 11, "c0", OrderJson("e11", "c0", "2024-01-02T03:05:00Z", "1"));
        host.Checkpoint();

        var status = host.AwaitQuiet();
        Assert.Equal(9, status.Cached);
        Assert.Equal(2, status.Passivations);
        AwaitCondition(() => !host.Resident("c1") && !host.Resident("c2"), TimeSpan.FromSeconds(30));
        Assert.All(new[] { "c0" }.Concat(Enumerable.Range(3, 8).Select(i => "c" + i)), c => Assert.True(host.Resident(c), c));
        Assert.Equal(2, host.Find("c0")!.OrderCount);
        Assert.Equal(1m, host.Find("c1")!.GrossAmount);
    }

    [Fact]
    public void Find_of_an_unknown_customer_returns_null_and_caches_nothing()
    {
        var host = NewHost();

        Assert.Null(host.Find("nobody"));
        Assert.Equal(0, host.Status().Cached);
        AwaitCondition(() => !host.Resident("nobody"), TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void Watermark_is_the_max_event_time_minus_five_minutes()
    {
        var host = NewHost();
        var status = host.Status();
        Assert.Equal(0L, status.MaxEventTicks);
        Assert.Equal(0L, status.WatermarkTicks);

        Process(host, InputTopic.Orders, 0, "c1", OrderJson("e1", "c1", "2024-01-02T10:00:00Z", "1"));
        Process(host, InputTopic.Clickstream, 0, "c2", ClickJson("e2", "c2", "2024-01-02T12:10:00+02:00")); // 10:10Z, the latest
        Process(host, InputTopic.Orders, 1, "c3", OrderJson("e3", "c3", "2024-01-02T10:03:00Z", "1"));     // late, still applied
        Assert.Equal(RecordResult.DeadLetter, Process(host, InputTopic.Orders, 2, "c4", OrderJson("e4", "c4", "2099-01-01T00:00:00Z", "-1")));
        Assert.Equal(1, host.Find("c3")!.OrderCount);

        var latest = new DateTime(2024, 1, 2, 10, 10, 0, DateTimeKind.Utc).Ticks;
        status = host.Status();
        Assert.Equal(latest, status.MaxEventTicks);
        Assert.Equal(latest - (5L * 60 * 10_000_000), status.WatermarkTicks);
        Assert.Equal(new DateTime(2024, 1, 2, 10, 5, 0, DateTimeKind.Utc).Ticks, status.WatermarkTicks);
    }

    [Fact]
    public void Watermark_uses_the_configured_lateness_and_resumes_from_the_journal()
    {
        var latest = new DateTime(2024, 1, 2, 10, 10, 0, DateTimeKind.Utc).Ticks;
        var host = NewHost();
        Process(host, InputTopic.Clickstream, 0, "c0", ClickJson("e0", "c0", "2024-01-02T10:10:00Z"));
        host.Checkpoint();

        host.Restart(Options(lateness: TimeSpan.FromSeconds(30)));

        var status = host.Status();
        Assert.Equal(latest, status.MaxEventTicks);
        Assert.Equal(new DateTime(2024, 1, 2, 10, 9, 30, DateTimeKind.Utc).Ticks, status.WatermarkTicks);

        // An older event does not move the watermark back.
        Process(host, InputTopic.Orders, 0, "c1", OrderJson("e1", "c1", "2024-01-02T09:00:00Z", "1"));
        Assert.Equal(latest, host.Status().MaxEventTicks);
    }

    [Fact]
    public void Checkpoint_restores_offsets_and_progress_and_records_below_its_offsets_are_duplicates()
    {
        var host = NewHost();
        var order = OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "1");
        Process(host, InputTopic.Orders, 41, "c1", order);
        Process(host, InputTopic.CustomerUpdates, 5, "c1", Json("{'eventId':'u1','customerId':'c1','occurredAt':'2024-01-02T03:05:00Z','type':'consent','consent':{'sms':true}}"));
        var done = host.Checkpoint();

        Assert.Equal(42L, done.NextOffsets["orders"]);
        Assert.Equal(6L, done.NextOffsets["customer-updates"]);
        Assert.Equal(1L, done.Seq);

        host.Restart();
        var status = host.Status();
        Assert.Equal(1L, status.CommittedSeq);
        Assert.Equal(42L, status.CommittedOffsets["orders"]);
        Assert.Equal(6L, status.CommittedOffsets["customer-updates"]);
        Assert.Equal(Ticks("2024-01-02T03:05:00Z"), status.MaxEventTicks);
        var state = host.Find("c1");
        Assert.NotNull(state);
        Assert.True(state.ConsentSms);
        Assert.Equal(1, state.OrderCount);

        // Kafka redelivers from an older offset: the customer already has the record.
        Assert.Equal(RecordResult.Duplicate, Process(host, InputTopic.Orders, 41, "c1", order));
        Assert.Equal(1, host.Find("c1")!.OrderCount);
    }

    [Fact]
    public void Stored_wake_ups_all_run_after_a_restart()
    {
        var host = NewHost();
        foreach (var id in new[] { "a", "b", "c", "d", "e" })
        {
            host.Apply(Placed("o-" + id, T0, 10m, customerId: id));
        }

        host.Checkpoint();
        host.Restart();

        // A year and a half later, by another customer's event: every stored customer has churned by then.
        host.Apply(Click("tick", T0.AddDays(550), EventType.PageView, "s1", customerId: "clock"));
        host.Checkpoint();

        foreach (var id in new[] { "a", "b", "c", "d", "e" })
        {
            Assert.Equal("churned", host.Find(id)!.Stages["lifecycle"].Name);
        }

        Assert.Equal(5, host.Status().Counts[("lifecycle", "churned")]);
    }
}
