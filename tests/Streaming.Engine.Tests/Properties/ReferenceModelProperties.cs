using System.Globalization;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Streaming.Engine.Tests.Properties;

/// <summary>
/// The customer core against a small reference model written here from the documented definitions (CONTRACTS.md §6,
/// README "The customer model", default rule pack parameters): orders, RFM and lifecycle, compared after every step of
/// a generated history of one customer. Histories are in event-time order, order ids are never repeated, each order is
/// cancelled at most once and redeliveries repeat one of the last few events, so the model holds under CONTRACTS v1 and
/// v1.1 alike. Shrinking shortens the history and also simplifies each step: gaps, amounts and offsets move towards
/// zero, steps towards simpler kinds. Seeds are logged; see <see cref="PropertyCheck"/> to replay one.
/// </summary>
public sealed class ReferenceModelProperties(ITestOutputHelper output)
{
    private const int Cases = 300;
    private const string Id = "ref-1";
    private static readonly DateTimeOffset Start = new(2022, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly long Day = TimeSpan.TicksPerDay;

    /// <summary>What a step does. Declared from simplest to richest: shrinking moves a step towards the simpler kinds.</summary>
    internal enum Kind
    {
        Probe,
        Click,
        Placed,
        Cancelled,
        Redeliver,
    }

    /// <summary>
    /// One step: time moves on by <paramref name="GapTicks"/>; an event is written with a UTC offset of
    /// <paramref name="OffsetMinutes"/> (the instant is the same); <paramref name="Pick"/> chooses the order a
    /// cancellation refers to, or the recent event a redelivery repeats.
    /// </summary>
    internal sealed record RefStep(Kind Kind, long GapTicks, decimal Amount, int OffsetMinutes, int Pick)
    {
        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"{Kind} +{TimeSpan.FromTicks(GapTicks)} amount={Amount} offset={OffsetMinutes}m pick={Pick}");
    }

    internal sealed record RefCase(IReadOnlyList<RefStep> Steps)
    {
        public override string ToString()
        {
            var text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"{Steps.Count} steps:");
            for (var i = 0; i < Steps.Count; i++)
            {
                text.Append(CultureInfo.InvariantCulture, $"\n  [{i}] {Steps[i]}");
            }

