using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Streaming.Tests.Shared;

/// <summary>
/// A real <c>redis-server</c> for tests (Debian package <c>redis-server</c>): either the shared one that
/// <c>deploy/local/test</c> starts (<c>STREAMING_TEST_REDIS=host:port</c>) or a private process on a free loopback port
/// that the test may pause (SIGSTOP), shut down and start again. Linked into every test project that needs Redis.
/// </summary>
public sealed class RedisTestServer : IAsyncDisposable
{
    private readonly string? _dir;
    private readonly bool _appendOnly;
    private Process? _process;

    private RedisTestServer(string host, int port, string? dir, bool appendOnly)
    {
        Host = host;
        Port = port;
        _dir = dir;
        _appendOnly = appendOnly;
    }

    public string Host { get; }

    public int Port { get; }

    /// <summary>The StackExchange.Redis connection string.</summary>
    public string Connection => $"{Host}:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>True when this object started (and owns) the server process.</summary>
    public bool Private => _dir is not null;

    /// <summary>The shared server of the test run, or a private one started here when none is configured.</summary>
    public static async Task<RedisTestServer> SharedOrPrivateAsync()
    {
        if (Environment.GetEnvironmentVariable("STREAMING_TEST_REDIS") is { Length: > 0 } shared)
        {
            var colon = shared.LastIndexOf(':');
            var server = new RedisTestServer(shared[..colon], int.Parse(shared[(colon + 1)..], CultureInfo.InvariantCulture), null, false);
            await server.WaitReadyAsync(TimeSpan.FromSeconds(10));
            return server;
        }

        return await StartPrivateAsync();
    }

    /// <summary>A server owned by the caller. With <paramref name="appendOnly"/> it keeps its data across <see cref="ShutdownAsync"/> and <see cref="StartAsync"/> (AOF, fsync always).</summary>
    public static async Task<RedisTestServer> StartPrivateAsync(bool appendOnly = false, bool start = true)
    {
        var dir = Path.Combine(Path.GetTempPath(), "streaming-redis-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        var server = new RedisTestServer("127.0.0.1", FreePort(), dir, appendOnly);
        if (start)
        {
            await server.StartAsync();
        }

        return server;
    }

    /// <summary>Starts (or restarts) the private server on its port and directory.</summary>
    public async Task StartAsync()
    {
        if (_dir is null)
        {
            throw new InvalidOperationException("the shared test Redis is not started by tests");
        }

        var info = new ProcessStartInfo("redis-server") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[]
        {
            "--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", _appendOnly ? "yes" : "no", "--appendfsync", "always",
            "--dir", _dir, "--logfile", Path.Combine(_dir, "redis.log"), "--daemonize", "no",
        })
        {
            info.ArgumentList.Add(arg);
        }

        try
        {
            _process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException("redis-server not found: install the Debian package 'redis-server' (deploy/local/test does)", ex);
        }

        await WaitReadyAsync(TimeSpan.FromSeconds(20));
    }

    /// <summary>SIGSTOP: the server keeps its sockets and data but answers nothing (a hung server).</summary>
    public Task PauseAsync() => SignalAsync("STOP");

    /// <summary>SIGCONT after <see cref="PauseAsync"/>.</summary>
    public Task ResumeAsync() => SignalAsync("CONT");

    /// <summary>SIGKILL (a paused server too) and wait for the process to end: open connections are reset, new ones refused.</summary>
    public async Task KillAsync()
    {
        var process = _process ?? throw new InvalidOperationException("not running");
        process.Kill();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(20));
        process.Dispose();
        _process = null;
    }

    /// <summary>SHUTDOWN (saving the AOF when append-only) and wait for the process to end: connections are refused until <see cref="StartAsync"/>.</summary>
    public async Task ShutdownAsync()
    {
        var process = _process ?? throw new InvalidOperationException("not running");
        try
        {
            await CommandAsync("SHUTDOWN");
        }
        catch (IOException)
        {
            // The server closes the connection as it exits.
        }
        catch (SocketException)
        {
        }

        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(20));
        process.Dispose();
        _process = null;
    }

    /// <summary>Sends one inline command and returns the first reply line (for set-up and checks without a client library).</summary>
    public async Task<string> CommandAsync(string inline)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(Host, Port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(inline + "\r\n"));
        var buffer = new byte[512];
        var read = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        return Encoding.ASCII.GetString(buffer, 0, read).TrimEnd();
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { } process)
        {
            if (!process.HasExited)
            {
                await SignalAsync("CONT");
                process.Kill();
                await process.WaitForExitAsync();
            }

            process.Dispose();
        }

        if (_dir is not null)
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    /// <summary>
    /// Waits for <c>+PONG</c>. Any other reply (<c>-LOADING</c>, <c>-NOAUTH</c>, another service on the port), a
    /// refused connection or a dead process counts as not ready; at the deadline it throws with the last reply or error.
    /// </summary>
    private async Task WaitReadyAsync(TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            Exception? error = null;
            string? reply = null;
            try
            {
                reply = await CommandAsync("PING");
                if (reply == "+PONG")
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is SocketException or IOException or TimeoutException)
            {
                error = ex;
            }

            if (_process is { HasExited: true })
            {
                throw new InvalidOperationException($"redis-server exited with {_process.ExitCode}: {await _process.StandardError.ReadToEndAsync()}", error);
            }

            if (deadline.Elapsed > timeout)
            {
                var last = error is null ? $"last reply '{reply}'" : "last error: " + error.Message;
                throw new TimeoutException($"redis-server at {Connection} did not answer PING with +PONG within {timeout.TotalSeconds:0}s; {last}", error);
            }

            await Task.Delay(50);
        }
    }

    private async Task SignalAsync(string signal)
    {
        var pid = (_process ?? throw new InvalidOperationException("not running")).Id;
        using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-" + signal, pid.ToString(CultureInfo.InvariantCulture) }, UseShellExecute = false })!;
        await kill.WaitForExitAsync();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {pid} failed");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
