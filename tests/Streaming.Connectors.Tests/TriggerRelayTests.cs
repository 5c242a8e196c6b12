using Microsoft.Extensions.Logging.Abstractions;
using Streaming.Connectors.Sql;
using Streaming.Connectors.Triggers;

namespace Streaming.Connectors.Tests;

/// <summary>The trigger relay's life cycle around a cluster singleton.</summary>
public sealed class TriggerRelayTests
{
    /// <summary>
    /// The host disposes the relay before the actor system stops: the relay singleton's stop (Lead false) and the
    /// engine's last checkpoint (Signal) still reach it afterwards, and must be ignored rather than throw from a
    /// disposed semaphore (which Akka logged as an error in the singleton's PostStop).
    /// </summary>
    [Fact]
    public async Task Leadership_and_signals_after_disposal_are_ignored()
    {
        using var dir = new TempDirectory();
        using var store = SqliteStateStore.OpenDirectory(dir.Path);
        var relay = new TriggerRelay("127.0.0.1:9", store, TimeProvider.System, NullLogger.Instance, leading: false);
        relay.Start();
        relay.Lead(true);
        Assert.True(relay.Leading);
        await relay.DisposeAsync();

        relay.Lead(false);
        relay.Signal();
        Assert.False(relay.Leading);
        await relay.DisposeAsync();
    }
}
