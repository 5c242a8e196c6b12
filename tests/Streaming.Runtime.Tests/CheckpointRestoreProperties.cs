using System.Globalization;
using Akka.Actor;
using Akka.Configuration;
using FsCheck;
using FsCheck.Fluent;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;
using Streaming.Engine.Tests.Properties;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Partitions;
using Streaming.Runtime.Rules;
using Xunit.Abstractions;

namespace Streaming.Runtime.Tests;

/// <summary>
/// A partition of the actor runtime that checkpoints, crashes (its coordinator and customer entities stop, losing what
/// no checkpoint saved) and restarts on the same journal, re-reading from its last checkpoint's offsets, ends in exactly
/// the state of one that ran straight through: the same customer states (as saved), population, event-time progress,
/// and the same firings in the outbox (once per id). Each run has its own actor system, so its own in-memory journal.
/// Seeds are logged; see <see cref="PropertyCheck"/> to replay one.
/// </summary>
public sealed class CheckpointRestoreProperties : Akka.TestKit.Xunit2.TestKit
{
    private readonly ITestOutputHelper _output;

    /// <summary>A test kit on the runtime's configuration; <paramref name="output"/> takes the seeds and coverage.</summary>
    public CheckpointRestoreProperties(ITestOutputHelper output)
        : base(CustomerEntityTests.RuntimeConfig, nameof(CheckpointRestoreProperties), output)
    {
        _output = output;
    }

    private const int PartitionNo = 0;

    /// <summary>How many generated cases one run checks (each starts two actor systems).</summary>
    private const int Cases = 40;

    /// <summary>The customer whose events move the partition's clock on <see cref="Advance"/> steps.</summary>
    private const string Clock = "clock";

    private static readonly Akka.Configuration.Config SystemConfig = ConfigurationFactory.ParseString(CustomerEntityTests.RuntimeConfig + "\nakka.loglevel = WARNING");

    /// <summary>
    /// A history; where to checkpoint; how many steps after that the partition goes on before it crashes; how often it
    /// asks for a checkpoint besides, without waiting for it (0: never); the bound on customers in memory (small ones
    /// passivate after every checkpoint); the most messages in flight to customers; recent event ids kept per customer.
    /// </summary>
    internal sealed record Case(History History, int Split, int Lost, int CheckpointEvery, int MaxCached, int MaxInFlight, int RecentIds)
    {
        public int At => Math.Min(Split, History.Steps.Count);

        public int CrashAt => Math.Min(History.Steps.Count, At + Lost);

        public PartitionCoordinatorOptions Options => new()
        {
            QuietCheckpointAfter = TimeSpan.FromHours(1),
            MaxCachedCustomers = MaxCached,
            MaxInFlight = MaxInFlight,
        };

        public CustomerEntityOptions EntityOptions => new() { Actor = new ActorOptions { RecentIdCapacity = RecentIds } };

        public override string ToString() =>
            $"split={Split}, lost={Lost}, checkpointEvery={CheckpointEvery}, maxCached={MaxCached}, maxInFlight={MaxInFlight}, recentIds={RecentIds}\n{History}";
    }

    internal static Arbitrary<Case> Generate() => Arb.From(
        from history in Histories.Generator()
        from split in Gen.Choose(0, history.Steps.Count)
        from lost in Gen.Frequency((1, Gen.Constant(0)), (1, Gen.Choose(1, 10)))
        from every in Gen.Frequency((2, Gen.Constant(0)), (1, Gen.Choose(1, 20)))
        from cached in Gen.Frequency((2, Gen.Constant(250_000)), (1, Gen.Choose(1, 3)))
        from inFlight in Gen.Elements(1, 4, 512)
        from recent in Gen.Frequency((4, Gen.Constant(32)), (1, Gen.Constant(4)))
        select new Case(history, split, lost, every, cached, inFlight, recent),
        Shrink);

