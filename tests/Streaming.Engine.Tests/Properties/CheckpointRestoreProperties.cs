using Xunit.Abstractions;

namespace Streaming.Engine.Tests.Properties;

/// <summary>
/// The checkpoint/restore property on <see cref="InMemoryStateStore"/> (many cases, fast); the connectors' tests run
/// the same property on the real SQLite store.
/// </summary>
public sealed class CheckpointRestoreProperties(ITestOutputHelper output) : CheckpointRestoreScenario(output)
{
    protected override int Cases => 150;

    private protected override ICheckpointStore NewStore() => new InMemoryStateStore();
}
