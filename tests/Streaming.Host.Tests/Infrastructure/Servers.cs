using System.Net.Http.Json;
using System.Text.Json;

namespace Streaming.Host.Tests.Infrastructure;

/// <summary>A standalone <c>streaming broker</c> process.</summary>
public sealed class BrokerProcess : IAsyncDisposable
{
    private readonly CliProcess _process;
    private readonly string _dir;

    private readonly string? _faultFile;

    private BrokerProcess(CliProcess process, string bootstrap, string dir, string? faultFile)
    {
        _process = process;
        BootstrapServers = bootstrap;
        _dir = dir;
        _faultFile = faultFile;
    }

    public string BootstrapServers { get; }

    /// <summary>
    /// Makes the broker refuse every Produce request (retriable <c>NOT_ENOUGH_REPLICAS</c>: producers keep their
    /// records and retry; reads go on) or accept them again, through its test-only <c>--fault-file</c>, and waits
    /// until the broker confirms it on stdout. Only for a broker started with <c>faults: true</c>.
    /// </summary>
    public async Task SetProduceRefusedAsync(bool refused)
    {
        var file = _faultFile ?? throw new InvalidOperationException("the broker was started without faults: true");
        var tmp = file + ".tmp";
        await File.WriteAllTextAsync(tmp, refused ? "refuse-produce\n" : "");
        File.Move(tmp, file, overwrite: true);
        var want = "fault produce " + (refused ? "refused" : "accepted");
        await Eventually.WaitAsync(
            () => Task.FromResult(_process.StandardOutput.Split('\n').LastOrDefault(l => l.StartsWith("fault ", StringComparison.Ordinal))?.Trim() == want),
            TimeSpan.FromSeconds(30),
            () => $"'{want}' on the broker's stdout: '{_process.StandardOutput}'; stderr: '{CliProcess.Tail(_process.StandardError)}'");
    }

