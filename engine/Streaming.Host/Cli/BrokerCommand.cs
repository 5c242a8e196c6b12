using System.CommandLine;
using Streaming.Connectors.Kafka;
using Streaming.Engine.Events;

namespace Streaming.Host.Cli;

/// <summary><c>streaming broker</c>: a standalone embedded Kafka-protocol broker (in memory) for development and tests.</summary>
public static class BrokerCommand
{
    public static Command Create()
    {
        var partitions = new Option<int>("--partitions") { Description = "Partitions per topic", DefaultValueFactory = _ => 16 };
        var bootstrapFile = new Option<string?>("--bootstrap-file") { Description = "Write the bootstrap address to this file once the broker accepts connections" };
        var faultFile = new Option<string?>("--fault-file")
        {
            Description = "Tests only: while this file holds the line 'refuse-produce', every Produce request is refused (retriable NOT_ENOUGH_REPLICAS)",
            Hidden = true,
        };
        var initialDelay = new Option<int>("--initial-rebalance-delay-ms")
        {
            Description = "How long a consumer group with no members waits for more after the first joins (Kafka's group.initial.rebalance.delay.ms; 0 for a group one engine consumes in)",
            DefaultValueFactory = _ => 3000,
        };
        var command = new Command("broker", "Run an embedded Kafka-protocol broker (librdkafka mock cluster) until SIGTERM/SIGINT") { partitions, bootstrapFile, faultFile, initialDelay };
        command.SetAction(async (parse, ct) =>
        {
            var count = parse.GetValue(partitions);
            if (count is < 1 or > 1024)
            {
                await Console.Error.WriteLineAsync("--partitions must be between 1 and 1024").ConfigureAwait(false);
                return 2;
            }

            var delayMs = parse.GetValue(initialDelay);
            if (delayMs is < 0 or > 300_000)
            {
                await Console.Error.WriteLineAsync("--initial-rebalance-delay-ms must be between 0 and 300000").ConfigureAwait(false);
                return 2;
            }

            using var signals = new Signals(ct);
            using var cluster = MockCluster.Start();
            cluster.SetGroupInitialRebalanceDelay(TimeSpan.FromMilliseconds(delayMs));
            cluster.CreateTopics(Topics.All, count);
            await WaitUntilAcceptingAsync(cluster.BootstrapServers, signals.Token).ConfigureAwait(false);
            Console.Out.WriteLine("bootstrap=" + cluster.BootstrapServers);
            await Console.Out.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            if (parse.GetValue(bootstrapFile) is { } file)
            {
                // Write then rename, so a reader never sees a half-written address.
                var tmp = file + ".tmp";
                await File.WriteAllTextAsync(tmp, cluster.BootstrapServers + Environment.NewLine, CancellationToken.None).ConfigureAwait(false);
                File.Move(tmp, file, overwrite: true);
            }

            try
            {
                if (parse.GetValue(faultFile) is { } faults)
                {
                    await WatchFaultsAsync(cluster, faults, signals.Token).ConfigureAwait(false);
                }

                await Task.Delay(Timeout.Infinite, signals.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stop requested.
            }

            return 0;
        });
        return command;
    }

    /// <summary>
    /// Fault injection for tests: checks <paramref name="file"/> every 100 ms. While it holds the line
    /// <c>refuse-produce</c>, Produce requests of every client are refused with the retriable
    /// <c>NOT_ENOUGH_REPLICAS</c> (the next <see cref="RefusalsQueued"/> requests, queued when the line appears; reads
    /// go on); when the line is gone they are accepted again. Each change is confirmed on stdout as
    /// <c>fault produce refused</c> or <c>fault produce accepted</c>. Runs until <paramref name="ct"/> is cancelled.
    /// </summary>
    private static async Task WatchFaultsAsync(MockCluster cluster, string file, CancellationToken ct)
    {
        var refused = false;
        while (true)
        {
            var text = File.Exists(file) ? await File.ReadAllTextAsync(file, ct).ConfigureAwait(false) : "";
            var wanted = text.Split('\n').Any(l => l.Trim() == "refuse-produce");
            if (wanted != refused)
            {
                if (wanted)
                {
                    cluster.RefuseProduce(RefusalsQueued);
                }
                else
                {
                    cluster.AcceptProduce();
                }

                refused = wanted;
                Console.Out.WriteLine("fault produce " + (refused ? "refused" : "accepted"));
                await Console.Out.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            }

            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Produce requests refused per <c>refuse-produce</c>: producers retry at most a few times a second, so hours' worth.</summary>
    private const int RefusalsQueued = 100_000;

    /// <summary>Connects to the first bootstrap address until it accepts a TCP connection.</summary>
    private static async Task WaitUntilAcceptingAsync(string bootstrap, CancellationToken ct)
    {
        var first = bootstrap.Split(',')[0];
        var colon = first.LastIndexOf(':');
        var host = first[..colon];
        var port = int.Parse(first[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            try
            {
                using var client = new System.Net.Sockets.TcpClient();
                await client.ConnectAsync(host, port, ct).ConfigureAwait(false);
                return;
            }
            catch (System.Net.Sockets.SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50, ct).ConfigureAwait(false);
            }
        }
    }
}
