using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Streaming.Engine.Rules.Expressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Streaming.Engine.Rules;

/// <summary>One problem in a rule file, with its position (1-based line and column).</summary>
public sealed record RuleError(string File, int Line, int Column, string Message)
{
    public override string ToString() => $"{File}:{Line}:{Column}: {Message}";
}

/// <summary>A rule set that cannot be used; <see cref="Errors"/> says where and why.</summary>
public sealed class RuleSetException(IReadOnlyList<RuleError> errors)
    : Exception(string.Join(Environment.NewLine, errors))
{
    public IReadOnlyList<RuleError> Errors { get; } = errors;
}

/// <summary>
/// Reads rule files (YAML), validates them with positions, and compiles them into a <see cref="RuleSet"/>. A rule set
/// may span several files: each top-level section appears in one file only, except <c>tags</c>, whose lists are
/// joined in file order.
/// </summary>
public static class RuleSetLoader
{
    /// <summary>Ladders the profile contract (CONTRACTS.md §6) shows; a rule set must define them.</summary>
    public static readonly IReadOnlyList<string> RequiredLadders = ["lifecycle", "aarrr", "ladder"];

    private static readonly string[] Sections = ["name", "rfm", "churnRisk", "ladders", "tiers", "tags", "contact", "triggers"];

    private static readonly Lazy<RuleSet> DefaultSet = new(() => Load([new RuleSource("default-rules.yaml", DefaultText())]));

    /// <summary>The default pack shipped in the engine (reproduces CONTRACTS.md §6).</summary>
    public static RuleSet Default => DefaultSet.Value;

    /// <summary>The text of the default pack.</summary>
    public static string DefaultText()
    {
        using var stream = typeof(RuleSetLoader).Assembly.GetManifestResourceStream("Streaming.Engine.Rules.default-rules.yaml")
            ?? throw new InvalidOperationException("the default rule pack is missing from the engine assembly");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>The rule files of a directory: every <c>*.yaml</c>/<c>*.yml</c>, in ordinal name order.</summary>
    public static List<string> RuleFiles(string directory) =>
        Directory.EnumerateFiles(directory)
            .Where(f => f.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>Loads every <c>*.yaml</c>/<c>*.yml</c> file of a directory, in ordinal name order.</summary>
    /// <exception cref="RuleSetException">The directory holds no rule file, or the files have errors.</exception>
    public static RuleSet LoadDirectory(string directory)
    {
        var files = RuleFiles(directory);
        if (files.Count == 0)
        {
            throw new RuleSetException([new RuleError(directory, 0, 0, "no rule files (*.yaml) in this directory")]);
        }

        return Load(files.Select(f => new RuleSource(Path.GetFileName(f), File.ReadAllText(f))).ToList());
    }

    /// <exception cref="RuleSetException">The files have errors; all that were found are listed.</exception>
    public static RuleSet Load(IReadOnlyList<RuleSource> sources)
    {
        var errors = new List<RuleError>();
        var sections = new Dictionary<string, (SourceReader Reader, YamlNode Key, YamlNode Value)>(StringComparer.Ordinal);
        var tagNodes = new List<(SourceReader Reader, YamlNode Value)>();
        var triggerNodes = new List<(SourceReader Reader, YamlNode Value)>();
        foreach (var source in sources)
        {
            var reader = new SourceReader(source, errors);
            if (reader.Root() is not { } root)
            {
                continue;
            }

            foreach (var (keyNode, value) in root.Children)
            {
                var key = ((YamlScalarNode)keyNode).Value ?? "";
                if (!Sections.Contains(key))
                {
                    reader.Error(keyNode, $"unknown section '{key}' (known: {string.Join(", ", Sections)})");
                }
                else if (key == "tags")
                {
                    tagNodes.Add((reader, value));
                }
                else if (key == "triggers")
                {
                    triggerNodes.Add((reader, value));
                }
                else if (sections.TryGetValue(key, out var first))
                {
                    reader.Error(keyNode, $"'{key}' is already defined in {first.Reader.FileName}:{first.Key.Start.Line}");
                }
                else
                {
                    sections[key] = (reader, keyNode, value);
                }
            }
        }

        if (errors.Count > 0)
        {
            throw new RuleSetException(errors);
        }

        var anchor = new SourceReader(sources.Count > 0 ? sources[0] : new RuleSource("rules", ""), errors);
        foreach (var required in new[] { "name", "rfm", "churnRisk", "ladders", "tiers" })
        {
            if (!sections.ContainsKey(required))
            {
                errors.Add(new RuleError(anchor.FileName, 1, 1, $"the rule set has no '{required}' section"));
            }
        }

        if (errors.Count > 0)
        {
            throw new RuleSetException(errors);
        }

        var ladderNames = LadderNames(sections["ladders"]);
        var compiler = new ExpressionCompiler(new FieldCatalog(ladderNames));
        var name = ReadName(sections["name"]);
        var rfm = ReadRfm(sections["rfm"], compiler);
        var (churnReader, _, churnValue) = sections["churnRisk"];
        var churn = churnReader.Number(churnValue, compiler);
        var ladders = ReadLadders(sections["ladders"], compiler);
        var tiers = ReadTiers(sections["tiers"], compiler);
        var tags = new List<TagRule>();
        foreach (var (reader, value) in tagNodes)
        {
            ReadTags(reader, value, compiler, tags);
        }

        var contact = sections.TryGetValue("contact", out var contactSection) ? ReadContact(contactSection) : ContactPolicy.Default;
        var triggers = new List<TriggerRule>();
        foreach (var (reader, value) in triggerNodes)
        {
            ReadTriggers(reader, value, compiler, triggers);
        }

        if (errors.Count > 0 || rfm is null || churn is null || tiers is null || name is null || contact is null)
        {
            throw new RuleSetException(errors.Count > 0 ? errors : [new RuleError(anchor.FileName, 1, 1, "the rule set is incomplete")]);
        }

        return new RuleSet
        {
            Name = name,
            Version = name + "@" + Hash(sources),
            Sources = sources,
            Rfm = rfm,
            ChurnRisk = churn,
            Ladders = ladders,
            Tiers = tiers,
            Tags = tags,
            Triggers = triggers,
            Contact = contact!,
            RetentionDays = Math.Max(1, compiler.LongestWindowDays),
        };
    }

    private static string? ReadName((SourceReader Reader, YamlNode Key, YamlNode Value) section)
    {
        var text = section.Reader.Scalar(section.Value, "a name");
        if (text is not null && (text.Length is 0 or > 64 || text.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))))
        {
            section.Reader.Error(section.Value, "a rule-set name is 1 to 64 letters, digits, '-', '_' or '.'");
            return null;
        }

        return text;
    }

