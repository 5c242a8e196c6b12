using Microsoft.Extensions.Configuration;
using Streaming.Connectors.Persistence;
using Streaming.Host.Hosting;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary><c>Streaming:Store:*</c> (CONTRACTS.md §8) and its command-line options.</summary>
public sealed class StoreSettingsTests
{
    private static StreamingSettings Settings(params (string Key, string Value)[] values) =>
        StreamingSettings.From(new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => KeyValuePair.Create(v.Key, (string?)v.Value))).Build());

    [Fact]
    public void The_default_store_is_sqlite_in_the_data_directory()
    {
        var settings = Settings();
        Assert.Equal(StoreProvider.Sqlite, settings.StoreProvider);
        Assert.Null(settings.StoreConnectionString);
    }

    [Fact]
    public void PostgreSQL_is_read_from_the_store_settings()
    {
        var settings = Settings(("Streaming:Store:Provider", "PostgreSQL"), ("Streaming:Store:ConnectionString", "Host=db;Database=streaming"));
        Assert.Equal(StoreProvider.PostgreSql, settings.StoreProvider);
        Assert.Equal("Host=db;Database=streaming", settings.StoreConnectionString);
    }

    [Theory]
    [InlineData("mysql", "akka", "Host=db", "must be 'sqlite' or 'postgresql'")]
    [InlineData("postgresql", "host", "Host=db", "Streaming:Engine:Runtime = 'host': the actor runtime ('akka') is the only one")]
    [InlineData("postgresql", "akka", " ", "needs Streaming:Store:ConnectionString")]
    public void Unusable_store_settings_are_refused_with_the_reason(string provider, string runtime, string connection, string reason)
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Settings(("Streaming:Store:Provider", provider), ("Streaming:Engine:Runtime", runtime), ("Streaming:Store:ConnectionString", connection)));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_takes_the_store_from_its_options_and_refuses_postgresql_without_a_connection()
    {
        var dir = TestEnvironment.NewTempDir("streaming-store-options");
        try
        {
            var run = await CliProcess.RunAsync(["run", "--data-dir", dir, "--store-provider", "postgresql"], TimeSpan.FromSeconds(60));
            Assert.Equal(2, run.ExitCode);
            Assert.Contains("needs Streaming:Store:ConnectionString", run.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
