using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Streaming.Engine.Tests.Properties;

/// <summary>
/// Properties of the pure customer actor over generated histories: it is deterministic, ignores redeliveries, and its
/// state survives the codec exactly. Seeds are logged; see <see cref="PropertyCheck"/> to replay one.
/// </summary>
public sealed class ActorProperties(ITestOutputHelper output)
{
    private const int Cases = 200;

    private static readonly JsonSerializerOptions ProfileJson = new() { WriteIndented = true };

    /// <summary>A history and a few numbers a property draws on (a split point, a choice seed, the recent-id capacity).</summary>
    internal sealed record Case(History History, int Split, int Seed, int RecentIds)
    {
        public ActorOptions Options => new() { RecentIdCapacity = RecentIds };

        /// <summary>The split point, within the history.</summary>
        public int At => Math.Min(Split, History.Steps.Count);

        public override string ToString() => $"split={Split}, seed={Seed}, recentIds={RecentIds}\n{History}";
    }

    internal static Arbitrary<Case> Generate() => Arb.From(
        from history in Histories.Generator()
        from split in Gen.Choose(0, history.Steps.Count)
        from seed in Gen.Choose(0, int.MaxValue)
        from recent in Gen.Frequency((6, Gen.Constant(32)), (2, Gen.Constant(8)), (1, Gen.Constant(3)))
        select new Case(history, split, seed, recent),
        c => Histories.Shrink(c.History).Select(h => c with { History = h.History, Split = h.MapIndex(c.At) }));

    [Fact]
    public void The_actor_is_deterministic()
    {
        PropertyCheck.Run(output, "determinism", Cases, Generate(), c =>
        {
            var first = new ActorRun(c.Options);
            first.Run(c.History.Steps);

            // Again on fresh states, with an evaluation context left over from the first run.
            var second = new ActorRun(c.Options, first.Context);
            second.Run(c.History.Steps);

            // And one customer at a time: a customer's state depends on its own events and the passage of time only.
            var byCustomer = new ActorRun(c.Options);
            foreach (var id in c.History.CustomerIds)
            {
                var own = new ActorRun(c.Options, byCustomer.Context);
                foreach (var step in c.History.Steps)
                {
                    if (step is Advance || (step is Deliver d && d.Event.CustomerId == id))
                    {
                        own.Run(step);
                        if (step is Deliver)
                        {
                            byCustomer.Results.Add(own.Results[^1]);
                        }
                    }
                }

                foreach (var state in own.States.Values)
                {
                    byCustomer.Replace(state);
                }

                Merge(byCustomer.Population, own.Population);
            }

            Assert.Equal(first.Results, second.Results);
            foreach (var id in c.History.CustomerIds)
            {
                Compare.SameEncoding("second run", id, first.Encode(id), second.Encode(id));
                Compare.SameEncoding("customer by customer", id, first.Encode(id), byCustomer.Encode(id));
            }

            Compare.SamePopulation("second run", first.Population, second.Population);
            Compare.SamePopulation("customer by customer", first.Population, byCustomer.Population);
        });
    }

    [Fact]
    public void A_redelivered_event_changes_nothing()
    {
        var probes = 0L;
        PropertyCheck.Run(output, "duplicate", Cases, Generate(), c =>
        {
            var run = new ActorRun(c.Options);
            var applied = new Dictionary<string, List<CustomerEvent>>(StringComparer.Ordinal);
            var choose = new System.Random(c.Seed);
            foreach (var step in c.History.Steps)
            {
                if (run.Run(step) == ApplyResult.Applied)
                {
                    var evt = ((Deliver)step).Event;
                    ListFor(applied, evt.CustomerId).Add(evt);
                }

                // After every step, redeliver one event still in its customer's memory.
                var customers = applied.Keys.Order(StringComparer.Ordinal).ToList();
                if (customers.Count > 0)
                {
                    var events = applied[customers[choose.Next(customers.Count)]];
                    var recent = Math.Min(events.Count, c.RecentIds);
                    Probe(run, events[events.Count - 1 - choose.Next(recent)]);
                    probes++;
                }
            }

            // At the end, every event each customer still remembers.
            foreach (var events in applied.Values)
            {
                foreach (var evt in events.TakeLast(c.RecentIds))
                {
                    Probe(run, evt);
                    probes++;
                }
            }
        });

        output.WriteLine($"duplicate: {probes} redeliveries probed");
    }