    private static List<string> LadderNames((SourceReader Reader, YamlNode Key, YamlNode Value) section)
    {
        var names = new List<string>();
        if (section.Reader.Mapping(section.Value, "ladders") is { } map)
        {
            foreach (var key in map.Children.Keys)
            {
                names.Add(((YamlScalarNode)key).Value ?? "");
            }

            foreach (var required in RequiredLadders.Where(r => !names.Contains(r)))
            {
                section.Reader.Error(section.Value, $"ladder '{required}' is missing (the profile shows lifecycle, aarrr and ladder)");
            }
        }

        return names;
    }

    private static RfmRules? ReadRfm((SourceReader Reader, YamlNode Key, YamlNode Value) section, ExpressionCompiler compiler)
    {
        var r = section.Reader;
        if (r.Mapping(section.Value, "rfm") is not { } map)
        {
            return null;
        }

        r.OnlyKeys(map, "window", "recency", "frequency", "monetary", "segments");
        var window = r.Days(r.Required(map, "window"));
        var recency = r.Thresholds(r.Required(map, "recency"));
        var frequency = r.Thresholds(r.Required(map, "frequency"));
        var monetary = r.Thresholds(r.Required(map, "monetary"));
        var segments = r.Conditions(r.Required(map, "segments"), "name", compiler);
        if (window is not { } days || recency is null || frequency is null || monetary is null || segments is null)
        {
            return null;
        }

        var anchor = map;
        return new RfmRules
        {
            WindowDays = days,
            Frequency = r.Generated(anchor, $"count_in(orders, {days}d)", compiler),
            Monetary = r.Generated(anchor, $"sum_in(orders.net, {days}d)", compiler),
            RScore = r.Generated(anchor, ScoreText("rfm.recencyDays", recency, lowerIsBetter: true), compiler),
            FScore = r.Generated(anchor, ScoreText("rfm.frequency", frequency, lowerIsBetter: false), compiler),
            MScore = r.Generated(anchor, ScoreText("rfm.monetary", monetary, lowerIsBetter: false), compiler),
            Segments = segments,
        };
    }

