using System.Text.Json;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Telemetry;
using Streaming.Engine.Rules;

namespace Streaming.Host.Hosting;

/// <summary>
/// Where the engine's rule set comes from and how it changes without a restart: a watched directory (the source of
/// truth when configured), else <c>PUT /v1/rules</c>. The set in force is stored with the checkpoint at which all
/// partitions switched to it, so a restart without a directory resumes with it. A rejected set leaves the running
/// one in force and is reported in <see cref="LastError"/>.
/// In a cluster the store is shared: a set accepted on any node is stored as the next revision of the rule setting, and
/// every node polls that revision and switches to a newer one (origin <c>cluster</c>), so all nodes run the latest
/// accepted set, in revision order.
/// </summary>
public sealed partial class RulesManager : IAsyncDisposable
{
    private readonly string? _directory;
    private readonly TimeSpan _pollInterval;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stop = new();
    private IStreamingEngine? _engine;
    private EngineInstruments? _instruments;
    private Task? _watcher;
    private string? _fingerprint;

    /// <summary>The cluster's shared store (null on a single node) and the last revision of the rule setting seen there.</summary>
    private ISettingStore? _shared;
    private long _revision;

    private RulesManager(string? directory, TimeSpan pollInterval, RuleSet initial, string origin, TimeProvider time, ILogger logger)
    {
        _time = time;
        _directory = directory;
        _pollInterval = pollInterval;
        _logger = logger;
        Initial = initial;
        Origin = origin;
    }

    /// <summary>The rule set the engine starts with.</summary>
    public RuleSet Initial { get; }

    /// <summary>Where the latest accepted rule set came from: <c>default</c>, <c>stored</c>, <c>directory</c>, <c>api</c> or <c>cluster</c> (accepted on another node).</summary>
    public string Origin { get; private set; }

    public string? Directory => _directory;

    /// <summary>The last rejected rule set's problems, or null if the last attempt succeeded.</summary>
    public RulesRejection? LastError { get; private set; }

    /// <summary>
    /// Chooses the starting rule set: the directory if configured (its errors stop the start), else the one stored by
    /// the last run, else the default pack. With <paramref name="audit"/>, the directory's set is recorded as
    /// <c>rules.accepted</c> by <c>directory</c> when its version differs from the one the store holds (the engine
    /// stores the set it runs at its first checkpoint: so files edited while the engine was down, or a first start), and a directory that cannot be loaded as <c>rules.rejected</c>.
    /// </summary>
    /// <exception cref="RuleSetException">The configured directory is missing or holds an invalid rule set.</exception>
    public static RulesManager Create(StreamingSettings settings, ISettingStore store, TimeProvider time, ILogger logger, AuditTrail? audit = null)
    {
        var poll = TimeSpan.FromMilliseconds(settings.RulesPollIntervalMs);
        if (settings.RulesDirectory is { } directory)
        {
            RuleSet loaded;
            string fingerprint;
            try
            {
                if (!System.IO.Directory.Exists(directory))
                {
                    throw new RuleSetException([new RuleError(directory, 0, 0, "the rules directory does not exist")]);
                }

                fingerprint = Fingerprint(directory);
                loaded = RuleSetLoader.LoadDirectory(directory);
            }
            catch (RuleSetException ex)
            {
                audit?.Record(AuditTrail.Directory, "rules.rejected", RejectionDetail(ex, "directory") + " at start");
                throw;
            }

            var manager = new RulesManager(directory, poll, loaded, "directory", time, logger) { Audit = audit };
            manager._fingerprint = fingerprint;
            manager.ShareIn(settings, store);
            if (RuleSetStorage.StoredVersion(store) != loaded.Version)
            {
                audit?.Record(AuditTrail.Directory, "rules.accepted", $"version {loaded.Version} from directory at start");
                manager.Publish(loaded);
            }

            return manager;
        }

        RulesManager? chosen = null;
        if (store.LoadSetting(RuleSetStorage.SettingKey) is { } stored)
        {
            try
            {
                chosen = new RulesManager(null, poll, RuleSetStorage.Deserialize(stored), "stored", time, logger) { Audit = audit };
            }
            catch (Exception ex) when (ex is RuleSetException or JsonException)
            {
                LogStoredRulesUnusable(logger, ex.Message);
            }
        }

        chosen ??= new RulesManager(null, poll, RuleSetLoader.Default, "default", time, logger) { Audit = audit };
        chosen.ShareIn(settings, store);
        return chosen;
    }

