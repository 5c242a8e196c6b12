using System.Diagnostics;

namespace Streaming.Host.Tests.Infrastructure;

/// <summary>Prometheus' <c>promtool</c> (Debian package <c>prometheus</c>): checks of expositions, rule files and configs.</summary>
public static class Promtool
{
    /// <summary>Runs <c>check metrics</c> on <paramref name="expositionFile"/>, which promtool reads on stdin.</summary>
    public static Task<(int ExitCode, string Output)> CheckMetricsAsync(string expositionFile) =>
        RunAsync(["check", "metrics"], workingDirectory: null, stdinFile: expositionFile);

    /// <summary>Runs <c>promtool</c> with <paramref name="args"/>; fails the test when it is not installed.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(IEnumerable<string> args, string? workingDirectory = null, string? stdinFile = null)
    {
        var info = new ProcessStartInfo(Require("promtool"))
        {
            RedirectStandardInput = stdinFile is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start " + info.FileName);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdinFile is not null)
        {
            await using (var input = File.OpenRead(stdinFile))
            {
                await input.CopyToAsync(process.StandardInput.BaseStream);
            }

            process.StandardInput.Close();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, (await stdout) + (await stderr));
    }

    /// <summary>The path of a binary of the Debian package <c>prometheus</c>; fails the test (never skips it) when absent.</summary>
    public static string Require(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        Assert.Fail($"{name} not found on PATH: install the Debian package 'prometheus' (apt-get install prometheus; deploy/local/test installs it)");
        return name;
    }
}
