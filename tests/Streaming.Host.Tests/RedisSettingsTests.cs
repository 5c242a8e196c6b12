using Microsoft.Extensions.Configuration;
using Streaming.Connectors.Redis;
using Streaming.Host.Hosting;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary><c>Streaming:Redis</c> settings and the <c>mirror resync</c> verb's refusals.</summary>
public sealed class RedisSettingsTests
{
    private static StreamingSettings Settings(params (string Key, string Value)[] values) =>
        StreamingSettings.From(new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => KeyValuePair.Create(v.Key, (string?)v.Value))).Build());

    [Fact]
    public void No_connection_means_no_mirror()
    {
        var settings = Settings();
        Assert.Null(settings.RedisConnection);
        Assert.Equal(RedisKeySchema.DefaultPrefix, settings.RedisPrefix);
        Assert.Null(Settings(("Streaming:Redis:Connection", "  ")).RedisConnection);
    }

    [Fact]
    public void Connection_and_prefix_are_read()
    {
        var settings = Settings(("Streaming:Redis:Connection", "127.0.0.1:6390,connectTimeout=1000"), ("Streaming:Redis:Prefix", "shop-1:"));
        Assert.Equal("127.0.0.1:6390,connectTimeout=1000", settings.RedisConnection);
        Assert.Equal("shop-1:", settings.RedisPrefix);
        Assert.Equal("", Settings(("Streaming:Redis:Prefix", "")).RedisPrefix);
    }

    [Theory]
    [InlineData("Streaming:Redis:Prefix", "a*b")]
    [InlineData("Streaming:Redis:Prefix", "{shop}:")]
    [InlineData("Streaming:Redis:Connection", "127.0.0.1:1,127.0.0.1:2")]
    public void Invalid_values_are_refused_with_the_key(string key, string value)
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Settings((key, value)));
        Assert.Contains(key, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Resync_without_redis_or_store_explains_and_exits_2()
    {
        var dir = TestEnvironment.NewTempDir("streaming-resync");
        try
        {
            var noRedis = await CliProcess.RunAsync(["mirror", "resync", "--data-dir", dir], TimeSpan.FromSeconds(60));
            Assert.Equal(2, noRedis.ExitCode);
            Assert.Contains("--redis", noRedis.StandardError, StringComparison.Ordinal);

            var noStore = await CliProcess.RunAsync(["mirror", "resync", "--data-dir", dir, "--redis", "127.0.0.1:1"], TimeSpan.FromSeconds(60));
            Assert.Equal(2, noStore.ExitCode);
            Assert.Contains("no state store", noStore.StandardError, StringComparison.Ordinal);

            var badPrefix = await CliProcess.RunAsync(["mirror", "resync", "--data-dir", dir, "--redis", "127.0.0.1:1", "--prefix", "a b"], TimeSpan.FromSeconds(60));
            Assert.Equal(2, badPrefix.ExitCode);
            Assert.Contains("prefix", badPrefix.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
