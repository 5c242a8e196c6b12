using System.Globalization;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Streaming.Connectors.Backtest;
using Streaming.Connectors.Kafka;
using Streaming.Engine.Rules;
using Streaming.Host.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Streaming.Host.Tests;

/// <summary>
/// <c>streaming backtest</c> run as a user would. The win-back count of the default pack on Online Retail is checked
/// against an independent count of lapses from <see cref="ModelBatch"/>: exact, because the test knows each customer's
/// partition (librdkafka's CRC-32 partitioner, re-implemented here and checked against a real producer) and so the
/// instant each partition's time stops at (its last event time minus the allowed lateness).
/// </summary>
[Collection(EndToEnd.Name)]
public sealed class BacktestTests(ITestOutputHelper output)
{
    private const int Partitions = 16;
    private const string RetailFile = "online_retail_2010_2011.csv.gz";
    private static readonly TimeSpan Lateness = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task Default_pack_win_back_count_equals_the_lapses_counted_from_the_order_histories()
    {
        var dir = TestEnvironment.NewTempDir("streaming-backtest");
        try
        {
            var rules = await WriteDefaultPackAsync(dir, "default.yaml", text => text);
            var json = Path.Combine(dir, "result.json");
            var data = TestEnvironment.DataFile(RetailFile);
            var run = await CliProcess.RunAsync(
                ["backtest", "--rules", rules, "--dataset", "online-retail", "--file", data, "--out", json], Timeout);
            Assert.True(run.ExitCode == 0, run.StandardError);
            output.WriteLine(run.StandardOutput);
            output.WriteLine(CliProcess.Tail(run.StandardError, 3));
            using var doc = JsonDocument.Parse(await File.ReadAllTextAsync(json));
            var result = doc.RootElement;

            var histories = ModelBatch.LoadOnlineRetail(data);
            Assert.Equal(histories.Count, result.GetProperty("customers").GetInt64());
            Assert.Equal(histories.Values.Sum(h => h.Placed.Count + h.Cancelled.Count), result.GetProperty("records").GetInt64());
            Assert.Equal(0, result.GetProperty("deadLetters").GetInt64());

            // Where each partition's time stopped: its latest event time minus the allowed lateness.
            var partitionOf = histories.Keys.ToDictionary(id => id, id => (int)(Crc32(Encoding.UTF8.GetBytes(id)) % Partitions), StringComparer.Ordinal);
            var ends = histories.Values
                .GroupBy(h => partitionOf[h.CustomerId])
                .ToDictionary(g => g.Key, g => g.SelectMany(h => h.Placed.Concat(h.Cancelled)).Max(o => o.At) - Lateness);
            var watermarks = result.GetProperty("watermarks").EnumerateObject()
                .ToDictionary(p => int.Parse(p.Name, CultureInfo.InvariantCulture), p => p.Value.GetDateTimeOffset());
            Assert.Equal(ends.OrderBy(e => e.Key), watermarks.OrderBy(w => w.Key));
            Assert.True(ends.Values.Distinct().Count() > 1, "the partitions end at different instants, so the per-partition end matters");

            // Win-back (orders.count >= 1 && days_since(orders.lastAt) > 90) holds from 91 whole days after the last
            // placed order: once per gap of more than 90 whole days, and once more if the customer's partition ends
            // at least 91 days after the last order.
            var expectedMonths = new SortedDictionary<string, long>(StringComparer.Ordinal);
            var customers = 0;
            foreach (var history in histories.Values.Where(h => h.Placed.Count > 0))
            {
                var dueTimes = new List<DateTimeOffset>();
                for (var i = 0; i + 1 < history.Placed.Count; i++)
                {
                    if (WholeDays(history.Placed[i + 1].At - history.Placed[i].At) > 90)
                    {
                        dueTimes.Add(history.Placed[i].At.AddDays(91));
                    }
                }

                if (WholeDays(ends[partitionOf[history.CustomerId]] - history.Placed[^1].At) > 90)
                {
                    dueTimes.Add(history.Placed[^1].At.AddDays(91));
                }

                customers += dueTimes.Count > 0 ? 1 : 0;
                foreach (var due in dueTimes)
                {
                    var month = due.UtcDateTime.ToString("yyyy-MM", CultureInfo.InvariantCulture);
                    expectedMonths[month] = expectedMonths.GetValueOrDefault(month) + 1;
                }
            }

            var winBack = result.GetProperty("rules").GetProperty("win-back");
            output.WriteLine($"win-back: expected {expectedMonths.Values.Sum()} firings for {customers} customers; backtest {winBack.GetProperty("fired").GetInt64()}");
            Assert.Equal(expectedMonths.Values.Sum(), winBack.GetProperty("fired").GetInt64());
            Assert.Equal(customers, winBack.GetProperty("customers").GetInt64());
            Assert.Equal(expectedMonths, Counts(winBack.GetProperty("perMonth")));

            // Nobody in the retail data gave consent: every firing outside the control group is suppressed by it.
            var byDelivery = Counts(winBack.GetProperty("byDelivery"));
            Assert.Equal(expectedMonths.Values.Sum(), byDelivery["suppressed"] + byDelivery["holdout"]);
            Assert.True(byDelivery["holdout"] > 0);
            Assert.Equal(byDelivery["suppressed"], Counts(winBack.GetProperty("suppressedBy"))["consent"]);

            // Welcome fires at each first order; first-repeat at each second one.
            var rulesJson = result.GetProperty("rules");
            Assert.Equal(histories.Values.Count(h => h.Placed.Count >= 1), rulesJson.GetProperty("welcome").GetProperty("fired").GetInt64());
            Assert.Equal(histories.Values.Count(h => h.Placed.Count >= 2), rulesJson.GetProperty("first-repeat").GetProperty("fired").GetInt64());

            Assert.Contains("win-back", run.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("firings per month", run.StandardOutput, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Compare_with_shows_more_win_backs_at_60_days_and_rules_found_in_one_set_only()
    {
        var dir = TestEnvironment.NewTempDir("streaming-backtest");
        try
        {
            var baseRules = await WriteDefaultPackAsync(dir, "base.yaml", text => text);
            var compareRules = await WriteDefaultPackAsync(dir, "compare.yaml", text => Replace(
                Replace(text, "when: orders.count >= 1 && days_since(orders.lastAt) > 90", "when: orders.count >= 1 && days_since(orders.lastAt) > 60"),
                "- id: vip\n", "- id: big-spender\n"));
            var json = Path.Combine(dir, "compare.json");
            var run = await CliProcess.RunAsync(
                ["backtest", "--rules", baseRules, "--compare-with", compareRules, "--dataset", "online-retail", "--file", TestEnvironment.DataFile(RetailFile), "--out", json],
                Timeout);
            Assert.True(run.ExitCode == 0, run.StandardError);
            output.WriteLine(run.StandardOutput);
            using var doc = JsonDocument.Parse(await File.ReadAllTextAsync(json));
            var root = doc.RootElement;
            long Fired(string side, string rule) => root.GetProperty(side).GetProperty("rules").GetProperty(rule).GetProperty("fired").GetInt64();

            var winBack = root.GetProperty("diff").GetProperty("win-back");
            Assert.Equal("both", winBack.GetProperty("in").GetString());
            Assert.True(winBack.GetProperty("fired").GetInt64() > 0, "a 60-day lapse fires for more customers than a 90-day one");
            Assert.Equal(Fired("compare", "win-back") - Fired("base", "win-back"), winBack.GetProperty("fired").GetInt64());
            Assert.NotEqual(root.GetProperty("base").GetProperty("ruleVersion").GetString(), root.GetProperty("compare").GetProperty("ruleVersion").GetString());

            // Rules untouched by the change fire as before.
            Assert.Equal(0, root.GetProperty("diff").GetProperty("welcome").GetProperty("fired").GetInt64());

            // A renamed rule: only in one set, counted as zero in the other.
            var vip = root.GetProperty("diff").GetProperty("vip");
            Assert.Equal("base", vip.GetProperty("in").GetString());
            Assert.Equal(-Fired("base", "vip"), vip.GetProperty("fired").GetInt64());
            var bigSpender = root.GetProperty("diff").GetProperty("big-spender");
            Assert.Equal("compare", bigSpender.GetProperty("in").GetString());
            Assert.Equal(Fired("compare", "big-spender"), bigSpender.GetProperty("fired").GetInt64());
            Assert.Equal(Fired("base", "vip"), Fired("compare", "big-spender"));

            Assert.Contains("only in base", run.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("only in compare", run.StandardOutput, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task An_invalid_rule_file_exits_2_with_the_error_position()
    {
        var dir = TestEnvironment.NewTempDir("streaming-backtest");
        try
        {
            var broken = await WriteDefaultPackAsync(dir, "broken.yaml", text => Replace(text, "days_since(orders.lastAt) > 90", "days_since(orders.lastAtt) > 90"));
            var (line, column) = PositionOf(await File.ReadAllTextAsync(broken), "orders.lastAtt");
            var json = Path.Combine(dir, "never.json");
            var run = await CliProcess.RunAsync(
                ["backtest", "--rules", broken, "--dataset", "online-retail", "--file", TestEnvironment.DataFile(RetailFile), "--out", json], Timeout);
            Assert.Equal(2, run.ExitCode);
            Assert.Contains($"{broken}:{line}:{column}: unknown field 'orders.lastAtt' (did you mean 'orders.lastAt'?)", run.StandardError, StringComparison.Ordinal);
            Assert.False(File.Exists(json));

            // The same for the set compared with.
            var good = await WriteDefaultPackAsync(dir, "good.yaml", text => text);
            run = await CliProcess.RunAsync(
                ["backtest", "--rules", good, "--compare-with", broken, "--dataset", "online-retail", "--file", TestEnvironment.DataFile(RetailFile)], Timeout);
            Assert.Equal(2, run.ExitCode);
            Assert.Contains($"{broken}:{line}:{column}:", run.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// The backtest and this test place customers as <c>streaming replay</c> does: a real librdkafka producer with the
    /// default partitioner puts every retail customer's key in the partition both compute.
    /// </summary>
    [Fact]
    public async Task Customers_are_partitioned_as_a_librdkafka_producer_partitions_them()
    {
        Assert.Equal(0xCBF43926u, Crc32("123456789"u8.ToArray())); // the CRC-32 check value
        var ids = ModelBatch.LoadOnlineRetail(TestEnvironment.DataFile(RetailFile)).Keys.Order(StringComparer.Ordinal).Take(600).ToList();
        using var cluster = MockCluster.Start();
        cluster.CreateTopic("orders", Partitions);
        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers }).Build();
        var delivered = await Task.WhenAll(ids.Select(id =>
            producer.ProduceAsync("orders", new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(id), Value = "{}"u8.ToArray() })));
        foreach (var report in delivered)
        {
            Assert.Equal((int)(Crc32(report.Message.Key) % Partitions), report.Partition.Value);
            Assert.Equal(report.Partition.Value, KeyPartitioner.Partition(report.Message.Key, Partitions));
        }

        Assert.Equal(Partitions, delivered.Select(r => r.Partition.Value).Distinct().Count());
    }

    /// <summary>
    /// Checkpoint cadence changes nothing: with every partition checkpointing each 500 records (customers saved, wake-ups
    /// stored, firings handed on) every count comes out as with one checkpoint at the end.
    /// </summary>
    [Fact]
    public async Task Results_do_not_depend_on_how_often_the_backtest_checkpoints()
    {
        var data = TestEnvironment.DataFile(RetailFile);
        var often = (await Backtester.RunAsync([RuleSetLoader.Default], "online-retail", data, new BacktestOptions { CheckpointEveryRecords = 500 }, null, CancellationToken.None))[0];
        var once = (await Backtester.RunAsync([RuleSetLoader.Default], "online-retail", data, new BacktestOptions { CheckpointEveryRecords = int.MaxValue }, null, CancellationToken.None))[0];
        Assert.Equal(JsonSerializer.Serialize(once.Rules), JsonSerializer.Serialize(often.Rules));
        Assert.Equal(once.Watermarks, often.Watermarks);
        Assert.Equal(once.Customers, often.Customers);
        Assert.True(once.Rules["win-back"].Fired > 0);
    }

    private static async Task<string> WriteDefaultPackAsync(string dir, string name, Func<string, string> edit)
    {
        var pack = await CliProcess.RunAsync(["rules", "default"], TimeSpan.FromSeconds(60));
        Assert.Equal(0, pack.ExitCode);
        var path = Path.Combine(dir, name);
        await File.WriteAllTextAsync(path, edit(pack.StandardOutput));
        return path;
    }

    private static string Replace(string text, string from, string to)
    {
        Assert.Contains(from, text, StringComparison.Ordinal);
        return text.Replace(from, to, StringComparison.Ordinal);
    }

    private static (int Line, int Column) PositionOf(string text, string needle)
    {
        var index = text.IndexOf(needle, StringComparison.Ordinal);
        var line = text[..index].Count(c => c == '\n') + 1;
        var column = index - (text.LastIndexOf('\n', index - 1) + 1) + 1;
        return (line, column);
    }

    private static long WholeDays(TimeSpan span) => span.Ticks / TimeSpan.TicksPerDay;

    private static SortedDictionary<string, long> Counts(JsonElement map) =>
        new(map.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64()), StringComparer.Ordinal);

    private static uint Crc32(byte[] data) => ProducerPartitioner.Crc32(data);
}
