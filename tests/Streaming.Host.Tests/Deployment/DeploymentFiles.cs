using System.Text.Json;
using System.Text.RegularExpressions;
using Streaming.Host.Tests.Infrastructure;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Streaming.Host.Tests.Deployment;

/// <summary>One instruction of a Dockerfile: its keyword (upper case), its arguments, and the stage it belongs to.</summary>
public sealed record DockerInstruction(string Keyword, string Arguments, string Stage, int Line);

/// <summary>
/// The files of <c>deploy/</c> read as data: the Dockerfile as instructions, YAML (compose merge keys resolved) as
/// documents, and compose's variable interpolation (<c>${VAR:-default}</c>, <c>$$</c>) applied the way compose does
/// with no such variables set.
/// </summary>
public static partial class DeploymentFiles
{
    public static string Root => TestEnvironment.RepoRoot;

    public static string DeployDir => Path.Combine(Root, "deploy");

    public static string DockerDir => Path.Combine(DeployDir, "docker");

    public static string DockerfilePath => Path.Combine(DockerDir, "Dockerfile");

    public static string ComposePath => Path.Combine(DockerDir, "docker-compose.yml");

    public static string KubernetesDir => Path.Combine(DeployDir, "k8s");

    public static string LocalClusterScript => Path.Combine(DeployDir, "local", "cluster");

    /// <summary>Every YAML file under <c>deploy/</c>.</summary>
    public static IReadOnlyList<string> YamlFiles =>
        [.. Directory.EnumerateFiles(DeployDir, "*.*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".yml", StringComparison.Ordinal) || f.EndsWith(".yaml", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)];

    /// <summary>The documents of a YAML file, merge keys (<c>&lt;&lt;: *anchor</c>) resolved as compose resolves them.</summary>
    public static IReadOnlyList<YamlNode> LoadYaml(string path)
    {
        var stream = new YamlStream();
        using var reader = new StringReader(File.ReadAllText(path));
        stream.Load(new MergingParser(new Parser(reader)));
        return [.. stream.Documents.Select(d => d.RootNode)];
    }

    /// <summary>The Dockerfile's instructions, continuation lines joined, comments and parser directives dropped.</summary>
    public static IReadOnlyList<DockerInstruction> Dockerfile(string? path = null)
    {
        var lines = File.ReadAllLines(path ?? DockerfilePath);
        var list = new List<DockerInstruction>();
        var stage = "";
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var start = i + 1;
            var text = line;
            while (text.EndsWith('\\') && i + 1 < lines.Length)
            {
                text = text[..^1] + " " + lines[++i].Trim();
            }

            var space = text.IndexOf(' ', StringComparison.Ordinal);
            var keyword = (space < 0 ? text : text[..space]).ToUpperInvariant();
            var arguments = space < 0 ? "" : text[(space + 1)..].Trim();
            if (keyword == "FROM")
            {
                var parts = arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                stage = parts.Length >= 3 && parts[^2].Equals("AS", StringComparison.OrdinalIgnoreCase) ? parts[^1] : "stage" + list.Count(x => x.Keyword == "FROM");
            }

            list.Add(new DockerInstruction(keyword, arguments, stage, start));
        }

        return list;
    }

    /// <summary>An exec-form (JSON array) argument list, e.g. of ENTRYPOINT or CMD.</summary>
    public static IReadOnlyList<string> ExecForm(DockerInstruction instruction) =>
        JsonSerializer.Deserialize<string[]>(instruction.Arguments)
        ?? throw new InvalidOperationException($"line {instruction.Line}: {instruction.Keyword} is not a JSON array");

    /// <summary>The variables an ENV instruction sets (<c>K=V K2=V2</c>, or the legacy <c>K V</c>).</summary>
    public static IEnumerable<KeyValuePair<string, string>> EnvPairs(DockerInstruction instruction)
    {
        if (!instruction.Arguments.Contains('=', StringComparison.Ordinal))
        {
            var space = instruction.Arguments.IndexOf(' ', StringComparison.Ordinal);
            yield return new(instruction.Arguments[..space], instruction.Arguments[(space + 1)..].Trim());
            yield break;
        }

        foreach (var pair in instruction.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            yield return new(pair[..eq], pair[(eq + 1)..].Trim('"'));
        }
    }

    /// <summary>A COPY's flags (<c>--from=…</c>), sources and destination.</summary>
    public static (IReadOnlyDictionary<string, string> Flags, IReadOnlyList<string> Sources, string Destination) Copy(DockerInstruction instruction)
    {
        var words = instruction.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var flags = words.TakeWhile(w => w.StartsWith("--", StringComparison.Ordinal))
            .Select(w => w[2..].Split('=', 2))
            .ToDictionary(kv => kv[0], kv => kv.Length > 1 ? kv[1] : "", StringComparer.Ordinal);
        var rest = words.SkipWhile(w => w.StartsWith("--", StringComparison.Ordinal)).ToList();
        return (flags, rest[..^1], rest[^1]);
    }

    /// <summary>Compose's interpolation with no variables set: <c>${V:-d}</c> and <c>${V-d}</c> give d, <c>${V}</c> nothing, <c>$$</c> a dollar.</summary>
    public static string Interpolate(string value) =>
        ComposeVariable().Replace(value, m => m.Value == "$$" ? "$" : m.Groups["default"].Value);

    public static YamlMappingNode Mapping(YamlNode node, string key) =>
        Child(node, key) as YamlMappingNode ?? throw new InvalidOperationException($"'{key}' is not a mapping");

    public static YamlNode? Child(YamlNode node, string key) =>
        node is YamlMappingNode map && map.Children.TryGetValue(new YamlScalarNode(key), out var child) ? child : null;

    public static string? Scalar(YamlNode node, string key) => (Child(node, key) as YamlScalarNode)?.Value;

    public static IEnumerable<YamlNode> Sequence(YamlNode node, string key) =>
        Child(node, key) is YamlSequenceNode seq ? seq.Children : [];

    /// <summary>A mapping's scalar entries as a dictionary (keys as written).</summary>
    public static Dictionary<string, string> Scalars(YamlMappingNode map) =>
        map.Children.Where(kv => kv.Value is YamlScalarNode)
            .ToDictionary(kv => ((YamlScalarNode)kv.Key).Value!, kv => ((YamlScalarNode)kv.Value).Value ?? "", StringComparer.Ordinal);

    /// <summary>
    /// The paths the host's HTTP API maps with <c>MapGet</c>, read from its source (engine/Streaming.Host/Http/*.cs):
    /// what a probe or health check may call.
    /// </summary>
    public static IReadOnlySet<string> GetRoutes() =>
        Directory.EnumerateFiles(Path.Combine(Root, "engine", "Streaming.Host", "Http"), "*.cs", SearchOption.AllDirectories)
            .SelectMany(f => MapGet().Matches(File.ReadAllText(f)).Select(m => m.Groups[1].Value))
            .ToHashSet(StringComparer.Ordinal);

    [GeneratedRegex(@"\$\$|\$\{(?<name>\w+)(?::?-(?<default>[^}]*))?\}")]
    private static partial Regex ComposeVariable();

    [GeneratedRegex(@"\.MapGet\(""(/[^""{]*)""")]
    private static partial Regex MapGet();
}
