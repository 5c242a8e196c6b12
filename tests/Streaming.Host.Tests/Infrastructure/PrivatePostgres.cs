using System.Net;

namespace Streaming.Host.Tests.Infrastructure;

/// <summary>
/// A PostgreSQL server of the test's own, listening on one address (a <see cref="TestNetwork"/>'s gateway, say, so that
/// the hosts reach it over their links and a cut looks to the server as it would on a real network: its keepalives go
/// unanswered). Its cluster is made with <c>initdb</c> in a temporary directory owned by the <c>postgres</c> user
/// (PostgreSQL refuses to run as root), with fsync off; it is stopped and removed on disposal.
/// </summary>
public sealed class PrivatePostgres : IAsyncDisposable
{
    private readonly string _bin;
    private readonly string _dir;

    private PrivatePostgres(string bin, string dir, string connectionString)
    {
        _bin = bin;
        _dir = dir;
        ConnectionString = connectionString;
    }

    /// <summary>An Npgsql connection string to its <c>postgres</c> database, as the <c>postgres</c> user (trust).</summary>
    public string ConnectionString { get; }

    /// <summary>Makes and starts the server on <paramref name="address"/> and a free port.</summary>
    /// <exception cref="InvalidOperationException">No PostgreSQL server binaries, or initdb or pg_ctl failed (their output).</exception>
    public static async Task<PrivatePostgres> StartAsync(IPAddress address)
    {
        var bin = Environment.GetEnvironmentVariable("PATH")!.Split(':').FirstOrDefault(d => File.Exists(Path.Combine(d, "pg_ctl")))
            ?? Directory.GetDirectories("/usr/lib/postgresql").Select(v => Path.Combine(v, "bin")).Where(d => File.Exists(Path.Combine(d, "pg_ctl")))
                .OrderBy(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var major) ? major : 0).LastOrDefault()
            ?? throw new InvalidOperationException("no PostgreSQL server binaries (pg_ctl) on PATH or under /usr/lib/postgresql");
        var dir = Path.Combine(Path.GetTempPath(), "streaming-pg-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dir);
        var port = TestEnvironment.FreePort();
        var server = new PrivatePostgres(bin, dir, $"Host={address};Port={port};Username=postgres;Database=postgres");
        try
        {
            await Programs.RunCheckedAsync("chmod", ["755", dir]);
            if (Environment.UserName == "root")
            {
                await Programs.RunCheckedAsync("chown", ["postgres:postgres", dir]);
            }

            await server.AsPostgresAsync("initdb", "-D", Path.Combine(dir, "data"), "-A", "trust", "-U", "postgres");
            // initdb trusts local connections only: the hosts on the address's /24 too (it listens on nothing else).
            var subnet = address.GetAddressBytes();
            await File.AppendAllTextAsync(Path.Combine(dir, "data", "pg_hba.conf"), $"\nhost all all {subnet[0]}.{subnet[1]}.{subnet[2]}.0/24 trust\n");
            await server.AsPostgresAsync("pg_ctl", "-D", Path.Combine(dir, "data"), "-l", Path.Combine(dir, "server.log"), "-w", "-t", "30",
                "-o", $"-p {port} -h {address} -k {dir} -F", "start");
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await AsPostgresAsync("pg_ctl", "-D", Path.Combine(_dir, "data"), "-m", "immediate", "stop");
        }
        catch (InvalidOperationException)
        {
            // Not running.
        }

        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Runs one of the server's programs, as the <c>postgres</c> user when the tests run as root.</summary>
    private Task AsPostgresAsync(string program, params string[] args) => Environment.UserName == "root"
        ? Programs.RunCheckedAsync("runuser", ["-u", "postgres", "--", Path.Combine(_bin, program), .. args])
        : Programs.RunCheckedAsync(Path.Combine(_bin, program), args);
}
