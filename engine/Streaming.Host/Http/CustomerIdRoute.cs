using Microsoft.AspNetCore.Http.Features;
using Streaming.Engine.Events;

namespace Streaming.Host.Http;

/// <summary>
/// The <c>{customerId}</c> of <c>/v1/customers/{customerId}[/…]</c> and of the console's
/// <c>/console/customers/{customerId}</c>, percent-decoded exactly once from the raw
/// request target (CONTRACTS.md §5 v1.1): <c>a%2Fb</c> is the customer <c>a/b</c>, <c>a%252Fb</c> the customer
/// <c>a%2Fb</c>, and <c>.</c> or <c>..</c> are customers, not path steps.
/// </summary>
/// <remarks>
/// The server's own path decoding cannot give that: it keeps <c>%2F</c> encoded (so <c>a%2Fb</c> and <c>a%252Fb</c>
/// look alike) and removes dot segments. A middleware placed before routing reads the segment from the raw target,
/// keeps the decoded id for the handler, and lets routing see a placeholder segment instead.
/// </remarks>
public static class CustomerIdRoute
{
    /// <summary>The API's routes this applies to start with this prefix.</summary>
    public const string Prefix = "/v1/customers/";

    /// <summary>The console's customer view starts with this prefix.</summary>
    public const string ConsolePrefix = "/console/customers/";

    private static readonly string[] Prefixes = [Prefix, ConsolePrefix];

    private const string ItemKey = "Streaming.CustomerId";
    private const string Placeholder = "_";

    /// <summary>The path segment that addresses <paramref name="customerId"/> in a URL: escaped once, so it decodes back exactly.</summary>
    public static string Segment(string customerId) => customerId is "." or ".."
        ? customerId.Replace(".", "%2E", StringComparison.Ordinal)
        : Uri.EscapeDataString(customerId);

    /// <summary>Adds the middleware, then routing (so routes match the rewritten path).</summary>
    /// <remarks>
    /// The prefix is matched as routing matches it: case-insensitively (<c>/V1/Customers/</c>), its segments
    /// percent-decoded (<c>/v1/%63ustomers/</c>), in origin or absolute form. A request that routing would still send
    /// to a customer route but whose raw target does not show the prefix as its first two segments (dot segments before
    /// the id, <c>/v1/x/../customers/a%2Fb</c>) is refused with 400: its id would otherwise be decoded by the server's
    /// rules, not once.
    /// </remarks>
    public static void Use(WebApplication app)
    {
        app.Use((context, next) =>
        {
            var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
            if (raw is not null && Match(raw) is { } match)
            {
                context.Items[ItemKey] = match.CustomerId;
                context.Request.Path = new PathString(match.Prefix + Placeholder + match.Tail);
            }
            else if (Array.Exists(Prefixes, p => context.Request.Path.Value is { } path && path.Length > p.Length && path.StartsWith(p, StringComparison.OrdinalIgnoreCase)))
            {
                return Results.Problem(
                    statusCode: 400,
                    title: "invalid customer path",
                    detail: $"address a customer as {Prefix}{{customerId}} (or {ConsolePrefix}{{customerId}}), the id percent-encoded once, with no dot segments before it")
                    .ExecuteAsync(context);
            }

            return next(context);
        });
        app.UseRouting();
    }

    /// <summary>
    /// The customer id of a raw request target (origin form <c>/v1/customers/a%2Fb</c>, or absolute form
    /// <c>http://host/v1/customers/a%2Fb</c>) whose first two path segments, percent-decoded and compared
    /// case-insensitively, are one of the prefixes: the third segment decoded once, the prefix in its canonical
    /// spelling, and the rest of the path as sent. Null when the target addresses no customer.
    /// </summary>
    public static (string CustomerId, string Prefix, string Tail)? Match(string rawTarget)
    {
        var query = rawTarget.IndexOfAny(['?', '#']);
        var path = query < 0 ? rawTarget : rawTarget[..query];
        if (!path.StartsWith('/'))
        {
            // Absolute form: scheme://authority/path.
            var scheme = path.IndexOf("://", StringComparison.Ordinal);
            var slash = scheme < 0 ? -1 : path.IndexOf('/', scheme + 3);
            if (slash < 0)
            {
                return null;
            }

            path = path[slash..];
        }

        var first = path.IndexOf('/', 1);
        var second = first < 0 ? -1 : path.IndexOf('/', first + 1);
        if (second < 0)
        {
            return null;
        }

        var one = Uri.UnescapeDataString(path[1..first]);
        var two = Uri.UnescapeDataString(path[(first + 1)..second]);
        var prefix = Array.Find(Prefixes, p => string.Equals(p, "/" + one + "/" + two + "/", StringComparison.OrdinalIgnoreCase));
        if (prefix is null)
        {
            return null;
        }

        var end = path.IndexOf('/', second + 1);
        var segment = end < 0 ? path[(second + 1)..] : path[(second + 1)..end];
        return segment.Length == 0 ? null : (Uri.UnescapeDataString(segment), prefix, end < 0 ? "" : path[end..]);
    }

    /// <summary>The decoded customer id of this request (the route value when the raw target could not be read).</summary>
    public static string Of(HttpContext context, string routeValue) => context.Items[ItemKey] as string ?? routeValue;

    /// <summary>400 problem+json for an id no event can carry (CONTRACTS.md §2 v1.1), else null.</summary>
    public static IResult? Invalid(string customerId) => EventDecoder.IsValidId(customerId, MaxLength)
        ? null
        : Results.Problem(statusCode: 400, title: "invalid customer id", detail: $"customer ids are 1 to {MaxLength} characters without control characters");

    /// <summary>404 problem+json: the engine knows no such customer.</summary>
    public static IResult NotFound(string customerId) =>
        Results.Problem(statusCode: 404, title: "customer not found", detail: $"no customer '{customerId}'");

    /// <summary>
    /// 503 problem+json with <c>Retry-After</c>: the customer's partition has no owner on this node yet, or its owner did
    /// not answer. <paramref name="reason"/> (the engine's <see cref="Connectors.Kafka.CustomerLookup.NotServedReason"/>)
    /// says which; without one the detail names start-up or rebalance.
    /// </summary>
    public static IResult NotOwned(HttpContext context, string? reason = null)
    {
        context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Results.Problem(
            statusCode: 503,
            title: "partition not owned yet",
            detail: (reason ?? "the customer's partition has no owner on this node yet (start-up or rebalance)") + "; retry later");
    }

    /// <summary>Longest customer id (characters), as in CONTRACTS.md §2 v1.1.</summary>
    private const int MaxLength = 256;

    /// <summary>Seconds a client is told to wait while partitions are being assigned.</summary>
    private const int RetryAfterSeconds = 5;
}
