using System.Diagnostics;
using System.Globalization;
using System.Text;
using Streaming.Connectors.Datasets;
using Streaming.Connectors.Kafka;
using Streaming.Engine.Events;
using Streaming.Engine.Rules;
using Streaming.Runtime.Local;
using Streaming.Runtime.Partitions;

namespace Streaming.Connectors.Backtest;

/// <summary>Settings of a backtest: how the records are spread and how time advances, as in the live engine.</summary>
public sealed record BacktestOptions
{
    /// <summary>Partitions of the input topics the replay would produce into (the broker's default is 16).</summary>
    public int Partitions { get; init; } = 16;

    /// <summary>The engine's allowed lateness: each partition's watermark trails its latest event time by this.</summary>
    public TimeSpan AllowedLateness { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Records between checkpoints (firings are collected, states stored and timers indexed at each).</summary>
    public int CheckpointEveryRecords { get; init; } = 50_000;

    /// <summary>How often progress is reported.</summary>
    public TimeSpan ProgressInterval { get; init; } = TimeSpan.FromSeconds(3);
}

/// <summary>Progress of a backtest: records fed so far and the share of the (compressed) file read.</summary>
public readonly record struct BacktestProgress(long Records, double FileShare, TimeSpan Elapsed);

/// <summary>What one rule did over a backtest.</summary>
public sealed record RuleOutcome
{
    /// <summary>Firings, whatever their delivery.</summary>
    public long Fired { get; init; }

    /// <summary>Firings per delivery: <c>queued</c>, <c>suppressed</c>, <c>holdout</c>, <c>notify</c> (all four, zeros included).</summary>
    public required SortedDictionary<string, long> ByDelivery { get; init; }

    /// <summary>Suppressed firings per check that stopped them (<c>consent</c>, <c>cap</c>, …).</summary>
    public required SortedDictionary<string, long> SuppressedBy { get; init; }

    /// <summary>Distinct customers it fired for.</summary>
    public long Customers { get; init; }

    /// <summary>Firings per calendar month (<c>yyyy-MM</c>, UTC) of the event-time instant they fired at.</summary>
    public required SortedDictionary<string, long> PerMonth { get; init; }
}

/// <summary>The result of running one rule set over one dataset.</summary>
public sealed record BacktestResult
{
    public required string RuleVersion { get; init; }
    public required string Dataset { get; init; }
    public required string File { get; init; }

    /// <summary>Records fed to the engine (the events a replay of the file produces).</summary>
    public long Records { get; init; }

    public long DeadLetters { get; init; }
    public long Duplicates { get; init; }

    /// <summary>Distinct customers the engine created.</summary>
    public long Customers { get; init; }

    public int Partitions { get; init; }
    public int AllowedLatenessSeconds { get; init; }

    /// <summary>Each partition's watermark at the end: time stopped there (latest event time minus the allowed lateness).</summary>
    public required SortedDictionary<int, DateTimeOffset> Watermarks { get; init; }

    /// <summary>Every trigger of the rule set, fired or not, by id.</summary>
    public required SortedDictionary<string, RuleOutcome> Rules { get; init; }

    public double ElapsedSeconds { get; init; }
}

/// <summary>
/// Runs the engine over a dataset file in event time, with no side effects: the records a <c>streaming replay</c> would
/// produce, in the same order, go to the partition (chosen as the replay's producer chooses it, see
/// <see cref="KeyPartitioner"/>) of a <see cref="LocalEngine"/> per rule set: the actor runtime's coordinators and
/// customer entities in a local actor system on the in-memory journal. No broker, no files written, nothing published;
/// firings are only counted. Each partition's time advances with its own events exactly as in the live engine and stops
/// at its last event time minus the allowed lateness.
/// </summary>
public static class Backtester
{
    /// <summary>How long one step (a start, a checkpoint of every partition, a status read) may take.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(5);

    public static readonly IReadOnlyList<string> Deliveries =
        [TriggerNames.Of(Delivery.Queued), TriggerNames.Of(Delivery.Suppressed), TriggerNames.Of(Delivery.Holdout), TriggerNames.Of(Delivery.Notify)];

