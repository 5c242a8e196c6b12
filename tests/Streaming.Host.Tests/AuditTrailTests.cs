using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Streaming.Connectors.Kafka;
using Streaming.Connectors.Sql;
using Streaming.Engine.Rules;
using Streaming.Host.Hosting;
using Streaming.Host.Tests.Infrastructure;
using Streaming.Tests.Shared;
using Xunit.Abstractions;

namespace Streaming.Host.Tests;

/// <summary>
/// The audit trail over a real SQLite store: rule sets read from a watched directory (while running and at start-up),
/// and <c>streaming mirror resync</c> run as a separate process against a real Redis.
/// </summary>
public sealed class AuditTrailTests(ITestOutputHelper output)
{
    [Fact]
    public void Rule_sets_from_the_directory_are_audited_as_directory_and_survive_reopening_the_store()
    {
        var root = TestEnvironment.NewTempDir("streaming-audit-dir");
        var rules = Directory.CreateDirectory(Path.Combine(root, "rules")).FullName;
        var good = RuleSetLoader.DefaultText().Replace("name: default", "name: from-dir", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(rules, "rules.yaml"), good);
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 9, 0, 0, TimeSpan.Zero));
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

    [Fact]
    public void At_start_up_the_directory_is_audited_when_it_differs_from_the_stored_set_and_when_it_is_broken()
    {
        var root = TestEnvironment.NewTempDir("streaming-audit-start");
        var rules = Directory.CreateDirectory(Path.Combine(root, "rules")).FullName;
        var file = Path.Combine(rules, "rules.yaml");
        var first = RuleSetLoader.DefaultText().Replace("name: default", "name: start-a", StringComparison.Ordinal);
        var second = RuleSetLoader.DefaultText().Replace("name: default", "name: start-b", StringComparison.Ordinal);
        var settings = new StreamingSettings { RulesDirectory = rules };
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 10, 0, 0, TimeSpan.Zero));
        var state = Path.Combine(root, "state");
        string versionA, versionB;
        File.WriteAllText(file, first);
        using (var store = SqliteStateStore.OpenDirectory(state))
        {
            var audit = new AuditTrail(store, clock, NullLogger.Instance);

            // First start: nothing stored yet, so the directory's set comes into force: accepted, by the directory.
            versionA = RulesManager.Create(settings, store, clock, NullLogger.Instance, audit).Initial.Version;
            Assert.Single(store.ReadAudit(long.MaxValue, 10));

            // The engine stores the set it runs with its first checkpoint (KafkaEngineTests checks it does); a restart on
            // the same files then changes nothing: no entry.
            Store(store, first);
            RulesManager.Create(settings, store, clock, NullLogger.Instance, audit);
            Assert.Single(store.ReadAudit(long.MaxValue, 10));

            // Edited while the engine was down: another version at start, accepted.
            File.WriteAllText(file, second);
            versionB = RulesManager.Create(settings, store, clock, NullLogger.Instance, audit).Initial.Version;

            // Broken while down: the start fails, and says so in the trail; so does a directory that is gone.
            File.WriteAllText(file, "name: start-c\nsegments: [unclosed\n");
            Assert.Throws<RuleSetException>(() => RulesManager.Create(settings, store, clock, NullLogger.Instance, audit));
            Assert.Throws<RuleSetException>(() => RulesManager.Create(new StreamingSettings { RulesDirectory = Path.Combine(root, "gone") }, store, clock, NullLogger.Instance, audit));
        }

        // Versions name the files' contents: two different texts, two different versions (else the test proves nothing).
        Assert.NotEqual(versionA, versionB);
        using var reopened = SqliteStateStore.OpenDirectory(state);
        var entries = reopened.ReadAudit(long.MaxValue, 10);
        Assert.Equal(["rules.rejected", "rules.rejected", "rules.accepted", "rules.accepted"], entries.Select(e => e.Action));
        Assert.All(entries, e => Assert.Equal("directory", e.Actor));
        Assert.Equal($"version {versionB} from directory at start", entries[2].Detail);
        Assert.Equal($"version {versionA} from directory at start", entries[3].Detail);
        Assert.Matches(@"^1 error\(s\) from directory; first at rules\.yaml:\d+:\d+ at start$", entries[1].Detail);
        Assert.Equal($"1 error(s) from directory; first at {Path.Combine(root, "gone")}:0:0 at start", entries[0].Detail);
    }

    [Fact]
    public async Task Mirror_resync_logs_the_audit_line_of_the_entry_it_stores()
    {
        var dir = TestEnvironment.NewTempDir("streaming-audit-resync");
        await using var redis = await RedisTestServer.SharedOrPrivateAsync();
        var prefix = "audit-" + Guid.NewGuid().ToString("N")[..10] + ":";
        try
        {
            long storeSeq;
            using (var store = SqliteStateStore.OpenDirectory(dir))
            {
                storeSeq = store.Reserved;
            }

            var clock = Stopwatch.StartNew();
            var resync = await CliProcess.RunAsync(["mirror", "resync", "--data-dir", dir, "--redis", redis.Connection, "--prefix", prefix], TimeSpan.FromSeconds(60));
            output.WriteLine($"resync of an empty store took {clock.Elapsed.TotalSeconds:N1} s");
            Assert.True(resync.ExitCode == 0, "resync failed: " + resync.StandardError);

            using var reopened = SqliteStateStore.OpenDirectory(dir);
            var entry = Assert.Single(reopened.ReadAudit(long.MaxValue, 10));
            Assert.Equal("mirror.resync", entry.Action);
            Assert.Equal($"prefix {prefix}: customers=0 seq={storeSeq}", entry.Detail);

            // The very line the engine logs for its own entries, once.
            var line = $"Audit {entry.Seq}: mirror.resync by cli: {entry.Detail}";
            var lines = (resync.StandardError + resync.StandardOutput).Split('\n').Where(l => l.Contains("Audit ", StringComparison.Ordinal)).ToList();
            Assert.True(lines.Count == 1 && lines[0].TrimEnd().EndsWith(line, StringComparison.Ordinal), $"expected one line ending '{line}'; output:\n{resync.StandardError}{resync.StandardOutput}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("bob", "bob")]
    [InlineData(null, "none")]
    [InlineData("line\nAudit 9: forged", "line?Audit 9: forged")]
    [InlineData("tab\there\u2028", "tab?here?")]
    public void Quoted_caller_values_cannot_break_the_log_line(string? value, string expected)
    {
        Assert.Equal(expected, AuditTrail.Quote(value));
    }

    [Fact]
    public void Quoted_caller_values_are_cut_at_128_characters()
    {
        var quoted = AuditTrail.Quote(new string('x', 500));
        Assert.Equal(new string('x', 128) + "…", quoted);
        Assert.Equal(new string('y', 128), AuditTrail.Quote(new string('y', 128)));
    }

    /// <summary>What the engine does when it switches to <paramref name="text"/>: the set is stored.</summary>
    private static void Store(SqliteStateStore store, string text) =>
        store.SaveSetting(RuleSetStorage.SettingKey, RuleSetStorage.Serialize(RuleSetLoader.Load([new RuleSource("rules.yaml", text)])));
}
