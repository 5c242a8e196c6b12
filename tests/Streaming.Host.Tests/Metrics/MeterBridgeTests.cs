using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Streaming.Host.Metrics;

namespace Streaming.Host.Tests.Metrics;

/// <summary>
/// <see cref="MeterBridge"/> with a private meter and its real prometheus-net registry: each test makes measurements,
/// lets prometheus-net write the exposition, and compares it with values computed here from the inputs.
/// </summary>
public sealed class MeterBridgeTests : IDisposable
{
    private readonly Meter _meter = new("Test.Bridge." + Guid.NewGuid().ToString("N"));
    private readonly RecordingLogger _log = new();
    private readonly MeterBridge _bridge;

    public MeterBridgeTests()
    {
        _bridge = new MeterBridge(new MeterBridgeOptions { MeterPrefixes = [_meter.Name] }, _log);
    }

    public void Dispose()
    {
        _bridge.Dispose();
        _meter.Dispose();
    }

    [Fact]
    public async Task Counter_sums_per_label_set_whatever_the_order_the_tags_come_in()
    {
        var counter = _meter.CreateCounter<long>("orders.placed", description: "Orders placed.");
        (string Channel, string Country, long Amount)[] adds =
        [
            ("web", "GB", 3), ("app", "GB", 5), ("web", "DE", 2), ("web", "GB", 4), ("app", "GB", 1), ("store", "FR", 7),
        ];
        for (var i = 0; i < adds.Length; i++)
        {
            var (channel, country, amount) = adds[i];
            if (i % 2 == 0)
            {
                counter.Add(amount, new("channel", channel), new("country", country));
            }
            else
            {
                counter.Add(amount, new("country", country), new("channel", channel));
            }
        }

        var exposition = await ScrapeAsync();
        var expected = adds.GroupBy(a => (a.Channel, a.Country)).ToDictionary(g => g.Key, g => g.Sum(a => a.Amount));
        foreach (var ((channel, country), sum) in expected)
        {
            Assert.Equal(sum.ToString(CultureInfo.InvariantCulture), exposition[$"orders_placed_total{{channel=\"{channel}\",country=\"{country}\"}}"]);
        }

        Assert.Equal(expected.Count, exposition.SeriesOf("orders_placed_total").Count());
        Assert.Equal(1, exposition.CountComments("# TYPE orders_placed_total counter"));
    }

