using System.Globalization;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;
using Streaming.Engine.Tests.Properties;
using static Streaming.Engine.Tests.TestEvents;

namespace Streaming.Engine.Tests;

/// <summary>
/// A dictionary-backed <see cref="IStateStore"/> for unit tests of the host. It keeps encoded bytes (as the real store
/// does) so that a reload goes through the codec, and the firings of each checkpoint (keyed by id, as the outbox and the
/// outreach queue). The SQLite store has its own tests, and runs the checkpoint/restore property too.
/// </summary>
internal sealed class InMemoryStateStore : ICheckpointStore
{
    private readonly Dictionary<string, string> _firings = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (int Partition, byte[] State, long Wake)> _customers = new(StringComparer.Ordinal);
    private readonly Dictionary<TopicPartitionKey, long> _offsets = [];
    private readonly Dictionary<int, long> _maxEventTicks = [];
    private readonly Dictionary<int, byte[]> _population = [];
    private readonly Dictionary<string, string> _settings = new(StringComparer.Ordinal);

    public int LoadCalls { get; private set; }

    public long LastCheckpointSeq { get; private set; }

    public CustomerState? LoadCustomer(string customerId)
    {
        LoadCalls++;
        return _customers.TryGetValue(customerId, out var row) ? CustomerStateCodec.Decode(customerId, row.State) : null;
    }

    public int? FindPartition(string customerId) => _customers.TryGetValue(customerId, out var row) ? row.Partition : null;

    public IReadOnlyDictionary<TopicPartitionKey, long> LoadOffsets() => new Dictionary<TopicPartitionKey, long>(_offsets);

    public long LoadMaxEventTicks(int partition) => _maxEventTicks.TryGetValue(partition, out var ticks) ? ticks : 0;

    public long CountCustomers() => _customers.Count;

    public byte[]? LoadPopulation(int partition) => _population.GetValueOrDefault(partition);

    public IReadOnlyList<(string CustomerId, long WakeTicks)> LoadTimers(int partition, long after, long until, int limit) =>
        _customers.Where(c => c.Value.Partition == partition && c.Value.Wake > 0 && c.Value.Wake > after && c.Value.Wake <= until)
            .OrderBy(c => c.Value.Wake).ThenBy(c => c.Key, StringComparer.Ordinal)
            .Take(limit).Select(c => (c.Key, c.Value.Wake)).ToList();

    public IReadOnlyList<string> ListCustomerIds(int partition, string afterId, int limit) =>
        _customers.Where(c => c.Value.Partition == partition && string.CompareOrdinal(c.Key, afterId) > 0)
            .Select(c => c.Key).Order(StringComparer.Ordinal).Take(limit).ToList();

    public string? LoadSetting(string key) => _settings.GetValueOrDefault(key);

    public void Commit(CheckpointBatch batch)
    {
        foreach (var row in batch.States)
        {
            _customers[row.CustomerId] = (row.Partition, row.State.ToArray(), row.WakeTicks);
        }

        foreach (var row in batch.Offsets)
        {
            _offsets[new TopicPartitionKey(row.Topic, row.Partition)] = row.NextOffset;
        }

        foreach (var row in batch.Partitions)
        {
            _maxEventTicks[row.Partition] = row.MaxEventTicks;
            if (row.Population is not null)
            {
                _population[row.Partition] = row.Population;
            }
        }

        foreach (var (key, value) in batch.Settings)
        {
            _settings[key] = value;
        }

        // As the SQLite store's outbox and outreach queue: keyed by firing id, a firing written again is ignored.
        foreach (var f in batch.Firings)
        {
            _firings.TryAdd(f.Id, Describe(f));
        }

        LastCheckpointSeq++;
    }

    public IReadOnlyList<string> StoredFirings() => _firings.Values.Order(StringComparer.Ordinal).ToList();

    public ICheckpointStore Reopen() => this;

