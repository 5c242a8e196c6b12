using System.Text.Json;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary>
/// The .NET runtime settings the engine ships with (README "Configuration"), read from the CLI's
/// <c>Streaming.runtimeconfig.json</c>, which the runtime reads at start.
/// </summary>
public sealed class RuntimeSettingsTests
{
    /// <summary>
    /// The server garbage collector, and idle thread-pool workers that sleep without spinning first
    /// (<c>System.Threading.ThreadPool.UnfairSemaphoreSpinLimit</c> 0; the runtime's default is 70).
    /// </summary>
    [Fact]
    public void The_engine_runs_the_server_collector_and_idle_workers_sleep_without_spinning()
    {
        var path = Path.ChangeExtension(TestEnvironment.CliDll, ".runtimeconfig.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var properties = doc.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");

        Assert.True(properties.GetProperty("System.GC.Server").GetBoolean(), $"{path}: System.GC.Server");
        Assert.Equal(0, properties.GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").GetInt32());
    }
}
