using Npgsql;

namespace Streaming.Tests.Shared;

/// <summary>
/// A database of its own on the test PostgreSQL server (<c>STREAMING_TEST_POSTGRES</c>, started by
/// <c>deploy/local/test</c>), dropped with every connection to it when disposed.
/// </summary>
public sealed class PostgresDatabase : IAsyncDisposable
{
    private readonly string _server;
    private readonly string _name;

    private PostgresDatabase(string server, string name, string connectionString)
    {
        _server = server;
        _name = name;
        ConnectionString = connectionString;
    }

    /// <summary>An Npgsql connection string to the new database.</summary>
    public string ConnectionString { get; }

    /// <summary>Creates an empty database named <c>streaming_test_…</c>.</summary>
    /// <exception cref="InvalidOperationException"><c>STREAMING_TEST_POSTGRES</c> is not set.</exception>
    public static async Task<PostgresDatabase> CreateAsync()
    {
        var server = Environment.GetEnvironmentVariable("STREAMING_TEST_POSTGRES")
            ?? throw new InvalidOperationException("STREAMING_TEST_POSTGRES is not set: run the tests with deploy/local/test, which starts PostgreSQL");
        var name = "streaming_test_" + Guid.NewGuid().ToString("N");
        await using (var admin = new NpgsqlConnection(server))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new PostgresDatabase(server, name, new NpgsqlConnectionStringBuilder(server) { Database = name }.ToString());
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var admin = new NpgsqlConnection(_server);
        await admin.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_name} WITH (FORCE)", admin);
        await drop.ExecuteNonQueryAsync();
    }
}
