using Microsoft.Extensions.Configuration;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Persistence;
using Streaming.Host.Hosting;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary><c>Streaming:Store:*</c> and <c>Streaming:Cluster:*</c> (CONTRACTS.md §8) and their command-line options.</summary>
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

    [Fact]
    public void Cluster_settings_are_read_with_loopback_as_the_default_host()
    {
        var settings = Settings(("Streaming:Cluster:Port", "4053"), ("Streaming:Store:Provider", "postgresql"), ("Streaming:Store:ConnectionString", "Host=db"),
            ("Streaming:Cluster:SeedNodes:0", "10.0.0.5:4053"), ("Streaming:Cluster:SeedNodes:1", "node-b.engine:4053"));
        Assert.Equal(("127.0.0.1", 4053), (settings.ClusterHostname, settings.ClusterPort));
        Assert.Equal(["10.0.0.5:4053", "node-b.engine:4053"], settings.SeedNodes);
        Assert.Equal(settings.SeedNodes, settings.ToEngineOptions("kafka:9092").SeedNodes);
        Assert.Empty(Settings().SeedNodes);
    }

    [Fact]
    public void The_split_brain_resolver_decides_after_the_configured_stable_membership()
    {
        TimeSpan StableAfter(StreamingSettings s) =>
            ShardedEngine.NodeConfigFor(s.ClusterHostname, s.ClusterPort, TimeSpan.FromMilliseconds(s.ClusterStableAfterMs)).GetTimeSpan("akka.cluster.split-brain-resolver.stable-after");
        Assert.Equal(TimeSpan.FromSeconds(20), StableAfter(Settings()));
        Assert.Equal(TimeSpan.FromSeconds(7.5), StableAfter(Settings(("Streaming:Cluster:StableAfterMs", "7500"))));
        var ex = Assert.Throws<InvalidOperationException>(() => Settings(("Streaming:Cluster:StableAfterMs", "500")));
        Assert.Contains("Streaming:Cluster:StableAfterMs", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sqlite", "", "10.0.0.5:4053", "needs Streaming:Store:Provider = 'postgresql'")]
    [InlineData("postgresql", "", "10.0.0.5", "seed node '10.0.0.5' must be host:port")]
    [InlineData("postgresql", "", "10.0.0.5:0", "seed node '10.0.0.5:0' must be host:port")]
    public void Cluster_settings_this_build_cannot_honour_are_refused_with_the_reason(string provider, string redis, string seed, string reason)
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Settings(("Streaming:Store:Provider", provider), ("Streaming:Store:ConnectionString", "Host=db"), ("Streaming:Redis:Connection", redis), ("Streaming:Cluster:SeedNodes:0", seed)));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_mirror_orders_writes_by_customer_version_in_a_cluster_and_by_checkpoint_on_one_node()
    {
        var cluster = Settings(("Streaming:Store:Provider", "postgresql"), ("Streaming:Store:ConnectionString", "Host=db"), ("Streaming:Redis:Connection", "127.0.0.1:6379"),
            ("Streaming:Cluster:SeedNodes:0", "10.0.0.5:4053"));
        Assert.Equal((Engine.Runtime.MirrorSeqSource.CustomerVersion, "127.0.0.1:6379"), (cluster.MirrorSeqSource, cluster.RedisConnection));
        Assert.Equal(Engine.Runtime.MirrorSeqSource.Checkpoint, Settings(("Streaming:Redis:Connection", "127.0.0.1:6379")).MirrorSeqSource);
    }

    [Fact]
    public async Task Run_refuses_a_cluster_on_sqlite_or_on_the_embedded_broker()
    {
        var dir = TestEnvironment.NewTempDir("streaming-cluster-options");
        try
        {
            var sqlite = await CliProcess.RunAsync(["run", "--data-dir", dir, "--seed-node", "127.0.0.1:4053", "--bootstrap", "127.0.0.1:9"], TimeSpan.FromSeconds(60));
            Assert.Equal(2, sqlite.ExitCode);
            Assert.Contains("a cluster (Streaming:Cluster:SeedNodes, --seed-node) needs Streaming:Store:Provider = 'postgresql'", sqlite.StandardError, StringComparison.Ordinal);

            var embedded = await CliProcess.RunAsync(["run", "--data-dir", dir, "--seed-node", "127.0.0.1:4053", "--store-provider", "postgresql", "--store-connection", "Host=127.0.0.1;Port=9"], TimeSpan.FromSeconds(60));
            Assert.Equal(2, embedded.ExitCode);
            Assert.Contains("a cluster (--seed-node) needs Kafka bootstrap servers", embedded.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
