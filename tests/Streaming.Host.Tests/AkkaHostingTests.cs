using Akka.Actor;
using Akka.Cluster;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Streaming.Engine.Model;
using Streaming.Host.Tests.Infrastructure;
using Streaming.Host.Hosting;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Sharding;

namespace Streaming.Host.Tests;

/// <summary>The actor runtime inside the engine's Generic Host through Akka.Hosting.</summary>
public sealed class AkkaHostingTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    /// <summary>
    /// An engine started in process on the actor runtime (embedded broker, two partitions): the host's service provider
    /// holds the actor system, a cluster of one that is up; the customers' shard region is in its
    /// <see cref="ActorRegistry"/> and answers a read once the partitions are assigned. Disposing the host terminates the
    /// system through Akka's coordinated shutdown with the reason Akka.Hosting gives a host's stop (not the engine's own
    /// <c>Terminate</c>, whose reason differs).
    /// </summary>
    [Fact]
    public async Task The_actor_runtime_runs_in_the_hosts_actor_system_and_the_hosts_stop_shuts_it_down()
    {
        var settings = new StreamingSettings
        {
            DataDir = TestEnvironment.NewTempDir("streaming-hosting"),
            Partitions = 2,
            Urls = "http://127.0.0.1:0",
        };
        var host = await EngineHost.StartAsync(settings, new Streaming.Host.EngineHttpApi(), LogLevel.Warning, CancellationToken.None);
        ActorSystem system;
        try
        {
            system = host.Web.Services.GetRequiredService<ActorSystem>();
            await Eventually.WaitAsync(
                async () => (await host.Engine.LookupAsync("nobody", CancellationToken.None)).Served,
                Wait,
                () => "the engine never served reads");
            Assert.Equal(MemberStatus.Up, Cluster.Get(system).SelfMember.Status);
            Assert.True(ActorRegistry.For(system).TryGet(typeof(CustomerShards), out var region), "no customer shard region in the host's ActorRegistry");
            var found = await region.Ask<CustomerFound>(new GetCustomer("nobody", 0), Wait);
            Assert.Equal(("nobody", (CustomerState?)null), (found.CustomerId, found.State));
        }
        finally
        {
            await host.DisposeAsync();
        }

        await system.WhenTerminated.WaitAsync(Wait);
        Assert.IsType<CoordinatedShutdown.ClrExitReason>(CoordinatedShutdown.Get(system).ShutdownReason);
    }
}
