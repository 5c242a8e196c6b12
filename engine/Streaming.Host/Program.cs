using System.CommandLine;
using Streaming.Host.Cli;

namespace Streaming.Host;

/// <summary>Entry point of the <c>streaming</c> CLI.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var root = new RootCommand("Streaming: a real-time customer-state engine over Kafka.");
        root.Subcommands.Add(BrokerCommand.Create());
        root.Subcommands.Add(RunCommand.Create());
        root.Subcommands.Add(ReplayCommand.Create());
        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(RulesCommand.Create());
        root.Subcommands.Add(MirrorCommand.Create());
        root.Subcommands.Add(BacktestCommand.Create());
        // Signals are handled by each verb (a checkpoint must finish before exit), not by a fixed termination timeout.
        return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);
    }
}
