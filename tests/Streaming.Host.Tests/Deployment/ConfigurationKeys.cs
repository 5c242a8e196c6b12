using Microsoft.Extensions.Configuration;
using Streaming.Host.Hosting;

namespace Streaming.Host.Tests.Deployment;

/// <summary>
/// Settings as the engine reads them: environment variables (<c>Streaming__Section__Key</c>, the .NET form of
/// <c>Streaming:Section:Key</c>) given to <see cref="StreamingSettings.From"/>, the one place the host reads its
/// <c>Streaming:*</c> keys, through a configuration provider that records every key the code asks for.
/// </summary>
/// <remarks>
/// The host binds no options classes: <c>StreamingSettings.From</c> reads each key by name (and enumerates the lists
/// <c>Cluster:SeedNodes</c> and <c>Auth:Tokens</c>). So the keys the code binds are learnt from the code itself, by
/// asking it, rather than from a list copied into the test.
/// </remarks>
public static class ConfigurationKeys
{
    /// <summary>The configuration key of an environment variable name, as the environment-variables provider maps it.</summary>
    public static string KeyOf(string environmentName) => environmentName.Replace("__", ":", StringComparison.Ordinal);

    /// <summary>
    /// The keys among <paramref name="environmentNames"/> that <see cref="StreamingSettings.From"/> never reads. Every
    /// value is given as null (present, no value), so the code reads every key it knows without failing on a value.
    /// </summary>
    public static IReadOnlyList<string> Unread(IEnumerable<string> environmentNames)
    {
        var names = environmentNames.Distinct(StringComparer.Ordinal).ToList();
        var provider = new RecordingProvider(names.Select(n => new KeyValuePair<string, string?>(KeyOf(n), null)));
        StreamingSettings.From(new ConfigurationBuilder().Add(new RecordingSource(provider)).Build());
        return [.. names.Where(n => !provider.Read.Contains(KeyOf(n)))];
    }

    /// <summary>The settings the engine would run with under these environment variables (later entries win).</summary>
    /// <exception cref="InvalidOperationException">The code refuses them (its message says why).</exception>
    public static StreamingSettings Settings(IEnumerable<KeyValuePair<string, string>> environment)
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in environment)
        {
            data[KeyOf(name)] = value;
        }

        return StreamingSettings.From(new ConfigurationBuilder().AddInMemoryCollection(data).Build());
    }

    /// <summary>The port of an HTTP listen URL such as <c>http://0.0.0.0:8080</c>.</summary>
    public static int UrlPort(string urls) => new Uri(urls.Split(';')[0].Replace("://+", "://localhost", StringComparison.Ordinal).Replace("://*", "://localhost", StringComparison.Ordinal)).Port;

    private sealed class RecordingSource(RecordingProvider provider) : IConfigurationSource
    {
        public IConfigurationProvider Build(IConfigurationBuilder builder) => provider;
    }

    private sealed class RecordingProvider : ConfigurationProvider
    {
        public RecordingProvider(IEnumerable<KeyValuePair<string, string?>> data)
        {
            foreach (var (key, value) in data)
            {
                Data[key] = value;
            }
        }

        public HashSet<string> Read { get; } = new(StringComparer.OrdinalIgnoreCase);

        public override bool TryGet(string key, out string? value)
        {
            Read.Add(key);
            return base.TryGet(key, out value);
        }
    }
}
