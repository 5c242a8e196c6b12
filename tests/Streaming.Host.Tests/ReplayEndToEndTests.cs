using System.Globalization;
using System.Text.RegularExpressions;
using Streaming.Host.Tests.Infrastructure;
using Streaming.Tests.Shared;

namespace Streaming.Host.Tests;

/// <summary>
/// The whole Online Retail dataset through separate <c>streaming broker</c>, <c>streaming replay</c> and
/// <c>streaming run</c> processes with the journal on PostgreSQL; every customer's orders block must equal the batch
/// computation, before and after a restart. (On SQLite, the same replay, restart and check are in
/// <see cref="ModelReplayTests"/>' online-retail test.)
/// </summary>
[Collection(EndToEnd.Name)]
public sealed partial class ReplayEndToEndTests
{
    private const string RetailFile = "online_retail_2010_2011.csv.gz";
    private static readonly Lazy<OnlineRetailBatch.Result> s_expected = new(() => OnlineRetailBatch.Compute(TestEnvironment.DataFile(RetailFile)));

    /// <summary>
    /// The same with the journal on PostgreSQL (<c>Streaming:Store:*</c>): the customers and the engine's own tables
    /// (settings, checkpoint numbers) are in the database, not in the data directory, and the restarted engine recovers
    /// them from there.
    /// </summary>
    [Fact]
    public async Task Full_replay_with_the_journal_on_postgresql_matches_batch_computation()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        var dataDir = await FullReplayAsync(new()
        {
            ["Streaming__Store__Provider"] = "postgresql",
            ["Streaming__Store__ConnectionString"] = database.ConnectionString,
        });
        Assert.Equal(s_expected.Value.Customers.Count, await CustomersInJournalAsync(database));
        Assert.False(File.Exists(Path.Combine(dataDir, "journal.db")), "the engine wrote an SQLite journal beside PostgreSQL");
        Assert.False(File.Exists(Path.Combine(dataDir, "state.db")), "the engine kept its own tables in SQLite beside PostgreSQL");
        Assert.Equal(["rules", "runtime.checkpoint-numbers"], await EngineSettingsAsync(database));
    }

    /// <summary>The keys of the engine's settings table in the database, in order.</summary>
    private static async Task<List<string>> EngineSettingsAsync(PostgresDatabase database)
    {
        await using var connection = new Npgsql.NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        await using var read = new Npgsql.NpgsqlCommand("SELECT key FROM settings WHERE key IN ('rules', 'runtime.checkpoint-numbers') ORDER BY key", connection);
        await using var reader = await read.ExecuteReaderAsync();
        var keys = new List<string>();
        while (await reader.ReadAsync())
        {
            keys.Add(reader.GetString(0));
        }

        return keys;
    }

    /// <summary>Distinct customers with events in the journal.</summary>
    private static async Task<long> CustomersInJournalAsync(PostgresDatabase database)
    {
        await using var connection = new Npgsql.NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        await using var count = new Npgsql.NpgsqlCommand("SELECT COUNT(DISTINCT persistence_id) FROM journal WHERE persistence_id LIKE 'customer-%'", connection);
        return (long)(await count.ExecuteScalarAsync())!;
    }

    /// <summary>Replays Online Retail into an engine run with <paramref name="settings"/>, checks, restarts, checks again; returns its data directory.</summary>
    private async Task<string> FullReplayAsync(Dictionary<string, string> settings)
    {
        var expected = s_expected.Value;
        await using var broker = await BrokerProcess.StartAsync(partitions: 16);
        var dataDir = TestEnvironment.NewTempDir("streaming-state");
        // A cache bound below the 4,372 customers: idle ones are passivated and reloaded from the store when asked for.
        var env = new Dictionary<string, string>(settings) { ["Streaming__Engine__MaxCachedCustomers"] = "1000" };
        await using var engine = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);

        var replay = await CliProcess.RunAsync(["replay", "online-retail", "--file", TestEnvironment.DataFile(RetailFile), "--bootstrap", broker.BootstrapServers], TimeSpan.FromMinutes(5));
        Assert.True(replay.ExitCode == 0, "replay failed: " + replay.StandardError);
        var produced = Produced(replay);
        Assert.Equal(expected.Invoices, produced);

        await engine.WaitProcessedAsync("orders", produced, TimeSpan.FromMinutes(3));
        await ProfileAssert.OrdersMatchAsync(engine.Http, expected, "straight replay");
        var status = await engine.StatusAsync();
        Assert.Equal(0, status.GetProperty("deadLetters").GetInt64());
        Assert.Equal(0, status.GetProperty("duplicates").GetInt64());
        Assert.True(status.GetProperty("passivations").GetInt64() > 0, "expected idle customers to be passivated: " + status);

        // SIGTERM: checkpoint and exit 0; the restarted engine serves the same profiles from the store.
        engine.Process.Terminate();
        await engine.Process.WaitForExitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(0, engine.Process.ExitCode);
        await using var restarted = await EngineProcess.StartAsync(broker.BootstrapServers, dataDir, env);
        await ProfileAssert.OrdersMatchAsync(restarted.Http, expected, "after SIGTERM and restart");
        return dataDir;
    }

    private static long Produced(CliProcess replay)
    {
        var match = ProducedLine().Match(replay.StandardOutput);
        Assert.True(match.Success, "no produced=N line in: " + replay.StandardOutput);
        return long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"^produced=(\d+)$", RegexOptions.Multiline)]
    private static partial Regex ProducedLine();
}

/// <summary>End-to-end tests start processes and load both cores: they run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class EndToEnd
{
    public const string Name = "end-to-end";
}
