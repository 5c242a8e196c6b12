using System.Collections.Concurrent;
using System.Security.Cryptography;
using Streaming.Host.Hosting;

namespace Streaming.Host.Http.Auth;

/// <summary>
/// Browser sessions of the web console: a person signs in once with a token that grants <c>read</c> (or
/// <c>admin</c>), and the browser then carries an opaque session id in the <see cref="CookieName"/> cookie (HttpOnly,
/// SameSite=Strict, path <c>/console</c>). A session grants <c>read</c> on the console's pages only, never a change:
/// those still need the <c>admin</c> token in the <c>Authorization</c> header, as the API does. Sessions live in this
/// process's memory for <see cref="Lifetime"/> and end with it (sign in again after a restart).
/// </summary>
public sealed class ConsoleSessions(TimeProvider clock)
{
    /// <summary>The cookie that carries the session id.</summary>
    public const string CookieName = "streaming_console";

    /// <summary>At most this many sessions are kept; the oldest go first.</summary>
    public const int MaxSessions = 10_000;

    /// <summary>How long a session lasts from sign-in: 12 hours.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(12);

    private readonly ConcurrentDictionary<string, (string Name, DateTimeOffset Expires)> _sessions = new(StringComparer.Ordinal);

    /// <summary>The configured token equal to <paramref name="presented"/> (compared in constant time, every token compared), or null.</summary>
    public static AccessToken? Match(IReadOnlyList<AccessToken> tokens, string presented)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(presented.Trim());
        AccessToken? match = null;
        foreach (var token in tokens)
        {
            if (CryptographicOperations.FixedTimeEquals(bytes, System.Text.Encoding.UTF8.GetBytes(token.Token)))
            {
                match = token;
            }
        }

        return match;
    }

    /// <summary>Opens a session for the token named <paramref name="name"/>; returns its id (256 random bits, URL-safe base64).</summary>
    public string Open(string name)
    {
        var now = clock.GetUtcNow();
        if (_sessions.Count >= MaxSessions)
        {
            foreach (var old in _sessions.OrderBy(s => s.Value.Expires).Take(_sessions.Count - MaxSessions + 1))
            {
                _sessions.TryRemove(old.Key, out _);
            }
        }

        var id = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        _sessions[id] = (name, now + Lifetime);
        return id;
    }

    /// <summary>The name of the token that opened session <paramref name="id"/>, or null when there is none or it expired.</summary>
    public string? Find(string? id)
    {
        if (id is null || !_sessions.TryGetValue(id, out var session))
        {
            return null;
        }

        if (session.Expires <= clock.GetUtcNow())
        {
            _sessions.TryRemove(id, out _);
            return null;
        }

        return session.Name;
    }

    /// <summary>Ends session <paramref name="id"/> (nothing if there is none).</summary>
    public void Close(string? id)
    {
        if (id is not null)
        {
            _sessions.TryRemove(id, out _);
        }
    }
}