    /// <summary>
    /// Four ascending thresholds make five scores. Lower-is-better (recency): 5 when at most t1, … 1 above t4.
    /// Higher-is-better: 1 below t1, … 5 from t4 on. No orders: no score.
    /// </summary>
    private static string ScoreText(string field, decimal[] t, bool lowerIsBetter)
    {
        static string N(decimal d) => d.ToString(CultureInfo.InvariantCulture);
        var body = lowerIsBetter
            ? $"if({field} <= {N(t[0])}, 5, if({field} <= {N(t[1])}, 4, if({field} <= {N(t[2])}, 3, if({field} <= {N(t[3])}, 2, 1))))"
            : $"if({field} >= {N(t[3])}, 5, if({field} >= {N(t[2])}, 4, if({field} >= {N(t[1])}, 3, if({field} >= {N(t[0])}, 2, 1))))";
        return $"if(orders.count == 0, 0, {body})";
    }

    private static List<Ladder> ReadLadders((SourceReader Reader, YamlNode Key, YamlNode Value) section, ExpressionCompiler compiler)
    {
        var r = section.Reader;
        var ladders = new List<Ladder>();
        if (r.Mapping(section.Value, "ladders") is not { } map)
        {
            return ladders;
        }

        foreach (var (key, value) in map.Children)
        {
            var name = ((YamlScalarNode)key).Value ?? "";
            if (!SourceReader.IsIdentifier(name))
            {
                r.Error(key, "a ladder name is letters, digits and '_', starting with a letter");
                continue;
            }

            if (r.Conditions(value, "stage", compiler) is { } stages)
            {
                var reads = Inputs.None;
                foreach (var stage in stages)
                {
                    reads |= stage.When.Reads;
                }

                ladders.Add(new Ladder { Name = name, Stages = stages, Reads = reads });
            }
        }

        return ladders;
    }

    private static TierRules? ReadTiers((SourceReader Reader, YamlNode Key, YamlNode Value) section, ExpressionCompiler compiler)
    {
        var r = section.Reader;
        if (r.Mapping(section.Value, "tiers") is not { } map)
        {
            return null;
        }

        r.OnlyKeys(map, "window", "pointsPerUnit", "levels");
        var window = r.Days(r.Required(map, "window"));
        var perUnit = r.Decimal(r.Required(map, "pointsPerUnit"));
        var levels = new List<TierLevel>();
        if (r.Required(map, "levels") is { } levelsNode && r.Sequence(levelsNode, "levels") is { } sequence)
        {
            foreach (var item in sequence.Children)
            {
                if (r.Mapping(item, "a tier level") is not { } level)
                {
                    continue;
                }

                r.OnlyKeys(level, "name", "points");
                var levelName = r.Identifier(r.Required(level, "name"));
                var points = r.Decimal(r.Required(level, "points"));
                if (levelName is null || points is null)
                {
                    continue;
                }

                if (levels.Count > 0 && points <= levels[^1].Points)
                {
                    r.Error(item, "tier levels must be listed in ascending order of points");
                }
                else if (levels.Any(l => l.Name == levelName))
                {
                    r.Error(item, $"tier '{levelName}' is listed twice");
                }
                else
                {
                    levels.Add(new TierLevel(levelName, points.Value));
                }
            }

            if (levels.Count == 0)
            {
                r.Error(levelsNode, "at least one tier level is needed");
            }
        }

        if (window is not { } days || perUnit is not { } unit || levels.Count == 0)
        {
            return null;
        }

        if (unit <= 0)
        {
            r.Error(map, "pointsPerUnit must be positive");
            return null;
        }

        return new TierRules
        {
            WindowDays = days,
            PointsPerUnit = unit,
            Points = r.Generated(map, $"max(0, sum_in(points, {days}d))", compiler),
            Levels = levels,
        };
    }

    private static void ReadTags(SourceReader r, YamlNode value, ExpressionCompiler compiler, List<TagRule> tags)
    {
        if (r.Conditions(value, "name", compiler) is not { } conditions)
        {
            return;
        }

        foreach (var tag in conditions)
        {
            if (tags.Any(t => t.Name == tag.Name))
            {
                r.Error(value, $"tag '{tag.Name}' is defined twice");
                continue;
            }

            tags.Add(new TagRule(tag.Name, tag.When));
        }
    }

