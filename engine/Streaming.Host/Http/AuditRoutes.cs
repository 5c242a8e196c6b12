using Streaming.Host.Hosting;
using Streaming.Host.Http.Auth;

namespace Streaming.Host.Http;

/// <summary><c>GET /v1/audit</c>: the audit trail, newest first, in pages (CONTRACTS.md §7.1; <c>admin</c> scope).</summary>
public static class AuditRoutes
{
    private const int MaxPage = 500;

    public static void Map(WebApplication app, EngineHost host)
    {
        // ?limit=1..500 (default 100) &before=<seq> (default: from the newest). "next" is the before of the next page.
        app.MapGet("/v1/audit", (int? limit, long? before) =>
        {
            var size = limit ?? 100;
            if (size is < 1 or > MaxPage || before is <= 0)
            {
                return Results.Problem(statusCode: 400, title: "invalid page", detail: $"limit is 1–{MaxPage}, before a positive seq");
            }

            var entries = host.Audit.Read(before ?? long.MaxValue, size);
            return Results.Ok(new AuditPageBody(
                [.. entries.Select(e => new AuditEntryBody(e.Seq, new DateTimeOffset(e.AtTicks, TimeSpan.Zero), e.Actor, e.Action, e.Detail))],
                entries.Count == size ? entries[^1].Seq : null));
        })
            .Produces<AuditPageBody>()
            .ProducesProblem(400)
            .Needs(AccessToken.Admin);
    }
}
