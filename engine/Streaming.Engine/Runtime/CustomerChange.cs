using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;

namespace Streaming.Engine.Runtime;

/// <summary>
/// The population moves, trigger firings and conversions of one change of one customer, in the order they happened.
/// They count only if the change succeeds; <see cref="CommitTo"/> hands them on.
/// </summary>
public sealed class ChangeEffects : IPopulationSink, IFiringSink
{
    /// <summary>Stage moves: dimension, stage left (null: newly counted), stage entered (null: no longer counted).</summary>
    public List<(string Dimension, string? From, string? To)> Moves { get; } = [];

    /// <summary>Firings, in the order the rules fired them.</summary>
    public List<TriggerFiring> Fired { get; } = [];

    /// <summary>Earlier firings an order converted: the rule and how that firing was delivered.</summary>
    public List<(string Rule, Delivery Delivery)> Converted { get; } = [];

    /// <summary>Nothing happened.</summary>
    public bool IsEmpty => Moves.Count == 0 && Fired.Count == 0 && Converted.Count == 0;

    void IPopulationSink.Moved(string dimension, string? from, string? to) => Moves.Add((dimension, from, to));

    void IFiringSink.Fired(TriggerFiring firing) => Fired.Add(firing);

    void IFiringSink.Converted(string rule, Delivery delivery) => Converted.Add((rule, delivery));

    /// <summary>Forgets everything.</summary>
    public void Clear()
    {
        Moves.Clear();
        Fired.Clear();
        Converted.Clear();
    }

    /// <summary>Passes every effect on, in order, then forgets them.</summary>
    public void CommitTo(IPopulationSink population, IFiringSink firings)
    {
        foreach (var (dimension, from, to) in Moves)
        {
            population.Moved(dimension, from, to);
        }

        foreach (var firing in Fired)
        {
            firings.Fired(firing);
        }

        foreach (var (rule, delivery) in Converted)
        {
            firings.Converted(rule, delivery);
        }

        Clear();
    }
}

/// <summary>
/// Changes one customer all or nothing: an event, time running to a watermark, or a re-derivation under a new rule
/// set. If anything throws while the core changes the customer (an arithmetic overflow, a rule that fails), the
/// customer is given back exactly the state it had and the change's effects are dropped; the caller gets the failure
/// as <c>ExceptionType: message</c> (message cut at 200 characters). Whoever hosts customers (a partition host, an
/// actor) runs its changes through one of these. Not thread-safe: one per thread or actor.
/// </summary>
public sealed class CustomerChange
{
    private readonly CustomerState _undo = new("");
    private readonly EvalContext _ctx = new();

    /// <summary>The effects of the last successful change (empty after a failed one).</summary>
    public ChangeEffects Effects { get; } = new();

    /// <summary>
    /// Applies <paramref name="evt"/>. <paramref name="fresh"/> says the customer has no history yet: nothing is copied
    /// first, and after a failure the caller must discard <paramref name="state"/> (the customer does not exist).
    /// </summary>
    /// <returns>False, with <paramref name="failure"/>, when the change failed and was undone.</returns>
    public bool TryApply(CustomerState state, CustomerEvent evt, bool fresh, ActorOptions options, RuleSet rules, out ApplyResult result, out string? failure)
    {
        Begin(state, fresh);
        try
        {
            result = CustomerActor.Apply(state, evt, options, rules, _ctx, Effects, Effects);
            failure = null;
            return true;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Undo(state, fresh);
            result = default;
            failure = Describe(ex);
            return false;
        }
    }

    /// <summary>
    /// Lets time run to <paramref name="now"/> (UTC ticks): every wake-up due by then is evaluated at its own instant;
    /// those due before <paramref name="lateBefore"/> count as late. On failure the customer keeps its state.
    /// </summary>
    public bool TryAdvance(CustomerState state, long now, long lateBefore, RuleSet rules, out int fired, out int late, out string? failure)
    {
        Begin(state, fresh: false);
        try
        {
            fired = CustomerActor.AdvanceTo(state, now, rules, _ctx, Effects, Effects, lateBefore, out late);
            failure = null;
            return true;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Undo(state, fresh: false);
            fired = late = 0;
            failure = Describe(ex);
            return false;
        }
    }

    /// <summary>Re-derives the customer under <paramref name="rules"/> at <paramref name="now"/>; triggers arm but do not fire.</summary>
    public bool TryReevaluate(CustomerState state, long now, RuleSet rules, out string? failure)
    {
        Begin(state, fresh: false);
        try
        {
            CustomerActor.Reevaluate(state, now, rules, _ctx, Effects);
            failure = null;
            return true;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Undo(state, fresh: false);
            failure = Describe(ex);
            return false;
        }
    }

    private void Begin(CustomerState state, bool fresh)
    {
        Effects.Clear();
        if (!fresh)
        {
            _undo.CopyFrom(state);
        }
    }

    private void Undo(CustomerState state, bool fresh)
    {
        Effects.Clear();
        if (!fresh)
        {
            state.CopyFrom(_undo);
        }
    }

    private static string Describe(Exception ex) => $"{ex.GetType().Name}: {Truncate(ex.Message, 200)}";

    /// <summary><paramref name="text"/> cut to <paramref name="max"/> characters, with an ellipsis when cut.</summary>
    public static string Truncate(string text, int max) => text.Length <= max ? text : text[..max] + "…";
}
