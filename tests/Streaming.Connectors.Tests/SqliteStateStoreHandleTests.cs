using System.Runtime;
using Microsoft.Data.Sqlite;
using Streaming.Connectors.Sql;

namespace Streaming.Connectors.Tests;

/// <summary>Tests that watch process-wide resources run alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SequentialCollection
{
    public const string Name = "sequential";
}

[Collection(SequentialCollection.Name)]
public sealed class SqliteStateStoreHandleTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string DbPath => _dir.File("state.db");

    [Fact]
    public void Closed_store_leaves_no_handle_open()
    {
        using (var store = new SqliteStateStore(DbPath))
        {
            Assert.True(OpenHandlesTo(DbPath) >= 1, "the open store should hold its database file");
        }

        Assert.Equal(0, OpenHandlesTo(DbPath));
    }

    [Fact]
    public void Refused_database_is_not_left_open_by_the_failed_constructor()
    {
        using (new SqliteStateStore(DbPath))
        {
        }

        using (var raw = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DbPath, Pooling = false }.ToString()))
        {
            raw.Open();
            using var cmd = raw.CreateCommand();
            cmd.CommandText = $"PRAGMA user_version = {SqliteStateStore.SchemaVersion + 1}";
            cmd.ExecuteNonQuery();
        }

        Assert.Equal(0, OpenHandlesTo(DbPath));

        // A collection would finalize a leaked connection and hide the leak: keep the collector out of these few
        // milliseconds. The caller of a throwing constructor has no instance to dispose, so the constructor must release
        // what it opened itself.
        Assert.True(GC.TryStartNoGCRegion(16 * 1024 * 1024), "could not suspend the GC");
        int open;
        try
        {
            Assert.Throws<InvalidOperationException>(() => new SqliteStateStore(DbPath));
            open = OpenHandlesTo(DbPath);
        }
        finally
        {
            if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
            {
                GC.EndNoGCRegion();
            }
        }

        Assert.True(
            open == 0,
            $"{open} file descriptor(s) still point at {DbPath} after the constructor refused it: the SqliteConnection it opened was not disposed and lives until a GC finalizer runs");
    }

    /// <summary>File descriptors of this process that point at <paramref name="path"/> (Linux /proc).</summary>
    private static int OpenHandlesTo(string path)
    {
        var target = Path.GetFullPath(path);
        var count = 0;
        foreach (var fd in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget is { } link && string.Equals(link, target, StringComparison.Ordinal))
                {
                    count++;
                }
            }
            catch (IOException)
            {
                // The descriptor closed while we looked.
            }
        }

        return count;
    }
}
