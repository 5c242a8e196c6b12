using System.Security.Claims;
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
/// A request to the console (<c>/console/…</c>) without the header may instead carry a console session cookie
/// (<see cref="ConsoleSessions"/>): it authenticates with the <c>read</c> scope only.
/// </summary>
public sealed class BearerTokenHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    StreamingSettings settings,
    ConsoleSessions sessions)
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
            // A signed-in browser on the console's pages: read only, whatever the token it signed in with.
            if (Request.Path.StartsWithSegments("/console", StringComparison.OrdinalIgnoreCase)
                && sessions.Find(Request.Cookies[ConsoleSessions.CookieName]) is { } name)
            {
                var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, name), new Claim(ScopeClaim, AccessToken.Read)], SchemeName);
                return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
            }

            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (!header.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(AuthenticateResult.Fail("the Authorization header is not a Bearer token"));
        }

        // Constant time, and every token compared: timing must not reveal which token nearly matched.
        var match = ConsoleSessions.Match(settings.AuthTokens, header[Prefix.Length..]);
        if (match is null)
        {
            return Task.FromResult(AuthenticateResult.Fail("unknown token"));
        }

        var claims = new List<Claim> { new(ClaimTypes.Name, match.Name) };
        claims.AddRange(match.Scopes.Select(s => new Claim(ScopeClaim, s)));
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName)));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties) => Challenge(Context).ExecuteAsync(Context);

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) => Forbidden(Context).ExecuteAsync(Context);

    /// <summary>
    /// The RFC 6750 answer to a request that needs a token it did not bring: 401 with <c>WWW-Authenticate: Bearer</c>,
    /// or <c>Bearer error="invalid_token"</c> when it sent one that is not configured, and a problem+json body. With no
    /// tokens configured at all (<c>Streaming:Auth:Tokens</c> empty) the answer is the same, and its detail says so: no
    /// token can open the route until one is configured.
    /// </summary>
    public static IResult Challenge(HttpContext context)
    {
        var sent = context.Request.Headers.Authorization.Count > 0;
        var none = context.RequestServices.GetRequiredService<StreamingSettings>().AuthTokens.Count == 0;
        context.Response.Headers.WWWAuthenticate = sent ? "Bearer error=\"invalid_token\"" : "Bearer";
        return Results.Problem(
            statusCode: StatusCodes.Status401Unauthorized,
            title: sent ? "invalid token" : "token required",
            detail: none ? "no access tokens are configured (Streaming:Auth:Tokens), so no token opens this route"
                : sent ? "the token is not one of the configured tokens" : "send 'Authorization: Bearer <token>'");
    }

    /// <summary>The RFC 6750 answer to a token without the scope a route needs: 403, <c>insufficient_scope</c>, problem+json.</summary>
    public static IResult Forbidden(HttpContext context)
    {
        context.Response.Headers.WWWAuthenticate = "Bearer error=\"insufficient_scope\"";
        return Results.Problem(
            statusCode: StatusCodes.Status403Forbidden,
            title: "scope missing",
            detail: "the token does not grant the scope this route needs");
    }
}

/// <summary>Authorization policies, one per scope; <c>admin</c> satisfies every one.</summary>
public static class AccessPolicies
{
    /// <summary>Registers the scheme and the policies <c>admin</c>, <c>dialer</c>, <c>read</c>, <c>metrics</c>.</summary>
    public static void AddTo(IServiceCollection services)
    {
        services.AddSingleton(sp => new ConsoleSessions(sp.GetService<TimeProvider>() ?? TimeProvider.System));
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

    /// <summary>Whether the request's user holds <paramref name="scope"/> (or <c>admin</c>, which implies every scope).</summary>
    public static bool Has(ClaimsPrincipal user, string scope) =>
        user.Identity?.IsAuthenticated == true
        && (user.HasClaim(BearerTokenHandler.ScopeClaim, scope) || user.HasClaim(BearerTokenHandler.ScopeClaim, AccessToken.Admin));

    /// <summary>Who made the request: the token's name (null when anonymous).</summary>
    public static string? Actor(HttpContext context) => context.User.Identity?.IsAuthenticated == true ? context.User.Identity.Name : null;
}
