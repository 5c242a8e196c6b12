namespace Streaming.Host.Hosting;

/// <summary>Finds the real datasets: <c>--data</c>, else <c>STREAMING_DATA_DIR</c>, else <c>../shared/data</c> or <c>shared/data</c> upwards from the working directory.</summary>
public static class DataDirectory
{
    public static string Resolve(string? explicitDir)
    {
        if (explicitDir is not null)
        {
            return Check(explicitDir);
        }

        if (Environment.GetEnvironmentVariable("STREAMING_DATA_DIR") is { Length: > 0 } env)
        {
            return Check(env);
        }

        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            foreach (var candidate in new[] { Path.Combine(dir.FullName, "..", "shared", "data"), Path.Combine(dir.FullName, "shared", "data") })
            {
                if (File.Exists(Path.Combine(candidate, "online_retail_2010_2011.csv.gz")))
                {
                    return Path.GetFullPath(candidate);
                }
            }
        }

        throw new DirectoryNotFoundException("the datasets were not found: pass --data DIR or set STREAMING_DATA_DIR (the directory holding online_retail_2010_2011.csv.gz)");
    }

    private static string Check(string dir) => Directory.Exists(dir)
        ? Path.GetFullPath(dir)
        : throw new DirectoryNotFoundException($"data directory not found: {dir}");
}
