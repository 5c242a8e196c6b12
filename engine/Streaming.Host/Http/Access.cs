using System.Security.Cryptography;
using System.Text;
using Streaming.Host.Hosting;

namespace Streaming.Host.Http;

/// <summary>
/// Bearer-token checks for guarded routes (CONTRACTS.md §7): tokens and their scopes come from configuration
/// (<c>Streaming:Auth:Tokens</c>). With no tokens configured the guarded routes are closed.
/// </summary>
public static class Access
{
    /// <summary>Null when the request may go on; otherwise the 401/403 problem to return.</summary>
    public static IResult? Check(HttpContext context, IReadOnlyList<AccessToken> tokens, string scope)
    {
        if (tokens.Count == 0)
        {
            return Results.Problem(
                statusCode: StatusCodes.Status403Forbidden,
                title: "route closed",
                detail: "no access tokens are configured (Streaming:Auth:Tokens), so routes that need a token are closed");
        }

        var header = context.Request.Headers.Authorization.ToString();
        const string prefix = "Bearer ";
        if (!header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return Results.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "token required", detail: $"send 'Authorization: Bearer <token>' with the '{scope}' scope");
        }

        var presented = Encoding.UTF8.GetBytes(header[prefix.Length..].Trim());
        AccessToken? match = null;
        foreach (var token in tokens)
        {
            // Constant-time comparison: response timing must not reveal how much of a token was right.
            if (CryptographicOperations.FixedTimeEquals(presented, Encoding.UTF8.GetBytes(token.Token)))
            {
                match = token;
            }
        }

        if (match is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\"";
            return Results.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "invalid token", detail: "the token is not one of the configured tokens");
        }

        return match.Scopes.Contains(scope)
            ? null
            : Results.Problem(statusCode: StatusCodes.Status403Forbidden, title: "scope missing", detail: $"this route needs the '{scope}' scope");
    }
}
