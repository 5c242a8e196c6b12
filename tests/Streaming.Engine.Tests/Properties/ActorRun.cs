using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;

namespace Streaming.Engine.Tests.Properties;

/// <summary>
/// Drives the pure actor through a history as one partition would: one state per customer, one population, one
/// evaluation context; an <see cref="Advance"/> step lets time run for every customer seen so far.
/// </summary>
internal sealed class ActorRun(ActorOptions options, EvalContext? ctx = null)
{
    private readonly SortedDictionary<string, CustomerState> _states = new(StringComparer.Ordinal);
    private readonly EvalContext _ctx = ctx ?? new EvalContext();

    public ActorOptions Options { get; } = options;

    public Population Population { get; } = new();

    public EvalContext Context => _ctx;

    public IReadOnlyDictionary<string, CustomerState> States => _states;

    /// <summary>Outcome of every event step, in order.</summary>
    public List<ApplyResult> Results { get; } = [];

    /// <summary>Latest instant seen (events and advances), for profiles.</summary>
    public long NowTicks { get; private set; }

    public static RuleSet Rules => RuleSetLoader.Default;

    public void Run(IEnumerable<Step> steps)
    {
        foreach (var step in steps)
        {
            Run(step);
        }
    }

    /// <summary>Runs one step; returns the event's outcome (null for an advance).</summary>
    public ApplyResult? Run(Step step)
    {
        switch (step)
        {
            case Deliver d:
                var result = Apply(d.Event);
                Results.Add(result);
                return result;
            case Advance a:
                NowTicks = Math.Max(NowTicks, a.To.UtcTicks);
                foreach (var state in _states.Values)
                {
                    CustomerActor.AdvanceTo(state, a.To.UtcTicks, Rules, _ctx, Population);
                }

                return null;
            default:
                throw new ArgumentOutOfRangeException(nameof(step));
        }
    }

    public ApplyResult Apply(CustomerEvent evt)
    {
        if (!_states.TryGetValue(evt.CustomerId, out var state))
        {
            state = new CustomerState(evt.CustomerId);
            _states.Add(evt.CustomerId, state);
        }

        NowTicks = Math.Max(NowTicks, evt.OccurredAt.UtcTicks);
        return CustomerActor.Apply(state, evt, Options, Rules, _ctx, Population);
    }

    /// <summary>Replaces a customer's state (with one restored from its encoding, say).</summary>
    public void Replace(CustomerState state) => _states[state.CustomerId] = state;

    public byte[] Encode(string customerId) => CustomerStateCodec.Encode(_states[customerId]);
}
