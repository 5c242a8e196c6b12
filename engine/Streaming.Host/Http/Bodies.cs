using System.Text.Json;

namespace Streaming.Host.Http;

// The JSON bodies of the HTTP API (CONTRACTS.md §5, README "HTTP API"), as types so that /openapi/v1.json can describe
// them. Properties serialize camelCase; null values are written as null.

/// <summary><c>GET /healthz</c> and <c>GET /readyz</c> when the answer is yes.</summary>
public sealed record HealthBody(string Status, int? Partitions = null);

/// <summary><c>GET /v1/status</c>.</summary>
/// <param name="ConsumerLag">records behind the log ends of the owned partitions; null when no partition is owned</param>
public sealed record StatusBody(
    KafkaBody Kafka,
    long? ConsumerLag,
    long EventsProcessed,
    long DeadLetters,
    long Duplicates,
    long Checkpoints,
    long CheckpointSeq,
    long CachedCustomers,
    long Passivations,
    long FiringsPending,
    long OutboxBacklog,
    long TriggersPublished,
    IReadOnlyList<PartitionBody> Partitions,
    MirrorBody? Mirror)
{
    /// <summary>True once partitions are assigned (as <c>/readyz</c>); optional in the schema.</summary>
    public bool Ready { get; init; }
}

/// <summary>The broker the engine consumes from.</summary>
public sealed record KafkaBody(string BootstrapServers, bool Embedded);

/// <summary>One owned input partition: the next offset to process, records behind the log end, event-time watermark.</summary>
public sealed record PartitionBody(string Topic, int Partition, long Offset, long Lag, DateTimeOffset? Watermark);

/// <summary>The Redis mirror's progress (README "Redis mirror").</summary>
public sealed record MirrorBody(bool Enabled, string Endpoint, string Prefix, int Pending, long LagCheckpoints, long LastSeq, long PublishedSeq, long Writes, long Errors);

/// <summary><c>GET /v1/population</c>: counts per dimension value, transitions and timers, for the owned partitions.</summary>
public sealed record PopulationBody(
    string RuleVersion,
    long Customers,
    IReadOnlyDictionary<string, long> Lifecycle,
    IReadOnlyDictionary<string, long> Aarrr,
    IReadOnlyDictionary<string, long> Ladder,
    IReadOnlyDictionary<string, long> Tier,
    IReadOnlyDictionary<string, long> RfmSegment,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> Dimensions,
    IReadOnlyList<TransitionBody> Transitions,
    TimersBody Timers);

/// <summary>Customers that moved from one value of a dimension to another.</summary>
public sealed record TransitionBody(string Dimension, string From, string To, long Count);

/// <summary>Timer wake-ups evaluated, and those of them that were late.</summary>
public sealed record TimersBody(long Fired, long Late);

/// <summary><c>GET /v1/rules</c>: the rule set in force.</summary>
public sealed record RulesBody(
    string Name,
    string Version,
    string? Pending,
    string Origin,
    string? Directory,
    IReadOnlyList<RuleFileBody> Files,
    IReadOnlyList<LadderBody> Ladders,
    IReadOnlyList<ConditionBody> RfmSegments,
    IReadOnlyList<TierBody> Tiers,
    IReadOnlyList<ConditionBody> Tags,
    string ChurnRisk,
    RulesErrorBody? LastError);

/// <summary>One file of a rule set and its text.</summary>
public sealed record RuleFileBody(string File, string Text);

/// <summary>A stage ladder and its stages, first match wins.</summary>
public sealed record LadderBody(string Name, IReadOnlyList<LadderStageBody> Stages);

/// <summary>A stage of a ladder and its condition.</summary>
public sealed record LadderStageBody(string Stage, string When);

/// <summary>A named condition (an RFM segment or a tag).</summary>
public sealed record ConditionBody(string Name, string When);

/// <summary>A tier and the points it needs.</summary>
public sealed record TierBody(string Name, decimal Points);

/// <summary>The last rejected rule set.</summary>
public sealed record RulesErrorBody(DateTimeOffset At, string Origin, IReadOnlyList<RuleErrorBody> Errors);

/// <summary>One error of a rule set: where, what, and the whole as <c>file:line:column: message</c>.</summary>
public sealed record RuleErrorBody(string File, int Line, int Column, string Message, string Text);

/// <summary><c>PUT /v1/rules</c> accepted: the new version, switched to at the next checkpoint.</summary>
public sealed record RulesAcceptedBody(string Version, string Status, string Active);

/// <summary><c>POST /v1/outreach/lease</c>: the items leased.</summary>
public sealed record LeaseBody(IReadOnlyList<OutreachItemBody> Items);

/// <summary>An outreach item (CONTRACTS.md §7).</summary>
public sealed record OutreachItemBody(
    string OutreachId,
    string CustomerId,
    string Rule,
    string Channel,
    int Priority,
    DateTimeOffset? DueAt,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset? LeaseUntil,
    int Attempt,
    string State,
    string? Reason,
    string? Outcome,
    JsonElement Context);

/// <summary><c>GET /v1/customers/{id}/triggers</c>: the latest firings, newest first, and the customer's outreach items.</summary>
public sealed record CustomerTriggersBody(string CustomerId, IReadOnlyList<FiringBody> Firings, IReadOnlyList<OutreachItemBody> Outreach);

/// <summary>One firing with the rule's inputs when it fired, its delivery and what became of it.</summary>
public sealed record FiringBody(
    string Id,
    string Rule,
    string RuleVersion,
    DateTimeOffset? At,
    string? Channel,
    string Delivery,
    string? SuppressedBy,
    IReadOnlyDictionary<string, string> Reason,
    string? Outcome,
    OutreachItemBody? Outreach);

/// <summary><c>GET /v1/rules/{id}/lift</c>: conversion of contacted against held-out customers.</summary>
public sealed record LiftBody(
    string Rule,
    string RuleVersion,
    decimal HoldoutShare,
    double AttributionDays,
    LiftGroupBody Contacted,
    LiftGroupBody Holdout,
    SuppressedGroupBody Suppressed,
    decimal? Lift,
    decimal? RelativeLift);

/// <summary>Firings of one group, orders within the attribution window after them, and their rate (null without firings).</summary>
public sealed record LiftGroupBody(long Firings, long Conversions, decimal? Rate);

/// <summary>Suppressed firings and the orders after them (no rate: nobody was contacted).</summary>
public sealed record SuppressedGroupBody(long Firings, long Conversions);

/// <summary><c>GET /v1/audit</c>: a page of the audit trail, newest first.</summary>
/// <param name="Next">the <c>before</c> of the next page; null when this page is not full (a full last page is followed by an empty one)</param>
public sealed record AuditPageBody(IReadOnlyList<AuditEntryBody> Entries, long? Next);

/// <summary>
/// One audit entry: who (a token's name, or <c>directory</c> / <c>cli</c>), when, what. <c>Action</c> is one of
/// <c>rules.accepted</c>, <c>rules.rejected</c>, <c>outreach.ack</c>, <c>outreach.ack_refused</c>,
/// <c>outreach.release</c>, <c>outreach.release_refused</c>, <c>mirror.resync</c>, <c>backtest.started</c>,
/// <c>backtest.cancelled</c>; <c>Detail</c> names versions, ids, outcomes and the lease's dialer (README, "Audit trail").
/// </summary>
public sealed record AuditEntryBody(long Seq, DateTimeOffset At, string Actor, string Action, string Detail);