    private static ContactPolicy? ReadContact((SourceReader Reader, YamlNode Key, YamlNode Value) section)
    {
        var r = section.Reader;
        if (r.Mapping(section.Value, "contact") is not { } map)
        {
            return null;
        }

        r.OnlyKeys(map, "timeZone", "quietHours", "caps", "pressure", "serviceHold");
        var defaults = ContactPolicy.Default;
        var zone = defaults.DefaultTimeZone;
        if (map.Children.TryGetValue(new YamlScalarNode("timeZone"), out var zoneNode) && r.Scalar(zoneNode, "an IANA time zone") is { } zoneId)
        {
            if (!TimeZoneInfo.TryFindSystemTimeZoneById(zoneId, out var found))
            {
                r.Error(zoneNode, $"'{zoneId}' is not a known IANA time zone");
                return null;
            }

            zone = found;
        }

        var (quietFrom, quietTo) = (defaults.QuietFrom, defaults.QuietTo);
        if (map.Children.TryGetValue(new YamlScalarNode("quietHours"), out var quietNode))
        {
            if (r.Sequence(quietNode, "quietHours") is not { Children.Count: 2 } pair
                || r.TimeOfDay(pair.Children[0]) is not { } from || r.TimeOfDay(pair.Children[1]) is not { } to)
            {
                r.Error(quietNode, "quietHours is a pair of local times, such as [\"21:00\", \"09:00\"]");
                return null;
            }

            (quietFrom, quietTo) = (from, to);
        }

        var caps = new Dictionary<ContactChannel, (int, TimeSpan)>(defaults.Caps);
        if (map.Children.TryGetValue(new YamlScalarNode("caps"), out var capsNode) && r.Mapping(capsNode, "caps") is { } capsMap)
        {
            foreach (var (key, value) in capsMap.Children)
            {
                var channel = r.Channel(key);
                var cap = r.Cap(value);
                if (channel is null || cap is null)
                {
                    return null;
                }

                caps[channel.Value] = cap.Value;
            }
        }

        var pressure = (defaults.PressureMax, defaults.PressurePer);
        if (map.Children.TryGetValue(new YamlScalarNode("pressure"), out var pressureNode))
        {
            if (r.Cap(pressureNode) is not { } p)
            {
                return null;
            }

            pressure = p;
        }

        var hold = defaults.ServiceHold;
        if (map.Children.TryGetValue(new YamlScalarNode("serviceHold"), out var holdNode))
        {
            if (r.Duration(holdNode) is not { } h)
            {
                return null;
            }

            hold = h;
        }

        return new ContactPolicy
        {
            DefaultTimeZone = zone,
            QuietFrom = quietFrom,
            QuietTo = quietTo,
            Caps = caps,
            PressureMax = pressure.Item1,
            PressurePer = pressure.Item2,
            ServiceHold = hold,
        };
    }

