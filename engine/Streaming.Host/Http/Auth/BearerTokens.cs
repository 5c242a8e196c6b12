using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Streaming.Host.Hosting;

namespace Streaming.Host.Http.Auth;

/// <summary>
/// The <c>Bearer</c> authentication scheme over the configured tokens (<c>Streaming:Auth:Tokens</c>, CONTRACTS.md
/// §7.1). A request without an <c>Authorization</c> header is anonymous; one with an unknown token fails. Challenges
/// and denials are RFC 6750 answers in problem+json: 401 with <c>WWW-Authenticate: Bearer</c> (and
/// <c>error="invalid_token"</c> when a token was sent but is unknown), 403 when the token lacks the scope.
/// </summary>
public sealed class BearerTokenHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    StreamingSettings settings)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    /// <summary>The scheme's name, as in the <c>Authorization</c> header.</summary>
    public const string SchemeName = "Bearer";

    /// <summary>The claim that carries each granted scope.</summary>
    public const string ScopeClaim = "scope";

    private const string Prefix = "Bearer ";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (header.Length == 0)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (!header.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(AuthenticateResult.Fail("the Authorization header is not a Bearer token"));
        }

        var presented = Encoding.UTF8.GetBytes(header[Prefix.Length..].Trim());
        AccessToken? match = null;
        foreach (var token in settings.AuthTokens)
        {
            // Constant time, and every token compared: timing must not reveal which token nearly matched.
            if (CryptographicOperations.FixedTimeEquals(presented, Encoding.UTF8.GetBytes(token.Token)))
            {
                match = token;
            }
        }

        if (match is null)
        {
            return Task.FromResult(AuthenticateResult.Fail("unknown token"));
        }

        var claims = new List<Claim> { new(ClaimTypes.Name, match.Name) };
        claims.AddRange(match.Scopes.Select(s => new Claim(ScopeClaim, s)));
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        if (settings.AuthTokens.Count == 0)
        {
            await Closed().ConfigureAwait(false);
            return;
        }

        var sent = Request.Headers.Authorization.Count > 0;
        Response.Headers.WWWAuthenticate = sent ? "Bearer error=\"invalid_token\"" : "Bearer";
        await Results.Problem(
            statusCode: StatusCodes.Status401Unauthorized,
            title: sent ? "invalid token" : "token required",
            detail: sent ? "the token is not one of the configured tokens" : "send 'Authorization: Bearer <token>'")
            .ExecuteAsync(Context).ConfigureAwait(false);
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        if (settings.AuthTokens.Count == 0)
        {
            await Closed().ConfigureAwait(false);
            return;
        }

        Response.Headers.WWWAuthenticate = "Bearer error=\"insufficient_scope\"";
        await Results.Problem(
            statusCode: StatusCodes.Status403Forbidden,
            title: "scope missing",
            detail: "the token does not grant the scope this route needs")
            .ExecuteAsync(Context).ConfigureAwait(false);
    }

    /// <summary>No tokens configured: routes that need one are closed (403), whatever was sent.</summary>
    private Task Closed() => Results.Problem(
        statusCode: StatusCodes.Status403Forbidden,
        title: "route closed",
        detail: "no access tokens are configured (Streaming:Auth:Tokens), so routes that need a token are closed")
        .ExecuteAsync(Context);
}

/// <summary>Authorization policies, one per scope; <c>admin</c> satisfies every one.</summary>
public static class AccessPolicies
{
    /// <summary>Registers the scheme and the policies <c>admin</c>, <c>dialer</c>, <c>read</c>, <c>metrics</c>.</summary>
    public static void AddTo(IServiceCollection services)
    {
        services.AddAuthentication(BearerTokenHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, BearerTokenHandler>(BearerTokenHandler.SchemeName, configureOptions: null);
        services.AddAuthorization(options =>
        {
            foreach (var scope in AccessToken.KnownScopes)
            {
                options.AddPolicy(scope, policy => policy
                    .AddAuthenticationSchemes(BearerTokenHandler.SchemeName)
                    .RequireAuthenticatedUser()
                    .RequireAssertion(c => c.User.HasClaim(BearerTokenHandler.ScopeClaim, scope) || c.User.HasClaim(BearerTokenHandler.ScopeClaim, AccessToken.Admin)));
            }
        });
    }

    /// <summary>The route needs <paramref name="scope"/>.</summary>
    public static TBuilder Needs<TBuilder>(this TBuilder builder, string scope)
        where TBuilder : IEndpointConventionBuilder => builder.RequireAuthorization(scope);

    /// <summary>A read route: open, unless <c>Streaming:Auth:RequireReadScope</c> closes it to tokens without <c>read</c>.</summary>
    public static TBuilder Read<TBuilder>(this TBuilder builder, StreamingSettings settings)
        where TBuilder : IEndpointConventionBuilder => settings.RequireReadScope ? builder.RequireAuthorization(AccessToken.Read) : builder;

    /// <summary>Who made the request: the token's name (null when anonymous).</summary>
    public static string? Actor(HttpContext context) => context.User.Identity?.IsAuthenticated == true ? context.User.Identity.Name : null;
}
