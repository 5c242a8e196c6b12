using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;

namespace Streaming.Runtime.Customers;

/// <summary>
/// A customer moved between two stages of one dimension (null: not counted there). <paramref name="Recount"/>: the
/// move re-counts the customer under a new rule set, so it changes counts but is no transition.
/// </summary>
public readonly record struct StageMove(string Dimension, string? From, string? To, bool Recount = false);

/// <summary>An order converted an earlier firing of <paramref name="Rule"/> delivered as <paramref name="Delivery"/>.</summary>
public readonly record struct Conversion(string Rule, Delivery Delivery);

/// <summary>
/// Immutable effects of one or more changes of one customer: what the partition counts (stage moves, conversions) and
/// publishes (firings). <paramref name="Seq"/> is the checkpoint that saved them (0 while unsaved).
/// </summary>
public sealed record EffectBundle(long Seq, IReadOnlyList<StageMove> Moves, IReadOnlyList<TriggerFiring> Fired, IReadOnlyList<Conversion> Converted)
{
    /// <summary>
    /// The coordinator run that counted these effects: checkpoint <see cref="Seq"/> of that run confirms them (numbers
    /// are reused by a run after a crash, so the number alone does not).
    /// </summary>
    public long Run { get; init; }

    /// <summary>
    /// The earlier labels (<see cref="Run"/>, <see cref="Seq"/>) of these effects, oldest first: each time a new
    /// coordinator run takes effects no completed checkpoint had confirmed, it counts them and relabels them with its own
    /// run, and the label they had is kept here. A checkpoint that completes late (the previous owner's last one, landing
    /// after the next owner recovered) confirms them under such an earlier label, and they are not counted again. At most
    /// <see cref="MaxEarlier"/> are kept, the newest.
    /// </summary>
    public IReadOnlyList<EffectLabel> Earlier { get; init; } = [];

    /// <summary>How many earlier labels a bundle keeps.</summary>
    public const int MaxEarlier = 8;

    /// <summary>
    /// Whether a completed checkpoint confirms these effects under their label or an earlier one: checkpoint
    /// <paramref name="committedSeq"/> of the current run <paramref name="run"/>, or the last checkpoint each earlier run
    /// completed (<paramref name="completed"/>, run → checkpoint; null: none).
    /// </summary>
    public bool ConfirmedBy(long run, long committedSeq, IReadOnlyDictionary<long, long>? completed)
    {
        if (Covered(Run, Seq, run, committedSeq, completed))
        {
            return true;
        }

        for (var i = 0; i < Earlier.Count; i++)
        {
            if (Covered(Earlier[i].Run, Earlier[i].Seq, run, committedSeq, completed))
            {
                return true;
            }
        }

        return false;
    }

    private static bool Covered(long labelRun, long labelSeq, long run, long committedSeq, IReadOnlyDictionary<long, long>? completed) =>
        labelRun == run ? labelSeq <= committedSeq : completed is not null && completed.TryGetValue(labelRun, out var last) && labelSeq <= last;

    /// <summary>These effects taken by coordinator run <paramref name="run"/> under its checkpoint <paramref name="seq"/>, the current label kept as an earlier one.</summary>
    public EffectBundle TakenBy(long run, long seq) => this with
    {
        Run = run,
        Seq = seq,
        Earlier = [.. Earlier.Skip(Math.Max(0, Earlier.Count + 1 - MaxEarlier)), new EffectLabel(Run, Seq)],
    };

    /// <summary>No effects.</summary>
    public static EffectBundle Empty { get; } = new(0, [], [], []);

    /// <summary>Nothing to count or publish.</summary>
    public bool IsEmpty => Moves.Count == 0 && Fired.Count == 0 && Converted.Count == 0;

    /// <summary>A copy of <paramref name="effects"/> (which may be reused afterwards); <see cref="Empty"/> when there are none.</summary>
    public static EffectBundle From(ChangeEffects effects) =>
        effects.IsEmpty
            ? Empty
            : new(0, Copy(effects.Moves, m => new StageMove(m.Dimension, m.From, m.To)), Copy(effects.Fired, f => f), Copy(effects.Converted, c => new Conversion(c.Rule, c.Delivery)));

    private static TOut[] Copy<TIn, TOut>(IReadOnlyList<TIn> source, Func<TIn, TOut> map)
    {
        if (source.Count == 0)
        {
            return [];
        }

        var copy = new TOut[source.Count];
        for (var i = 0; i < copy.Length; i++)
        {
            copy[i] = map(source[i]);
        }

        return copy;
    }

    /// <summary>The same effects with every move marked as a re-count.</summary>
    public EffectBundle AsRecount() => Moves.Count == 0 ? this : this with { Moves = Moves.Select(m => m with { Recount = true }).ToArray() };

    /// <summary>These effects followed by <paramref name="later"/>'s, under this bundle's sequence number.</summary>
    /// <remarks>
    /// The lists are plain arrays: a bundle may cross the network between nodes (a reply from a customer whose shard has
    /// not moved yet), and Akka's JSON serializer cannot rebuild the compiler's read-only list types.
    /// </remarks>
    public EffectBundle Then(EffectBundle later) =>
        later.IsEmpty ? this : IsEmpty ? later with { Seq = Seq, Run = Run } : new(Seq, Moves.Concat(later.Moves).ToArray(), Fired.Concat(later.Fired).ToArray(), Converted.Concat(later.Converted).ToArray()) { Run = Run, Earlier = Earlier };
}

/// <summary>A label of effects: checkpoint <paramref name="Seq"/> of coordinator run <paramref name="Run"/> confirms them.</summary>
public readonly record struct EffectLabel(long Run, long Seq);
