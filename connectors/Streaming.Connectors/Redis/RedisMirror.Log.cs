using Microsoft.Extensions.Logging;

namespace Streaming.Connectors.Redis;

public sealed partial class RedisMirror
{
    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis mirror: writing to {Connection} failed; processing goes on, {Pending} customers pending ({Lag} checkpoints behind), retrying in {BackoffMs} ms")]
    private partial void LogWriteFailed(Exception ex, string connection, int pending, long lag, double backoffMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis mirror: {Connection} still failing after {Attempts} attempts over {Seconds:0} s; {Pending} customers pending ({Lag} checkpoints behind): {Reason}")]
    private partial void LogStillFailing(string connection, int attempts, double seconds, int pending, long lag, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis mirror: writing again after {Seconds:0.0} s and {Attempts} failed attempts; {Pending} customers still pending")]
    private partial void LogRecovered(double seconds, int attempts, int pending);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis mirror: {Count} customers under '{Prefix}' already hold a newer seq than this engine's checkpoint and were left alone; if the state store was reset, run 'streaming mirror resync'")]
    private partial void LogNewerPresent(long count, string prefix);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis mirror: stopping with {Pending} customers not written (mirrored up to checkpoint {Mirrored} of {Published}); they are written when they next change, or run 'streaming mirror resync'")]
    private partial void LogNotMirroredAtStop(int pending, long mirrored, long published);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Redis mirror: connection to {EndPoint} failed ({FailureType}): {Reason}")]
    private partial void LogConnectionFailed(string endPoint, string failureType, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Redis mirror: connection to {EndPoint} restored")]
    private partial void LogConnectionRestored(string endPoint);
}