    /// <summary>A cluster node (seed nodes or discovery configured) shares its rule sets through <paramref name="store"/>, from its current revision on.</summary>
    private void ShareIn(StreamingSettings settings, ISettingStore store)
    {
        if (settings.IsCluster)
        {
            _shared = store;
            _revision = store.LoadRevision(RuleSetStorage.SettingKey).Revision;
        }
    }

    /// <summary>In a cluster: stores <paramref name="rules"/> as the next revision, for the other nodes to switch to.</summary>
    private void Publish(RuleSet rules)
    {
        if (_shared is { } shared)
        {
            _revision = shared.SaveRevision(RuleSetStorage.SettingKey, RuleSetStorage.Serialize(rules));
        }
    }

    /// <summary>
    /// In a cluster: checks the shared store once for a rule set accepted on another node (a newer revision) and, if its
    /// version differs from the one this node runs or waits for, switches to it (the watcher does this every poll
    /// interval). A stored set that no longer compiles is logged and skipped.
    /// </summary>
    public void PollCluster()
    {
        if (_shared is not { } shared)
        {
            return;
        }

        var (revision, value) = shared.LoadRevision(RuleSetStorage.SettingKey);
        if (revision <= _revision || value is null)
        {
            return;
        }

        _revision = revision;
        RuleSet rules;
        try
        {
            rules = RuleSetStorage.Deserialize(value);
        }
        catch (Exception ex) when (ex is RuleSetException or JsonException)
        {
            LogStoredRulesUnusable(_logger, ex.Message);
            return;
        }

        var current = _engine?.PendingRules ?? _engine?.ActiveRules;
        if (current is null || current.Version != rules.Version)
        {
            Accept(rules, "cluster", AuditTrail.Directory);
        }
    }

    /// <summary>Starts watching the directory (if any) and hands accepted rule sets to <paramref name="engine"/>.</summary>
    public void Start(IStreamingEngine engine, EngineInstruments? instruments = null)
    {
        _engine = engine;
        _instruments = instruments;
        LogRulesInForce(_logger, Initial.Version, Origin);
        if (_directory is not null || _shared is not null)
        {
            _watcher = Task.Run(() => WatchAsync(_stop.Token));
        }
    }

    /// <summary>Validates and, if valid, schedules a rule set sent over HTTP.</summary>
    /// <exception cref="RuleSetException">The text has errors; the running set stays.</exception>
    /// <exception cref="InvalidOperationException">A rules directory is configured: it is the source of truth.</exception>
    /// <summary>Where accepted and rejected rule sets are recorded (null: nowhere, e.g. in tests).</summary>
    public AuditTrail? Audit { get; set; }

    /// <param name="text">The rule file's text.</param>
    /// <param name="fileName">Its name in errors and in <c>GET /v1/rules</c>.</param>
    /// <param name="actor">Who sent it (the token's name), for the audit trail.</param>
    public RuleSet Submit(string text, string fileName, string actor = AuditTrail.Cli)
    {
        if (_directory is not null)
        {
            throw new InvalidOperationException($"rules come from the directory {_directory}; edit the files there");
        }

        RuleSet rules;
        try
        {
            rules = RuleSetLoader.Load([new RuleSource(fileName, text)]);
        }
        catch (RuleSetException ex)
        {
            Reject(ex, "api", actor);
            throw;
        }

        Accept(rules, "api", actor);
        return rules;
    }

