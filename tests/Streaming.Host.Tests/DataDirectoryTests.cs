using Microsoft.Data.Sqlite;
using Streaming.Connectors.Sql;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary>
/// A data directory written by the partition host (the runtime before this version, which kept customers in
/// <c>state.db</c>, schema 6) is refused with a clear message: no silent start from nothing.
/// </summary>
[Collection(EndToEnd.Name)]
public sealed class DataDirectoryTests
{
    [Fact]
    public async Task Run_refuses_a_directory_holding_the_partition_hosts_customers()
    {
        var dir = TestEnvironment.NewTempDir("streaming-old-dir");
        using (var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(dir, SqliteStateStore.FileName), Pooling = false }.ToString()))
        {
            // The partition host's customers table (its schema 6 columns) with two customers.
            db.Open();
            using var insert = db.CreateCommand();
            insert.CommandText = """
                CREATE TABLE customers(customer_id TEXT PRIMARY KEY, partition INTEGER NOT NULL, state BLOB NOT NULL,
                    wake INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
                PRAGMA user_version = 6;
                INSERT INTO customers(customer_id, partition, state) VALUES ('old-1', 0, x'00'), ('old-2', 1, x'00');
                """;
            Assert.Equal(2, insert.ExecuteNonQuery());
        }

        await using var cli = await CliProcess.RunAsync(["run", "--data-dir", dir, "--urls", "http://127.0.0.1:0"], TimeSpan.FromMinutes(2));
        Assert.Equal(2, cli.ExitCode);
        Assert.Contains("holds the partition host's state (2 customers in state.db)", cli.StandardError, StringComparison.Ordinal);
        Assert.Contains("run the earlier version on it", cli.StandardError, StringComparison.Ordinal);

        // Nothing of the actor runtime was created there.
        Assert.False(File.Exists(Path.Combine(dir, "journal.db")), "the refused start created a journal");
        Directory.Delete(dir, recursive: true);
    }
}
