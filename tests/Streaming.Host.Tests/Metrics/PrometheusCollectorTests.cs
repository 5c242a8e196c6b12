using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Streaming.Host.Metrics;

namespace Streaming.Host.Tests.Metrics;

/// <summary>The exposition of a private meter's instruments; expected values are computed here from the inputs.</summary>
public sealed class PrometheusCollectorTests : IDisposable
{
    private readonly Meter _meter = new("Test.Metrics." + Guid.NewGuid().ToString("N"));
    private readonly PrometheusCollector _collector;

    public PrometheusCollectorTests()
    {
        _collector = NewCollector(_meter.Name);
    }

    public void Dispose()
    {
        _collector.Dispose();
        _meter.Dispose();
    }

    [Fact]
    public void Content_type_is_the_text_format_0_0_4()
    {
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", PrometheusCollector.ContentType);
    }

    [Fact]
    public void Counter_sums_per_label_set_whatever_the_tag_order()
    {
        var counter = _meter.CreateCounter<long>("orders.placed", unit: "{order}", description: "Orders placed.");
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

        var exposition = Scrape();
        var expected = adds.GroupBy(a => (a.Channel, a.Country)).ToDictionary(g => g.Key, g => g.Sum(a => a.Amount));
        foreach (var ((channel, country), sum) in expected)
        {
            Assert.Equal(sum.ToString(CultureInfo.InvariantCulture), exposition[$"orders_placed_total{{channel=\"{channel}\",country=\"{country}\"}}"]);
        }

        Assert.Equal(expected.Count, exposition.SeriesOf("orders_placed_total").Count());
        Assert.Equal(1, exposition.CountComments("# HELP orders_placed_total Orders placed."));
        Assert.Equal(1, exposition.CountComments("# TYPE orders_placed_total counter"));
    }

    [Fact]
    public void Floating_counter_with_unit_seconds_gets_both_suffixes_and_ignores_negative_increments()
    {
        var counter = _meter.CreateCounter<double>("engine.busy.time", unit: "s");
        double[] adds = [0.5, 0.25, 1.125];
        foreach (var add in adds)
        {
            counter.Add(add);
        }

        counter.Add(-10);

        var exposition = Scrape();
        Assert.Equal(adds.Sum(), double.Parse(exposition["engine_busy_time_seconds_total"], CultureInfo.InvariantCulture));
        Assert.Equal(1, exposition.CountComments("# TYPE engine_busy_time_seconds_total counter"));
        // No description: the HELP line names the instrument and its meter.
        Assert.Equal(1, exposition.CountComments($"# HELP engine_busy_time_seconds_total engine.busy.time of meter {_meter.Name}"));
    }

