using System.Text.Json;
using Streaming.Engine.Rules;

namespace Streaming.Connectors.Kafka;

/// <summary>Named settings the engine keeps beside its state (the rule set in force, counters): text under a key.</summary>
public interface ISettingStore
{
    /// <summary>The value stored under <paramref name="key"/>; null when there is none.</summary>
    string? LoadSetting(string key);

    /// <summary>Stores <paramref name="value"/> under <paramref name="key"/>, replacing what was there, durably.</summary>
    void SaveSetting(string key, string value);

    /// <summary>
    /// Stores <paramref name="value"/> under <paramref name="key"/> as its next revision (1, 2, …), durably. Writers on
    /// several nodes of one store get distinct revisions, and the value left is the one of the highest revision.
    /// </summary>
    /// <returns>The revision written.</returns>
    long SaveRevision(string key, string value);

    /// <summary>The latest revision of <paramref name="key"/> (0 when never saved with <see cref="SaveRevision"/>) and its value.</summary>
    (long Revision, string? Value) LoadRevision(string key);
}

/// <summary>How the active rule set is kept in the store: its source files as JSON, compiled again on load.</summary>
public static class RuleSetStorage
{
    /// <summary>The setting that holds the rule set a restart starts from.</summary>
    public const string SettingKey = "rules";

    public static string Serialize(RuleSet rules) =>
        JsonSerializer.Serialize(rules.Sources.Select(s => new StoredSource(s.FileName, s.Text)).ToList(), RuleSetStorageJson.Default.ListStoredSource);

    /// <exception cref="RuleSetException">The stored files no longer compile (for example after an upgrade).</exception>
    /// <exception cref="JsonException">The stored value is not a rule set.</exception>
    public static RuleSet Deserialize(string json)
    {
        var sources = JsonSerializer.Deserialize(json, RuleSetStorageJson.Default.ListStoredSource) ?? [];
        return RuleSetLoader.Load(sources.Select(s => new RuleSource(s.File, s.Text)).ToList());
    }

    /// <summary>The version of the rule set <paramref name="store"/> holds under <paramref name="key"/>; null if none or unreadable.</summary>
    public static string? StoredVersion(ISettingStore store, string key = SettingKey)
    {
        if (store.LoadSetting(key) is not { } stored)
        {
            return null;
        }

        try
        {
            return Deserialize(stored).Version;
        }
        catch (Exception ex) when (ex is RuleSetException or JsonException)
        {
            return null;
        }
    }

    internal sealed record StoredSource(string File, string Text);
}

[System.Text.Json.Serialization.JsonSerializable(typeof(List<RuleSetStorage.StoredSource>))]
internal sealed partial class RuleSetStorageJson : System.Text.Json.Serialization.JsonSerializerContext;
