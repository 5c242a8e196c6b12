using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Streaming.Host.Tests.Infrastructure;

/// <summary>
/// A real Prometheus server (Debian package <c>prometheus</c>) on a free loopback port, with its configuration and
/// storage in a temporary directory, queried through its HTTP API. Disposing stops it (SIGTERM) and deletes the directory.
/// </summary>
public sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();
    private readonly string _dir;

    private PrometheusServer(Process process, string dir, Uri baseUri)
    {
        _process = process;
        _dir = dir;
        Http = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(30) };
    }

    public HttpClient Http { get; }

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>Starts a server whose <c>prometheus.yml</c> is <paramref name="config"/> and waits until it is ready.</summary>
    public static async Task<PrometheusServer> StartAsync(string config)
    {
        var binary = Promtool.Require("prometheus");
        var dir = TestEnvironment.NewTempDir("prometheus");
        var configFile = Path.Combine(dir, "prometheus.yml");
        await File.WriteAllTextAsync(configFile, config);
        var port = TestEnvironment.FreePort();
        var info = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = dir,
        };
        info.ArgumentList.Add("--config.file=" + configFile);
        info.ArgumentList.Add("--storage.tsdb.path=" + Path.Combine(dir, "data"));
        info.ArgumentList.Add("--web.listen-address=127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture));
        info.ArgumentList.Add("--log.level=warn");

        var process = new Process { StartInfo = info };
        var server = new PrometheusServer(process, dir, new Uri($"http://127.0.0.1:{port}"));
        process.OutputDataReceived += (_, e) => server.Append(e.Data);
        process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        if (!process.Start())
        {
            throw new InvalidOperationException("could not start " + binary);
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await Eventually.WaitAsync(
                async () =>
                {
                    if (process.HasExited)
                    {
                        throw new InvalidOperationException($"prometheus exited with {process.ExitCode}:\n{server.Log}");
                    }

                    try
                    {
                        using var response = await server.Http.GetAsync("/-/ready");
                        return response.IsSuccessStatusCode;
                    }
                    catch (HttpRequestException)
                    {
                        return false;
                    }
                },
                TimeSpan.FromSeconds(60),
                () => "prometheus ready; log:\n" + server.Log);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    /// <summary><c>GET /api/v1/query</c> at the server's current time: the whole answer (status, data or error).</summary>
    public async Task<JsonElement> QueryAsync(string expr)
    {
        using var response = await Http.GetAsync("/api/v1/query?query=" + Uri.EscapeDataString(expr));
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>The samples of an instant query, with their labels; throws when the query fails.</summary>
    public async Task<IReadOnlyList<(IReadOnlyDictionary<string, string> Labels, double Value)>> SamplesAsync(string expr)
    {
        var answer = await QueryAsync(expr);
        if (answer.GetProperty("status").GetString() != "success")
        {
            throw new InvalidOperationException($"query {expr} failed: {answer}");
        }

        return Samples(answer);
    }

    /// <summary>The samples of a successful instant-query answer (vector or scalar).</summary>
    public static IReadOnlyList<(IReadOnlyDictionary<string, string> Labels, double Value)> Samples(JsonElement answer)
    {
        var data = answer.GetProperty("data");
        var result = data.GetProperty("result");
        var samples = new List<(IReadOnlyDictionary<string, string>, double)>();
        if (data.GetProperty("resultType").GetString() is "scalar" or "string")
        {
            samples.Add((new Dictionary<string, string>(), Number(result[1].GetString()!)));
            return samples;
        }

        foreach (var series in result.EnumerateArray())
        {
            var labels = series.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "");
            if (series.TryGetProperty("value", out var value))
            {
                samples.Add((labels, Number(value[1].GetString()!)));
            }
            else
            {
                foreach (var point in series.GetProperty("values").EnumerateArray())
                {
                    samples.Add((labels, Number(point[1].GetString()!)));
                }
            }
        }

        return samples;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (!_process.HasExited)
        {
            _ = CliProcess.Kill(_process.Id, 15);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await _process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }

        _process.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static double Number(string text) => text switch
    {
        "NaN" => double.NaN,
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        _ => double.Parse(text, CultureInfo.InvariantCulture),
    };

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }
}
