using System.Text.Json;
using Streaming.Engine.Rules;

namespace Streaming.Engine.Runtime;

/// <summary>
/// Counts of one partition's customers per dimension value (each ladder's stage, tier, RFM segment) and of the
/// transitions between values, kept incrementally as customers change: reading them never scans customers. Persisted
/// with each checkpoint, so they survive restarts exactly.
/// </summary>
public sealed class Population : IPopulationSink
{
    private readonly Dictionary<(string Dimension, string Value), long> _counts = [];
    private readonly Dictionary<(string Dimension, string From, string To), long> _transitions = [];
    private readonly Dictionary<(string Rule, string Counter, string Group), long> _rules = [];

    /// <summary>While true (re-counting under a new rule set), moves change counts but are not transitions.</summary>
    public bool Recounting { get; set; }

    /// <summary>Changed since the last <see cref="Serialize"/>.</summary>
    public bool Dirty { get; private set; }

    public IReadOnlyDictionary<(string Dimension, string Value), long> Counts => _counts;

    public IReadOnlyDictionary<(string Dimension, string From, string To), long> Transitions => _transitions;

    /// <summary>Per trigger: <c>fired</c> by delivery, <c>suppressed</c> by check, <c>converted</c> by delivery.</summary>
    public IReadOnlyDictionary<(string Rule, string Counter, string Group), long> RuleCounters => _rules;

    public void CountRule(string rule, string counter, string group)
    {
        var key = (rule, counter, group);
        _rules[key] = _rules.GetValueOrDefault(key) + 1;
        Dirty = true;
    }

    public void Moved(string dimension, string? from, string? to)
    {
        if (string.Equals(from, to, StringComparison.Ordinal))
        {
            return;
        }

        Dirty = true;
        if (from is not null)
        {
            Add(dimension, from, -1);
        }

        if (to is not null)
        {
            Add(dimension, to, 1);
        }

        if (from is not null && to is not null && !Recounting)
        {
            var key = (dimension, from, to);
            _transitions[key] = _transitions.GetValueOrDefault(key) + 1;
        }
    }

    private void Add(string dimension, string value, long delta)
    {
        var key = (dimension, value);
        var count = _counts.GetValueOrDefault(key) + delta;
        if (count == 0)
        {
            _counts.Remove(key);
        }
        else
        {
            _counts[key] = count;
        }
    }

    public byte[] Serialize()
    {
        Dirty = false;
        var snapshot = new Snapshot(
            _counts.Select(p => new CountRow(p.Key.Dimension, p.Key.Value, p.Value)).ToList(),
            _transitions.Select(p => new TransitionRow(p.Key.Dimension, p.Key.From, p.Key.To, p.Value)).ToList(),
            _rules.Select(p => new RuleRow(p.Key.Rule, p.Key.Counter, p.Key.Group, p.Value)).ToList());
        return JsonSerializer.SerializeToUtf8Bytes(snapshot, PopulationJson.Default.Snapshot);
    }

    /// <exception cref="InvalidDataException">The bytes are not a population snapshot.</exception>
    public static Population Deserialize(byte[]? bytes)
    {
        var population = new Population();
        if (bytes is null || bytes.Length == 0)
        {
            return population;
        }

        Snapshot? snapshot;
        try
        {
            snapshot = JsonSerializer.Deserialize(bytes, PopulationJson.Default.Snapshot);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException("corrupt population counters: " + e.Message, e);
        }

        foreach (var row in snapshot?.Counts ?? [])
        {
            population._counts[(row.Dimension, row.Value)] = row.Count;
        }

        foreach (var row in snapshot?.Transitions ?? [])
        {
            population._transitions[(row.Dimension, row.From, row.To)] = row.Count;
        }

        foreach (var row in snapshot?.Rules ?? [])
        {
            population._rules[(row.Rule, row.Counter, row.Group)] = row.Count;
        }

        return population;
    }

    internal sealed record Snapshot(List<CountRow> Counts, List<TransitionRow> Transitions, List<RuleRow>? Rules = null);

    internal sealed record RuleRow(string Rule, string Counter, string Group, long Count);

    internal sealed record CountRow(string Dimension, string Value, long Count);

    internal sealed record TransitionRow(string Dimension, string From, string To, long Count);
}

[System.Text.Json.Serialization.JsonSerializable(typeof(Population.Snapshot))]
internal sealed partial class PopulationJson : System.Text.Json.Serialization.JsonSerializerContext;
