using System.Diagnostics;
using System.IO.Compression;
using System.Text;

namespace Streaming.Connectors.Tests;

/// <summary>Where the shared datasets live: $STREAMING_DATA_DIR, else ../shared/data next to the repository root.</summary>
internal static class TestData
{
    public static string Directory { get; } = Locate();

    public static string PathOf(string fileName)
    {
        var path = System.IO.Path.Combine(Directory, fileName);
        Assert.True(File.Exists(path), $"dataset file missing: {path}");
        return path;
    }

    /// <summary>Every line of a gzip text file (header included), read with the BCL only.</summary>
    public static List<string> ReadGzipLines(string path)
    {
        using var file = File.OpenRead(path);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new StreamReader(gzip, Encoding.UTF8);
        var lines = new List<string>();
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            lines.Add(line);
        }

        return lines;
    }

    private static string Locate()
    {
        var fromEnv = Environment.GetEnvironmentVariable("STREAMING_DATA_DIR");
        if (!string.IsNullOrWhiteSpace(fromEnv))
        {
            return fromEnv;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Streaming.sln")))
            {
                return System.IO.Path.GetFullPath(System.IO.Path.Combine(dir.FullName, "..", "shared", "data"));
            }
        }

        throw new InvalidOperationException($"no Streaming.sln above {AppContext.BaseDirectory} and STREAMING_DATA_DIR is not set");
    }
}

/// <summary>A fresh directory under the system temp folder, deleted on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "streaming-connectors-tests-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A handle still open elsewhere must not hide the test's own result.
        }
    }
}

/// <summary>Condition polling with a deadline, in place of fixed sleeps.</summary>
internal static class Eventually
{
    public static async Task<bool> TrueWithin(TimeSpan timeout, Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout)
            {
                return condition();
            }

            await Task.Delay(50);
        }

        return true;
    }

    public static async Task Require(TimeSpan timeout, Func<bool> condition, Func<string> describe)
    {
        if (!await TrueWithin(timeout, condition))
        {
            Assert.Fail($"condition not met within {timeout.TotalSeconds:0.#} s: {describe()}");
        }
    }
}

/// <summary>
/// A clock that moves forward <see cref="Step"/> every time it is read, so code that acts "every N seconds" acts on
/// every check without the test waiting for real seconds.
/// </summary>
internal sealed class SteppingTimeProvider(TimeSpan step) : TimeProvider
{
    private long _ticks;

    public TimeSpan Step { get; } = step;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Interlocked.Add(ref _ticks, Step.Ticks);
}

/// <summary>An RFC 4180 line splitter written independently of the production one (state machine, char by char).</summary>
internal static class ReferenceCsv
{
    public static List<string> Split(string line, char delimiter)
    {
        var fields = new List<string>();
        var current = new StringBuilder();
        var inQuotes = false;
        var atFieldStart = true;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (inQuotes)
            {
                if (c == '"')
                {
                    if (i + 1 < line.Length && line[i + 1] == '"')
                    {
                        current.Append('"');
                        i++;
                    }
                    else
                    {
                        inQuotes = false;
                    }
                }
                else
                {
                    current.Append(c);
                }

                continue;
            }

            if (c == delimiter)
            {
                fields.Add(current.ToString());
                current.Clear();
                atFieldStart = true;
                continue;
            }

            if (c == '"' && atFieldStart)
            {
                inQuotes = true;
                atFieldStart = false;
                continue;
            }

            current.Append(c);
            atFieldStart = false;
        }

        fields.Add(current.ToString());
        return fields;
    }
}

/// <summary>Keeps what the engine logs, to explain a failure.</summary>
internal sealed class RecordingLogger : Microsoft.Extensions.Logging.ILogger
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _lines = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        _lines.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel}: {formatter(state, exception)}{(exception is null ? "" : " " + exception.Message)}");

    /// <summary>Lines logged so far that contain <paramref name="phrase"/>.</summary>
    public int Count(string phrase) => _lines.Count(l => l.Contains(phrase, StringComparison.Ordinal));

    public override string ToString() => string.Join('\n', _lines.TakeLast(40));
}
