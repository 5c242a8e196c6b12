using System.Diagnostics;

namespace Streaming.Host.Tests.Infrastructure;

/// <summary><c>promtool check metrics</c> (Debian package <c>prometheus</c>), which reads an exposition on stdin.</summary>
public static class Promtool
{
    /// <summary>Runs the check on <paramref name="expositionFile"/>; fails the test when promtool is not installed.</summary>
    public static async Task<(int ExitCode, string Output)> CheckMetricsAsync(string expositionFile)
    {
        var promtool = FindOnPath("promtool");
        if (promtool is null)
        {
            Assert.Fail("promtool not found on PATH: install the Debian package 'prometheus' (apt-get install prometheus; deploy/local/test installs it)");
        }

        var info = new ProcessStartInfo(promtool)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("check");
        info.ArgumentList.Add("metrics");
        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start " + promtool);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await using (var input = File.OpenRead(expositionFile))
        {
            await input.CopyToAsync(process.StandardInput.BaseStream);
        }

        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, (await stdout) + (await stderr));
    }

    private static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
