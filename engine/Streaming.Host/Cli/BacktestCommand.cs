using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Streaming.Connectors.Backtest;
using Streaming.Connectors.Datasets;
using Streaming.Engine.Rules;
using Streaming.Host.Hosting;

namespace Streaming.Host.Cli;

/// <summary>
/// <c>streaming backtest</c>: a rule set run over a dataset in event time, with no side effects (see
/// <see cref="Backtester"/>); per rule, firings by delivery and check, customers and firings per month; optionally
/// against a second rule set.
/// </summary>
public static class BacktestCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static Command Create()
    {
        var rulesOption = new Option<string>("--rules") { Description = "The rule set: a YAML file, or a directory of them", Required = true };
        var dataset = new Option<string>("--dataset") { Description = "online-retail, taobao or bank-callcenter", Required = true };
        dataset.AcceptOnlyFromAmong([.. Datasets.Names]);
        var file = new Option<string?>("--file") { Description = "The dataset file (default: the dataset's usual file in the data directory)" };
        var data = new Option<string?>("--data") { Description = "Directory of the datasets, when --file is not given (default ../shared/data or STREAMING_DATA_DIR)" };
        var compareWith = new Option<string?>("--compare-with") { Description = "A second rule set (file or directory) to run over the same data and compare" };
        var output = new Option<string?>("--out") { Description = "Also write the result as JSON to this file" };
        var partitions = new Option<int>("--partitions") { Description = "Partitions the replay would spread customers over (as the broker's topics)", DefaultValueFactory = _ => 16 };
        var lateness = new Option<int>("--lateness-seconds") { Description = "The engine's allowed lateness: watermarks trail each partition's latest event time by this", DefaultValueFactory = _ => 300 };
        var command = new Command("backtest", "Run a rule set over a dataset in event time, with no side effects, and report what each trigger would have done")
        {
            rulesOption, dataset, file, data, compareWith, output, partitions, lateness,
        };
        command.SetAction(async (parse, ct) =>
        {
            var name = parse.GetValue(dataset)!;
            if (parse.GetValue(partitions) is < 1 or > 1024)
            {
                await Console.Error.WriteLineAsync("--partitions must be between 1 and 1024").ConfigureAwait(false);
                return 2;
            }

            if (parse.GetValue(lateness) is < 0 or > 86_400 * 30)
            {
                await Console.Error.WriteLineAsync("--lateness-seconds must be between 0 and 2592000").ConfigureAwait(false);
                return 2;
            }

            var ruleSets = new List<RuleSet>();
            foreach (var rulesPath in new[] { parse.GetValue(rulesOption)!, parse.GetValue(compareWith) })
            {
                if (rulesPath is null)
                {
                    continue;
                }

                var (rules, error) = await LoadRulesAsync(rulesPath).ConfigureAwait(false);
                if (rules is null)
                {
                    return error;
                }

                ruleSets.Add(rules);
            }

            string path;
            try
            {
                path = parse.GetValue(file) ?? Path.Combine(DataDirectory.Resolve(parse.GetValue(data)), Datasets.DefaultFile(name));
            }
            catch (DirectoryNotFoundException ex)
            {
                await Console.Error.WriteLineAsync("streaming backtest: " + ex.Message).ConfigureAwait(false);
                return 2;
            }

            if (!File.Exists(path))
            {
                await Console.Error.WriteLineAsync($"streaming backtest: dataset file not found: {path}").ConfigureAwait(false);
                return 2;
            }

            var options = new BacktestOptions
            {
                Partitions = parse.GetValue(partitions),
                AllowedLateness = TimeSpan.FromSeconds(parse.GetValue(lateness)),
            };
            using var signals = new Signals(ct);
            IReadOnlyList<BacktestResult> results;
            try
            {
                results = await Backtester.RunAsync(ruleSets, name, path, options, p => Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"backtest {name}: {p.FileShare:P0} of file, {p.Records:N0} records, {p.Records / Math.Max(0.001, p.Elapsed.TotalSeconds):N0} records/s")), signals.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                await Console.Error.WriteLineAsync("backtest: interrupted").ConfigureAwait(false);
                return 130;
            }
            catch (Exception ex) when (ex is IOException or InvalidDataException or FormatException or TimeoutException or InvalidOperationException)
            {
                await Console.Error.WriteLineAsync("backtest failed: " + ex.Message).ConfigureAwait(false);
                return 1;
            }

            var first = results[0];
            await Console.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"backtest {name}: {first.Records:N0} records, {first.Customers:N0} customers, {first.DeadLetters:N0} dead letters, {first.Duplicates:N0} duplicates, {ruleSets.Count} rule set(s) in {first.ElapsedSeconds:N1} s")).ConfigureAwait(false);
            object document;
            if (results.Count == 1)
            {
                Show(CreateConsole(), first);
                document = first;
            }
            else
            {
                var comparison = BacktestComparison.Of(first, results[1]);
                ShowComparison(CreateConsole(), comparison);
                document = comparison;
            }

            if (parse.GetValue(output) is { } outFile)
            {
                await File.WriteAllTextAsync(outFile, JsonSerializer.Serialize(document, Json) + "\n", ct).ConfigureAwait(false);
            }

            return 0;
        });
        return command;
    }

    /// <summary>A rule set from a file or a directory; on errors prints each as file:line:column: message (exit code 2).</summary>
    private static async Task<(RuleSet? Rules, int ExitCode)> LoadRulesAsync(string path)
    {
        try
        {
            return (Directory.Exists(path) ? RuleSetLoader.LoadDirectory(path) : RuleSetLoader.Load([new RuleSource(path, await File.ReadAllTextAsync(path).ConfigureAwait(false))]), 0);
        }
        catch (RuleSetException ex)
        {
            foreach (var error in ex.Errors)
            {
                await Console.Error.WriteLineAsync(error.ToString()).ConfigureAwait(false);
            }

            await Console.Error.WriteLineAsync($"{ex.Errors.Count} error(s) in the rule set {path}").ConfigureAwait(false);
            return (null, 2);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await Console.Error.WriteLineAsync("streaming backtest: " + ex.Message).ConfigureAwait(false);
            return (null, 2);
        }
    }

    /// <summary>Stdout as a Spectre console: plain text, 120 columns wide, when it is not a terminal.</summary>
    private static IAnsiConsole CreateConsole()
    {
        var redirected = Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = redirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = redirected ? InteractionSupport.No : InteractionSupport.Detect,
            Out = new AnsiConsoleOutput(Console.Out),
        });
        if (redirected)
        {
            console.Profile.Width = 120;
        }

        return console;
    }

    private static void Show(IAnsiConsole console, BacktestResult result)
    {
        console.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"Backtest of {result.RuleVersion} on {result.Dataset}: {result.Records:N0} records, {result.Customers:N0} customers, {result.Partitions} partitions")));
        var table = new Table().AddColumns("rule", "fired", "queued", "suppressed", "holdout", "notify", "customers", "suppressed by");
        table.Columns[0].NoWrap();
        foreach (var column in table.Columns.Skip(1).Take(6))
        {
            column.RightAligned();
        }

        foreach (var (rule, o) in result.Rules.OrderByDescending(r => r.Value.Fired).ThenBy(r => r.Key, StringComparer.Ordinal))
        {
            table.AddRow(
                Markup.Escape(rule), N(o.Fired), N(o.ByDelivery["queued"]), N(o.ByDelivery["suppressed"]), N(o.ByDelivery["holdout"]), N(o.ByDelivery["notify"]),
                N(o.Customers), Markup.Escape(string.Join(", ", o.SuppressedBy.OrderByDescending(s => s.Value).Select(s => $"{s.Key} {N(s.Value)}"))));
        }

        console.Write(table);
        var months = MonthSpan(result.Rules.Values);
        foreach (var (rule, o) in result.Rules.Where(r => r.Value.Fired > 0).OrderByDescending(r => r.Value.Fired).ThenBy(r => r.Key, StringComparer.Ordinal))
        {
            var chart = new BarChart().Width(72).Label(Markup.Escape($"{rule}: firings per month (UTC)"));
            foreach (var month in months)
            {
                chart.AddItem(month, o.PerMonth.GetValueOrDefault(month), Color.Green);
            }

            console.WriteLine();
            console.Write(chart);
        }
    }

    private static void ShowComparison(IAnsiConsole console, BacktestComparison c)
    {
        console.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"Backtest on {c.Base.Dataset} ({c.Base.Records:N0} records, {c.Base.Customers:N0} customers): base {c.Base.RuleVersion}, compare {c.Compare.RuleVersion}")));
        var table = new Table().AddColumns("rule", "fired base", "compare", "Δ", "customers base", "compare", "Δ", "note");
        table.Columns[0].NoWrap();
        table.Columns[^1].NoWrap();
        foreach (var column in table.Columns.Skip(1).Take(6))
        {
            column.RightAligned();
        }

        foreach (var (rule, d) in c.Diff.OrderByDescending(r => Math.Abs(r.Value.Fired)).ThenBy(r => r.Key, StringComparer.Ordinal))
        {
            var a = c.Base.Rules.GetValueOrDefault(rule);
            var b = c.Compare.Rules.GetValueOrDefault(rule);
            table.AddRow(Markup.Escape(rule), a is null ? "-" : N(a.Fired), b is null ? "-" : N(b.Fired), Signed(d.Fired),
                a is null ? "-" : N(a.Customers), b is null ? "-" : N(b.Customers), Signed(d.Customers), d.In == "both" ? "" : "only in " + d.In);
        }

        console.Write(table);
        var months = MonthSpan(c.Base.Rules.Values.Concat(c.Compare.Rules.Values));
        foreach (var (rule, d) in c.Diff.Where(r => r.Value.PerMonth.Values.Any(v => v != 0)).OrderByDescending(r => Math.Abs(r.Value.Fired)).ThenBy(r => r.Key, StringComparer.Ordinal))
        {
            var a = c.Base.Rules.GetValueOrDefault(rule);
            var b = c.Compare.Rules.GetValueOrDefault(rule);
            var chart = new BarChart().Width(72).Label(Markup.Escape($"{rule}: firings per month (UTC), base then compare"));
            foreach (var month in months)
            {
                chart.AddItem(month + " base", a?.PerMonth.GetValueOrDefault(month) ?? 0, Color.Grey);
                chart.AddItem(month + " comp", b?.PerMonth.GetValueOrDefault(month) ?? 0, Color.Green);
            }

            console.WriteLine();
            console.Write(chart);
        }
    }

    /// <summary>Every month from the first to the last with a firing of any rule, so charts share one axis with no gaps.</summary>
    private static List<string> MonthSpan(IEnumerable<RuleOutcome> outcomes)
    {
        var all = outcomes.SelectMany(o => o.PerMonth.Keys).ToList();
        var months = new List<string>();
        if (all.Count == 0)
        {
            return months;
        }

        var first = DateTime.ParseExact(all.Min(StringComparer.Ordinal)!, "yyyy-MM", CultureInfo.InvariantCulture);
        var last = DateTime.ParseExact(all.Max(StringComparer.Ordinal)!, "yyyy-MM", CultureInfo.InvariantCulture);
        for (var m = first; m <= last; m = m.AddMonths(1))
        {
            months.Add(m.ToString("yyyy-MM", CultureInfo.InvariantCulture));
        }

        return months;
    }

    private static string N(long n) => n.ToString("N0", CultureInfo.InvariantCulture);

    private static string Signed(long n) => n > 0 ? "+" + N(n) : N(n);
}
