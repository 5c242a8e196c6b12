using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Engine.Runtime;

namespace Streaming.Connectors.Kafka;

/// <summary>
/// What the host (HTTP routes, console, outreach re-checks, rule reloads, metrics, CLI verbs) needs of a running engine:
/// its lifecycle, its counters and status, rule switching and reads of customer state. The Kafka ingestion and the
/// customers' runtime behind it are the implementation's business.
/// </summary>
public interface IStreamingEngine : IDisposable
{
    /// <summary>The rule set the partitions evaluate with.</summary>
    RuleSet ActiveRules { get; }

    /// <summary>A rule set waiting for the next checkpoint boundary, or null.</summary>
    RuleSet? PendingRules { get; }

    /// <summary>Input records processed: applied to their customer, found duplicate, or dead-lettered.</summary>
    long EventsProcessed { get; }

    /// <summary>Records dead-lettered (undecodable, or their change failed).</summary>
    long DeadLetters { get; }

    /// <summary>Records a customer had already applied (redelivered after a restart, or a repeated event id).</summary>
    long Duplicates { get; }

    /// <summary>Checkpoints completed (offsets committed after them).</summary>
    long Checkpoints { get; }

    /// <summary>Customers dropped from memory to keep within <c>Streaming:Engine:MaxCachedCustomers</c>.</summary>
    long Passivations { get; }

    /// <summary>True once partitions are assigned and the engine is consuming.</summary>
    bool Ready { get; }

    /// <summary>A snapshot of the partitions this node owns, refreshed about twice a second.</summary>
    EngineStatus Status { get; }

    /// <summary>The cluster's members and the partitions each hosts, as this node sees it now (<c>GET /v1/cluster</c>).</summary>
    ClusterMembership Membership { get; }

    /// <summary>
    /// Completes when the engine has stopped (cleanly, or faulted by a fatal error; <see cref="EngineRemovedFromClusterException"/>
    /// when the cluster removed this node without its asking).
    /// </summary>
    Task Stopped { get; }

    /// <summary>Called after a checkpoint holding firings is durable (the trigger relay's cue).</summary>
    Action? FiringsCommitted { get; set; }

    /// <summary>Outreach counts by channel and state, for metrics (read every few seconds).</summary>
    Func<IReadOnlyDictionary<(string Channel, string State), long>>? OutreachStats { get; set; }

    /// <summary>Starts consuming.</summary>
    void Start();

    /// <summary>Checkpoints what was consumed, commits and leaves the group; waits at most <paramref name="timeout"/>.</summary>
    /// <exception cref="TimeoutException">The engine did not stop in time.</exception>
    Task StopAsync(TimeSpan timeout);

    /// <summary>
    /// Asks for <paramref name="rules"/> to replace the active set: every partition switches at its next checkpoint
    /// boundary, and the switch is stored with that checkpoint.
    /// </summary>
    void SwitchRules(RuleSet rules);

    /// <summary>A copy of the customer's live state, with what its profile needs.</summary>
    /// <exception cref="EngineStoppedException">The engine is not running.</exception>
    Task<CustomerLookup> LookupAsync(string customerId, CancellationToken cancellationToken);

    /// <summary>The population of the partitions this node owns, summed.</summary>
    /// <exception cref="EngineStoppedException">The engine is not running.</exception>
    Task<PopulationView> PopulationAsync(CancellationToken cancellationToken);

    /// <summary>Per-rule counters (rule, counter: fired/suppressed/converted, group) of the owned partitions, summed.</summary>
    /// <exception cref="EngineStoppedException">The engine is not running.</exception>
    Task<IReadOnlyDictionary<(string Rule, string Counter, string Group), long>> RuleCountersAsync(CancellationToken cancellationToken);
}

/// <summary>
/// The answer to <see cref="IStreamingEngine.LookupAsync"/>. <paramref name="State"/> is a copy (null: no such
/// customer, or not served here). <paramref name="Served"/>: this node answers for the customer now; false means "ask
/// again later" (start-up, rebalance), never "no such customer".
/// </summary>
/// <param name="Partition">The customer's Kafka partition (-1 when not known).</param>
/// <param name="WatermarkTicks">The partition's event-time watermark (UTC ticks; 0 before its first event).</param>
/// <param name="Rules">The rule set the state was evaluated with.</param>
public sealed record CustomerLookup(bool Served, CustomerState? State, int Partition, long WatermarkTicks, RuleSet Rules)
{
    /// <summary>
    /// Why the customer is not served here now, in a sentence for the 503 problem's detail (null when
    /// <see cref="Served"/>, or when the engine gives no reason).
    /// </summary>
    public string? NotServedReason { get; init; }

    /// <summary>The customer's profile as the API shows it, or null when there is no state.</summary>
    public CustomerProfile? Profile => State is null ? null : CustomerProfile.From(State, Partition, WatermarkTicks, Rules);
}
