using System.Net.Http.Json;
using System.Text.Json;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary><c>streaming demo</c> as a new user runs it: real data reaches customer profiles within a minute, Ctrl-C stops cleanly.</summary>
[Collection(EndToEnd.Name)]
public sealed class DemoTests
{
    [Fact]
    public async Task Demo_serves_live_profiles_within_a_minute_and_stops_cleanly_on_sigterm()
    {
        var port = TestEnvironment.FreePort();
        var workDir = TestEnvironment.NewTempDir("streaming-demo");
        await using var demo = CliProcess.Start(["demo", "--urls", $"http://127.0.0.1:{port}"], workingDirectory: workDir);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };

        JsonElement profile = default;
        await Eventually.WaitAsync(
            async () =>
            {
                Assert.False(demo.HasExited, "demo exited early: " + demo.StandardError);
                try
                {
                    using var response = await http.GetAsync("/v1/customers/17850");
                    if (!response.IsSuccessStatusCode)
                    {
                        return false;
                    }

                    profile = await response.Content.ReadFromJsonAsync<JsonElement>();

                    // One population: the retail customer also receives joined bank calls and synthetic attributes.
                    return profile.GetProperty("orders").GetProperty("count").GetInt32() > 0
                        && profile.GetProperty("calls").GetProperty("total").GetInt32() > 0
                        && profile.GetProperty("attributes").GetProperty("birthday").ValueKind == JsonValueKind.String;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(90),
            () => $"customer 17850 with orders, calls and a birthday; last profile {profile}; stderr: {CliProcess.Tail(demo.StandardError)}");

        Assert.Equal("17850", profile.GetProperty("customerId").GetString());
        Assert.Contains("/v1/customers/17850", demo.StandardOutput, StringComparison.Ordinal);
        // The status is refreshed from the coordinators about twice a second: it may lag the profile just read.
        var status = default(JsonElement);
        await Eventually.WaitAsync(
            async () =>
            {
                status = await http.GetFromJsonAsync<JsonElement>("/v1/status");
                return status.GetProperty("eventsProcessed").GetInt64() > 0;
            },
            TimeSpan.FromSeconds(30),
            () => $"eventsProcessed > 0 in /v1/status; last {status}");
        Assert.True(status.GetProperty("kafka").GetProperty("embedded").GetBoolean());

        demo.Terminate();
        await demo.WaitForExitAsync(TimeSpan.FromSeconds(20));
        Assert.True(demo.ExitCode == 0, $"exit {demo.ExitCode}: {CliProcess.Tail(demo.StandardError)}");
        Directory.Delete(workDir, recursive: true);
    }
}
