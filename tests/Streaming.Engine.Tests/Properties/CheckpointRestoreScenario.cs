using System.Globalization;
using FsCheck;
using FsCheck.Fluent;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;
using Xunit.Abstractions;

namespace Streaming.Engine.Tests.Properties;

/// <summary>
/// A store the checkpoint/restore property runs on: the engine's <see cref="IStateStore"/> plus what the property reads
/// back to compare a restarted run with a straight one.
/// </summary>
internal interface ICheckpointStore : IStateStore
{
    /// <summary>Ids of the stored customers, ordinally sorted.</summary>
    IReadOnlyList<string> StoredCustomerIds { get; }

    /// <summary>The stored bytes of a customer's state, as committed (null if never stored).</summary>
    byte[]? RawState(string customerId);

    /// <summary>
    /// Every trigger firing the checkpoints wrote (outbox rows, and for queued ones the outreach item), one line each
    /// with every stored field, sorted.
    /// </summary>
    IReadOnlyList<string> StoredFirings();

    /// <summary>The store as a restarted process sees it: a durable store closes and opens its files again.</summary>
    ICheckpointStore Reopen();
}

/// <summary>
/// A partition that checkpoints, stops and restarts from its store ends in exactly the state of one that ran straight
/// through: the same customer states, population, event-time progress, and the same firings in the outbox and the
/// outreach queue. Derived classes choose the store (an in-memory one, the real SQLite store). Seeds are logged; see
/// <see cref="PropertyCheck"/> to replay one.
/// </summary>
public abstract class CheckpointRestoreScenario(ITestOutputHelper output)
{
    private const int PartitionNo = 0;

    /// <summary>How many generated cases one run checks.</summary>
    protected abstract int Cases { get; }

    /// <summary>A new, empty store; the scenario disposes it.</summary>
    private protected abstract ICheckpointStore NewStore();

    /// <summary>The customer whose events move the partition's clock on <see cref="Advance"/> steps.</summary>
    private const string Clock = "clock";

    /// <summary>
    /// A history; where to checkpoint; how many steps after that the partition goes on before it crashes (work since
    /// the last committed checkpoint is lost); how often it checkpoints besides (0: never), how many steps a checkpoint
    /// takes to be written (the engine writes in the background and goes on processing), whether clean customers are
    /// passivated after each write; and host settings.
    /// </summary>
    internal sealed record Case(
        History History, int Split, int Lost, int CheckpointEvery, int WriteLag, bool Passivate, int RecentIds, int TimerPageLimit, int TimerPageHours)
    {
        public int At => Math.Min(Split, History.Steps.Count);

        public int CrashAt => Math.Min(History.Steps.Count, At + Lost);

        public PartitionHostOptions Options => new()
        {
            Actor = new ActorOptions { RecentIdCapacity = RecentIds },
            TimerPageLimit = TimerPageLimit,
            TimerPageSpan = TimeSpan.FromHours(TimerPageHours),
        };

        public override string ToString() =>
            $"split={Split}, lost={Lost}, checkpointEvery={CheckpointEvery}, writeLag={WriteLag}, passivate={Passivate}, recentIds={RecentIds}, " +
            $"timerPageLimit={TimerPageLimit}, timerPageHours={TimerPageHours}\n{History}";
    }

    internal static Arbitrary<Case> Generate() => Arb.From(
        from history in Histories.Generator()
        from split in Gen.Choose(0, history.Steps.Count)
        from lost in Gen.Frequency((1, Gen.Constant(0)), (1, Gen.Choose(1, 10)))
        from every in Gen.Frequency((2, Gen.Constant(0)), (1, Gen.Choose(1, 20)))
        from lag in Gen.Frequency((2, Gen.Constant(0)), (1, Gen.Choose(1, 3)))
        from passivate in Gen.Elements(false, true)
        from recent in Gen.Frequency((4, Gen.Constant(32)), (1, Gen.Constant(4)))
        from pageLimit in Gen.Frequency((2, Gen.Constant(20_000)), (1, Gen.Choose(1, 3)))
        from pageHours in Gen.Elements(1, 24, 24 * 30)
        select new Case(history, split, lost, every, lag, passivate, recent, pageLimit, pageHours),
        Shrink);