    [Fact]
    public void State_encoding_round_trips_and_a_restored_state_carries_on_identically()
    {
        PropertyCheck.Run(output, "codec round-trip", Cases, Generate(), c =>
        {
            var straight = new ActorRun(c.Options);
            var restored = new ActorRun(c.Options);
            for (var i = 0; i < c.History.Steps.Count; i++)
            {
                var step = c.History.Steps[i];
                straight.Run(step);
                restored.Run(step);

                // Every state the step touched survives the codec: same bytes again, same public profile.
                List<string> touched = step is Deliver d ? [d.Event.CustomerId] : restored.States.Keys.ToList();
                foreach (var id in touched)
                {
                    RoundTrip(restored, id, i);
                }

                // At the split, carry on from decoded states only (a restart from the store).
                if (i == c.At - 1)
                {
                    foreach (var id in restored.States.Keys.ToList())
                    {
                        restored.Replace(CustomerStateCodec.Decode(id, restored.Encode(id)));
                    }
                }
            }

            foreach (var id in c.History.CustomerIds)
            {
                Compare.SameEncoding($"restored after step {c.At}", id, straight.Encode(id), restored.Encode(id));
            }

            Compare.SamePopulation($"restored after step {c.At}", straight.Population, restored.Population);
        });
    }

    private static void RoundTrip(ActorRun run, string customerId, int step)
    {
        var state = run.States[customerId];
        var bytes = CustomerStateCodec.Encode(state);
        var decoded = CustomerStateCodec.Decode(customerId, bytes);
        Compare.SameEncoding($"re-encoded after step {step}", customerId, bytes, CustomerStateCodec.Encode(decoded));
        var expected = JsonSerializer.Serialize(CustomerProfile.From(state, 0, run.NowTicks, ActorRun.Rules), ProfileJson);
        var actual = JsonSerializer.Serialize(CustomerProfile.From(decoded, 0, run.NowTicks, ActorRun.Rules), ProfileJson);
        if (!string.Equals(expected, actual, StringComparison.Ordinal))
        {
            throw new XunitException($"profile of {customerId} after step {step} differs once decoded:\nexpected {expected}\nactual {actual}");
        }
    }

    /// <summary>Applies an event again and checks it is a duplicate that changed neither the state nor the population.</summary>
    private static void Probe(ActorRun run, CustomerEvent evt)
    {
        var before = run.Encode(evt.CustomerId);
        var population = Compare.Lines(run.Population);
        var result = run.Apply(evt);
        if (result != ApplyResult.Duplicate)
        {
            throw new XunitException($"redelivery of {History.Describe(evt)} was {result}, not Duplicate");
        }

        Compare.SameEncoding($"after redelivering {evt.EventId}", evt.CustomerId, before, run.Encode(evt.CustomerId));
        Assert.Equal(population, Compare.Lines(run.Population));
    }

    private static List<CustomerEvent> ListFor(Dictionary<string, List<CustomerEvent>> map, string key)
    {
        if (!map.TryGetValue(key, out var list))
        {
            list = [];
            map.Add(key, list);
        }

        return list;
    }

    /// <summary>Adds <paramref name="part"/>'s moves to <paramref name="total"/> (counts and transitions are sums over customers).</summary>
    private static void Merge(Population total, Population part)
    {
        foreach (var ((dimension, value), count) in part.Counts)
        {
            for (var i = 0; i < count; i++)
            {
                total.Moved(dimension, null, value);
            }
        }

        foreach (var ((dimension, from, to), count) in part.Transitions)
        {
            for (var i = 0; i < count; i++)
            {
                // A transition moves one customer from → to: undo the count change so only the transition remains.
                total.Moved(dimension, from, to);
                total.Moved(dimension, null, from);
                total.Moved(dimension, to, null);
            }
        }
    }
}