    /// <summary>
    /// Runs every rule set over one pass of the file (each in its own actor system); results in the order given. Every
    /// <see cref="BacktestOptions.CheckpointEveryRecords"/> records each partition checkpoints, and the pass waits until
    /// those checkpoints are complete, which bounds the records held in memory.
    /// </summary>
    /// <exception cref="FileNotFoundException">The dataset file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not the dataset it is said to be.</exception>
    /// <exception cref="TimeoutException">The actor runtime did not answer within five minutes.</exception>
    public static async Task<IReadOnlyList<BacktestResult>> RunAsync(
        IReadOnlyList<RuleSet> ruleSets,
        string dataset,
        string path,
        BacktestOptions options,
        Action<BacktestProgress>? progress,
        CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Partitions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.CheckpointEveryRecords, 1);
        var watch = Stopwatch.StartNew();
        var coordinatorOptions = new PartitionCoordinatorOptions { AllowedLateness = options.AllowedLateness };
        var runs = new List<RuleSetRun>();
        try
        {
            foreach (var rules in ruleSets)
            {
                var run = new RuleSetRun(rules);
                runs.Add(run);
                await run.StartAsync(options.Partitions, coordinatorOptions).ConfigureAwait(false);
            }

            var offsets = new long[Topics.Inputs.Count, options.Partitions];
            var last = new Dictionary<(int Partition, string Topic), long>();
            var decoder = new EventDecoder();
            var keyBuffer = new byte[256];
            long records = 0;
            var lastProgress = TimeSpan.Zero;
            using (var file = new DatasetFile(path))
            {
                foreach (var record in Datasets.Datasets.Read(dataset, file))
                {
                    if (!Topics.TryParseInput(record.Topic, out var topic))
                    {
                        throw new InvalidOperationException($"the {dataset} reader produced a record for '{record.Topic}', which is not an input topic");
                    }

                    var keyLength = Encoding.UTF8.GetByteCount(record.Key);
                    if (keyLength > keyBuffer.Length)
                    {
                        keyBuffer = new byte[Math.Max(keyLength, keyBuffer.Length * 2)];
                    }

                    var key = keyBuffer.AsSpan(0, Encoding.UTF8.GetBytes(record.Key, keyBuffer));
                    var partition = KeyPartitioner.Partition(key, options.Partitions);
                    var offset = offsets[(int)topic, partition]++;
                    var decoded = decoder.TryDecode(topic, key, record.Value, null, out var evt, out var error)
                        ? new PartitionRecord(record.Topic, offset, evt)
                        : new PartitionRecord(record.Topic, offset, null, error);
                    foreach (var run in runs)
                    {
                        run.Engine.Send(partition, decoded);
                    }

                    last[(partition, record.Topic)] = offset;
                    records++;
                    if (records % options.CheckpointEveryRecords == 0)
                    {
                        foreach (var run in runs)
                        {
                            await run.Engine.CheckpointThroughAsync(last, Patience, cancellationToken).ConfigureAwait(false);
                        }
                    }

                    if ((records & 1023) == 0)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        if (progress is not null && watch.Elapsed - lastProgress >= options.ProgressInterval)
                        {
                            lastProgress = watch.Elapsed;
                            progress(new BacktestProgress(records, file.Progress, watch.Elapsed));
                        }
                    }
                }

                progress?.Invoke(new BacktestProgress(records, 1, watch.Elapsed));
            }

            var results = new BacktestResult[runs.Count];
            for (var i = 0; i < runs.Count; i++)
            {
                await runs[i].Engine.CheckpointThroughAsync(last, Patience, cancellationToken).ConfigureAwait(false);
                results[i] = await runs[i].ResultAsync(dataset, path, records, options, watch.Elapsed).ConfigureAwait(false);
            }

