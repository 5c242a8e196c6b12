using System.Globalization;
using System.Text;
using Streaming.Connectors.Sql;

namespace Streaming.Host.Hosting;

/// <summary>
/// Who changed what (CONTRACTS.md §7.1): configuration changes and operator actions, stored with the engine's state
/// (they survive restarts) and logged as one structured line each. Details name versions and ids, never personal data.
/// </summary>
public sealed partial class AuditTrail(IAuditLog store, TimeProvider time, ILogger logger)
{
    /// <summary>Actor of changes read from the watched rules directory.</summary>
    public const string Directory = "directory";

    /// <summary>Actor of changes made with the command line.</summary>
    public const string Cli = "cli";

    /// <summary>Longest caller-supplied value (an id, a dialer's name) an entry quotes; longer ones are cut.</summary>
    public const int MaxQuoted = 128;

    /// <summary>Records an entry; returns it.</summary>
    public AuditEntry Record(string actor, string action, string detail)
    {
        var at = time.GetUtcNow().UtcTicks;
        var seq = store.AppendAudit(at, actor, action, detail);
        LogAudit(logger, seq, action, actor, detail);
        return new AuditEntry(seq, at, actor, action, detail);
    }

    /// <summary>
    /// Records an entry in the engine tables of <paramref name="store"/> (state.db in its data directory, or its PostgreSQL database) from another process (a command-line verb, while an
    /// engine may run on it) and logs the same structured line as <see cref="Record"/>; returns it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The store has no audit trail yet (written by an older build).</exception>
    public static AuditEntry RecordTo(Streaming.Connectors.Persistence.ActorStoreOptions store, TimeProvider time, ILogger logger, string actor, string action, string detail)
    {
        var at = time.GetUtcNow().UtcTicks;
        var seq = EngineStore.AppendAuditTo(store, at, actor, action, detail);
        LogAudit(logger, seq, action, actor, detail);
        return new AuditEntry(seq, at, actor, action, detail);
    }

    /// <summary>Entries before <paramref name="beforeSeq"/>, newest first.</summary>
    public IReadOnlyList<AuditEntry> Read(long beforeSeq, int limit) => store.ReadAudit(beforeSeq, limit);

    /// <summary>
    /// A value a caller chose (an outreach id of a refused request, a dialer's name) made safe for an entry and its log
    /// line: control characters become <c>?</c> (no forged lines), and more than <see cref="MaxQuoted"/> characters are
    /// cut, with <c>…</c>.
    /// </summary>
    public static string Quote(string? value)
    {
        if (value is null)
        {
            return "none";
        }

        var text = new StringBuilder(Math.Min(value.Length, MaxQuoted + 1));
        foreach (var c in value.Length > MaxQuoted ? value[..MaxQuoted] : value)
        {
            text.Append(char.IsControl(c) || char.GetUnicodeCategory(c) is UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator ? '?' : c);
        }

        return value.Length > MaxQuoted ? text.Append('…').ToString() : text.ToString();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Audit {Seq}: {Action} by {Actor}: {Detail}")]
    private static partial void LogAudit(ILogger logger, long seq, string action, string actor, string detail);
}
