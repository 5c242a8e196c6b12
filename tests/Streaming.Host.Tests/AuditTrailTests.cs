using Microsoft.Extensions.Logging.Abstractions;
using Streaming.Connectors.Sql;
using Streaming.Engine.Rules;
using Streaming.Host.Hosting;
using Streaming.Host.Tests.Infrastructure;

namespace Streaming.Host.Tests;

/// <summary>The audit trail of rule sets read from a watched directory, over a real SQLite store.</summary>
public sealed class AuditTrailTests
{
    [Fact]
    public void Rule_sets_from_the_directory_are_audited_as_directory_and_survive_reopening_the_store()
    {
        var root = TestEnvironment.NewTempDir("streaming-audit-dir");
        var rules = Directory.CreateDirectory(Path.Combine(root, "rules")).FullName;
        var good = RuleSetLoader.DefaultText().Replace("name: default", "name: from-dir", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(rules, "rules.yaml"), good);
        var clock = new FixedClock(new DateTimeOffset(2026, 11, 30, 9, 0, 0, TimeSpan.Zero));
        string version;
        using (var store = SqliteStateStore.OpenDirectory(Path.Combine(root, "state")))
        {
            var manager = RulesManager.Create(new StreamingSettings { RulesDirectory = rules }, store, clock, NullLogger.Instance);
            manager.Audit = new AuditTrail(store, clock, NullLogger.Instance);
            version = manager.Initial.Version;

            // A broken edit, then a valid one (sizes differ, so the fingerprint changes each time).
            File.WriteAllText(Path.Combine(rules, "rules.yaml"), "name: [broken");
            manager.PollDirectory();
            File.WriteAllText(Path.Combine(rules, "rules.yaml"), good + "\n# edited\n");
            manager.PollDirectory();
        }

        using (var reopened = SqliteStateStore.OpenDirectory(Path.Combine(root, "state")))
        {
            var entries = reopened.ReadAudit(long.MaxValue, 10);
            Assert.Equal(["rules.accepted", "rules.rejected"], entries.Select(e => e.Action));
            Assert.All(entries, e => Assert.Equal("directory", e.Actor));
            Assert.All(entries, e => Assert.Equal(clock.GetUtcNow().UtcTicks, e.AtTicks));
            Assert.StartsWith("version from-dir@", entries[0].Detail, StringComparison.Ordinal);
            Assert.DoesNotContain(version, entries[0].Detail, StringComparison.Ordinal); // the edited text is a new version
            Assert.Matches(@"^1 error\(s\) from directory; first at rules\.yaml:\d+:\d+$", entries[1].Detail);
            Assert.True(entries[0].Seq > entries[1].Seq);
        }
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