            return results;
        }
        finally
        {
            foreach (var run in runs)
            {
                await run.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>One rule set's engine and tallies.</summary>
    private sealed class RuleSetRun(RuleSet rules) : IAsyncDisposable
    {
        private readonly Dictionary<string, Tally> _tallies = rules.Triggers.ToDictionary(t => t.Id, _ => new Tally(), StringComparer.Ordinal);
        private readonly HashSet<string> _customers = new(StringComparer.Ordinal);
        private LocalEngine? _engine;

        public LocalEngine Engine => _engine ?? throw new InvalidOperationException("not started");

        public async Task StartAsync(int partitions, PartitionCoordinatorOptions options) =>
            _engine = await LocalEngine.StartAsync("backtest", partitions, rules, options, Count, Patience).ConfigureAwait(false);

        /// <summary>Counts a completed checkpoint's firings (called on the engine's listener, one checkpoint at a time).</summary>
        private void Count(CheckpointCompleted done)
        {
            lock (_tallies)
            {
                _customers.UnionWith(done.ChangedCustomers);
                foreach (var firing in done.Firings)
                {
                    if (!_tallies.TryGetValue(firing.Rule, out var tally))
                    {
                        tally = new Tally();
                        _tallies.Add(firing.Rule, tally);
                    }

                    tally.Add(firing);
                }
            }
        }

        public async Task<BacktestResult> ResultAsync(string dataset, string path, long records, BacktestOptions options, TimeSpan elapsed)
        {
            var status = await Engine.StatusAsync(Patience).ConfigureAwait(false);
            var watermarks = new SortedDictionary<int, DateTimeOffset>();
            foreach (var partition in status.Where(s => s.WatermarkTicks > 0))
            {
                watermarks[partition.Partition] = new DateTimeOffset(partition.WatermarkTicks, TimeSpan.Zero);
            }

            var outcomes = new SortedDictionary<string, RuleOutcome>(StringComparer.Ordinal);
            long customers;
            lock (_tallies)
            {
                customers = _customers.Count;
                foreach (var (rule, tally) in _tallies)
                {
                    outcomes[rule] = tally.ToOutcome();
                }
            }

            return new BacktestResult
            {
                RuleVersion = rules.Version,
                Dataset = dataset,
                File = path,
                Records = records,
                DeadLetters = status.Sum(s => s.DeadLetters),
                Duplicates = status.Sum(s => s.Duplicates),

                // A customer exists once a record changed it, so it is among some checkpoint's changed customers.
                Customers = customers,
                Partitions = options.Partitions,
                AllowedLatenessSeconds = (int)options.AllowedLateness.TotalSeconds,
                Watermarks = watermarks,
                Rules = outcomes,
                ElapsedSeconds = Math.Round(elapsed.TotalSeconds, 3),
            };
        }

        public async ValueTask DisposeAsync()
        {
            if (_engine is not null)
            {
                await _engine.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private sealed class Tally
    {
        private readonly SortedDictionary<string, long> _byDelivery = new(StringComparer.Ordinal);
        private readonly SortedDictionary<string, long> _suppressedBy = new(StringComparer.Ordinal);
        private readonly SortedDictionary<string, long> _perMonth = new(StringComparer.Ordinal);
        private readonly HashSet<string> _customers = new(StringComparer.Ordinal);
        private long _fired;

        public Tally()
        {
            foreach (var delivery in Deliveries)
            {
                _byDelivery[delivery] = 0;
            }
        }

        public void Add(TriggerFiring firing)
        {
            _fired++;
            var delivery = TriggerNames.Of(firing.Delivery);
            _byDelivery[delivery] = _byDelivery.GetValueOrDefault(delivery) + 1;
            if (firing.SuppressedBy is { } check)
            {
                _suppressedBy[check] = _suppressedBy.GetValueOrDefault(check) + 1;
            }

            var month = new DateTime(firing.AtTicks, DateTimeKind.Utc).ToString("yyyy-MM", CultureInfo.InvariantCulture);
            _perMonth[month] = _perMonth.GetValueOrDefault(month) + 1;
            _customers.Add(firing.CustomerId);
        }

        public RuleOutcome ToOutcome() => new()
        {
            Fired = _fired,
            ByDelivery = new SortedDictionary<string, long>(_byDelivery, StringComparer.Ordinal),
            SuppressedBy = new SortedDictionary<string, long>(_suppressedBy, StringComparer.Ordinal),
            Customers = _customers.Count,
            PerMonth = new SortedDictionary<string, long>(_perMonth, StringComparer.Ordinal),
        };
    }
}
