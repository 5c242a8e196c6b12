using System.CommandLine;
using System.Globalization;
using Streaming.Connectors.Datasets;
using Streaming.Connectors.Kafka;

namespace Streaming.Host.Cli;

/// <summary><c>streaming replay</c>: produces a real dataset's events into the input topics (CONTRACTS.md §4).</summary>
public static class ReplayCommand
{
    public static Command Create()
    {
        var dataset = new Argument<string>("dataset") { Description = "online-retail, taobao or bank-callcenter" };
        dataset.AcceptOnlyFromAmong([.. Datasets.Names]);
        var file = new Option<string>("--file") { Description = "The dataset file (.csv.gz / .tsv.gz)", Required = true };
        var bootstrap = new Option<string>("--bootstrap") { Description = "Kafka bootstrap servers", Required = true };
        var rate = new Option<string>("--rate") { Description = "Events per second, or 'max'", DefaultValueFactory = _ => "max" };
        var paceGroup = new Option<string>("--pace-group")
        {
            Description = "Consumer group whose committed offsets pace the producer so the embedded broker never drops data; 'none' disables",
            DefaultValueFactory = _ => "streaming-engine",
        };
        var command = new Command("replay", "Produce a dataset's events into the input topics") { dataset, file, bootstrap, rate, paceGroup };
        command.SetAction((parse, ct) =>
        {
            var rateText = parse.GetValue(rate)!;
            double? eventsPerSecond = null;
            if (!string.Equals(rateText, "max", StringComparison.OrdinalIgnoreCase))
            {
                if (!double.TryParse(rateText, NumberStyles.Float, CultureInfo.InvariantCulture, out var r) || r <= 0)
                {
                    Console.Error.WriteLine($"--rate must be a positive number or 'max', not '{rateText}'");
                    return Task.FromResult(2);
                }

                eventsPerSecond = r;
            }

            var group = parse.GetValue(paceGroup)!;
            using var signals = new Signals(ct);
            var options = new ReplayOptions
            {
                BootstrapServers = parse.GetValue(bootstrap)!,
                Rate = eventsPerSecond,
                PaceGroup = string.Equals(group, "none", StringComparison.OrdinalIgnoreCase) ? null : group,
            };
            try
            {
                var name = parse.GetValue(dataset)!;
                using var data = new DatasetFile(parse.GetValue(file)!);
                var started = DateTime.UtcNow;
                var produced = new ReplayProducer(options, TimeProvider.System).Run(
                    Datasets.Read(name, data),
                    () => data.Progress,
                    p => Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"replay {name}: {p.FileShare:P0} of file, {p.Produced:N0} produced, {p.Acknowledged:N0} acknowledged, {p.Produced / Math.Max(0.001, (DateTime.UtcNow - started).TotalSeconds):N0} events/s")),
                    notice => Console.Error.WriteLine("replay: " + notice),
                    signals.Token);
                Console.Out.WriteLine("produced=" + produced.ToString(CultureInfo.InvariantCulture));
                return Task.FromResult(0);
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine("replay: interrupted");
                return Task.FromResult(130);
            }
            catch (Exception ex) when (ex is IOException or InvalidDataException or Confluent.Kafka.KafkaException or FormatException)
            {
                Console.Error.WriteLine("replay failed: " + ex.Message);
                return Task.FromResult(1);
            }
        });
        return command;
    }
}
