using System.Collections.Concurrent;
using System.Text.Json;
using Streaming.Connectors.Backtest;
using Streaming.Connectors.Datasets;
using Streaming.Engine.Rules;

namespace Streaming.Host.Hosting;

/// <summary>State of one backtest run started over HTTP: <c>running</c>, then <c>done</c>, <c>failed</c> or <c>cancelled</c>.</summary>
public static class BacktestStates
{
    public const string Running = "running";
    public const string Done = "done";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
}

/// <summary>
/// One backtest started by <c>POST /v1/backtests</c>. Progress is updated from the run's thread; <see cref="Result"/>
/// is, once <see cref="State"/> is <c>done</c>, the JSON document <c>streaming backtest --out</c> writes for the same
/// rule sets (a single result, or base/compare/diff when a second set is compared).
/// </summary>
public sealed class BacktestRun
{
    internal BacktestRun(string id, string dataset, string actor, IReadOnlyList<string> ruleVersions, DateTimeOffset startedAt)
    {
        Id = id;
        Dataset = dataset;
        Actor = actor;
        RuleVersions = ruleVersions;
        StartedAt = startedAt;
    }

    public string Id { get; }
    public string Dataset { get; }

    /// <summary>Who started it (token name).</summary>
    public string Actor { get; }

    /// <summary>Versions of the rule sets run, in order: base first.</summary>
    public IReadOnlyList<string> RuleVersions { get; }

    public DateTimeOffset StartedAt { get; }
    public DateTimeOffset? FinishedAt { get; internal set; }
    public string State { get; internal set; } = BacktestStates.Running;

    /// <summary>Records read so far.</summary>
    public long Records { get; internal set; }

    /// <summary>Share of the dataset file read so far, 0–1 (1 once done).</summary>
    public double FileShare { get; internal set; }

    /// <summary>Why it failed (null otherwise).</summary>
    public string? Error { get; internal set; }

    /// <summary>The CLI's <c>--out</c> document, once done.</summary>
    public JsonElement? Result { get; internal set; }

    internal CancellationTokenSource Cancellation { get; } = new();
}

/// <summary>
/// Runs backtests for the HTTP API one at a time on a thread of their own, with no effect on the live engine: the
/// <see cref="Backtester"/> reads the dataset file into in-memory stores of its own, publishes nothing and writes
/// nothing. Datasets are read only from the data directory (a request names a dataset, never a path). Keeps the
/// last <see cref="Kept"/> runs.
/// </summary>
public sealed partial class BacktestRunner(StreamingSettings settings, TimeProvider clock, ILogger logger) : IDisposable
{
    /// <summary>How many runs (finished or not) are remembered.</summary>
    public const int Kept = 8;

    /// <summary>The JSON options of <c>streaming backtest --out</c> (camelCase, indented).</summary>
    public static readonly JsonSerializerOptions CliJson = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    private readonly ConcurrentDictionary<string, BacktestRun> _runs = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private BacktestRun? _current;
    private long _next;

    /// <summary>The run with this id, or null.</summary>
    public BacktestRun? Find(string id) => _runs.GetValueOrDefault(id);

    /// <summary>The run in progress, if any.</summary>
    public BacktestRun? Current
    {
        get
        {
            lock (_gate)
            {
                return _current;
            }
        }
    }

    /// <summary>
    /// Starts a run of <paramref name="ruleSets"/> (base first) over <paramref name="dataset"/>'s usual file in the data
    /// directory. Returns the run, or null when one is already running (see <see cref="Current"/>).
    /// </summary>
    /// <exception cref="FileNotFoundException">The dataset's file is not in the data directory.</exception>
    /// <exception cref="DirectoryNotFoundException">No data directory.</exception>
    public BacktestRun? Start(IReadOnlyList<RuleSet> ruleSets, string dataset, string actor)
    {
        var path = Path.Combine(DataDirectory.Resolve(settings.BacktestDataDir), Datasets.DefaultFile(dataset));
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"the {dataset} file is not in the data directory", Path.GetFileName(path));
        }

        BacktestRun run;
        lock (_gate)
        {
            if (_current is not null)
            {
                return null;
            }

            var id = "bt-" + clock.GetUtcNow().ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture) + "-" + Interlocked.Increment(ref _next);
            run = new BacktestRun(id, dataset, actor, [.. ruleSets.Select(r => r.Version)], clock.GetUtcNow());
            _current = run;
            _runs[id] = run;
            foreach (var old in _runs.Values.OrderByDescending(r => r.StartedAt).Skip(Kept))
            {
                _runs.TryRemove(old.Id, out _);
            }
        }

        var options = new BacktestOptions
        {
            Partitions = settings.Partitions,
            AllowedLateness = TimeSpan.FromSeconds(settings.AllowedLatenessSeconds),
            ProgressInterval = TimeSpan.FromMilliseconds(500),
        };
        _ = Task.Run(() => ExecuteAsync(run, ruleSets, path, options), CancellationToken.None);
        return run;
    }

    /// <summary>Asks a running backtest to stop; false when it is not running.</summary>
    public bool Cancel(string id)
    {
        if (Find(id) is not { State: BacktestStates.Running } run)
        {
            return false;
        }

        run.Cancellation.Cancel();
        return true;
    }

    private async Task ExecuteAsync(BacktestRun run, IReadOnlyList<RuleSet> ruleSets, string path, BacktestOptions options)
    {
        try
        {
            var results = await Backtester.RunAsync(ruleSets, run.Dataset, path, options, p =>
            {
                run.Records = p.Records;
                run.FileShare = p.FileShare;
            }, run.Cancellation.Token).ConfigureAwait(false);
            object document = results.Count == 1 ? results[0] : BacktestComparison.Of(results[0], results[1]);
            run.Result = JsonSerializer.SerializeToElement(document, CliJson);
            run.Records = results[0].Records;
            run.FileShare = 1;
            run.State = BacktestStates.Done;
        }
        catch (OperationCanceledException)
        {
            run.State = BacktestStates.Cancelled;
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or FormatException or InvalidOperationException or TimeoutException)
        {
            run.Error = ex.Message;
            run.State = BacktestStates.Failed;
            LogFailed(logger, run.Id, ex.Message);
        }
        finally
        {
            run.FinishedAt = clock.GetUtcNow();
            lock (_gate)
            {
                _current = null;
            }
        }
    }

    public void Dispose()
    {
        foreach (var run in _runs.Values)
        {
            run.Cancellation.Cancel();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Backtest {Id} failed: {Message}")]
    private static partial void LogFailed(ILogger logger, string id, string message);
}