    [Fact]
    public void Histogram_buckets_are_cumulative_from_the_advised_bounds_and_inf_equals_count()
    {
        double[] bounds = [0.1, 0.5, 1, 5];
        var histogram = _meter.CreateHistogram("checkpoint.duration", unit: "s", description: "Checkpoint time.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = bounds });
        double[] values = [0.05, 0.1, 0.3, 0.5, 0.7, 1, 2, 10, 0.0001, 4.999];
        foreach (var v in values)
        {
            histogram.Record(v, new KeyValuePair<string, object?>("store", "sqlite"));
        }

        var exposition = Scrape();
        const string Name = "checkpoint_duration_seconds";
        string[] le = ["0.1", "0.5", "1", "5"];
        for (var i = 0; i < bounds.Length; i++)
        {
            var expected = values.Count(v => v <= bounds[i]);
            Assert.Equal(expected.ToString(CultureInfo.InvariantCulture), exposition[$"{Name}_bucket{{store=\"sqlite\",le=\"{le[i]}\"}}"]);
        }

        var count = values.Length.ToString(CultureInfo.InvariantCulture);
        Assert.Equal(count, exposition[$"{Name}_bucket{{store=\"sqlite\",le=\"+Inf\"}}"]);
        Assert.Equal(count, exposition[$"{Name}_count{{store=\"sqlite\"}}"]);
        Assert.Equal(values.Sum(), double.Parse(exposition[$"{Name}_sum{{store=\"sqlite\"}}"], CultureInfo.InvariantCulture), 12);
        Assert.Equal(bounds.Length + 3, exposition.Samples.Count);
        Assert.Equal(1, exposition.CountComments($"# TYPE {Name} histogram"));
    }

    [Fact]
    public void Histogram_without_advice_uses_default_bounds_still_cumulative()
    {
        var histogram = _meter.CreateHistogram<int>("batch.size", unit: "{record}");
        int[] values = [1, 3, 7, 12, 60, 99, 400, 20000];
        foreach (var v in values)
        {
            histogram.Record(v);
        }

        var exposition = Scrape();
        var buckets = exposition.Samples.Where(s => s.Key.StartsWith("batch_size_bucket{", StringComparison.Ordinal)).ToList();
        Assert.True(buckets.Count > 2, "expected default buckets: " + exposition.Text);
        var bounds = buckets.Select(b => b.Key[(b.Key.IndexOf("le=\"", StringComparison.Ordinal) + 4)..^2]).ToList();
        Assert.Equal("+Inf", bounds[^1]);
        long previous = 0;
        for (var i = 0; i < buckets.Count - 1; i++)
        {
            var bound = double.Parse(bounds[i], CultureInfo.InvariantCulture);
            var cumulative = long.Parse(buckets[i].Value, CultureInfo.InvariantCulture);
            Assert.Equal(values.Count(v => v <= bound), cumulative);
            Assert.True(cumulative >= previous);
            previous = cumulative;
        }

        Assert.Equal(values.Length.ToString(CultureInfo.InvariantCulture), buckets[^1].Value);
        Assert.Equal(values.Length.ToString(CultureInfo.InvariantCulture), exposition["batch_size_count"]);
        Assert.Equal(values.Sum().ToString(CultureInfo.InvariantCulture), exposition["batch_size_sum"]);
    }

    [Fact]
    public void Gauges_from_up_down_counters_gauges_and_observable_gauges()
    {
        var depth = _meter.CreateUpDownCounter<long>("queue.depth", unit: "{item}");
        int[] deltas = [5, -2, 4, -1];
        foreach (var d in deltas)
        {
            depth.Add(d, new KeyValuePair<string, object?>("partition", 3));
        }

        var temperature = _meter.CreateGauge<double>("rule.score");
        temperature.Record(3.5);
        temperature.Record(-1.25);

        var lag = new Dictionary<string, long> { ["orders"] = 42, ["clickstream"] = 7 };
        _meter.CreateObservableGauge("consumer.lag", () => lag.Select(kv => new Measurement<long>(kv.Value, new KeyValuePair<string, object?>("topic", kv.Key))), unit: "{record}");

        var exposition = Scrape();
        Assert.Equal(deltas.Sum().ToString(CultureInfo.InvariantCulture), exposition["queue_depth{partition=\"3\"}"]);
        Assert.Equal("-1.25", exposition["rule_score"]);
        Assert.Equal("42", exposition["consumer_lag{topic=\"orders\"}"]);
        Assert.Equal("7", exposition["consumer_lag{topic=\"clickstream\"}"]);
        Assert.Equal(1, exposition.CountComments("# TYPE queue_depth gauge"));
        Assert.Equal(1, exposition.CountComments("# TYPE rule_score gauge"));
        Assert.Equal(1, exposition.CountComments("# TYPE consumer_lag gauge"));

        // An observed series that is no longer reported leaves the exposition; the others take their new values.
        lag.Remove("clickstream");
        lag["orders"] = 40;
        var next = Scrape();
        Assert.Equal("40", next["consumer_lag{topic=\"orders\"}"]);
        Assert.Single(next.SeriesOf("consumer_lag"));
    }

    [Fact]
    public void Observable_counter_reports_the_callbacks_total_at_each_scrape()
    {
        long total = 10;
        _meter.CreateObservableCounter("records.read", () => total);
        Assert.Equal("10", Scrape()["records_read_total"]);
        total = 25;
        Assert.Equal("25", Scrape()["records_read_total"]);
        Assert.Equal("25", Scrape()["records_read_total"]);
    }

    [Fact]
    public void Label_values_and_help_are_escaped()
    {
        var counter = _meter.CreateCounter<int>("dead.letters", description: "Records refused.\nSee C:\\docs for why.");
        const string Awkward = "a\\b\"c\nd e";
        counter.Add(2, new KeyValuePair<string, object?>("reason", Awkward));

        var exposition = Scrape();
        Assert.Equal("2", exposition["dead_letters_total{reason=\"a\\\\b\\\"c\\nd e\"}"]);
        Assert.Equal(1, exposition.CountComments("# HELP dead_letters_total Records refused.\\nSee C:\\\\docs for why."));
    }

    [Fact]
    public void Tag_keys_become_label_names_and_values_render_invariantly()
    {
        var counter = _meter.CreateCounter<long>("http-requests");
        counter.Add(1, new("http.route", "/v1/status"), new("1st", true), new("code", 200), new("empty", ""), new("none", null));
        // The same labels as text through other value types: one series.
        counter.Add(2, new("http.route", "/v1/status"), new("1st", "true"), new("code", 200L), new("empty", null));
        counter.Add(4, new("http.route", "/v1/status"), new("1st", true), new("code", "200"));

        var exposition = Scrape();
        Assert.Equal("7", exposition["http_requests_total{code=\"200\",http_route=\"/v1/status\",tag_1st=\"true\"}"]);
        Assert.Single(exposition.SeriesOf("http_requests_total"));
    }

    [Fact]
    public void Series_beyond_the_limit_go_to_one_overflow_series()
    {
        using var meter = new Meter("Test.Metrics." + Guid.NewGuid().ToString("N"));
        using var collector = NewCollector(meter.Name, maxSeries: 3);
        var counter = meter.CreateCounter<long>("events");
        for (var i = 0; i < 6; i++)
        {
            counter.Add(i + 1, new KeyValuePair<string, object?>("customer", "c" + i));
        }

        var exposition = Exposition.Parse(collector.Scrape());
        Assert.Equal(4, exposition.SeriesOf("events_total").Count());
        Assert.Equal("1", exposition["events_total{customer=\"c0\"}"]);
        Assert.Equal("3", exposition["events_total{customer=\"c2\"}"]);
        Assert.Equal((4 + 5 + 6).ToString(CultureInfo.InvariantCulture), exposition["events_total{otel_metric_overflow=\"true\"}"]);
    }

    [Fact]
    public async Task Concurrent_measurements_are_all_counted()
    {
        var counter = _meter.CreateCounter<long>("parallel.adds");
        var real = _meter.CreateCounter<double>("parallel.real");
        var histogram = _meter.CreateHistogram<double>("parallel.latency", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1, 2] });
        const int Threads = 8;
        const int PerThread = 20_000;
        string[] shards = ["a", "b", "c", "d"];
        var tasks = Enumerable.Range(0, Threads).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < PerThread; i++)
            {
                var shard = shards[(t + i) % shards.Length];
                counter.Add(1, new KeyValuePair<string, object?>("shard", shard));
                real.Add(0.5);
                histogram.Record(i % 3);
            }
        }));
        // Scrapes while the writers run must not disturb them.
        var scrapes = Task.Run(() =>
        {
            for (var i = 0; i < 20; i++)
            {
                Exposition.Parse(_collector.Scrape());
            }
        });
        await Task.WhenAll([.. tasks, scrapes]);

        var exposition = Scrape();
        var perShard = Enumerable.Range(0, Threads).SelectMany(t => Enumerable.Range(0, PerThread).Select(i => shards[(t + i) % shards.Length]))
            .GroupBy(s => s).ToDictionary(g => g.Key, g => g.LongCount());
        foreach (var (shard, count) in perShard)
        {
            Assert.Equal(count.ToString(CultureInfo.InvariantCulture), exposition[$"parallel_adds_total{{shard=\"{shard}\"}}"]);
        }

        Assert.Equal(Threads * PerThread * 0.5, double.Parse(exposition["parallel_real_total"], CultureInfo.InvariantCulture));
        var values = Enumerable.Range(0, Threads).SelectMany(_ => Enumerable.Range(0, PerThread).Select(i => i % 3)).ToList();
        Assert.Equal(values.Count(v => v <= 1).ToString(CultureInfo.InvariantCulture), exposition["parallel_latency_bucket{le=\"1\"}"]);
        Assert.Equal(values.Count.ToString(CultureInfo.InvariantCulture), exposition["parallel_latency_bucket{le=\"+Inf\"}"]);
        Assert.Equal(values.Count.ToString(CultureInfo.InvariantCulture), exposition["parallel_latency_count"]);
    }

    [Fact]
    public void Instruments_of_one_name_share_a_family_and_a_conflicting_type_is_left_out()
    {
        using var other = new Meter(_meter.Name + ".other");
        _meter.CreateCounter<long>("shared").Add(2, new KeyValuePair<string, object?>("k", "v"));
        other.CreateCounter<long>("shared").Add(3, new KeyValuePair<string, object?>("k", "v"));
        _meter.CreateGauge<long>("latency").Record(5);
        other.CreateHistogram<double>("latency").Record(1);

        var exposition = Scrape();
        Assert.Equal("5", exposition["shared_total{k=\"v\"}"]);
        Assert.Equal(1, exposition.CountComments("# TYPE shared_total counter"));
        Assert.Equal("5", exposition["latency"]);
        Assert.Single(exposition.Comments, c => c.StartsWith("# TYPE latency ", StringComparison.Ordinal));
        Assert.Empty(exposition.SeriesOf("latency_count"));
    }

    [Fact]
    public void A_disposed_meter_leaves_the_exposition_and_other_meters_are_ignored()
    {
        using var unrelated = new Meter("Unrelated." + Guid.NewGuid().ToString("N"));
        unrelated.CreateCounter<long>("unrelated").Add(1);
        var extra = new Meter(_meter.Name + ".extra");
        extra.CreateCounter<long>("temporary").Add(1);
        _meter.CreateCounter<long>("lasting").Add(1);

        var before = Scrape();
        Assert.Equal("1", before["temporary_total"]);
        Assert.Empty(before.SeriesOf("unrelated_total"));

        extra.Dispose();
        var after = Scrape();
        Assert.Empty(after.SeriesOf("temporary_total"));
        Assert.Equal("1", after["lasting_total"]);
    }

    [Fact]
    public async Task WriteAsync_writes_the_same_exposition_as_Scrape()
    {
        _meter.CreateCounter<long>("written").Add(9, new KeyValuePair<string, object?>("to", "stream"));
        using var stream = new MemoryStream();
        await _collector.WriteAsync(stream, CancellationToken.None);
        var written = System.Text.Encoding.UTF8.GetString(stream.ToArray());
        Assert.Equal(Scrape().Text, written);
        Assert.Equal("9", Exposition.Parse(written)["written_total{to=\"stream\"}"]);
    }

    [Fact]
    public void Special_values_are_written_as_prometheus_spells_them()
    {
        var gauge = _meter.CreateGauge<double>("special");
        gauge.Record(double.PositiveInfinity, new KeyValuePair<string, object?>("v", "pos"));
        gauge.Record(double.NegativeInfinity, new KeyValuePair<string, object?>("v", "neg"));
        gauge.Record(double.NaN, new KeyValuePair<string, object?>("v", "nan"));
        gauge.Record(1e-7, new KeyValuePair<string, object?>("v", "tiny"));

        var exposition = Scrape();
        Assert.Equal("+Inf", exposition["special{v=\"pos\"}"]);
        Assert.Equal("-Inf", exposition["special{v=\"neg\"}"]);
        Assert.Equal("NaN", exposition["special{v=\"nan\"}"]);
        Assert.Equal(1e-7, double.Parse(exposition["special{v=\"tiny\"}"], CultureInfo.InvariantCulture));
    }

    internal static PrometheusCollector NewCollector(string meterPrefix, int maxSeries = 2000, params string[] morePrefixes) =>
        new(new PrometheusCollectorOptions { MeterPrefixes = [meterPrefix, .. morePrefixes], MaxSeriesPerMetric = maxSeries }, NullLogger<PrometheusCollector>.Instance);

    private Exposition Scrape() => Exposition.Parse(_collector.Scrape());
}