    /// <param name="partitions">Partitions of every topic.</param>
    /// <param name="faults">Whether <see cref="SetProduceRefusedAsync"/> may be used.</param>
    /// <param name="initialRebalanceDelayMs">
    /// How long an empty consumer group waits for more members after the first joins. 0 by default: most tests run one
    /// engine, which would otherwise wait Kafka's default 3 s at each start. Tests that start members together give 3000.
    /// </param>
    public static async Task<BrokerProcess> StartAsync(int partitions, bool faults = false, int initialRebalanceDelayMs = 0)
    {
        var dir = TestEnvironment.NewTempDir("streaming-broker");
        var file = Path.Combine(dir, "bootstrap");
        var faultFile = faults ? Path.Combine(dir, "faults") : null;
        List<string> args = ["broker", "--partitions", partitions.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bootstrap-file", file, "--initial-rebalance-delay-ms", initialRebalanceDelayMs.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        if (faultFile is not null)
        {
            args.AddRange(["--fault-file", faultFile]);
        }

        var process = CliProcess.Start(args);

        // The broker prints its line before it writes the file, but the line reaches StandardOutput through an
        // asynchronous reader that may lag behind: wait for both.
        await Eventually.WaitAsync(
            () => Task.FromResult((File.Exists(file) && process.StandardOutput.Contains("bootstrap=", StringComparison.Ordinal)) || process.HasExited),
            TimeSpan.FromSeconds(60),
            () => "broker bootstrap file; stderr: " + process.StandardError);
        if (process.HasExited)
        {
            throw new InvalidOperationException("broker exited: " + process.StandardError);
        }

        var bootstrap = (await File.ReadAllTextAsync(file)).Trim();

        // The line is printed before the file is written, but the pipe's reader may deliver it a moment later.
        await Eventually.WaitAsync(
            () => Task.FromResult(process.StandardOutput.Contains("bootstrap=" + bootstrap, StringComparison.Ordinal)),
            TimeSpan.FromSeconds(10),
            () => $"'bootstrap={bootstrap}' on the broker's stdout: '{process.StandardOutput}'");
        return new BrokerProcess(process, bootstrap, dir, faultFile);
    }

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>A <c>streaming run</c> process against a given broker and data directory, with an HTTP client.</summary>
public sealed class EngineProcess : IAsyncDisposable
{
    private EngineProcess(CliProcess process, Uri baseUri)
    {
        Process = process;
        Http = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(30) };
    }

    public CliProcess Process { get; }

    public HttpClient Http { get; }

    /// <param name="waitFor">The route that must answer with success before this returns: <c>/readyz</c> (partitions
    /// assigned), or <c>/healthz</c> for an engine that is not meant to become ready.</param>
    public static async Task<EngineProcess> StartAsync(string bootstrap, string dataDir, IDictionary<string, string>? environment = null, string waitFor = "/readyz")
    {
        var port = TestEnvironment.FreePort();
        var uri = new Uri($"http://127.0.0.1:{port}");
        var process = CliProcess.Start(["run", "--bootstrap", bootstrap, "--data-dir", dataDir, "--urls", uri.ToString().TrimEnd('/')], environment);
        var engine = new EngineProcess(process, uri);
        await WaitAnswersAsync(process, engine.Http, waitFor, TimeSpan.FromSeconds(90));
        return engine;
    }

    /// <summary>
    /// Starts <c>streaming run</c> on <paramref name="host"/> (in its network namespace), serving HTTP on the host's
    /// loopback port <paramref name="httpPort"/>, which the test reaches at <paramref name="backdoor"/>
    /// (<see cref="TestHost.Backdoor"/>); waits until it answers <c>/readyz</c>.
    /// </summary>
    public static async Task<EngineProcess> StartOnAsync(TestHost host, int httpPort, Uri backdoor, string bootstrap, string dataDir, IDictionary<string, string> environment)
    {
        var process = CliProcess.Start(["run", "--bootstrap", bootstrap, "--data-dir", dataDir, "--urls", $"http://127.0.0.1:{httpPort}"], environment, launcher: host.Launcher);
        var engine = new EngineProcess(process, backdoor);
        await WaitAnswersAsync(process, engine.Http, "/readyz", TimeSpan.FromSeconds(90));
        return engine;
    }

    /// <summary>
    /// Waits until <paramref name="process"/> answers <paramref name="path"/> with a success status through
    /// <paramref name="http"/> (connection errors count as "not yet"); fails at once if the process exits.
    /// </summary>
    public static Task WaitAnswersAsync(CliProcess process, HttpClient http, string path, TimeSpan timeout) =>
        Eventually.WaitAsync(
            async () =>
            {
                Assert.False(process.HasExited, $"engine exited with {(process.HasExited ? process.ExitCode : 0)}: " + CliProcess.Tail(process.StandardError));
                try
                {
                    using var response = await http.GetAsync(path);
                    return response.IsSuccessStatusCode;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            },
            timeout,
            () => $"engine answers {path}; stderr: " + CliProcess.Tail(process.StandardError));

    /// <summary>
    /// <c>GET /v1/status</c>. When nothing answers, fails with how the engine ended and the tail of its stderr (a bare
    /// "connection refused" said neither).
    /// </summary>
    public async Task<JsonElement> StatusAsync()
    {
        try
        {
            return await Http.GetFromJsonAsync<JsonElement>("/v1/status");
        }
        catch (HttpRequestException ex)
        {
            var state = Process.HasExited ? $"exited with {Process.ExitCode}" : "is still running";
            throw new Xunit.Sdk.XunitException($"GET {Http.BaseAddress}v1/status failed ({ex.Message}); the engine {state}; stderr:\n{CliProcess.Tail(Process.StandardError)}");
        }
    }

    /// <summary>Sum of the next offsets of <paramref name="topic"/>'s partitions: records processed since the log began.</summary>
    public async Task<long> ProcessedOffsetsAsync(string topic)
    {
        var status = await StatusAsync();
        long sum = 0;
        foreach (var p in status.GetProperty("partitions").EnumerateArray())
        {
            if (p.GetProperty("topic").GetString() == topic)
            {
                sum += p.GetProperty("offset").GetInt64();
            }
        }

        return sum;
    }

    public async Task WaitProcessedAsync(string topic, long count, TimeSpan timeout) =>
        await Eventually.WaitAsync(
            async () => await ProcessedOffsetsAsync(topic) >= count,
            timeout,
            () => $"{count} records of {topic} processed; stderr: {CliProcess.Tail(Process.StandardError)}");

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Process.DisposeAsync();
    }
}