    private static string Describe(TriggerFiring f)
    {
        var text = string.Create(CultureInfo.InvariantCulture,
            $"{f.Id} customer={f.CustomerId} rule={f.Rule}@{f.RuleVersion} at={f.AtTicks} delivery={TriggerNames.Of(f.Delivery)} channel={TriggerNames.Of(f.Channel)} " +
            $"suppressedBy={f.SuppressedBy} priority={f.Priority} due={f.DueTicks} expires={f.ExpiresTicks} attempt={f.Attempt} partition={f.Partition} " +
            $"reason=[{string.Join(", ", f.Reason.Select(r => r.Key + "=" + r.Value))}] " +
            $"profile=[{string.Join(", ", f.Profile.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key + "=" + Text(p.Value)))}]");
        return f.Delivery == Delivery.Queued ? text + " outreach due" : text;
    }

    private static string? Text(object? value) => value is System.Collections.IEnumerable list and not string
        ? "[" + string.Join(' ', list.Cast<object?>().Select(Text)) + "]"
        : Convert.ToString(value, CultureInfo.InvariantCulture);

    public void SetMaxEventTicks(int partition, long ticks) => _maxEventTicks[partition] = ticks;

    /// <summary>Ids of the stored customers, ordinally sorted.</summary>
    public IReadOnlyList<string> StoredCustomerIds => _customers.Keys.Order(StringComparer.Ordinal).ToList();

    /// <summary>The stored bytes of a customer's state, as committed (null if never stored).</summary>
    public byte[]? RawState(string customerId) => _customers.TryGetValue(customerId, out var row) ? row.State : null;

    public void Dispose()
    {
    }
}

public sealed class PartitionHostTests
{
    private const int PartitionNo = 3;

    private readonly InMemoryStateStore _store = new();

    private PartitionHost NewHost() => new(PartitionNo, _store, new PartitionHostOptions());

    private static byte[] OrderJson(string eventId, string customerId, string occurredAt, string amount) =>
        Json("{'eventId':'" + eventId + "','customerId':'" + customerId + "','occurredAt':'" + occurredAt + "','type':'order_placed','orderId':'o-" + eventId + "','amount':" + amount + "}");

    private static byte[] ClickJson(string eventId, string customerId, string occurredAt) =>
        Json("{'eventId':'" + eventId + "','customerId':'" + customerId + "','occurredAt':'" + occurredAt + "','type':'page_view','sessionId':'s1'}");

    private static RecordOutcome Process(PartitionHost host, InputTopic topic, long offset, string customerId, byte[] value)
    {
        var outcome = host.Process(topic, offset, Utf8(customerId), value, out var error);
        if (outcome != RecordOutcome.DeadLetter)
        {
            Assert.Equal(default, error);
        }

        return outcome;
    }

    private static long Ticks(string iso) => DateTimeOffset.Parse(iso, System.Globalization.CultureInfo.InvariantCulture).UtcTicks;

    private void Checkpoint(PartitionHost host)
    {
        var batch = new CheckpointBatch();
        host.CollectCheckpoint(batch);
        _store.Commit(batch);
        host.MarkClean();
    }

    [Fact]
    public void Processing_a_valid_record_applies_it_and_marks_the_customer_dirty()
    {
        var host = NewHost();

        var outcome = Process(host, InputTopic.Orders, 7, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "19.99"));

