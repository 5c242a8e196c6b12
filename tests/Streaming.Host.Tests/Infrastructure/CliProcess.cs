using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Streaming.Host.Tests.Infrastructure;

/// <summary>The <c>streaming</c> CLI run as a separate process, as a user would, with its output captured.</summary>
public sealed partial class CliProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private CliProcess(Process process, string description)
    {
        _process = process;
        Description = description;
    }

    public string Description { get; }

    public int Pid => _process.Id;

    public bool HasExited => _exited.Task.IsCompleted;

    public int ExitCode => _process.ExitCode;

    public string StandardOutput
    {
        get
        {
            lock (_stdout)
            {
                return _stdout.ToString();
            }
        }
    }

    public string StandardError
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <param name="launcher">A command the CLI runs under, e.g. <c>ip netns exec NAME</c> (it must exec
    /// <c>dotnet</c> in place, so that the process's id, signals and exit code are the CLI's own); none by default.</param>
    public static CliProcess Start(IEnumerable<string> args, IDictionary<string, string>? environment = null, string? workingDirectory = null, IReadOnlyList<string>? launcher = null)
    {
        var info = new ProcessStartInfo(launcher is { Count: > 0 } ? launcher[0] : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        if (launcher is { Count: > 0 })
        {
            foreach (var part in launcher.Skip(1).Append("dotnet"))
            {
                info.ArgumentList.Add(part);
            }
        }

        info.ArgumentList.Add(TestEnvironment.CliDll);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["STREAMING_DATA_DIR"] = TestEnvironment.DataDir;

        // Engines run with a 3 s consumer-group session (default 6 s): a member killed with SIGKILL leaves the group
        // when its session ends, and the embedded broker waits a session less a second in each rebalance round, so
        // every restart after a kill waits for it. A test may set its own.
        info.Environment["Streaming__Kafka__SessionTimeoutMs"] = "3000";

        // No instrumented tier for the JIT: the suite's processes live for seconds to minutes, and profile-guided
        // re-compilation was a large share of their CPU on two cores. Measured 2026-12-02: an engine with a cache of
        // 200 customers took Online Retail (22,190 records) in 26.2 and 34.7 s with 45 and 60 s of CPU, and in 19.2 and
        // 20.0 s with 33 and 36 s with this setting. What the engine computes does not depend on it.
        info.Environment["DOTNET_TieredPGO"] = "0";
        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                info.Environment[key] = value;
            }
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var cli = new CliProcess(process, string.Join(' ', info.ArgumentList.SkipWhile(a => a != TestEnvironment.CliDll).Skip(1)));
        process.OutputDataReceived += (_, e) => cli.Append(cli._stdout, e.Data);
        process.ErrorDataReceived += (_, e) => cli.Append(cli._stderr, e.Data);
        process.Exited += (_, _) => cli._exited.TrySetResult();
        if (!process.Start())
        {
            throw new InvalidOperationException("could not start " + cli.Description);
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Close();
        return cli;
    }

    /// <summary>Runs to completion within <paramref name="timeout"/>; returns the exit code.</summary>
    public static async Task<CliProcess> RunAsync(IEnumerable<string> args, TimeSpan timeout, IDictionary<string, string>? environment = null)
    {
        var cli = Start(args, environment);
        await cli.WaitForExitAsync(timeout);
        return cli;
    }

    public async Task WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _exited.Task.WaitAsync(timeout);
            await _process.WaitForExitAsync();
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"'{Description}' did not exit within {timeout.TotalSeconds:0}s. stderr:\n{Tail(StandardError)}");
        }
    }

    /// <summary>kill -9: no chance to checkpoint.</summary>
    public async Task KillAsync()
    {
        if (!HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await WaitForExitAsync(TimeSpan.FromSeconds(30));
    }

    public void Terminate()
    {
        if (!HasExited && Kill(_process.Id, 15) != 0)
        {
            throw new InvalidOperationException($"kill -TERM {_process.Id} failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!HasExited)
        {
            Terminate();
            try
            {
                await WaitForExitAsync(TimeSpan.FromSeconds(15));
            }
            catch (TimeoutException)
            {
                await KillAsync();
            }
        }

        _process.Dispose();
    }

    public static string Tail(string text, int lines = 40)
    {
        var all = text.Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }

    private void Append(StringBuilder sb, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (sb)
        {
            sb.AppendLine(line);
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);
}
