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
            Description = "Tests only: while this file holds the line 'dead-letters offline', the dead-letters topic has no leader (no produce is accepted)",
            Hidden = true,
        };
        var command = new Command("broker", "Run an embedded Kafka-protocol broker (librdkafka mock cluster) until SIGTERM/SIGINT") { partitions, bootstrapFile, faultFile };
        command.SetAction(async (parse, ct) =>
        {
            var count = parse.GetValue(partitions);
            if (count is < 1 or > 1024)
            {
                await Console.Error.WriteLineAsync("--partitions must be between 1 and 1024").ConfigureAwait(false);
                return 2;
            }

            using var signals = new Signals(ct);
            using var cluster = MockCluster.Start();
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
                    await WatchFaultsAsync(cluster, count, faults, signals.Token).ConfigureAwait(false);
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
    /// Fault injection for tests: checks <paramref name="file"/> every 100 ms; while it holds the line
    /// <c>dead-letters offline</c>, every partition of <c>dead-letters</c> has no leader (producers keep their records
    /// and retry), otherwise broker 1 leads them. Each change is confirmed on stdout as <c>fault dead-letters
    /// offline</c> or <c>fault dead-letters online</c>. Runs until <paramref name="ct"/> is cancelled.
    /// </summary>
    private static async Task WatchFaultsAsync(MockCluster cluster, int partitions, string file, CancellationToken ct)
    {
        var offline = false;
        while (true)
        {
            var text = File.Exists(file) ? await File.ReadAllTextAsync(file, ct).ConfigureAwait(false) : "";
            var wanted = text.Split('\n').Any(l => l.Trim() == "dead-letters offline");
            if (wanted != offline)
            {
                try
                {
                    for (var p = 0; p < partitions; p++)
                    {
                        cluster.SetPartitionLeader(Topics.DeadLetters, p, wanted ? -1 : 1);
                    }

                    offline = wanted;
                    Console.Out.WriteLine("fault dead-letters " + (offline ? "offline" : "online"));
                    await Console.Out.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                }
                catch (InvalidOperationException ex)
                {
                    // The mock cluster refused for now: say why, and try again at the next check.
                    await Console.Error.WriteLineAsync("fault injection: " + ex.Message).ConfigureAwait(false);
                }
            }

            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }

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
