using Streaming.Connectors.Sql;

namespace Streaming.Host.Hosting;

/// <summary>
/// Who changed what (CONTRACTS.md §7.1): configuration changes and operator actions, stored with the engine's state
/// (they survive restarts) and logged as one structured line each. Details name versions and ids, never personal data.
/// </summary>
public sealed partial class AuditTrail(SqliteStateStore store, TimeProvider time, ILogger logger)
{
    /// <summary>Actor of changes read from the watched rules directory.</summary>
    public const string Directory = "directory";

    /// <summary>Actor of changes made with the command line.</summary>
    public const string Cli = "cli";

    /// <summary>Records an entry; returns it.</summary>
    public AuditEntry Record(string actor, string action, string detail)
    {
        var at = time.GetUtcNow().UtcTicks;
        var seq = store.AppendAudit(at, actor, action, detail);
        LogAudit(logger, seq, action, actor, detail);
        return new AuditEntry(seq, at, actor, action, detail);
    }

    /// <summary>Entries before <paramref name="beforeSeq"/>, newest first.</summary>
    public IReadOnlyList<AuditEntry> Read(long beforeSeq, int limit) => store.ReadAudit(beforeSeq, limit);

    [LoggerMessage(Level = LogLevel.Information, Message = "Audit {Seq}: {Action} by {Actor}: {Detail}")]
    private static partial void LogAudit(ILogger logger, long seq, string action, string actor, string detail);
}
