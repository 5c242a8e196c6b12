using Npgsql;
using Streaming.Connectors.Persistence;
using Streaming.Tests.Shared;

namespace Streaming.Connectors.Tests;

/// <summary>
/// The sessions a node opens on PostgreSQL (<see cref="ActorStore.ForNode"/>), on the test server: the server ends a
/// transaction the node abandoned, so that its locks do not hold the other nodes (a node cut off mid-transaction never
/// sends its COMMIT).
/// </summary>
public sealed class PostgresSessionTests
{
    [Fact]
    public async Task A_node_session_ends_an_idle_transaction_after_15_s_and_a_silent_peer_by_keepalives_unless_the_connection_string_says_otherwise()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        var node = ActorStore.ForNode(database.ConnectionString, maxPool: 4);
        Assert.Equal(4, new NpgsqlConnectionStringBuilder(node).MaxPoolSize);
        Assert.Equal("15s", await ShowAsync(node));

        // Keepalives and the user timeout end the session of a node gone silent mid-statement (the server's values, not
        // the option text: PostgreSQL applied them to the TCP connection).
        Assert.Equal("10", await ShowAsync(node, "tcp_keepalives_idle"));
        Assert.Equal("5", await ShowAsync(node, "tcp_keepalives_interval"));
        Assert.Equal("3", await ShowAsync(node, "tcp_keepalives_count"));
        Assert.Equal("30000", await ShowAsync(node, "tcp_user_timeout"));

        // A value of the operator's own is kept, and other startup options with it.
        var own = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Options = "-c idle_in_transaction_session_timeout=2s -c statement_timeout=0" }.ToString();
        Assert.Equal("2s", await ShowAsync(ActorStore.ForNode(own, maxPool: 4)));
        Assert.Contains("statement_timeout=0", new NpgsqlConnectionStringBuilder(ActorStore.ForNode(own, maxPool: 4)).Options, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_abandoned_transactions_lock_is_released_when_the_server_ends_its_session()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        await using (var setup = new NpgsqlConnection(database.ConnectionString))
        {
            await setup.OpenAsync();
            await using var create = new NpgsqlCommand("CREATE TABLE journal_like (id bigint PRIMARY KEY, payload text)", setup);
            await create.ExecuteNonQueryAsync();
        }

        // A node's session (with a 2 s limit, to keep the test short) inserts in a transaction and then goes silent, as
        // a node whose link was cut mid-transaction; its row lock and table lock stay until the server ends it.
        var short_ = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Options = "-c idle_in_transaction_session_timeout=2s", Pooling = false }.ToString();
        await using var abandoned = new NpgsqlConnection(ActorStore.ForNode(short_, maxPool: 1));
        await abandoned.OpenAsync();
        await using var tx = await abandoned.BeginTransactionAsync();
        await using (var insert = new NpgsqlCommand("INSERT INTO journal_like VALUES (1, 'uncommitted')", abandoned, tx))
        {
            await insert.ExecuteNonQueryAsync();
        }

        // Another node creates an index (needs a lock the open insert conflicts with) and writes the same key: both wait
        // for the abandoned transaction, and go through once the server has ended it (rolled back).
        await using var other = new NpgsqlConnection(database.ConnectionString);
        await other.OpenAsync();
        await using var index = new NpgsqlCommand("CREATE INDEX IF NOT EXISTS journal_like_payload ON journal_like (payload)", other) { CommandTimeout = 60 };
        var indexing = index.ExecuteNonQueryAsync();

        // It waits on the lock (seen by the server), until the abandoned session is gone.
        await using var watch = new NpgsqlConnection(database.ConnectionString);
        await watch.OpenAsync();
        async Task<long> WaitingOnLocks()
        {
            await using var query = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", watch);
            return (long)(await query.ExecuteScalarAsync())!;
        }

        var sawWait = false;
        while (!indexing.IsCompleted)
        {
            sawWait |= await WaitingOnLocks() > 0;
            await Task.WhenAny(indexing, Task.Delay(100));
        }

        await indexing;
        Assert.True(sawWait, "the index was created without waiting: the abandoned transaction held no lock");
        await using (var write = new NpgsqlCommand("INSERT INTO journal_like VALUES (1, 'the next owner')", other) { CommandTimeout = 60 })
        {
            Assert.Equal(1, await write.ExecuteNonQueryAsync());
        }

        await using var read = new NpgsqlCommand("SELECT payload FROM journal_like WHERE id = 1", other);
        Assert.Equal("the next owner", await read.ExecuteScalarAsync());
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => tx.CommitAsync());
    }

    private static async Task<string> ShowAsync(string connectionString, string parameter = "idle_in_transaction_session_timeout")
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var show = new NpgsqlCommand("SHOW " + parameter, connection);
        return (string)(await show.ExecuteScalarAsync())!;
    }
}
