using System.Diagnostics;

namespace Streaming.Host.Tests.Infrastructure;

/// <summary>Programs of the machine (not the CLI: see <see cref="CliProcess"/>) run to their end, their output read.</summary>
public static class Programs
{
    /// <summary>Runs <paramref name="program"/> with <paramref name="args"/>; its exit code, standard output and error.</summary>
    /// <exception cref="TimeoutException">It ran longer than <paramref name="timeout"/> (default 60 s).</exception>
    public static async Task<(int Code, string Stdout, string Stderr)> RunAsync(string program, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException(program + " did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(timeout ?? TimeSpan.FromSeconds(60));
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Runs <paramref name="program"/> and returns its standard output.</summary>
    /// <exception cref="InvalidOperationException">It exited with an error: the command, its code and output, and <paramref name="hint"/>.</exception>
    public static async Task<string> RunCheckedAsync(string program, IEnumerable<string> args, string hint = "")
    {
        var list = args.ToList();
        var (code, stdout, stderr) = await RunAsync(program, list);
        return code == 0
            ? stdout
            : throw new InvalidOperationException($"{program} {string.Join(' ', list)} exited with {code}: {stderr.Trim()} {stdout.Trim()}{hint}");
    }
}