    /// <summary>Checks the directory once (the watcher does this every poll interval).</summary>
    public void PollDirectory()
    {
        if (_directory is null)
        {
            return;
        }

        var fingerprint = Fingerprint(_directory);
        if (fingerprint == _fingerprint)
        {
            return;
        }

        _fingerprint = fingerprint;
        RuleSet rules;
        try
        {
            rules = RuleSetLoader.LoadDirectory(_directory);
        }
        catch (Exception ex) when (ex is RuleSetException or IOException or UnauthorizedAccessException)
        {
            Reject(ex as RuleSetException ?? new RuleSetException([new RuleError(_directory, 0, 0, ex.Message)]), "directory", AuditTrail.Directory);
            return;
        }

        var current = _engine?.PendingRules ?? _engine?.ActiveRules;
        if (current is not null && current.Version == rules.Version)
        {
            LastError = null;
            return;
        }

        Accept(rules, "directory", AuditTrail.Directory);
    }

    private void Accept(RuleSet rules, string origin, string actor)
    {
        if (origin != "cluster")
        {
            // The node that accepted it records it (the audit trail is shared in a cluster) and tells the others.
            Audit?.Record(actor, "rules.accepted", $"version {rules.Version} from {origin}");
            Publish(rules);
        }

        LastError = null;
        Origin = origin;
        _engine?.SwitchRules(rules);
        _instruments?.RulesReloads.Add(1, new KeyValuePair<string, object?>("result", "accepted"));
        LogRulesAccepted(_logger, rules.Version, origin);
    }

    private void Reject(RuleSetException ex, string origin, string actor)
    {
        Audit?.Record(actor, "rules.rejected", RejectionDetail(ex, origin));
        LastError = new RulesRejection(_time.GetUtcNow(), origin, ex.Errors);
        _instruments?.RulesReloads.Add(1, new KeyValuePair<string, object?>("result", "rejected"));
        foreach (var error in ex.Errors)
        {
            LogRuleError(_logger, error.ToString());
        }

        LogRulesRejected(_logger, ex.Errors.Count, origin, _engine?.ActiveRules.Version ?? Initial.Version);
    }

    /// <summary>What a rejection's audit entry says: how many errors, from where, and the first one's position (no text: it may quote the file).</summary>
    private static string RejectionDetail(RuleSetException ex, string origin)
    {
        var first = ex.Errors.Count > 0 ? ex.Errors[0] : null;
        return $"{ex.Errors.Count} error(s) from {origin}" + (first is null ? "" : $"; first at {first.File}:{first.Line}:{first.Column}");
    }

    private async Task WatchAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(_pollInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                try
                {
                    PollDirectory();
                    PollCluster();
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Data.Common.DbException)
                {
                    LogWatchFailed(_logger, ex.Message);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>Names, sizes and modification times of the rule files: cheap to compute, changes with any edit.</summary>
    private static string Fingerprint(string directory)
    {
        var files = RuleSetLoader.RuleFiles(directory)
            .Select(f => new FileInfo(f))
            .Select(f => $"{f.Name}:{f.Length}:{f.LastWriteTimeUtc.Ticks}");
        return string.Join("|", files);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_watcher is not null)
        {
            await _watcher.ConfigureAwait(false);
        }

        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Rules {Version} in force (from {Origin})")]
    private static partial void LogRulesInForce(ILogger logger, string version, string origin);

    [LoggerMessage(Level = LogLevel.Information, Message = "Rules {Version} accepted (from {Origin}); partitions switch at the next checkpoint")]
    private static partial void LogRulesAccepted(ILogger logger, string version, string origin);

    [LoggerMessage(Level = LogLevel.Error, Message = "Rule error: {Error}")]
    private static partial void LogRuleError(ILogger logger, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rules from {Origin} rejected with {Count} errors; {Version} stays in force")]
    private static partial void LogRulesRejected(ILogger logger, int count, string origin, string version);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The stored rule set cannot be used ({Reason}); starting with the default pack")]
    private static partial void LogStoredRulesUnusable(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Watching the rules directory or the cluster's rule set failed: {Reason}")]
    private static partial void LogWatchFailed(ILogger logger, string reason);
}

/// <summary>A rejected rule set: when, from where, and why.</summary>
public sealed record RulesRejection(DateTimeOffset At, string Origin, IReadOnlyList<RuleError> Errors);
