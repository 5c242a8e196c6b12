using System.Collections.Concurrent;
using Streaming.Engine.Rules;

namespace Streaming.Runtime.Rules;

/// <summary>
/// The rule sets this node knows, by version. Messages carry a rule version, never a rule set (a version is a string
/// any node can resolve; a rule set is a local object graph). A coordinator switches its partition to a version at a
/// checkpoint boundary; the entities look the version up here. Thread-safe.
/// </summary>
public sealed class RuleBook
{
    private readonly ConcurrentDictionary<string, RuleSet> _byVersion = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _order = new(StringComparer.Ordinal);
    private int _added;

    /// <summary>A book holding <paramref name="initial"/>, which is also <see cref="Latest"/>.</summary>
    public RuleBook(RuleSet initial)
    {
        Add(initial);
        Latest = initial;
    }

    /// <summary>The set added last.</summary>
    public RuleSet Latest { get; private set; }

    /// <summary>Adds (or replaces) a set under its version and makes it <see cref="Latest"/>.</summary>
    public void Add(RuleSet rules)
    {
        ArgumentNullException.ThrowIfNull(rules);
        _byVersion[rules.Version] = rules;
        _order[rules.Version] = Interlocked.Increment(ref _added);
        Latest = rules;
    }

    /// <summary>
    /// Where <paramref name="version"/> stands among the sets added: greater for one added later (a set added again moves
    /// to the end); 0 for a version this node never loaded (older than all).
    /// </summary>
    public int Order(string version) => _order.GetValueOrDefault(version);

    /// <summary>Whether this node has loaded <paramref name="version"/>.</summary>
    public bool Contains(string version) => _byVersion.ContainsKey(version);

    /// <summary>The set of <paramref name="version"/>.</summary>
    /// <exception cref="KeyNotFoundException">This node never loaded that version.</exception>
    public RuleSet Get(string version) =>
        _byVersion.TryGetValue(version, out var rules)
            ? rules
            : throw new KeyNotFoundException($"rule set version '{version}' is not loaded on this node");
}
