using System.Globalization;
using System.Threading.RateLimiting;
using Streaming.Host.Hosting;

namespace Streaming.Host.Http.Auth;

/// <summary>
/// Rate limits of the expensive routes (ASP.NET Core's rate limiter): a fixed window per caller (the token's name,
/// else the client address). Over the limit: 429 problem+json with <c>Retry-After</c> (seconds).
/// </summary>
public static class RateLimits
{
    /// <summary>Policy of <c>PUT /v1/rules</c> (<c>Streaming:RateLimits:RuleUploads</c>).</summary>
    public const string RuleUploads = "rule-uploads";

    /// <summary>Policy of <c>POST /v1/outreach/lease</c> (<c>Streaming:RateLimits:Leases</c>).</summary>
    public const string Leases = "leases";

    /// <summary>Policy of <c>POST /v1/backtests</c> (<c>Streaming:RateLimits:Backtests</c>).</summary>
    public const string Backtests = "backtests";

    public static void AddTo(IServiceCollection services, StreamingSettings settings)
    {
        services.AddRateLimiter(options =>
        {
            options.AddPolicy(RuleUploads, context => Window(context, settings.RuleUploadLimit));
            options.AddPolicy(Leases, context => Window(context, settings.LeaseLimit));
            options.AddPolicy(Backtests, context => Window(context, settings.BacktestLimit));
            options.OnRejected = async (rejected, ct) =>
            {
                var retry = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)) : 1;
                rejected.HttpContext.Response.Headers.RetryAfter = retry.ToString(CultureInfo.InvariantCulture);
                await Results.Problem(
                    statusCode: StatusCodes.Status429TooManyRequests,
                    title: "too many requests",
                    detail: $"this route's rate limit is reached; retry in {retry} s")
                    .ExecuteAsync(rejected.HttpContext).ConfigureAwait(false);
            };
        });
    }

    private static RateLimitPartition<string> Window(HttpContext context, RateLimit limit) =>
        RateLimitPartition.GetFixedWindowLimiter(
            AccessPolicies.Actor(context) ?? context.Connection.RemoteIpAddress?.ToString() ?? "unknown",
            _ => new FixedWindowRateLimiterOptions
            {
                PermitLimit = limit.PermitLimit,
                Window = TimeSpan.FromSeconds(limit.WindowSeconds),
                QueueLimit = 0,
            });
}
