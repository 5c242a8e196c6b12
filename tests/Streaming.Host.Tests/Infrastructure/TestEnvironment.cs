using System.Net;
using System.Net.Sockets;
using System.Reflection;

namespace Streaming.Host.Tests.Infrastructure;

/// <summary>Where the repository, the datasets and the built CLI are.</summary>
public static class TestEnvironment
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string DataDir { get; } = FindDataDir();

    /// <summary>The CLI assembly built in the same configuration as this test assembly.</summary>
    public static string CliDll { get; } = Path.Combine(RepoRoot, "engine", "Streaming.Host", "bin",
        typeof(TestEnvironment).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug", "net10.0", "Streaming.dll");

    public static string DataFile(string name) => Path.Combine(DataDir, name);

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static string NewTempDir(string prefix)
    {
        var dir = Path.Combine(Path.GetTempPath(), prefix + "-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Streaming.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Streaming.sln not found above " + AppContext.BaseDirectory);
    }

    private static string FindDataDir()
    {
        if (Environment.GetEnvironmentVariable("STREAMING_DATA_DIR") is { Length: > 0 } env)
        {
            return env;
        }

        var shared = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "data"));
        return Directory.Exists(shared)
            ? shared
            : throw new InvalidOperationException("datasets not found: set STREAMING_DATA_DIR or place them in ../shared/data");
    }
}
