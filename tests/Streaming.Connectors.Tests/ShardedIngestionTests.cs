using System.Globalization;
using System.Text;
using System.Text.Json;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.Persistence.TestKit;
using Confluent.Kafka;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Persistence;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Rules;
using Streaming.Runtime.Sharding;

namespace Streaming.Connectors.Tests;

/// <summary>
/// Kafka into the Akka.NET runtime on a real cluster of one, over the embedded broker: records reach their customers
/// through the shard region, bad ones are dead-lettered with their source, offsets are committed only after a durable
/// checkpoint, and a node killed without a last checkpoint re-reads from the committed offsets without counting twice.
/// Expected states are sums computed here from what was produced.
/// </summary>
[Collection(KafkaCollection.Name)]
public sealed class ShardedIngestionTests : IDisposable
{
    private const int Partitions = 4;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);
    private readonly MockCluster _cluster = MockCluster.Start();
    private readonly TempDirectory _dir = new();
    private readonly RuleBook _book = new(RuleSetLoader.Default);
    private readonly RecordingLogger _log = new();
    private readonly string _group = "ingestion-" + Guid.NewGuid().ToString("N");

    public ShardedIngestionTests()
    {
        // Members of these tests' groups start one at a time: the first join waits for nobody.
        _cluster.SetGroupInitialRebalanceDelay(TimeSpan.Zero);
        _cluster.CreateTopics(Topics.All, Partitions);
    }

    public void Dispose()
    {
        _cluster.Dispose();
        _dir.Dispose();
    }

    private static byte[] PageView(string eventId, string customerId, DateTimeOffset at) => Encoding.UTF8.GetBytes(
        $$"""{"eventId":"{{eventId}}","customerId":"{{customerId}}","occurredAt":"{{at:yyyy-MM-ddTHH:mm:ssZ}}","type":"page_view","sessionId":"s-{{customerId}}"}""");

    private static byte[] Order(string eventId, string customerId, DateTimeOffset at, string orderId, string amount, string type = "order_placed") => Encoding.UTF8.GetBytes(
        $$"""{"eventId":"{{eventId}}","customerId":"{{customerId}}","occurredAt":"{{at:yyyy-MM-ddTHH:mm:ssZ}}","type":"{{type}}","orderId":"{{orderId}}","amount":{{amount}},"currency":"GBP","channel":"online","country":"United Kingdom","items":[]}""");

    [Fact]
    public async Task Records_reach_their_customers_bad_ones_are_dead_lettered_and_a_killed_node_resumes_without_counting_twice()
    {
        var t0 = new DateTimeOffset(2011, 3, 1, 9, 0, 0, TimeSpan.Zero);
        // Three customers with fifty events each, every fourth a cancellation refunding part of the order before it.
        // Refunds are not de-duplicated by the core, and its window of recent event ids is 32, fewer than the forty
        // events each customer has before the kill: a record applied twice would show in the net amount.
        var expected = new Dictionary<string, decimal>();
        var produced = new List<(string Key, byte[] Value, decimal Net)>();
        for (var i = 0; i < 150; i++)
        {
            var customer = "k" + (i % 3);
            var n = i / 3;
            var amount = decimal.Round(1.5m + i * 0.37m, 2);
            var cancels = n % 4 == 3;
            var refund = decimal.Round(amount / 3, 2);
            produced.Add(cancels
                ? (customer, Order("e" + i, customer, t0.AddMinutes(i), "o" + (i - 3), refund.ToString(CultureInfo.InvariantCulture), "order_cancelled"), -refund)
                : (customer, Order("e" + i, customer, t0.AddMinutes(i), "o" + i, amount.ToString(CultureInfo.InvariantCulture)), amount));
        }

        // Not JSON; and a pair whose sum overflows a decimal, so the second cannot be applied.
        produced.Add(("k-bad", "{not json"u8.ToArray(), 0));
        produced.Add(("k-ov", Order("ov1", "k-ov", t0.AddHours(3), "ov1", "79228162514264337593543950335"), 0));
        produced.Add(("k-ov", Order("ov2", "k-ov", t0.AddHours(4), "ov2", "1"), 0));

        // Node a checkpoints each partition every 4 records only, so when it is killed after applying the first 120
        // records, up to 3 per partition are applied but neither saved nor committed.
        var first = await Produce(produced.Take(120));
        var system = await StartNode("a");
        var (ingestion, region) = await StartIngestion(system, checkpointEvery: 4, interval: TimeSpan.FromHours(1));
        await Eventually.Require(
            Deadline,
            () => ingestion.Records == first.Count && ingestion.Coordinators.Values.All(c => c.Ask<Streaming.Runtime.Partitions.PartitionStatus>(Streaming.Runtime.Partitions.GetPartitionStatus.Instance, Deadline).Result is { InFlight: 0, Waiting: 0 }),
            () => $"records read {ingestion.Records} of {first.Count}; the ingestion's log:\n{_log}");
        Assert.True(ingestion.Commits > 0, "node a committed no checkpoint");

        // Kill the node: no last checkpoint, nothing more committed.
        await ingestion.StopAsync(Deadline, checkpoint: false);
        ingestion.Dispose();
        await system.Terminate();

        var second = await Produce(produced.Skip(120));
        var all = first.Concat(second).ToList();
        system = await StartNode("b");
        (ingestion, region) = await StartIngestion(system);
        try
        {
            await WaitCommitted(all);
            foreach (var (key, _, net) in produced.Take(150))
            {
                expected[key] = expected.GetValueOrDefault(key) + net;
            }

            // The shard of a customer is the partition the producer put its records in.
            var partitionOf = all.GroupBy(r => Encoding.UTF8.GetString(r.Message.Key)).ToDictionary(g => g.Key, g => g.First().Partition.Value);
            foreach (var (customer, net) in expected)
            {
                var found = await region.Ask<CustomerFound>(new GetCustomer(customer, partitionOf[customer]), Deadline);
                Assert.True(found.State is not null, customer);
                Assert.Equal(net, found.State.NetAmount);
            }

            var overflow = await region.Ask<CustomerFound>(new GetCustomer("k-ov", partitionOf["k-ov"]), Deadline);
            Assert.Equal(79228162514264337593543950335m, overflow.State!.NetAmount);

            var letters = ReadDeadLetters(2);
            var bad = all[^3];
            var failed = all[^1];
            Assert.Equal(
                [(bad.Partition.Value, bad.Offset.Value, false), (failed.Partition.Value, failed.Offset.Value, true)],
                letters.Select(l => (l.Partition, l.Offset, l.Error.StartsWith("processing-error", StringComparison.Ordinal))).OrderBy(l => l.Item3).ToList());
        }
        finally
        {
            await ingestion.StopAsync(Deadline);
            ingestion.Dispose();
            await system.Terminate();
        }
    }

    [Fact]
    public async Task A_member_joining_the_group_takes_whole_partitions_and_the_partitions_the_first_keeps_run_on()
    {
        // Twenty customers, each with an order (orders, the lead topic) and a page view (clickstream, a follower topic)
        // before the second member joins, and the same again after.
        var t0 = new DateTimeOffset(2011, 3, 1, 9, 0, 0, TimeSpan.Zero);
        var customers = Enumerable.Range(0, 20).Select(i => "m" + i.ToString(CultureInfo.InvariantCulture)).ToList();
        List<(string Topic, string Key, byte[] Value)> Round(int round) => [.. customers.SelectMany((c, i) => new[]
        {
            (Topics.Orders, c, Order($"o{round}-{i}", c, t0.AddMinutes(round * 100 + i), $"o{round}-{i}", "2.50")),
            (Topics.Clickstream, c, PageView($"v{round}-{i}", c, t0.AddMinutes(round * 100 + i))),
        })];

        var produced = await Produce(Round(0));
        var system = await StartNode("a");
        // The embedded broker waits a session timeout less a second in each rebalance round: a short one keeps this quick.
        var (a, region) = await StartIngestion(system, sessionTimeoutMs: 3000);
        ShardedIngestion? b = null;
        try
        {
            await WaitCommitted(produced);
            var before = a.Coordinators;
            Assert.Equal(Partitions, before.Count);

            // A second member of the group on the same node: the group moves some partitions to it.
            (b, _) = await StartIngestion(system, region: region, sessionTimeoutMs: 3000);
            var member = b;
            string Owners() => $"a owns [{string.Join(",", a.Coordinators.Keys.Order())}], b owns [{string.Join(",", member.Coordinators.Keys.Order())}]; a reads [{string.Join(", ", a.Positions.Select(x => $"{x.Topic}[{x.Partition}]"))}], b reads [{string.Join(", ", member.Positions.Select(x => $"{x.Topic}[{x.Partition}]"))}]";
            bool Reads(ShardedIngestion ingestion) =>
                ingestion.Positions.Select(x => (x.Topic, x.Partition)).Order().SequenceEqual(ingestion.Coordinators.Keys.SelectMany(x => Topics.Inputs.Select(t => (t, x))).Order());
            await Eventually.Require(
                Deadline,
                () => member.Coordinators.Count > 0 && a.Coordinators.Count > 0
                    && a.Coordinators.Count + member.Coordinators.Count == Partitions
                    && !a.Coordinators.Keys.Intersect(member.Coordinators.Keys).Any()
                    && Reads(a) && Reads(member),
                () => Owners() + "; the ingestions' log:\n" + _log);

            // Cooperative rebalancing: the partitions a kept were never revoked, so their coordinators are the same
            // actors (an eager rebalance revokes everything and starts a new coordinator for each).
            foreach (var (p, coordinator) in a.Coordinators)
            {
                Assert.Equal(before[p], coordinator);
            }

            // Both members read and commit their partitions of both topics.
            var more = await Produce(Round(1));
            await WaitCommitted([.. produced, .. more]);
            var partitionOf = produced.Where(r => r.Topic == Topics.Orders).ToDictionary(r => Encoding.UTF8.GetString(r.Message.Key), r => r.Partition.Value);
            foreach (var c in customers)
            {
                var found = await region.Ask<CustomerFound>(new GetCustomer(c, partitionOf[c]), Deadline);
                Assert.True(found.State is not null, c);
                Assert.Equal((2, 5.00m, 2), (found.State.OrderCount, found.State.GrossAmount, found.State.PageViews));
            }
        }
        finally
        {
            if (b is not null)
            {
                await b.StopAsync(Deadline);
                b.Dispose();
            }

            await a.StopAsync(Deadline);
            a.Dispose();
            await system.Terminate();
        }
    }

    [Fact]
    public async Task Firings_of_a_checkpoint_not_stored_before_a_crash_are_stored_once_by_the_next_owner()
    {
        // Ten customers with two orders each: the default rules fire "welcome" at the first order and "first-repeat"
        // at the second, once each.
        var t0 = new DateTimeOffset(2011, 4, 1, 9, 0, 0, TimeSpan.Zero);
        var produced = new List<(string Key, byte[] Value, decimal Net)>();
        for (var i = 0; i < 20; i++)
        {
            var customer = "f" + (i % 10);
            produced.Add((customer, Order("fe" + i, customer, t0.AddMinutes(i), "fo" + i, "10.00"), 10m));
        }

        var expected = produced.GroupBy(p => p.Key).SelectMany(g => new[] { (g.Key, "welcome"), (g.Key, "first-repeat") }).Order().ToList();
        var sent = await Produce(produced);
        var withRecords = sent.Select(r => r.Partition.Value).Distinct().Count();

        // Node a: each partition's first checkpoint becomes durable, but its firings never reach the store (the sink
        // refuses them), so its offsets are not committed and its next checkpoint cannot complete. Then it dies.
        var refusing = new RefusingSink();
        var system = await StartNode("a");
        var (ingestion, _) = await StartIngestion(system, checkpointEvery: 1000, sink: refusing);
        await Eventually.Require(
            Deadline,
            () => refusing.Partitions.Count == withRecords,
            () => $"firings refused for partitions [{string.Join(",", refusing.Partitions)}] of {withRecords}; the ingestion's log:\n{_log}");
        Assert.Equal(0, ingestion.Commits);
        await ingestion.StopAsync(Deadline, checkpoint: false);
        ingestion.Dispose();
        await system.Terminate();

        // Node b: the recovered coordinators report their last checkpoints' firings again; no record is left to read.
        using var store = new Streaming.Connectors.Sql.SqliteStateStore(System.IO.Path.Combine(_dir.Path, "outbox.db"));
        system = await StartNode("b");
        (ingestion, _) = await StartIngestion(system, sink: store);
        try
        {
            await WaitCommitted(sent);
            var rows = store.ReadOutbox(0, 1000).Select(r => JsonDocument.Parse(r.Payload).RootElement).ToList();
            var fired = rows.Select(r => (r.GetProperty("subject").GetString()!, r.GetProperty("type").GetString()!["streaming.trigger.".Length..])).Order().ToList();
            Assert.Equal(expected, fired);
            Assert.Equal(rows.Count, rows.Select(r => r.GetProperty("id").GetString()).Distinct().Count());
        }
        finally
        {
            await ingestion.StopAsync(Deadline);
            ingestion.Dispose();
            await system.Terminate();
        }
    }

    /// <summary>
    /// A broker refuses the commits of the checkpoints (as during a rebalance) and no record comes after them: each
    /// partition commits its last checkpoint on a later try. Before, its committed offsets stayed behind until new
    /// records came, so its lag never reached 0 and a producer paced by the group's commits waited for ever.
    /// </summary>
    [Fact]
    public async Task Commits_the_broker_refused_are_made_on_a_later_try_with_no_new_record()
    {
        var t0 = new DateTimeOffset(2011, 6, 1, 9, 0, 0, TimeSpan.Zero);
        var produced = await Produce(Enumerable.Range(0, 40).Select(i => ("r" + (i % 8), Order("re" + i, "r" + (i % 8), t0.AddMinutes(i), "ro" + i, "10.5"), 10.5m)));
        var partitions = produced.Select(r => r.Partition.Value).Distinct().Count();

        // Enough refusals for every partition's first checkpoints (the records are all there before the node starts, so
        // each partition checkpoints once or twice) and their first tries again.
        _cluster.RefuseCommits(4 * partitions);
        var system = await StartNode("r");
        var (ingestion, _) = await StartIngestion(system, checkpointEvery: 1000);
        try
        {
            await WaitCommitted(produced);
            Assert.True(_log.Count("were not committed") >= 1, "no commit was refused: the test did not test anything\n" + _log);
            Assert.True(_log.Count("were committed on a later try") >= 1, "no refused commit was made again\n" + _log);
        }
        finally
        {
            await ingestion.StopAsync(Deadline);
            ingestion.Dispose();
            await system.Terminate();
        }
    }

    [Fact]
    public async Task A_journal_that_fails_for_a_while_pauses_its_partitions_which_resume_without_losing_or_counting_twice()
    {
        // Three customers with fifty events each, every fourth a refund of part of an earlier order (refunds are not
        // de-duplicated by the core: a record applied twice shows in the net amount, one lost shows too).
        var t0 = new DateTimeOffset(2011, 5, 1, 9, 0, 0, TimeSpan.Zero);
        var produced = new List<(string Key, byte[] Value, decimal Net)>();
        for (var i = 0; i < 150; i++)
        {
            var customer = "j" + (i % 3);
            var n = i / 3;
            var amount = decimal.Round(2.25m + i * 0.41m, 2);
            var refund = decimal.Round(amount / 4, 2);
            produced.Add(n % 4 == 3
                ? (customer, Order("je" + i, customer, t0.AddMinutes(i), "jo" + (i - 3), refund.ToString(CultureInfo.InvariantCulture), "order_cancelled"), -refund)
                : (customer, Order("je" + i, customer, t0.AddMinutes(i), "jo" + i, amount.ToString(CultureInfo.InvariantCulture)), amount));
        }

        var expected = produced.GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Sum(p => p.Net));

        // Akka.Persistence.TestKit's journal (in memory, kept across coordinator restarts), told to fail writes.
        var system = await StartNode("j", """
            akka.persistence.journal.plugin = "akka.persistence.journal.test"
            akka.persistence.journal.test.class = "Akka.Persistence.TestKit.TestJournal, Akka.Persistence.TestKit"
            akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
            """);
        var journal = TestJournal.FromRef(Akka.Persistence.Persistence.Instance.Apply(system).JournalFor(null));
        var first = await Produce(produced.Take(60));
        var (ingestion, region) = await StartIngestion(system, checkpointEvery: 4, restartDelay: TimeSpan.FromMilliseconds(100));
        try
        {
            await WaitCommitted(first);

            // A rule sweep's hand-off is durable once the checkpoint covering it completes.
            var (settledCustomer, settledPartition) = (Encoding.UTF8.GetString(first[0].Message.Key), first[0].Partition.Value);
            var receipt = await ingestion.SweepAsync(settledPartition, [settledCustomer], Deadline);
            Assert.Equal(SweepHandOff.Sent, receipt.HandOff);
            Assert.Equal(SweepSettled.Durable, await ingestion.SettleSweepAsync(settledPartition, receipt, Deadline));

            // The store goes away: every write fails (the customers' saves and the coordinators' checkpoints). Each
            // partition with records pauses, restarts from its last checkpoint, fails again, backs off…
            await journal.OnWrite.Fail();
            var rest = await Produce(produced.Skip(60));
            var withRecords = rest.Select(r => r.Partition.Value).Distinct().Count();
            await Eventually.Require(
                Deadline,
                () => _log.Count("restarts from its last checkpoint") >= 2 * withRecords,
                () => $"restarts logged {_log.Count("restarts from its last checkpoint")}; the ingestion's log:\n{_log}");
            Assert.False(ingestion.Stopped.IsCompleted, "the ingestion stopped: " + ingestion.Stopped.Exception);

            // A rule sweep's customers handed to a partition in its back-off are refused as "restarting" (the sweep asks
            // again later instead of counting them as swept); a partition this node does not own says so.
            var (sweptCustomer, sweptPartition) = (Encoding.UTF8.GetString(rest[0].Message.Key), rest[0].Partition.Value);
            var handOffs = new HashSet<SweepHandOff>();
            SweepReceipt? taken = null;
            var polling = System.Diagnostics.Stopwatch.StartNew();
            while (!(handOffs.Contains(SweepHandOff.Restarting) && taken is not null) && polling.Elapsed < Deadline)
            {
                try
                {
                    var handOff = await ingestion.SweepAsync(sweptPartition, [sweptCustomer], TimeSpan.FromMilliseconds(200));
                    handOffs.Add(handOff.HandOff);
                    taken ??= handOff.HandOff == SweepHandOff.Sent ? handOff : null;
                }
                catch (AskTimeoutException)
                {
                    // The coordinator was stopping: poll again.
                }

                await Task.Delay(20);
            }

            Assert.Contains(SweepHandOff.Restarting, handOffs);
            Assert.Equal(SweepHandOff.NotOwned, (await ingestion.SweepAsync(999, [sweptCustomer], Deadline)).HandOff);

            // Customers a coordinator took between two restarts are not saved: their hand-off settles as replaced (the
            // sweep hands them over again) instead of durable.
            Assert.NotNull(taken);
            Assert.Equal(SweepSettled.Replaced, await ingestion.SettleSweepAsync(sweptPartition, taken, Deadline));

            // …until it is back: everything is consumed and committed, and every customer equals the sums of the test.
            await journal.OnWrite.Pass();
            await WaitCommitted(first.Concat(rest).ToList());
            Assert.True(_log.Count("restarted from its last checkpoint") >= withRecords, _log.ToString());
            var partitionOf = first.Concat(rest).GroupBy(r => Encoding.UTF8.GetString(r.Message.Key)).ToDictionary(g => g.Key, g => g.First().Partition.Value);
            foreach (var (customer, net) in expected)
            {
                var found = await region.Ask<CustomerFound>(new GetCustomer(customer, partitionOf[customer]), Deadline);
                Assert.Equal(net, found.State!.NetAmount);
                Assert.Equal(50, found.State.EventsApplied);
            }

            Assert.False(ingestion.Stopped.IsCompleted, "the ingestion stopped: " + ingestion.Stopped.Exception);
        }
        finally
        {
            await ingestion.StopAsync(Deadline);
            ingestion.Dispose();
            await system.Terminate();
        }
    }

    /// <summary>A firing sink that refuses every write, noting the partitions it refused.</summary>
    private sealed class RefusingSink : IFiringOutbox
    {
        public System.Collections.Concurrent.ConcurrentDictionary<int, bool> Refused { get; } = new();

        public ICollection<int> Partitions => Refused.Keys;

        public void Append(IReadOnlyList<TriggerFiring> firings)
        {
            foreach (var f in firings)
            {
                Refused[f.Partition] = true;
            }

            throw new IOException("the store is unreachable (injected by the test)");
        }
    }

    /// <summary>A cluster of one on the SQLite store, or, with <paramref name="persistence"/>, on the journal it configures.</summary>
    private async Task<ActorSystem> StartNode(string name, string? persistence = null)
    {
        var config = ConfigurationFactory.ParseString("""
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp.hostname = 127.0.0.1
            akka.remote.dot-netty.tcp.port = 0
            akka.loglevel = WARNING
            """);
        var system = persistence is null
            ? ActorSystem.Create("ingestion-" + name, ActorStore.Setup(new ActorStoreOptions { Provider = StoreProvider.Sqlite, DataDir = _dir.Path }, config))
            : ActorSystem.Create("ingestion-" + name, ConfigurationFactory.ParseString(persistence).WithFallback(config).WithFallback(ConfigurationFactory.ParseString(Streaming.Runtime.RuntimeConfiguration.Hocon)));
        var cluster = Cluster.Get(system);
        await cluster.JoinAsync(cluster.SelfAddress).WaitAsync(Deadline);
        return system;
    }

    private async Task<(ShardedIngestion Ingestion, IActorRef Region)> StartIngestion(ActorSystem system, int checkpointEvery = 7, TimeSpan? interval = null, IFiringOutbox? sink = null, TimeSpan? restartDelay = null, IActorRef? region = null, int sessionTimeoutMs = 6000)
    {
        region ??= await CustomerShards.StartAsync(system, new CustomerEntityOptions(), _book);
        var ingestion = new ShardedIngestion(
            system,
            region,
            _book,
            new IngestionOptions
            {
                BootstrapServers = _cluster.BootstrapServers,
                GroupId = _group,
                CheckpointInterval = interval ?? TimeSpan.FromMilliseconds(100),
                CheckpointEveryRecords = checkpointEvery,
                RestartDelay = restartDelay ?? TimeSpan.FromMilliseconds(500),
                MaxRestartDelay = restartDelay is { } delay ? 4 * delay : TimeSpan.FromSeconds(30),
                SessionTimeoutMs = sessionTimeoutMs,
            },
            _log,
            TimeProvider.System,
            sink);
        ingestion.Start();
        return (ingestion, region);
    }

    private Task<List<DeliveryResult<byte[], byte[]>>> Produce(IEnumerable<(string Key, byte[] Value, decimal Net)> records) =>
        Produce(records.Select(r => (Topics.Orders, r.Key, r.Value)));

    private async Task<List<DeliveryResult<byte[], byte[]>>> Produce(IEnumerable<(string Topic, string Key, byte[] Value)> records)
    {
        var reports = new List<DeliveryResult<byte[], byte[]>>();
        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers, EnableIdempotence = true })
            .SetLogHandler((_, _) => { }).Build();
        foreach (var (topic, key, value) in records)
        {
            reports.Add(await producer.ProduceAsync(topic, new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(key), Value = value }).WaitAsync(Deadline));
        }

        return reports;
    }

    /// <summary>Waits until the group's committed offsets reach past every record in <paramref name="reports"/>.</summary>
    private async Task WaitCommitted(List<DeliveryResult<byte[], byte[]>> reports)
    {
        var ends = reports.GroupBy(r => r.TopicPartition).ToDictionary(g => g.Key, g => g.Max(r => r.Offset.Value) + 1);
        using var reader = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = _group })
            .SetLogHandler((_, _) => { }).Build();
        var tps = ends.Keys.ToList();
        var committed = new Dictionary<TopicPartition, long>();
        await Eventually.Require(
            Deadline,
            () =>
            {
                committed = reader.Committed(tps, TimeSpan.FromSeconds(5)).ToDictionary(c => c.TopicPartition, c => c.Offset.Value);
                return ends.All(e => committed.GetValueOrDefault(e.Key, -1) >= e.Value);
            },
            () => $"committed {string.Join(", ", committed)}; expected {string.Join(", ", ends)}; the ingestion's log:\n{_log}");
    }

    private List<(int Partition, long Offset, string Error)> ReadDeadLetters(int count)
    {
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = _cluster.BootstrapServers,
            GroupId = "dlq-" + Guid.NewGuid().ToString("N"),
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
        }).SetLogHandler((_, _) => { }).Build();
        consumer.Assign(Enumerable.Range(0, Partitions).Select(p => new TopicPartitionOffset(Topics.DeadLetters, p, Offset.Beginning)));
        var letters = new List<(int, long, string)>();
        var deadline = DateTime.UtcNow + Deadline;
        while (letters.Count < count && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { } r)
            {
                string Header(string name) => Encoding.UTF8.GetString(r.Message.Headers.GetLastBytes(name));
                letters.Add((int.Parse(Header("source-partition"), CultureInfo.InvariantCulture), long.Parse(Header("source-offset"), CultureInfo.InvariantCulture), Header("error")));
            }
        }

        // Nothing more than expected (a dead letter produced twice would show here).
        while (consumer.Consume(TimeSpan.FromMilliseconds(500)) is { } extra)
        {
            letters.Add((-1, extra.Offset.Value, "unexpected"));
        }

        return letters;
    }
}