    [Fact]
    public async Task Negative_nan_and_infinite_counter_increments_are_ignored_counted_and_logged_once()
    {
        var busy = _meter.CreateCounter<double>("engine.busy.time", unit: "s");
        var events = _meter.CreateCounter<long>("events.seen");
        double[] valid = [0.5, 0.25, 1.125];
        busy.Add(valid[0]);
        busy.Add(-10);
        busy.Add(valid[1]);
        busy.Add(double.NaN);
        busy.Add(double.PositiveInfinity);
        busy.Add(valid[2]);
        events.Add(4, new KeyValuePair<string, object?>("topic", "orders"));
        events.Add(-3, new KeyValuePair<string, object?>("topic", "orders"));
        events.Add(-1, new KeyValuePair<string, object?>("topic", "orders"));

        var exposition = await ScrapeAsync();
        Assert.Equal(valid.Sum(), double.Parse(exposition["engine_busy_time_seconds_total"], CultureInfo.InvariantCulture));
        Assert.Equal("4", exposition["events_seen_total{topic=\"orders\"}"]);
        Assert.Equal(5, _bridge.IgnoredMeasurements);
        var warnings = _log.Entries.Where(e => e.Level == LogLevel.Warning).Select(e => e.Message).ToList();
        Assert.Single(warnings, w => w.Contains("engine.busy.time", StringComparison.Ordinal));
        Assert.Single(warnings, w => w.Contains("events.seen", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_negative_observed_total_is_ignored_and_the_next_good_one_counts()
    {
        long total = 10;
        _meter.CreateObservableCounter("records.read", () => total);
        Assert.Equal("10", (await ScrapeAsync())["records_read_total"]);
        total = -5;
        Assert.Equal("10", (await ScrapeAsync())["records_read_total"]);
        total = 25;
        Assert.Equal("25", (await ScrapeAsync())["records_read_total"]);
        Assert.Equal(1, _bridge.IgnoredMeasurements);
    }

    [Fact]
    public async Task Concurrent_measurements_and_scrapes_lose_nothing()
    {
        var counter = _meter.CreateCounter<long>("parallel.adds");
        var real = _meter.CreateCounter<double>("parallel.real");
        var depth = _meter.CreateUpDownCounter<long>("parallel.depth");
        var histogram = _meter.CreateHistogram<double>("parallel.latency", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1, 2] });
        const int Threads = 8;
        const int PerThread = 20_000;
        string[] shards = ["a", "b", "c", "d"];
        var writers = Enumerable.Range(0, Threads).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < PerThread; i++)
            {
                var shard = shards[(t + i) % shards.Length];
                // Tags in both orders: still one series per shard.
                if (i % 2 == 0)
                {
                    counter.Add(1, new("shard", shard), new("kind", "x"));
                }
                else
                {
                    counter.Add(1, new("kind", "x"), new("shard", shard));
                }

                real.Add(0.5);
                depth.Add(i % 2 == 0 ? 3 : -1);
                histogram.Record(i % 3);
            }
        }));
        var scrapes = Task.Run(async () =>
        {
            for (var i = 0; i < 20; i++)
            {
                await ScrapeAsync();
            }
        });
        await Task.WhenAll([.. writers, scrapes]);

        var exposition = await ScrapeAsync();
        var perShard = new Dictionary<string, long>(StringComparer.Ordinal);
        long depthSum = 0;
        var histogramValues = new List<int>();
        for (var t = 0; t < Threads; t++)
        {
            for (var i = 0; i < PerThread; i++)
            {
                var shard = shards[(t + i) % shards.Length];
                perShard[shard] = perShard.GetValueOrDefault(shard) + 1;
                depthSum += i % 2 == 0 ? 3 : -1;
                histogramValues.Add(i % 3);
            }
        }

        foreach (var (shard, count) in perShard)
        {
            Assert.Equal(count.ToString(CultureInfo.InvariantCulture), exposition[$"parallel_adds_total{{kind=\"x\",shard=\"{shard}\"}}"]);
        }

        Assert.Equal(shards.Length, exposition.SeriesOf("parallel_adds_total").Count());
        Assert.Equal(Threads * PerThread * 0.5, double.Parse(exposition["parallel_real_total"], CultureInfo.InvariantCulture));
        Assert.Equal(depthSum.ToString(CultureInfo.InvariantCulture), exposition["parallel_depth"]);
        Assert.Equal(histogramValues.Count(v => v <= 1).ToString(CultureInfo.InvariantCulture), exposition["parallel_latency_bucket{le=\"1\"}"]);
        Assert.Equal(histogramValues.Count.ToString(CultureInfo.InvariantCulture), exposition["parallel_latency_bucket{le=\"+Inf\"}"]);
        Assert.Equal(histogramValues.Count.ToString(CultureInfo.InvariantCulture), exposition["parallel_latency_count"]);
    }

    [Fact]
    public async Task Instruments_of_one_name_share_a_family_and_one_of_a_conflicting_type_is_left_out_and_logged()
    {
        using var other = new Meter(_meter.Name + ".other");
        _meter.CreateCounter<long>("shared").Add(2, new KeyValuePair<string, object?>("k", "v"));
        other.CreateCounter<long>("shared").Add(3, new KeyValuePair<string, object?>("k", "v"));
        _meter.CreateGauge<long>("latency").Record(5);
        var histogram = other.CreateHistogram<double>("latency");
        histogram.Record(1);
        histogram.Record(2);

        var exposition = await ScrapeAsync();
        Assert.Equal((2 + 3).ToString(CultureInfo.InvariantCulture), exposition["shared_total{k=\"v\"}"]);
        Assert.Equal(1, exposition.CountComments("# TYPE shared_total counter"));
        Assert.Equal("5", exposition["latency"]);
        Assert.Equal(1, exposition.CountComments("# TYPE latency gauge"));
        Assert.Empty(exposition.SeriesOf("latency_count"));
        Assert.Single(_log.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("latency", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_disposed_meter_leaves_the_exposition_and_meters_outside_the_prefixes_are_ignored()
    {
        using var unrelated = new Meter("Unrelated." + Guid.NewGuid().ToString("N"));
        unrelated.CreateCounter<long>("unrelated").Add(1);
        var extra = new Meter(_meter.Name + ".extra");
        extra.CreateCounter<long>("temporary").Add(1);
        extra.CreateCounter<long>("temporary.tagged").Add(2, new KeyValuePair<string, object?>("k", "a"));
        var lag = 7L;
        extra.CreateObservableGauge("temporary.lag", () => new Measurement<long>(lag, new KeyValuePair<string, object?>("topic", "orders")));
        extra.CreateCounter<long>("both").Add(1);
        _meter.CreateCounter<long>("both").Add(4);
        _meter.CreateCounter<long>("lasting").Add(1);

        var before = await ScrapeAsync();
        Assert.Equal("1", before["temporary_total"]);
        Assert.Equal("2", before["temporary_tagged_total{k=\"a\"}"]);
        Assert.Equal("7", before["temporary_lag{topic=\"orders\"}"]);
        Assert.Equal("5", before["both_total"]);
        Assert.Empty(before.SeriesOf("unrelated_total"));

        extra.Dispose();
        lag = 9;
        var after = await ScrapeAsync();
        Assert.Empty(after.SeriesOf("temporary_total"));
        Assert.Empty(after.SeriesOf("temporary_tagged_total"));
        Assert.Empty(after.SeriesOf("temporary_lag"));
        // A family another live instrument still feeds stays.
        Assert.Equal("5", after["both_total"]);
        Assert.Equal("1", after["lasting_total"]);
    }

    [Fact]
    public async Task Histogram_buckets_are_cumulative_over_the_advised_bounds()
    {
        double[] bounds = [0.1, 0.5, 1, 5];
        var histogram = _meter.CreateHistogram("checkpoint.duration", unit: "s", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = bounds });
        double[] values = [0.05, 0.1, 0.3, 0.5, 0.7, 1, 2, 10, 0.0001, 4.999];
        foreach (var v in values)
        {
            histogram.Record(v, new KeyValuePair<string, object?>("store", "sqlite"));
        }

        var exposition = await ScrapeAsync();
        for (var i = 0; i < bounds.Length; i++)
        {
            var le = bounds[i].ToString(CultureInfo.InvariantCulture);
            Assert.Equal(values.Count(v => v <= bounds[i]).ToString(CultureInfo.InvariantCulture), exposition[$"checkpoint_duration_seconds_bucket{{store=\"sqlite\",le=\"{le}\"}}"]);
        }

        Assert.Equal(values.Length.ToString(CultureInfo.InvariantCulture), exposition["checkpoint_duration_seconds_bucket{store=\"sqlite\",le=\"+Inf\"}"]);
        Assert.Equal(values.Sum(), double.Parse(exposition["checkpoint_duration_seconds_sum{store=\"sqlite\"}"], CultureInfo.InvariantCulture), 12);
    }

    [Fact]
    public async Task Observed_series_no_longer_reported_leave_the_exposition()
    {
        var lag = new Dictionary<string, long>(StringComparer.Ordinal) { ["orders"] = 42, ["clickstream"] = 7 };
        _meter.CreateObservableGauge("consumer.lag", () => lag.Select(kv => new Measurement<long>(kv.Value, new KeyValuePair<string, object?>("topic", kv.Key))));
        var first = await ScrapeAsync();
        Assert.Equal("42", first["consumer_lag{topic=\"orders\"}"]);
        Assert.Equal("7", first["consumer_lag{topic=\"clickstream\"}"]);

        lag.Remove("clickstream");
        lag["orders"] = 40;
        var next = await ScrapeAsync();
        Assert.Equal("40", next["consumer_lag{topic=\"orders\"}"]);
        Assert.Single(next.SeriesOf("consumer_lag"));
    }

    private async Task<Exposition> ScrapeAsync()
    {
        using var stream = new MemoryStream();
        await _bridge.Registry.CollectAndExportAsTextAsync(stream);
        return Exposition.Parse(Encoding.UTF8.GetString(stream.ToArray()));
    }

    /// <summary>A logger that keeps what it is given.</summary>
    private sealed class RecordingLogger : ILogger<MeterBridge>
    {
        private readonly List<(LogLevel Level, string Message)> _entries = [];

        public IReadOnlyList<(LogLevel Level, string Message)> Entries
        {
            get
            {
                lock (_entries)
                {
                    return [.. _entries];
                }
            }
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_entries)
            {
                _entries.Add((logLevel, formatter(state, exception)));
            }
        }
    }
}