    /// <summary>Simpler settings first (so a counterexample shows which ones matter), then shorter histories.</summary>
    private static IEnumerable<Case> Shrink(Case c)
    {
        var simpler = new[]
        {
            c with { WriteLag = 0 }, c with { Passivate = false }, c with { CheckpointEvery = 0 }, c with { Lost = 0 },
            c with { TimerPageLimit = 20_000 }, c with { TimerPageHours = 24 }, c with { RecentIds = 32 },
        };
        foreach (var candidate in simpler)
        {
            if (candidate != c)
            {
                yield return candidate;
            }
        }

        foreach (var (history, mapIndex) in Histories.Shrink(c.History))
        {
            var split = mapIndex(c.At);
            yield return c with { History = history, Split = split, Lost = mapIndex(c.CrashAt) - split };
        }
    }

    [Fact]
    public void Checkpoint_and_restore_midway_equals_processing_straight_through()
    {
        var coverage = new SortedDictionary<string, int>(StringComparer.Ordinal);
        void Count(string what, bool when)
        {
            if (when)
            {
                coverage[what] = coverage.GetValueOrDefault(what) + 1;
            }
        }

        PropertyCheck.Run(output, "checkpoint-and-restore on " + GetType().Name, Cases, Generate(), c =>
        {
            var steps = c.History.Steps;

            // Straight through, one checkpoint at the end.
            using var straightStore = NewStore();
            var straight = new PartitionHost(PartitionNo, straightStore, c.Options);
            for (var i = 0; i < steps.Count; i++)
            {
                Feed(straight, steps[i], i);
            }

            Checkpoint(straight, straightStore);

            // Up to the split, then a checkpoint; on a little further (checkpointing as configured), then a crash.
            var store = NewStore();
            var first = new Checkpointer(new PartitionHost(PartitionNo, store, c.Options), store, c);
            for (var i = 0; i < c.CrashAt; i++)
            {
                if (i == c.At)
                {
                    first.CheckpointNow(i);
                }

                first.Step(steps[i], i);
            }

            if (c.CrashAt == c.At)
            {
                first.CheckpointNow(c.At);
            }

            // Restart: a new host on the same store carries on from the last committed checkpoint.
            var resumeAt = first.CommittedThrough;
            store = store.Reopen();
            using var disposeStore = store;
            var restarted = new Checkpointer(new PartitionHost(PartitionNo, store, c.Options), store, c);
            for (var i = resumeAt; i < steps.Count; i++)
            {
                restarted.Step(steps[i], i);
            }

            restarted.CheckpointNow(steps.Count);

            var what = $"restarted at step {resumeAt} after a crash at {c.CrashAt}";
            foreach (var id in straightStore.StoredCustomerIds.Union(store.StoredCustomerIds).Order(StringComparer.Ordinal))
            {
                Compare.SameEncoding(what, id, straightStore.RawState(id), store.RawState(id));
            }

            Compare.SamePopulation(what, straight.Population, restarted.Host.Population);
            Compare.SamePopulation(what + " (stored)", Population.Deserialize(straightStore.LoadPopulation(PartitionNo)), Population.Deserialize(store.LoadPopulation(PartitionNo)));
            Assert.Equal(straight.MaxEventTicks, restarted.Host.MaxEventTicks);
            Assert.Equal(straightStore.LoadMaxEventTicks(PartitionNo), store.LoadMaxEventTicks(PartitionNo));
            var straightFirings = straightStore.StoredFirings();
            Compare.SameLines(what + ": stored firings", straightFirings, store.StoredFirings());

            Count("timers fired", straight.TimersFired > 0);
            Count("timers fired after the restart", restarted.Host.TimersFired > 0);
            Count("customers passivated", first.Passivated + restarted.Passivated > 0);
            Count("firings stored", straightFirings.Count > 0);
            Count("outreach items queued", straightFirings.Any(f => f.Contains(" outreach ", StringComparison.Ordinal)));
            Count("redeliveries", steps.Any(s => s is Deliver { Redelivery: true }));
            foreach (var (from, to, days) in new[] { ("new", "active", 30), ("active", "at_risk", 90), ("at_risk", "dormant", 180), ("dormant", "churned", 365) })
            {
                Count($"lifecycle {from} -> {to} ({days} days)", straight.Population.Transitions.ContainsKey(("lifecycle", from, to)));
            }
        });

        foreach (var (what, count) in coverage)
        {
            output.WriteLine($"  cases with {what}: {count}");
        }

        // The generator must keep producing histories that exercise timers and every lifecycle threshold.
        Assert.All(["timers fired", "timers fired after the restart", "lifecycle dormant -> churned (365 days)", "lifecycle at_risk -> dormant (180 days)", "firings stored"],
            what => Assert.True(coverage.GetValueOrDefault(what) >= Cases / 20, $"only {coverage.GetValueOrDefault(what)} cases with {what}"));
    }

