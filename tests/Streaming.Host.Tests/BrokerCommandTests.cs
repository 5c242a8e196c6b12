using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary><c>streaming broker</c> refuses settings out of range before it starts, with exit code 2 and the reason.</summary>
public sealed class BrokerCommandTests
{
    [Theory]
    [InlineData("--partitions", "0", "--partitions must be between 1 and 1024")]
    [InlineData("--initial-rebalance-delay-ms", "-1", "--initial-rebalance-delay-ms must be between 0 and 300000")]
    [InlineData("--initial-rebalance-delay-ms", "300001", "--initial-rebalance-delay-ms must be between 0 and 300000")]
    public async Task Out_of_range_settings_exit_2_with_the_reason(string option, string value, string reason)
    {
        var broker = await CliProcess.RunAsync(["broker", option, value], TimeSpan.FromSeconds(60));

        Assert.Equal(2, broker.ExitCode);
        Assert.Contains(reason, broker.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("bootstrap=", broker.StandardOutput, StringComparison.Ordinal);
    }
}