        Assert.Equal(RecordOutcome.Applied, outcome);
        Assert.Equal(1, host.DirtyCustomers);
        Assert.Equal(1, host.CachedCustomers);
        Assert.Equal(8L, host.NextOffsets["orders"]);
        var state = host.TryGetCached("c1");
        Assert.NotNull(state);
        Assert.Equal(1, state.OrderCount);
        Assert.Equal(19.99m, state.GrossAmount);
        Assert.Equal(0L, host.CustomerLoads); // A customer the store has never seen is created, not loaded.
    }

    [Fact]
    public void Checkpoint_has_state_rows_offset_rows_and_a_partition_row()
    {
        var host = NewHost();
        Process(host, InputTopic.Orders, 7, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "19.99"));
        Process(host, InputTopic.Clickstream, 100, "c2", ClickJson("e2", "c2", "2024-01-02T03:10:00Z"));
        Process(host, InputTopic.Orders, 8, "c1", OrderJson("e3", "c1", "2024-01-02T03:05:00Z", "0.01"));

        var batch = new CheckpointBatch();
        host.CollectCheckpoint(batch);

        Assert.Equal(2, batch.States.Count);
        var c1 = Assert.Single(batch.States, r => r.CustomerId == "c1");
        var c2 = Assert.Single(batch.States, r => r.CustomerId == "c2");
        Assert.Equal(PartitionNo, c1.Partition);
        Assert.Equal(PartitionNo, c2.Partition);
        var c1State = CustomerStateCodec.Decode("c1", c1.State);
        Assert.Equal(2, c1State.OrderCount);
        Assert.Equal(20.00m, c1State.GrossAmount);
        Assert.Equal(1, CustomerStateCodec.Decode("c2", c2.State).PageViews);

        // The next offset to read is the last processed offset plus one, per topic.
        Assert.Equal(2, batch.Offsets.Count);
        Assert.Contains(new OffsetRow("orders", PartitionNo, 9), batch.Offsets);
        Assert.Contains(new OffsetRow("clickstream", PartitionNo, 101), batch.Offsets);

        var partition = Assert.Single(batch.Partitions);
        Assert.Equal(PartitionNo, partition.Partition);
        Assert.Equal(Ticks("2024-01-02T03:10:00Z"), partition.MaxEventTicks);
        Assert.NotNull(partition.Population); // two new customers were counted
    }

    [Fact]
    public void After_mark_clean_nothing_is_dirty_and_the_next_checkpoint_is_empty()
    {
        var host = NewHost();
        Process(host, InputTopic.Orders, 7, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "1"));

        var batch = new CheckpointBatch();
        host.CollectCheckpoint(batch);
        Assert.Single(batch.States);

        // Collecting is not committing: until MarkClean the collected customers are in flight (and pinned in memory).
        Assert.Equal(0, host.DirtyCustomers);
        Assert.Equal(1, host.InFlightCustomers);
        Assert.Equal(0, host.Passivate(long.MaxValue));
        host.MarkClean();
        Assert.Equal(0, host.DirtyCustomers);
        Assert.Equal(0, host.InFlightCustomers);

        var next = new CheckpointBatch();
        host.CollectCheckpoint(next);
        Assert.Empty(next.States);
        Assert.Empty(next.Offsets);
        Assert.Empty(next.Partitions);
    }

    [Fact]
    public void Dead_letter_still_advances_the_next_offset()
    {
        var host = NewHost();
        Process(host, InputTopic.Orders, 10, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "1"));
        Checkpoint(host);

        var outcome = host.Process(InputTopic.Orders, 11, Utf8("c1"), Json("{'eventId':"), out var error);

        Assert.Equal(RecordOutcome.DeadLetter, outcome);
        Assert.Equal("invalid-json", error.Code);
        Assert.Equal(12L, host.NextOffsets["orders"]);
        Assert.Equal(0, host.DirtyCustomers);

        var batch = new CheckpointBatch();
        host.CollectCheckpoint(batch);
        Assert.Empty(batch.States);
        Assert.Equal(new OffsetRow("orders", PartitionNo, 12), Assert.Single(batch.Offsets));
        Assert.Single(batch.Partitions);
    }

    [Fact]
    public void Undecodable_string_is_a_dead_letter_not_an_exception()
    {
        var host = NewHost();
        var value = Json("{'eventId':'\\ud800','customerId':'c1','occurredAt':'2024-01-02T03:04:05Z','type':'order_placed','orderId':'o1','amount':1}");

        var outcome = RecordOutcome.Applied;
        DecodeError error = default;
        var thrown = Record.Exception(() => outcome = host.Process(InputTopic.Orders, 20, Utf8("c1"), value, out error));

        Assert.Null(thrown);
        Assert.Equal(RecordOutcome.DeadLetter, outcome);
        Assert.False(string.IsNullOrEmpty(error.Code));
        Assert.Equal(21L, host.NextOffsets["orders"]);
        Assert.Equal(0, host.CachedCustomers);
    }

    [Fact]
    public void Duplicate_record_advances_the_offset_but_dirties_no_customer()
    {
        var host = NewHost();
        var value = OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "5");
        Process(host, InputTopic.Orders, 0, "c1", value);
        Checkpoint(host);

        Assert.Equal(RecordOutcome.Duplicate, Process(host, InputTopic.Orders, 1, "c1", value));
        Assert.Equal(0, host.DirtyCustomers);
        Assert.Equal(2L, host.NextOffsets["orders"]);
        Assert.Equal(5m, host.TryGetCached("c1")!.GrossAmount);
    }

    [Fact]
    public void Passivate_drops_clean_customers_and_a_later_record_reloads_them_intact()
    {
        var host = NewHost();
        Process(host, InputTopic.Orders, 0, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "10.10"));
        Process(host, InputTopic.Orders, 1, "c2", OrderJson("e2", "c2", "2024-01-02T03:04:06Z", "3"));
        Checkpoint(host);
        var storedBefore = CustomerStateCodec.Encode(host.TryGetCached("c1")!);

        var dropped = host.Passivate(host.TouchClock + 1);

        Assert.Equal(2, dropped);
        Assert.Equal(0, host.CachedCustomers);
        Assert.Null(host.TryGetCached("c1"));
        Assert.Equal(0L, host.CustomerLoads);

        Assert.Equal(RecordOutcome.Applied, Process(host, InputTopic.Orders, 2, "c1", OrderJson("e3", "c1", "2024-01-03T00:00:00Z", "0.90")));

        Assert.Equal(1L, host.CustomerLoads);
        var state = host.TryGetCached("c1")!;
        Assert.Equal(2, state.OrderCount);
        Assert.Equal(11.00m, state.GrossAmount);
        Assert.Equal(Ticks("2024-01-02T03:04:05Z"), state.FirstOrderTicks);
        Assert.Equal(Ticks("2024-01-03T00:00:00Z"), state.LastOrderTicks);

        // The reloaded memory of event ids still recognises the event applied before passivation.
        Assert.Equal(RecordOutcome.Duplicate, Process(host, InputTopic.Orders, 3, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "10.10")));
        Assert.Equal(1L, host.CustomerLoads);

        // c2 is reloaded on demand too, unchanged.
        var c2 = host.Find("c2");
        Assert.NotNull(c2);
        Assert.Equal(3m, c2.GrossAmount);
        Assert.Equal(2L, host.CustomerLoads);
        Assert.NotEqual(storedBefore, CustomerStateCodec.Encode(state));
    }

    [Fact]
    public void Passivate_keeps_dirty_customers_and_respects_the_touch_cut_off()
    {
        var host = NewHost();
        Process(host, InputTopic.Orders, 0, "old", OrderJson("e1", "old", "2024-01-02T03:04:05Z", "1"));
        Process(host, InputTopic.Orders, 1, "recent", OrderJson("e2", "recent", "2024-01-02T03:04:05Z", "1"));
        Checkpoint(host);
        Process(host, InputTopic.Orders, 2, "dirty", OrderJson("e3", "dirty", "2024-01-02T03:04:05Z", "1"));

        var touches = new List<long>();
        host.CollectCleanTouches(touches);
        Assert.Equal(2, touches.Count);
        touches.Sort();

        // Cut-off just above the oldest clean touch: only "old" goes; "dirty" never goes before it is checkpointed.
        Assert.Equal(1, host.Passivate(touches[0] + 1));
        Assert.Null(host.TryGetCached("old"));
        Assert.NotNull(host.TryGetCached("recent"));

        Assert.Equal(1, host.Passivate(long.MaxValue));
        Assert.Null(host.TryGetCached("recent"));
        Assert.NotNull(host.TryGetCached("dirty"));
        Assert.Equal(1, host.DirtyCustomers);
        Assert.Equal(0, host.Passivate(long.MaxValue));
    }

    [Fact]
    public void Find_of_an_unknown_customer_returns_null_and_caches_nothing()
    {
        var host = NewHost();

        Assert.Null(host.Find("nobody"));
        Assert.Equal(0, host.CachedCustomers);
        Assert.Equal(0L, host.CustomerLoads);
    }

    [Fact]
    public void Watermark_is_the_max_event_time_minus_five_minutes()
    {
        var host = NewHost();
        Assert.Equal(0L, host.MaxEventTicks);
        Assert.Equal(0L, host.WatermarkTicks);

        Process(host, InputTopic.Orders, 0, "c1", OrderJson("e1", "c1", "2024-01-02T10:00:00Z", "1"));
        Process(host, InputTopic.Clickstream, 0, "c2", ClickJson("e2", "c2", "2024-01-02T12:10:00+02:00")); // 10:10Z, the latest
        Process(host, InputTopic.Orders, 1, "c3", OrderJson("e3", "c3", "2024-01-02T10:03:00Z", "1"));     // late, still applied
        Assert.Equal(RecordOutcome.DeadLetter, host.Process(InputTopic.Orders, 2, Utf8("c4"), OrderJson("e4", "c4", "2099-01-01T00:00:00Z", "-1"), out _));

        var latest = new DateTime(2024, 1, 2, 10, 10, 0, DateTimeKind.Utc).Ticks;
        Assert.Equal(latest, host.MaxEventTicks);
        Assert.Equal(latest - (5L * 60 * 10_000_000), host.WatermarkTicks);
        Assert.Equal(new DateTime(2024, 1, 2, 10, 5, 0, DateTimeKind.Utc).Ticks, host.WatermarkTicks);
    }

    [Fact]
    public void Watermark_uses_the_configured_lateness_and_resumes_from_the_store()
    {
        var latest = new DateTime(2024, 1, 2, 10, 10, 0, DateTimeKind.Utc).Ticks;
        _store.SetMaxEventTicks(PartitionNo, latest);

        var host = new PartitionHost(PartitionNo, _store, new PartitionHostOptions { AllowedLateness = TimeSpan.FromSeconds(30) });

        Assert.Equal(latest, host.MaxEventTicks);
        Assert.Equal(new DateTime(2024, 1, 2, 10, 9, 30, DateTimeKind.Utc).Ticks, host.WatermarkTicks);

        // An older event does not move the watermark back.
        Process(host, InputTopic.Orders, 0, "c1", OrderJson("e1", "c1", "2024-01-02T09:00:00Z", "1"));
        Assert.Equal(latest, host.MaxEventTicks);
    }

    [Fact]
    public void Checkpoint_committed_to_the_store_restores_offsets_and_progress()
    {
        var host = NewHost();
        Process(host, InputTopic.Orders, 41, "c1", OrderJson("e1", "c1", "2024-01-02T03:04:05Z", "1"));
        Process(host, InputTopic.CustomerUpdates, 5, "c1", Json("{'eventId':'u1','customerId':'c1','occurredAt':'2024-01-02T03:05:00Z','type':'consent','consent':{'sms':true}}"));
        Checkpoint(host);

        var offsets = _store.LoadOffsets();
        Assert.Equal(42L, offsets[new TopicPartitionKey("orders", PartitionNo)]);
        Assert.Equal(6L, offsets[new TopicPartitionKey("customer-updates", PartitionNo)]);
        Assert.Equal(Ticks("2024-01-02T03:05:00Z"), _store.LoadMaxEventTicks(PartitionNo));
        Assert.Equal(PartitionNo, _store.FindPartition("c1"));
        Assert.Equal(1L, _store.LastCheckpointSeq);

        var restarted = NewHost();
        Assert.Equal(Ticks("2024-01-02T03:05:00Z"), restarted.MaxEventTicks);
        var state = restarted.Find("c1");
        Assert.NotNull(state);
        Assert.True(state.ConsentSms);
        Assert.Equal(1, state.OrderCount);
        Assert.Equal(1L, restarted.CustomerLoads);
    }

    [Fact]
    public void Stored_timers_all_fire_when_more_are_due_than_one_page_holds()
    {
        // Found by the checkpoint-and-restore property: a page of stored timers that is full and entirely due must not
        // end the paging, or the timers after it (up to the new horizon) are never loaded.
        var options = new PartitionHostOptions { TimerPageLimit = 2 };
        var host = new PartitionHost(PartitionNo, _store, options);
        foreach (var id in new[] { "a", "b", "c", "d", "e" })
        {
            host.Apply(Placed("o-" + id, T0, 10m, customerId: id));
        }

        Checkpoint(host);
        var restarted = new PartitionHost(PartitionNo, _store, options);

        // A year and a half later, by another customer's event: every stored customer has churned by then.
        restarted.Apply(Click("tick", T0.AddDays(550), EventType.PageView, "s1", customerId: "clock"));
        Checkpoint(restarted);

        foreach (var id in new[] { "a", "b", "c", "d", "e" })
        {
            Assert.Equal("churned", restarted.Find(id)!.Stages["lifecycle"].Name);
        }

        Assert.Equal(5, restarted.Population.Counts[("lifecycle", "churned")]);
    }
}