    private static void ReadTriggers(SourceReader r, YamlNode value, ExpressionCompiler compiler, List<TriggerRule> triggers)
    {
        if (r.Sequence(value, "triggers") is not { } sequence)
        {
            return;
        }

        foreach (var item in sequence.Children)
        {
            if (r.Mapping(item, "a trigger") is not { } map)
            {
                continue;
            }

            r.OnlyKeys(map, "id", "when", "channels", "priority", "purpose", "cooldown", "expires", "retry", "holdout", "attribution");
            var id = r.TriggerId(r.Required(map, "id"));
            var when = r.Required(map, "when") is { } whenNode ? r.Bool(whenNode, compiler) : null;
            var channels = new List<ContactChannel>();
            if (r.Required(map, "channels") is { } channelsNode && r.Sequence(channelsNode, "channels") is { } channelList)
            {
                foreach (var c in channelList.Children)
                {
                    if (r.Channel(c) is { } channel)
                    {
                        channels.Add(channel);
                    }
                }

                if (channels.Count == 0)
                {
                    r.Error(channelsNode, "a trigger needs at least one channel (voice, sms, email, notify)");
                }
            }

            var optional = (string key) => map.Children.TryGetValue(new YamlScalarNode(key), out var node) ? node : null;
            var priority = optional("priority") is { } priorityNode ? r.Decimal(priorityNode) : 50;
            var purpose = TriggerPurpose.Marketing;
            if (optional("purpose") is { } purposeNode)
            {
                switch (r.Scalar(purposeNode, "marketing or service"))
                {
                    case "marketing":
                        break;
                    case "service":
                        purpose = TriggerPurpose.Service;
                        break;
                    default:
                        r.Error(purposeNode, "purpose is 'marketing' (held after a service contact) or 'service'");
                        continue;
                }
            }

            var cooldown = optional("cooldown") is { } cooldownNode ? r.Duration(cooldownNode) : TimeSpan.Zero;
            var expires = optional("expires") is { } expiresNode ? r.Duration(expiresNode) : TimeSpan.FromDays(3);
            var attribution = optional("attribution") is { } attributionNode ? r.Duration(attributionNode) : TimeSpan.FromDays(30);
            var holdout = optional("holdout") is { } holdoutNode ? r.Decimal(holdoutNode) : 0;
            if (holdout is < 0 or > 1)
            {
                r.Error(optional("holdout")!, "holdout is a share between 0 and 1");
                continue;
            }

            var (attempts, after) = (0, TimeSpan.FromDays(1));
            if (optional("retry") is { } retryNode && r.Mapping(retryNode, "retry") is { } retry)
            {
                r.OnlyKeys(retry, "attempts", "after");
                attempts = (int)(r.Decimal(r.Required(retry, "attempts")) ?? 0);
                after = r.Duration(r.Required(retry, "after")) ?? after;
            }

            if (id is null || when is null || channels.Count == 0 || priority is null || cooldown is null || expires is null || attribution is null || holdout is null)
            {
                continue;
            }

            if (triggers.Any(t => t.Id == id))
            {
                r.Error(item, $"trigger '{id}' is defined twice");
                continue;
            }

            triggers.Add(new TriggerRule
            {
                Id = id,
                When = when,
                Channels = channels,
                Priority = (int)priority.Value,
                Purpose = purpose,
                Cooldown = cooldown.Value,
                Expires = expires.Value,
                RetryAttempts = Math.Max(0, attempts),
                RetryAfter = after,
                Holdout = holdout.Value,
                Attribution = attribution.Value,
            });
        }
    }

