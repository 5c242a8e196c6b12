using Microsoft.Data.Sqlite;

namespace Streaming.Host.Tests.Infrastructure;

/// <summary>Opens an engine's SQLite file as another process would while the engine writes: read-only, unpooled, waiting up to 5 s for a lock.</summary>
public static class ReadOnlySqlite
{
    /// <summary>An open read-only connection to <paramref name="path"/>.</summary>
    public static SqliteConnection Open(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA busy_timeout=5000";
        pragma.ExecuteNonQuery();
        return connection;
    }
}