    /// <summary>Simpler settings first (so a counterexample shows which ones matter), then shorter histories.</summary>
    private static IEnumerable<Case> Shrink(Case c)
    {
        var simpler = new[]
        {
            c with { CheckpointEvery = 0 }, c with { Lost = 0 }, c with { MaxCached = 250_000 }, c with { MaxInFlight = 512 }, c with { RecentIds = 32 },
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
    public void Checkpoint_crash_and_restart_midway_equals_processing_straight_through()
    {
        var coverage = new SortedDictionary<string, int>(StringComparer.Ordinal);
        void Count(string what, bool when)
        {
            if (when)
            {
                coverage[what] = coverage.GetValueOrDefault(what) + 1;
            }
        }

        var systems = 0;
        PropertyCheck.Run(_output, "checkpoint-crash-restart on the actor runtime", Cases, Generate(), c =>
        {
            var steps = c.History.Steps;
            var straightSystem = ActorSystem.Create("straight" + systems, SystemConfig);
            var system = ActorSystem.Create("restarted" + systems++, SystemConfig);
            try
            {
                // Straight through, then checkpoints until nothing is left to save.
                var straight = new PartitionHarness(this, PartitionNo, new RuleBook(RuleSetLoader.Default), c.Options, c.EntityOptions, system: straightSystem);
                for (var i = 0; i < steps.Count; i++)
                {
                    Feed(straight, steps[i], i);
                }

                Settle(straight);
                var expected = Observe(straight, c.History);

                // Up to the split, a checkpoint; on a little further (asking for checkpoints as configured), then a crash.
                var run = new PartitionHarness(this, PartitionNo, new RuleBook(RuleSetLoader.Default), c.Options, c.EntityOptions, system: system);
                var fed = new List<(string Topic, long Offset)>();
                for (var i = 0; i < c.CrashAt; i++)
                {
                    if (i == c.At)
                    {
                        run.Checkpoint();
                    }

                    fed.Add(Feed(run, steps[i], i));
                    if (c.CheckpointEvery > 0 && (i + 1) % c.CheckpointEvery == 0)
                    {
                        run.RequestCheckpoint();
                    }

                    run.Pump();
                }

                if (c.CrashAt == c.At)
                {
                    run.Checkpoint();
                }

                var passivatedBefore = run.Status().Passivations;
                run.Restart();

                // The restarted partition resumes where its last checkpoint's offsets end, as a consumer seeks there.
                var committed = run.Status().CommittedOffsets;
                var resumeAt = fed.FindIndex(f => f.Offset >= committed.GetValueOrDefault(f.Topic));
                resumeAt = resumeAt < 0 ? fed.Count : resumeAt;
                Assert.True(resumeAt >= Math.Min(c.At, fed.Count), $"resumed at step {resumeAt}, before the checkpoint at {c.At}");
                run.ResumeFromCheckpoint();
                for (var i = resumeAt; i < steps.Count; i++)
                {
                    Feed(run, steps[i], i);
                }

                Settle(run);
                var passivatedAfter = run.Status().Passivations;

                // What the journal holds: read back by a restart.
                run.Restart();
                var actual = Observe(run, c.History);

                var what = $"restarted at step {resumeAt} after a crash at {c.CrashAt}";
                foreach (var id in expected.States.Keys)
                {
                    Compare.SameEncoding(what, id, expected.States[id], actual.States[id]);
                }

                Compare.SameLines(what + ": population", expected.Population, actual.Population);
                Assert.Equal(expected.MaxEventTicks, actual.MaxEventTicks);
                Compare.SameLines(what + ": firings in the outbox", expected.Firings, actual.Firings);

                Count("timers fired", expected.TimersFired > 0);
                Count("customers passivated", passivatedBefore + passivatedAfter > 0);
                Count("firings stored", expected.Firings.Count > 0);
                Count("outreach items queued", expected.Firings.Any(f => f.Contains(" delivery=queued", StringComparison.Ordinal)));
                Count("redeliveries", steps.Any(s => s is Deliver { Redelivery: true }));
                Count("resumed after the split", resumeAt > c.At);
                foreach (var (from, to, days) in new[] { ("new", "active", 30), ("active", "at_risk", 90), ("at_risk", "dormant", 180), ("dormant", "churned", 365) })
                {
                    Count($"lifecycle {from} -> {to} ({days} days)", expected.Population.Any(l => l.StartsWith($"transition lifecycle {from}->{to}:", StringComparison.Ordinal)));
                }
            }
            finally
            {
                straightSystem.Terminate().Wait(TimeSpan.FromSeconds(30));
                system.Terminate().Wait(TimeSpan.FromSeconds(30));
            }
        });

        foreach (var (what, count) in coverage)
        {
            _output.WriteLine($"  cases with {what}: {count}");
        }

        // The generator must keep producing histories that exercise wake-ups, lifecycle thresholds and firings.
        Assert.All(["timers fired", "lifecycle at_risk -> dormant (180 days)", "firings stored"],
            what => Assert.True(coverage.GetValueOrDefault(what) >= Cases / 20, $"only {coverage.GetValueOrDefault(what)} cases with {what}"));
    }

    /// <summary>What a run ends with: each customer's encoded state (null: none), the population, the clock, the outbox.</summary>
    private sealed record Outcome(Dictionary<string, byte[]?> States, List<string> Population, long MaxEventTicks, List<string> Firings, long TimersFired);

    private static Outcome Observe(PartitionHarness host, History history)
    {
        var states = new Dictionary<string, byte[]?>(StringComparer.Ordinal);
        foreach (var id in history.CustomerIds.Append(Clock))
        {
            states[id] = host.Find(id) is { } state ? CustomerStateCodec.Encode(state) : null;
        }

        var status = host.AwaitQuiet();
        var population = new List<string>();
        population.AddRange(status.Counts.Where(kv => kv.Value != 0).Select(kv => string.Create(CultureInfo.InvariantCulture, $"count {kv.Key.Dimension}={kv.Key.Value}: {kv.Value}")));
        population.AddRange(status.Transitions.Where(kv => kv.Value != 0).Select(kv => string.Create(CultureInfo.InvariantCulture, $"transition {kv.Key.Dimension} {kv.Key.From}->{kv.Key.To}: {kv.Value}")));
        population.AddRange(status.RuleCounters.Where(kv => kv.Value != 0).Select(kv => string.Create(CultureInfo.InvariantCulture, $"rule {kv.Key.Rule} {kv.Key.Counter} {kv.Key.Group}: {kv.Value}")));
        population.Sort(StringComparer.Ordinal);
        var firings = host.Firings.Select(Describe).Order(StringComparer.Ordinal).ToList();
        return new Outcome(states, population, status.MaxEventTicks, firings, status.TimersFired);
    }

    /// <summary>Checkpoints until one saves no customer (wake-ups that came due during a checkpoint's saves run after it).</summary>
    private static void Settle(PartitionHarness host)
    {
        for (var i = 0; i < 10; i++)
        {
            var done = host.Checkpoint();
            if (done.ChangedCustomers.Count == 0 && host.AwaitQuiet().PendingFirings == 0)
            {
                return;
            }
        }

        throw new InvalidOperationException("the partition did not settle in 10 checkpoints");
    }

    /// <summary>Sends an event step; an advance step becomes an event of the clock customer, which moves the watermark.</summary>
    private static (string Topic, long Offset) Feed(PartitionHarness host, Step step, int index)
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
        var topic = PartitionHarness.TopicOf(evt);
        var offset = host.NextOffset(topic);
        host.Feed(evt);
        return (topic.Name(), offset);
    }

    /// <summary>One outbox line per firing, with every field the outbox stores.</summary>
    private static string Describe(TriggerFiring f) => string.Create(CultureInfo.InvariantCulture,
        $"{f.Id} customer={f.CustomerId} rule={f.Rule}@{f.RuleVersion} at={f.AtTicks} delivery={TriggerNames.Of(f.Delivery)} channel={TriggerNames.Of(f.Channel)} " +
        $"suppressedBy={f.SuppressedBy} priority={f.Priority} due={f.DueTicks} expires={f.ExpiresTicks} attempt={f.Attempt} partition={f.Partition} " +
        $"reason=[{string.Join(", ", f.Reason.Select(r => r.Key + "=" + r.Value))}] " +
        $"profile=[{string.Join(", ", f.Profile.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key + "=" + Text(p.Value)))}]");

    private static string? Text(object? value) => value is System.Collections.IEnumerable list and not string
        ? "[" + string.Join(' ', list.Cast<object?>().Select(Text)) + "]"
        : Convert.ToString(value, CultureInfo.InvariantCulture);
}