    /// <summary>Applies an event step; an advance step becomes an event of the clock customer, which moves the watermark.</summary>
    private static void Feed(PartitionHost host, Step step, int index)
    {
        var evt = step switch
        {
            Deliver d => d.Event,
            Advance a => new ClickEvent
            {
                EventId = "tick" + index.ToString(CultureInfo.InvariantCulture),
                CustomerId = Clock,
                OccurredAt = a.To,
                Type = EventType.PageView,
            },
            _ => throw new ArgumentOutOfRangeException(nameof(step)),
        };
        host.Apply(evt);
    }

    private static void Checkpoint(PartitionHost host, IStateStore store)
    {
        var batch = new CheckpointBatch();
        host.CollectCheckpoint(batch);
        store.Commit(batch);
        host.MarkClean();
    }

    /// <summary>
    /// Feeds a host and checkpoints it as the engine does: every so many steps a batch is collected, written some
    /// steps later (processing goes on meanwhile; one batch at most in flight), then clean customers may be passivated.
    /// </summary>
    private sealed class Checkpointer(PartitionHost host, IStateStore store, Case c)
    {
        private CheckpointBatch? _pending;
        private int _pendingThrough;
        private int _sincePending;
        private int _fed;

        public PartitionHost Host => host;

        /// <summary>Steps covered by the last committed checkpoint: where a restart resumes.</summary>
        public int CommittedThrough { get; private set; }

        /// <summary>Customers passivated after writes.</summary>
        public int Passivated { get; private set; }

        public void Step(Step step, int index)
        {
            Feed(host, step, index);
            _fed = index + 1;
            if (_pending is not null && ++_sincePending >= c.WriteLag)
            {
                Finish();
            }

            if (c.CheckpointEvery > 0 && _fed % c.CheckpointEvery == 0)
            {
                Start(_fed);
            }
        }

        /// <summary>Collects a checkpoint of the first <paramref name="through"/> steps and writes it at once.</summary>
        public void CheckpointNow(int through)
        {
            Start(through);
            Finish();
        }

        private void Start(int through)
        {
            Finish();
            _pending = new CheckpointBatch();
            _pendingThrough = through;
            _sincePending = 0;
            host.CollectCheckpoint(_pending);
            if (c.WriteLag == 0)
            {
                Finish();
            }
        }

        private void Finish()
        {
            if (_pending is null)
            {
                return;
            }

            store.Commit(_pending);
            host.MarkClean();
            CommittedThrough = _pendingThrough;
            _pending = null;
            if (c.Passivate)
            {
                Passivated += host.Passivate(host.TouchClock + 1);
            }
        }
    }
}
