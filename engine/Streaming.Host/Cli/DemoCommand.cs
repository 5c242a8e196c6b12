using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Streaming.Connectors.Datasets;
using Streaming.Connectors.Kafka;
using Streaming.Host.Hosting;

namespace Streaming.Host.Cli;

/// <summary>
/// <c>streaming demo</c>: embedded broker, engine and HTTP API in one process, with the three real datasets joined into
/// one population (<see cref="DemoPopulation"/>) replayed in event-time order, and a live display.
/// </summary>
public static class DemoCommand
{
    public static Command Create()
    {
        var data = new Option<string?>("--data") { Description = "Directory of the datasets (default ../shared/data)" };
        var urls = new Option<string?>("--urls") { Description = "HTTP listen URL (default http://127.0.0.1:8080)" };
        var rate = new Option<int>("--rate") { Description = "Events per second", DefaultValueFactory = _ => 5000 };
        var duration = new Option<int?>("--duration") { Description = "Stop by itself after this many seconds (default: run until Ctrl-C)" };
        var command = new Command("demo", "Broker, engine and real datasets in one process, with a live display") { data, urls, rate, duration };
        command.SetAction(async (parse, ct) =>
        {
            string dataDir;
            StreamingSettings settings;
            try
            {
                dataDir = DataDirectory.Resolve(parse.GetValue(data));
                settings = StreamingSettings.From(StreamingSettings.LoadConfiguration(null));
            }
            catch (Exception ex) when (ex is DirectoryNotFoundException or InvalidOperationException)
            {
                await Console.Error.WriteLineAsync("streaming demo: " + ex.Message).ConfigureAwait(false);
                return 2;
            }

            // The embedded broker starts empty, so the demo's state starts empty too.
            var stateDir = Path.Combine(settings.DataDir, "demo");
            if (Directory.Exists(stateDir))
            {
                Directory.Delete(stateDir, recursive: true);
            }

            // A token for this run only, so the dialer and admin routes can be tried.
            var token = settings.AuthTokens.Count > 0 ? null : Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
            settings = settings with
            {
                BootstrapServers = null,
                DataDir = stateDir,
                Urls = parse.GetValue(urls) ?? settings.Urls,
                AuthTokens = token is null ? settings.AuthTokens : [new AccessToken("demo", token, [AccessToken.Admin])],
            };
            using var signals = new Signals(ct);
            using var timeout = parse.GetValue(duration) is { } seconds ? new CancellationTokenSource(TimeSpan.FromSeconds(seconds)) : new CancellationTokenSource();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(signals.Token, timeout.Token);
            await using var host = await EngineHost.StartAsync(settings, new EngineHttpApi(), LogLevel.Warning, stop.Token).ConfigureAwait(false);
            var baseUrl = settings.Urls.Split(';')[0].TrimEnd('/');
            Console.Out.WriteLine($"Streaming demo: broker {host.BootstrapServers}, state {host.Store.Location}");
            Console.Out.WriteLine("Try:");
            foreach (var path in new[] { "/v1/customers/17850", "/v1/customers/12347", "/v1/customers/tb-258029", "/v1/customers/17850/triggers", "/v1/population", "/v1/rules", "/v1/rules/win-back/lift", "/v1/outreach/stats", "/v1/status" })
            {
                Console.Out.WriteLine($"  curl {baseUrl}{path}");
            }

            if (token is not null)
            {
                Console.Out.WriteLine($"  curl -X POST {baseUrl}/v1/outreach/lease -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"channel\":\"voice\",\"max\":5,\"leaseSeconds\":60,\"dialer\":\"demo\"}}'");
                Console.Out.WriteLine($"  (token for this run, scopes admin and dialer: {token})");
            }

            Console.Out.WriteLine($"Console: {baseUrl}/console");
            Console.Out.WriteLine("Ctrl-C stops.");
            var feed = new Feed();
            var replay = Task.Run(() => feed.Run(dataDir, host.BootstrapServers, settings.GroupId, parse.GetValue(rate), stop.Token));
            await ShowAsync(host, feed, stop.Token).ConfigureAwait(false);
            await replay.ContinueWith(static _ => { }, TaskScheduler.Default).ConfigureAwait(false);
            Console.Out.WriteLine($"Stopping: {host.Engine.EventsProcessed:N0} events processed, checkpointing.");
            return 0;
        });
        return command;
    }

    private static async Task ShowAsync(EngineHost host, Feed feed, CancellationToken ct)
    {
        var last = host.Engine.EventsProcessed;
        var lastAt = DateTime.UtcNow;
        var interactive = !Console.IsOutputRedirected;
        while (!ct.IsCancellationRequested && !host.Engine.Stopped.IsCompleted)
        {
            try
            {
                await Task.Delay(interactive ? 1000 : 5000, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            var now = DateTime.UtcNow;
            var processed = host.Engine.EventsProcessed;
            var perSecond = (processed - last) / Math.Max(0.001, (now - lastAt).TotalSeconds);
            last = processed;
            lastAt = now;
            var status = host.Engine.Status;
            var line = string.Create(CultureInfo.InvariantCulture,
                $"events {processed,10:N0} | {perSecond,8:N0}/s | customers cached {status.CachedCustomers,8:N0} | lag {(status.ConsumerLag is { } lag ? lag.ToString("N0", CultureInfo.InvariantCulture) : "-"),7} | checkpoints {host.Engine.Checkpoints,5:N0} | dead letters {host.Engine.DeadLetters:N0} | ")
                + feed.Describe();
            if (interactive)
            {
                AnsiConsole.Markup("\r" + Markup.Escape(line).PadRight(Math.Min(Console.WindowWidth > 0 ? Console.WindowWidth - 1 : 200, 240)));
            }
            else
            {
                Console.Out.WriteLine(line);
            }
        }

        Console.Out.WriteLine();
    }

    /// <summary>The replay of the joined population, run on its own thread.</summary>
    private sealed class Feed
    {
        private long _produced;
        private string _state = "starting";

        public string Describe() => string.Create(CultureInfo.InvariantCulture, $"replayed {Interlocked.Read(ref _produced):N0} ({_state})");

        public void Run(string dataDir, string bootstrap, string group, int rate, CancellationToken ct)
        {
            try
            {
                _state = "running";
                var options = new ReplayOptions { BootstrapServers = bootstrap, Rate = rate, PaceGroup = group };
                var produced = new ReplayProducer(options, TimeProvider.System).Run(
                    DemoPopulation.Read(dataDir),
                    () => 0,
                    p => Interlocked.Exchange(ref _produced, p.Produced),
                    null,
                    ct);
                Interlocked.Exchange(ref _produced, produced);
                _state = "done";
            }
            catch (OperationCanceledException)
            {
                _state = "stopped";
            }
            catch (Exception ex) when (ex is IOException or InvalidDataException or Confluent.Kafka.KafkaException)
            {
                _state = "failed: " + ex.Message;
            }
        }
    }
}
