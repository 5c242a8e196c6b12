namespace Streaming.Host.Tests.Infrastructure;

/// <summary>The external Kafka client <c>kcat</c>, as a user would run it.</summary>
public static class Kcat
{
    public static Task<(int Code, string Stdout, string Stderr)> RunAsync(IEnumerable<string> args) => Programs.RunAsync("kcat", args);

    /// <summary>Produces (key, JSON value) records to <paramref name="topic"/>; values must hold no tab or newline.</summary>
    public static async Task ProduceAsync(string bootstrap, string topic, IEnumerable<(string Key, string Value)> records)
    {
        var file = Path.Combine(Path.GetTempPath(), $"kcat-{Guid.NewGuid():N}.txt");
        try
        {
            await File.WriteAllLinesAsync(file, records.Select(r => r.Key + "\t" + r.Value));
            var (code, _, err) = await RunAsync(["-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-l", file]);
            Assert.True(code == 0, "kcat produce failed: " + err);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
