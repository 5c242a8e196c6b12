using StackExchange.Redis;

namespace Streaming.Connectors.Redis;

/// <summary>
/// How the mirror and resync connect (StackExchange.Redis 3.x): a connection that never aborts at start (it keeps
/// reconnecting in the background) and never holds commands for a reconnection (the mirror keeps what it could not
/// write and retries it), and Lua scripts loaded once per server and run by EVALSHA.
/// </summary>
public static class RedisConnection
{
    /// <summary>Parses a StackExchange.Redis connection string (<c>host:port[,option=value…]</c>).</summary>
    /// <exception cref="ArgumentException">It is not one.</exception>
    public static ConfigurationOptions Parse(string connection)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connection);
        ConfigurationOptions options;
        try
        {
            options = ConfigurationOptions.Parse(connection);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or NotSupportedException)
        {
            throw new ArgumentException($"'{connection}' is not a Redis connection string: {ex.Message}", nameof(connection), ex);
        }

        if (options.EndPoints.Count != 1)
        {
            throw new ArgumentException($"'{connection}' must name exactly one Redis endpoint (the mirror needs a single server)", nameof(connection));
        }

        // Reconnect in the background instead of failing: Redis may be down when the engine starts.
        options.AbortOnConnectFail = false;

        // Commands never wait in the client's backlog for a reconnection: with the connection gone they fail at once,
        // so a write attempt ends when Redis goes away (instead of after its timeout) and the mirror, which keeps
        // every unwritten customer pending, retries once a PING answers again.
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ClientName ??= "streaming";
        if (!connection.Contains("connectTimeout", StringComparison.OrdinalIgnoreCase))
        {
            options.ConnectTimeout = 3000;
        }

        return options;
    }

    /// <summary>The endpoint for logs and status: never the password a connection string may hold.</summary>
    public static string Describe(ConfigurationOptions options) => options.EndPoints.Count == 0 ? "?" : Format(options.EndPoints[0]);

    private static string Format(System.Net.EndPoint endPoint) => endPoint switch
    {
        System.Net.DnsEndPoint dns => $"{dns.Host}:{dns.Port}",
        System.Net.IPEndPoint ip => ip.ToString(),
        _ => endPoint.ToString() ?? "?",
    };

    /// <summary>Connects; with Redis down this returns a disconnected multiplexer that keeps trying.</summary>
    public static async Task<ConnectionMultiplexer> ConnectAsync(ConfigurationOptions options) =>
        await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
}

/// <summary>One Lua script, loaded (SCRIPT LOAD) on first use and run by EVALSHA; loaded again after NOSCRIPT (a restarted or flushed server).</summary>
internal sealed class RedisScript(string text)
{
    private byte[]? _sha;

    public string Text { get; } = text;

    public async Task<byte[]> ShaAsync(ConnectionMultiplexer connection, bool reload = false)
    {
        if (_sha is { } sha && !reload)
        {
            return sha;
        }

        var server = connection.GetServer(connection.GetEndPoints()[0]);
        _sha = await server.ScriptLoadAsync(Text).ConfigureAwait(false);
        return _sha;
    }

    public static bool IsNoScript(Exception ex) =>
        ex is RedisServerException && ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal);

    /// <summary>True when <paramref name="task"/> (or any of an aggregate's) failed with NOSCRIPT.</summary>
    public static bool FailedWithNoScript(Task task) =>
        task.IsFaulted && task.Exception!.InnerExceptions.Any(IsNoScript);
}