    private static string Hash(IReadOnlyList<RuleSource> sources)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var source in sources)
        {
            // Contents only, in order: the same rules under another file name are the same version.
            sha.AppendData(Encoding.UTF8.GetBytes(source.Text.Replace("\r\n", "\n", StringComparison.Ordinal)));
            sha.AppendData([0]);
        }

        return Convert.ToHexStringLower(sha.GetHashAndReset())[..12];
    }

    /// <summary>Reads one file: typed accessors that record positioned errors and return null on a problem.</summary>
    private sealed class SourceReader(RuleSource source, List<RuleError> errors)
    {
        private readonly string[] _lines = source.Text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');

        public string FileName => source.FileName;

        public YamlMappingNode? Root()
        {
            var stream = new YamlStream();
            try
            {
                stream.Load(new StringReader(source.Text));
            }
            catch (YamlException e)
            {
                errors.Add(new RuleError(FileName, (int)e.Start.Line, (int)e.Start.Column, "not valid YAML: " + (e.InnerException?.Message ?? e.Message)));
                return null;
            }

            if (stream.Documents.Count != 1)
            {
                errors.Add(new RuleError(FileName, 1, 1, "a rule file holds exactly one YAML document"));
                return null;
            }

            return Mapping(stream.Documents[0].RootNode, "the rule file");
        }

        public void Error(YamlNode node, string message) => errors.Add(new RuleError(FileName, (int)node.Start.Line, (int)node.Start.Column, message));

        public YamlMappingNode? Mapping(YamlNode node, string what)
        {
            if (node is YamlMappingNode map)
            {
                foreach (var key in map.Children.Keys)
                {
                    if (key is not YamlScalarNode)
                    {
                        Error(key, "keys must be plain names");
                        return null;
                    }
                }

                return map;
            }

            Error(node, $"{what} must be a mapping (key: value lines)");
            return null;
        }

        public YamlSequenceNode? Sequence(YamlNode node, string what)
        {
            if (node is YamlSequenceNode sequence)
            {
                return sequence;
            }

            Error(node, $"{what} must be a list ('- ' items)");
            return null;
        }

        public string? Scalar(YamlNode node, string what)
        {
            if (node is YamlScalarNode { Value: { } value })
            {
                return value;
            }

            Error(node, $"expected {what} here");
            return null;
        }

        public YamlNode? Required(YamlMappingNode map, string key)
        {
            if (map.Children.TryGetValue(new YamlScalarNode(key), out var value))
            {
                return value;
            }

            Error(map, $"'{key}' is missing");
            return null;
        }

        public void OnlyKeys(YamlMappingNode map, params string[] allowed)
        {
            foreach (var key in map.Children.Keys)
            {
                var name = ((YamlScalarNode)key).Value;
                if (!allowed.Contains(name))
                {
                    Error(key, $"unknown key '{name}' (allowed here: {string.Join(", ", allowed)})");
                }
            }
        }

        public static bool IsIdentifier(string name) =>
            name.Length is > 0 and <= 64 && char.IsAsciiLetter(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

        public string? Identifier(YamlNode? node)
        {
            if (node is null || Scalar(node, "a name") is not { } text)
            {
                return null;
            }

            if (!IsIdentifier(text))
            {
                Error(node, $"'{text}' is not a valid name: letters, digits and '_', starting with a letter");
                return null;
            }

            return text;
        }

        public decimal? Decimal(YamlNode? node)
        {
            if (node is null || Scalar(node, "a number") is not { } text)
            {
                return null;
            }

            if (!decimal.TryParse(text, NumberStyles.AllowDecimalPoint | NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
            {
                Error(node, $"'{text}' is not a number");
                return null;
            }

            return value;
        }

        public int? Days(YamlNode? node)
        {
            if (node is null || Scalar(node, "a duration in days") is not { } text)
            {
                return null;
            }

            if (text.Length < 2 || text[^1] != 'd' || !int.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var days)
                || days < 1 || days > ExpressionCompiler.MaxWindowDays)
            {
                Error(node, $"'{text}' is not a window in days (1d to {ExpressionCompiler.MaxWindowDays}d)");
                return null;
            }

            return days;
        }

        /// <summary>A trigger id: lower-case letters, digits and '-', as in CloudEvent types.</summary>
        public string? TriggerId(YamlNode? node)
        {
            if (node is null || Scalar(node, "an id") is not { } text)
            {
                return null;
            }

            if (text.Length is 0 or > 64 || !char.IsAsciiLetterLower(text[0]) || text.Any(c => !(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')))
            {
                Error(node, $"'{text}' is not a valid trigger id: lower-case letters, digits and '-', starting with a letter");
                return null;
            }

            return text;
        }

        public ContactChannel? Channel(YamlNode node) => Scalar(node, "a channel") switch
        {
            "voice" => ContactChannel.Voice,
            "sms" => ContactChannel.Sms,
            "email" => ContactChannel.Email,
            "notify" => ContactChannel.Notify,
            null => null,
            var other => Fail<ContactChannel>(node, $"unknown channel '{other}' (voice, sms, email, notify)"),
        };

        /// <summary>A duration such as 30d, 48h, 15m or 10s.</summary>
        public TimeSpan? Duration(YamlNode? node)
        {
            if (node is null || Scalar(node, "a duration") is not { } text)
            {
                return null;
            }

            if (text.Length < 2 || !long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n > 36500L * 24 * 3600)
            {
                return Fail<TimeSpan>(node, $"'{text}' is not a duration (such as 30d, 48h, 15m, 10s)");
            }

            return text[^1] switch
            {
                'd' => TimeSpan.FromDays(n),
                'h' => TimeSpan.FromHours(n),
                'm' => TimeSpan.FromMinutes(n),
                's' => TimeSpan.FromSeconds(n),
                _ => Fail<TimeSpan>(node, $"'{text}' is not a duration (such as 30d, 48h, 15m, 10s)"),
            };
        }

        /// <summary>A local time of day written HH:mm.</summary>
        public TimeSpan? TimeOfDay(YamlNode node)
        {
            if (Scalar(node, "a local time") is not { } text)
            {
                return null;
            }

            return TimeSpan.TryParseExact(text, @"hh\:mm", CultureInfo.InvariantCulture, out var time) && time < TimeSpan.FromDays(1)
                ? time
                : Fail<TimeSpan>(node, $"'{text}' is not a local time such as 09:00");
        }

        /// <summary><c>{max: N, per: 7d}</c>.</summary>
        public (int, TimeSpan)? Cap(YamlNode node)
        {
            if (Mapping(node, "a limit") is not { } map)
            {
                return null;
            }

            OnlyKeys(map, "max", "per");
            var max = Decimal(Required(map, "max"));
            var per = Duration(Required(map, "per"));
            if (max is null || per is null)
            {
                return null;
            }

            if (max < 0 || max != Math.Floor(max.Value))
            {
                Error(node, "max is a whole number of contacts");
                return null;
            }

            return ((int)max.Value, per.Value);
        }

        private T? Fail<T>(YamlNode node, string message)
            where T : struct
        {
            Error(node, message);
            return null;
        }

        /// <summary>Exactly four ascending numbers.</summary>
        public decimal[]? Thresholds(YamlNode? node)
        {
            if (node is null || Sequence(node, "thresholds") is not { } sequence)
            {
                return null;
            }

            var values = sequence.Children.Select(Decimal).ToList();
            if (values.Any(v => v is null))
            {
                return null;
            }

            if (values.Count != 4)
            {
                Error(node, $"four ascending thresholds make the five scores; found {values.Count}");
                return null;
            }

            for (var i = 1; i < 4; i++)
            {
                if (values[i] <= values[i - 1])
                {
                    Error(sequence.Children[i], "thresholds must be ascending");
                    return null;
                }
            }

            return values.Select(v => v!.Value).ToArray();
        }

        /// <summary>A list of <c>{nameKey: …, when: expression}</c>.</summary>
        public List<NamedCondition>? Conditions(YamlNode? node, string nameKey, ExpressionCompiler compiler)
        {
            if (node is null || Sequence(node, "this section") is not { } sequence)
            {
                return null;
            }

            var result = new List<NamedCondition>();
            var ok = true;
            foreach (var item in sequence.Children)
            {
                if (Mapping(item, "an entry") is not { } map)
                {
                    ok = false;
                    continue;
                }

                OnlyKeys(map, nameKey, "when");
                var name = Identifier(Required(map, nameKey));
                var when = Required(map, "when") is { } whenNode ? Bool(whenNode, compiler) : null;
                if (name is null || when is null)
                {
                    ok = false;
                    continue;
                }

                if (result.Any(c => c.Name == name))
                {
                    Error(item, $"'{name}' is listed twice");
                    ok = false;
                    continue;
                }

                result.Add(new NamedCondition(name, when));
            }

            if (result.Count == 0 && ok)
            {
                Error(node, "the list is empty");
                return null;
            }

            return ok ? result : null;
        }

        public BoolExpression? Bool(YamlNode node, ExpressionCompiler compiler) =>
            Compile(node, text => compiler.CompileBool(text));

        public NumberExpression? Number(YamlNode node, ExpressionCompiler compiler) =>
            Compile(node, text => compiler.CompileNumber(text));

        /// <summary>An expression the loader writes from parameters; an error in it points at the section.</summary>
        public NumberExpression Generated(YamlNode anchor, string text, ExpressionCompiler compiler)
        {
            try
            {
                return compiler.CompileNumber(text);
            }
            catch (ExpressionException e)
            {
                Error(anchor, $"{e.Message} (in the generated expression '{text}')");
                return compiler.CompileNumber("0");
            }
        }

        private T? Compile<T>(YamlNode node, Func<string, T> compile)
            where T : class
        {
            if (node is not YamlScalarNode { Value: { } text } scalar)
            {
                Error(node, "expected an expression here");
                return null;
            }

            try
            {
                return compile(text);
            }
            catch (ExpressionException e)
            {
                var (line, column) = Locate(scalar, text, e.Offset);
                errors.Add(new RuleError(FileName, line, column, e.Message));
                return null;
            }
        }

        /// <summary>The file position of a character of a scalar's value.</summary>
        private (int Line, int Column) Locate(YamlScalarNode scalar, string value, int offset)
        {
            var line = (int)scalar.Start.Line;
            var column = (int)scalar.Start.Column;
            switch (scalar.Style)
            {
                case ScalarStyle.Literal or ScalarStyle.Folded:
                    // Block scalars start on the line after the indicator; each content line adds its length plus
                    // one separator (a newline, or a space when folded) to the value.
                    var position = 0;
                    for (var l = line; l < _lines.Length; l++)
                    {
                        var raw = _lines[l];
                        var content = raw.TrimStart(' ');
                        if (offset <= position + content.Length)
                        {
                            return (l + 1, raw.Length - content.Length + 1 + (offset - position));
                        }

                        position += content.Length + 1;
                    }

                    return (line, column);
                case ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted:
                    return (line, column + 1 + offset);
                default:
                    return (line, column + Math.Min(offset, value.Length));
            }
        }
    }
}