            return text.ToString();
        }
    }

    internal static Arbitrary<RefCase> Generate() => Arb.From(
        Gen.Sized(size => Gen.Choose(1, (2 * size) + 5).SelectMany(n => Gen.ArrayOf(StepGen(), n))).Select(steps => new RefCase(steps)),
        Shrink);

    private static Gen<RefStep> StepGen() =>
        from kind in Gen.Frequency(
            (40, Gen.Constant(Kind.Placed)), (12, Gen.Constant(Kind.Cancelled)), (15, Gen.Constant(Kind.Click)),
            (8, Gen.Constant(Kind.Redeliver)), (25, Gen.Constant(Kind.Probe)))
        from gap in Gap()
        from amount in Amount()
        from offset in Gen.Frequency((3, Gen.Constant(0)), (1, Gen.Choose(-12 * 4, 14 * 4).Select(q => q * 15)))
        from pick in Gen.Choose(0, 1000)
        select new RefStep(kind, gap, amount, offset, pick);

    /// <summary>Seconds to a year and more, and exact day counts around every threshold the model reads (± 1 s).</summary>
    private static Gen<long> Gap() => Gen.Frequency(
        (20, Gen.Choose(0, 7200).Select(s => s * TimeSpan.TicksPerSecond)),
        (20, Gen.Choose(1, 96).Select(h => h * TimeSpan.TicksPerHour)),
        (25, Gen.Choose(1, 120 * 24).Select(h => h * TimeSpan.TicksPerHour)),
        (10, Gen.Choose(120, 450).Select(d => d * Day)),
        (25, from d in Gen.Elements(30, 90, 91, 180, 181, 365, 366)
             from s in Gen.Choose(-1, 1)
             select (d * Day) + (s * TimeSpan.TicksPerSecond)));

    /// <summary>Whole units, cents, and other scales (12.340 keeps its zero), up to 20,000.</summary>
    private static Gen<decimal> Amount() =>
        from units in Gen.Frequency((10, Gen.Choose(0, 300)), (6, Gen.Choose(300, 3000)), (2, Gen.Choose(3000, 20000)))
        from cents in Gen.Choose(0, 999)
        from scale in Gen.Elements(0, 2, 2, 3)
        select scale == 0 ? units : decimal.Round(units + (cents / 1000m), scale);

    /// <summary>Shorter histories first (halves, then single steps), then each step simplified in place.</summary>
    private static IEnumerable<RefCase> Shrink(RefCase c)
    {
        var steps = c.Steps;
        for (var chunk = steps.Count / 2; chunk >= 1; chunk /= 2)
        {
            for (var at = 0; at + chunk <= steps.Count; at += chunk)
            {
                if (steps.Count - chunk >= 1)
                {
                    yield return new RefCase([.. steps.Take(at), .. steps.Skip(at + chunk)]);
                }
            }
        }

        for (var i = 0; i < steps.Count; i++)
        {
            foreach (var simpler in ShrinkStep(steps[i]))
            {
                var copy = steps.ToArray();
                copy[i] = simpler;
                yield return new RefCase(copy);
            }
        }
    }

    private static IEnumerable<RefStep> ShrinkStep(RefStep s)
    {
        if (s.Kind > Kind.Placed)
        {
            yield return s with { Kind = Kind.Placed };
        }

        if (s.GapTicks != 0)
        {
            yield return s with { GapTicks = 0 };
            if (s.GapTicks % Day != 0 && s.GapTicks > Day)
            {
                yield return s with { GapTicks = s.GapTicks / Day * Day };
            }

            if (s.GapTicks / 2 != 0)
            {
                yield return s with { GapTicks = s.GapTicks / 2 };
            }
        }

        if (s.Amount != 0)
        {
            yield return s with { Amount = 0 };
            if (decimal.Truncate(s.Amount) != s.Amount)
            {
                yield return s with { Amount = decimal.Truncate(s.Amount) };
            }

            if (decimal.Truncate(s.Amount / 2) != 0 && decimal.Truncate(s.Amount / 2) != s.Amount)
            {
                yield return s with { Amount = decimal.Truncate(s.Amount / 2) };
            }
        }

        if (s.OffsetMinutes != 0)
        {
            yield return s with { OffsetMinutes = 0 };
        }

        if (s.Pick != 0)
        {
            yield return s with { Pick = 0 };
        }
    }

    [Fact]
    public void The_customer_core_agrees_with_the_reference_model_after_every_step()
    {
        var coverage = new SortedDictionary<string, int>(StringComparer.Ordinal);
        PropertyCheck.Run(output, "reference-model", Cases, Generate(), c =>
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var state = new CustomerState(Id);
            var ctx = new EvalContext();
            var options = new ActorOptions();
            var model = new Model();
            var events = new List<CustomerEvent>();
            var at = Start.UtcTicks;
            for (var i = 0; i < c.Steps.Count; i++)
            {
                var step = c.Steps[i];
                at += step.GapTicks;
                var evt = Materialize(step, i, at, model, events);
                if (evt is not null)
                {
                    var result = CustomerActor.Apply(state, evt, options, RuleSetLoader.Default, ctx, sink: null);
                    var duplicate = !model.Apply(evt);
                    Assert.Equal(duplicate ? ApplyResult.Duplicate : ApplyResult.Applied, result);
                    events.Add(evt);
                }

                // As the partition would once its watermark reaches this instant: wake-ups due by then fire.
                CustomerActor.AdvanceTo(state, at, RuleSetLoader.Default, ctx, sink: null);
                model.AdvanceTo(at);
                if (events.Count > 0)
                {
                    Check(i, step, at, model, state);
                    seen.Add("stage " + model.Stage);
                }
            }

            foreach (var what in seen)
            {
                coverage[what] = coverage.GetValueOrDefault(what) + 1;
            }
        });

        foreach (var (what, count) in coverage)
        {
            output.WriteLine($"  cases reaching {what}: {count}");
        }

        // The generator must keep reaching every lifecycle stage.
        Assert.All(["prospect", "new", "active", "at_risk", "dormant", "churned", "won_back"],
            stage => Assert.True(coverage.GetValueOrDefault("stage " + stage) >= Cases / 20, $"only {coverage.GetValueOrDefault("stage " + stage)} cases reach {stage}"));
    }

    /// <summary>The event a step stands for (null for a probe, or a step with nothing to refer to).</summary>
    private static CustomerEvent? Materialize(RefStep step, int index, long at, Model model, List<CustomerEvent> events)
    {
        var when = new DateTimeOffset(at, TimeSpan.Zero).ToOffset(TimeSpan.FromMinutes(step.OffsetMinutes));
        var id = "e" + index.ToString(CultureInfo.InvariantCulture);
        switch (step.Kind)
        {
            case Kind.Placed:
                return new OrderEvent { EventId = id, CustomerId = Id, OccurredAt = when, Type = EventType.OrderPlaced, OrderId = "o" + id, Amount = step.Amount };
            case Kind.Cancelled:
                var open = model.Placed.Where(p => !model.CancelledOrders.Contains(p.OrderId)).ToList();
                return open.Count == 0
                    ? null
                    : new OrderEvent { EventId = id, CustomerId = Id, OccurredAt = when, Type = EventType.OrderCancelled, OrderId = open[step.Pick % open.Count].OrderId, Amount = step.Amount };
            case Kind.Click:
                return new ClickEvent { EventId = id, CustomerId = Id, OccurredAt = when, Type = EventType.PageView, SessionId = "s1" };
            case Kind.Redeliver when events.Count > 0:
                // The same record again (same id and payload), one of the last few: well within the remembered ids.
                var recent = events.TakeLast(8).ToList();
                return recent[step.Pick % recent.Count];
            default:
                return null;
        }
    }

    private static void Check(int index, RefStep step, long at, Model m, CustomerState state)
    {
        var p = CustomerProfile.From(state, 0, at, RuleSetLoader.Default);
        var diffs = new List<string>();
        void Same<T>(string field, T expected, T actual)
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
            {
                diffs.Add($"{field}: expected {Format(expected)}, actual {Format(actual)}");
            }
        }

        var (recency, frequency, monetary) = m.Rfm(at);
        var (r, f, mScore) = m.Scores(at);
        Same("orders.count", m.Placed.Count, p.Orders.Count);
        Same("orders.cancelledCount", m.Cancels.Count, p.Orders.CancelledCount);
        Same("orders.grossAmount", m.Gross, p.Orders.GrossAmount);
        Same("orders.refundAmount", m.Refunds, p.Orders.RefundAmount);
        Same("orders.netAmount", m.Gross - m.Refunds, p.Orders.NetAmount);
        Same("orders.firstAt", m.FirstAt, p.Orders.FirstAt?.UtcTicks);
        Same("orders.lastAt", m.LastAt, p.Orders.LastAt?.UtcTicks);
        Same("rfm.recencyDays", recency, p.Rfm.RecencyDays);
        Same("rfm.frequency", frequency, p.Rfm.Frequency);
        Same("rfm.monetary", monetary, p.Rfm.Monetary);
        Same("rfm.r", r, p.Rfm.R);
        Same("rfm.f", f, p.Rfm.F);
        Same("rfm.m", mScore, p.Rfm.M);
        Same("rfm.segment", m.Segment(at), p.Rfm.Segment);
        Same("lifecycle.stage", m.Stage, p.Lifecycle?.Stage);
        Same("lifecycle.since", m.Since, p.Lifecycle?.Since?.UtcTicks);
        if (diffs.Count > 0)
        {
            throw new XunitException(
                $"after step [{index}] {step} at {Format(at)}:\n  " + string.Join("\n  ", diffs));
        }
    }

    private static string Format<T>(T value) => value switch
    {
        null => "null",
        long ticks => new DateTime(ticks, DateTimeKind.Utc).ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture),
        IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <summary>
    /// The reference: raw facts, and the lifecycle stage walked through time. Every value is computed from the facts
    /// at the instant asked, directly from the definitions, with nothing cached but the stage and its start.
    /// </summary>
    private sealed class Model
    {
        private const int Window = 365;
        private readonly HashSet<string> _eventIds = new(StringComparer.Ordinal);
        private long _at;

        public List<(string OrderId, long At, decimal Amount)> Placed { get; } = [];

        public List<(long At, decimal Amount)> Cancels { get; } = [];

        public HashSet<string> CancelledOrders { get; } = new(StringComparer.Ordinal);

        public decimal Gross => Placed.Sum(p => p.Amount);

        public decimal Refunds => Cancels.Sum(c => c.Amount);

        public long? FirstAt => Placed.Count == 0 ? null : Placed.Min(p => p.At);

        public long? LastAt => Placed.Count == 0 ? null : Placed.Max(p => p.At);

        public string? Stage { get; private set; }

        public long? Since { get; private set; }

        /// <summary>Applies an event at its time; false if its id was seen before (a duplicate changes nothing).</summary>
        public bool Apply(CustomerEvent evt)
        {
            var at = evt.OccurredAt.UtcTicks;
            AdvanceTo(at);
            if (!_eventIds.Add(evt.EventId))
            {
                return false;
            }

            if (evt is OrderEvent { Type: EventType.OrderPlaced } placed)
            {
                Placed.Add((placed.OrderId, at, placed.Amount));
            }
            else if (evt is OrderEvent cancelled)
            {
                Cancels.Add((at, cancelled.Amount));
                CancelledOrders.Add(cancelled.OrderId);
            }

            Enter(Ladder(at, evt.Type == EventType.OrderPlaced), at);
            return true;
        }

        /// <summary>
        /// Time runs to <paramref name="until"/>: the stage is re-evaluated at each instant where one of its
        /// conditions can flip (30 days after the first order, 91/181/366 days after the last, 90 days into won_back),
        /// in order, and a change is dated at that instant.
        /// </summary>
        public void AdvanceTo(long until)
        {
            while (Stage is not null)
            {
                var next = Flips().Where(t => t > _at && t <= until).DefaultIfEmpty(long.MaxValue).Min();
                if (next == long.MaxValue)
                {
                    break;
                }

                _at = next;
                Enter(Ladder(next, placedNow: false), next);
            }

            _at = Math.Max(_at, until);
        }

        private IEnumerable<long> Flips()
        {
            if (FirstAt is { } first)
            {
                yield return first + (30 * Day);
            }

            if (LastAt is { } last)
            {
                yield return last + (91 * Day);
                yield return last + (181 * Day);
                yield return last + (366 * Day);
            }

            if (Stage == "won_back" && Since is { } since)
            {
                yield return since + (90 * Day);
            }
        }

        private void Enter(string stage, long at)
        {
            if (stage != Stage)
            {
                Stage = stage;
                Since = at;
            }

            _at = Math.Max(_at, at);
        }

        /// <summary>The default pack's lifecycle ladder, first match wins; reads the stage held before this instant.</summary>
        private string Ladder(long at, bool placedNow)
        {
            if (Placed.Count == 0)
            {
                return "prospect";
            }

            if ((placedNow && Stage is "dormant" or "churned") || (Stage == "won_back" && DaysBetween(Since!.Value, at) < 90))
            {
                return "won_back";
            }

            if (Placed.Count == 1 && DaysBetween(FirstAt!.Value, at) < 30)
            {
                return "new";
            }

            var recency = DaysBetween(LastAt!.Value, at);
            return recency <= 90 ? "active" : recency <= 180 ? "at_risk" : recency <= 365 ? "dormant" : "churned";
        }

        /// <summary>Whole days from <paramref name="from"/> to <paramref name="to"/>, never negative.</summary>
        private static long DaysBetween(long from, long to) => Math.Max(0, (to - from) / Day);

        /// <summary>Recency in whole days; placed orders and placed minus refunded on the 365 UTC days ending with today.</summary>
        public (int? Recency, int Frequency, decimal Monetary) Rfm(long now)
        {
            var today = now / Day;
            bool InWindow(long at) => at / Day > today - Window && at / Day <= today;
            int? recency = LastAt is { } last ? (int)DaysBetween(last, now) : null;
            var frequency = Placed.Count(p => InWindow(p.At));
            var monetary = Placed.Where(p => InWindow(p.At)).Sum(p => p.Amount) - Cancels.Where(c => InWindow(c.At)).Sum(c => c.Amount);
            return (recency, frequency, monetary);
        }

        /// <summary>r by recency (≤ 30, 90, 180, 365 days: 5 to 2, else 1); f and m by [2, 3, 5, 10] and [100, 500, 1000, 5000].</summary>
        public (int? R, int? F, int? M) Scores(long now)
        {
            if (Placed.Count == 0)
            {
                return (null, null, null);
            }

            var (recency, frequency, monetary) = Rfm(now);
            var r = recency <= 30 ? 5 : recency <= 90 ? 4 : recency <= 180 ? 3 : recency <= 365 ? 2 : 1;
            return (r, 1 + new[] { 2m, 3m, 5m, 10m }.Count(t => frequency >= t), 1 + new[] { 100m, 500m, 1000m, 5000m }.Count(t => monetary >= t));
        }

        /// <summary>The default pack's segments, first match wins.</summary>
        public string Segment(long now)
        {
            if (Placed.Count == 0)
            {
                return "prospects";
            }

            var (r, f, m) = Scores(now);
            return (r, f, m) switch
            {
                ( >= 4, >= 4, >= 4) => "champions",
                ( >= 3, >= 4, _) => "loyal",
                ( >= 3, _, >= 4) => "big_spenders",
                ( >= 4, 1, _) => "new_customers",
                ( <= 2, >= 4, _) => "cant_lose",
                ( <= 2, >= 2, _) => "at_risk",
                ( <= 2, _, _) => "hibernating",
                _ => "promising",
            };
        }
    }
}
