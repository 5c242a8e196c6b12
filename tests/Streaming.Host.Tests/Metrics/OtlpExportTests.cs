using System.Net;
using System.Text;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests.Metrics;

/// <summary>With an OTLP endpoint configured, the engine pushes its metrics there (OTLP/HTTP, protobuf).</summary>
[Collection(EndToEnd.Name)]
public sealed class OtlpExportTests
{
    private static string Printable(byte[]? body) =>
        body is null ? "none" : new string(Encoding.UTF8.GetString(body).Select(c => char.IsControl(c) ? ' ' : c).Take(600).ToArray());

    [Fact]
    public async Task The_engine_pushes_its_metrics_to_a_configured_otlp_endpoint()
    {
        var port = TestEnvironment.FreePort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();

        // A minimal collector: remember what arrives on /v1/metrics, answer 200.
        var received = new List<(string Path, string? ContentType, byte[] Body)>();
        using var stop = new CancellationTokenSource();
        var collector = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                HttpListenerContext context;
                try
                {
                    context = await listener.GetContextAsync().WaitAsync(stop.Token);
                }
                catch (Exception ex) when (ex is OperationCanceledException or HttpListenerException or ObjectDisposedException)
                {
                    break;
                }

                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                lock (received)
                {
                    received.Add((context.Request.Url!.AbsolutePath, context.Request.ContentType, body.ToArray()));
                }

                context.Response.StatusCode = 200;
                context.Response.Close();
            }
        });

        await using var broker = await BrokerProcess.StartAsync(partitions: 2);
        var env = new Dictionary<string, string>
        {
            ["Streaming__Metrics__OtlpEndpoint"] = $"http://127.0.0.1:{port}",
            ["Streaming__Metrics__OtlpIntervalMs"] = "300",
        };
        await using (var engine = await EngineProcess.StartAsync(broker.BootstrapServers, TestEnvironment.NewTempDir("streaming-state"), env))
        {
            // Metric names travel as UTF-8 strings inside the protobuf payload.
            bool Has(string name)
            {
                lock (received)
                {
                    var bytes = Encoding.UTF8.GetBytes(name);
                    return received.Any(r => r.Path == "/v1/metrics" && r.Body.AsSpan().IndexOf(bytes) >= 0);
                }
            }

            await Eventually.WaitAsync(
                () => Task.FromResult(Has("streaming.customers.cached") && Has("streaming.checkpoint.age") && Has("dotnet.gc.collections")),
                TimeSpan.FromSeconds(60),
                () => $"{received.Count} OTLP requests with the engine's and the runtime's metrics; last: {Printable(received.LastOrDefault().Body)}");
        }

        await stop.CancelAsync();
        listener.Stop();
        await collector;
        lock (received)
        {
            Assert.All(received, r => Assert.Equal("application/x-protobuf", r.ContentType));
        }
    }
}
