using Streaming.Engine.Rules;

namespace Streaming.Engine.Tests.Rules;

public sealed class RuleSetLoaderTests
{
    private static string DefaultWith(string from, string to)
    {
        var text = RuleSetLoader.DefaultText();
        Assert.Contains(from, text, StringComparison.Ordinal);
        return text.Replace(from, to, StringComparison.Ordinal);
    }

    private static RuleError SingleError(string text, string file = "rules.yaml")
    {
        var e = Assert.Throws<RuleSetException>(() => RuleSetLoader.Load([new RuleSource(file, text)]));
        return Assert.Single(e.Errors);
    }

    private static (int Line, int Column) PositionOf(string text, string needle)
    {
        var index = text.IndexOf(needle, StringComparison.Ordinal);
        Assert.True(index >= 0, needle);
        var line = text[..index].Count(c => c == '\n') + 1;
        var column = index - (text.LastIndexOf('\n', index - 1) + 1) + 1;
        return (line, column);
    }

    [Fact]
    public void The_default_pack_loads_with_a_name_and_content_hash_version()
    {
        var rules = RuleSetLoader.Default;

        Assert.Equal("default", rules.Name);
        Assert.Matches("^default@[0-9a-f]{12}$", rules.Version);
        Assert.Equal(["lifecycle", "ladder", "aarrr"], rules.Ladders.Select(l => l.Name));
        Assert.Equal(["member", "silver", "gold", "platinum"], rules.Tiers.Levels.Select(l => l.Name));
        Assert.Equal(365, rules.RetentionDays);
    }

    [Fact]
    public void Equal_text_gives_equal_versions_and_any_change_a_new_one()
    {
        var a = RuleSetLoader.Load([new RuleSource("r.yaml", RuleSetLoader.DefaultText())]);
        var b = RuleSetLoader.Load([new RuleSource("r.yaml", RuleSetLoader.DefaultText())]);
        var c = RuleSetLoader.Load([new RuleSource("r.yaml", DefaultWith("orders.net >= 5000", "orders.net >= 6000"))]);

        Assert.Equal(a.Version, b.Version);
        Assert.NotEqual(a.Version, c.Version);
    }

    [Fact]
    public void An_expression_error_in_a_plain_scalar_points_at_the_character()
    {
        var text = DefaultWith("when: orders.net >= 5000", "when: orders.nett >= 5000");

        var error = SingleError(text);

        var (line, column) = PositionOf(text, "orders.nett");
        Assert.Equal(new RuleError("rules.yaml", line, column, "unknown field 'orders.nett' (did you mean 'orders.net'?)"), error);
    }

    [Fact]
    public void An_expression_error_in_a_folded_block_points_at_its_line_and_column()
    {
        var text = DefaultWith("|| (lifecycle.stage == 'won_back'", "|| (lifecycle.stag == 'won_back'");

        var error = SingleError(text);

        var (line, column) = PositionOf(text, "lifecycle.stag ");
        Assert.Equal((line, column), (error.Line, error.Column));
        Assert.StartsWith("unknown field 'lifecycle.stag'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_keys_and_sections_are_reported_where_they_are()
    {
        var text = DefaultWith("  pointsPerUnit: 1", "  pointsPerUnit: 1\n  pointsPerUnitt: 2") + "\nextras: 1\n";

        var e = Assert.Throws<RuleSetException>(() => RuleSetLoader.Load([new RuleSource("r.yaml", text)]));

        Assert.Contains(e.Errors, x => x.Message.StartsWith("unknown section 'extras'", StringComparison.Ordinal) && (x.Line, x.Column) == PositionOf(text, "extras:"));
    }

    [Fact]
    public void Structural_errors_are_precise()
    {
        Assert.Equal("four ascending thresholds make the five scores; found 3", SingleError(DefaultWith("recency: [30, 90, 180, 365]", "recency: [30, 90, 180]")).Message);
        Assert.Equal("thresholds must be ascending", SingleError(DefaultWith("recency: [30, 90, 180, 365]", "recency: [30, 90, 80, 365]")).Message);
        Assert.Equal("tier levels must be listed in ascending order of points", SingleError(DefaultWith("points: 2000", "points: 100")).Message);
        Assert.Equal("'90days' is not a window in days (1d to 3660d)", SingleError(DefaultWith("window: 365d\n  pointsPerUnit", "window: 90days\n  pointsPerUnit")).Message);
        Assert.StartsWith("ladder 'aarrr' is missing", SingleError(DefaultWith("  aarrr:", "  funnel:")).Message, StringComparison.Ordinal);
        Assert.StartsWith("not valid YAML", SingleError("name: [unclosed\n").Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_rule_set_may_span_files_but_a_section_lives_in_one()
    {
        var text = RuleSetLoader.DefaultText();
        var tagsAt = text.IndexOf("\ntags:", StringComparison.Ordinal);
        var main = text[..tagsAt];
        var tags = text[tagsAt..].Replace("\ntags:\n", "\ntags:\n  - name: big_basket\n    when: orders.items >= 100\n", StringComparison.Ordinal);

        var split = RuleSetLoader.Load([new RuleSource("a.yaml", main), new RuleSource("b.yaml", tags)]);
        Assert.Contains(split.Tags, t => t.Name == "big_basket");

        var e = Assert.Throws<RuleSetException>(() => RuleSetLoader.Load([new RuleSource("a.yaml", main), new RuleSource("b.yaml", "name: other\n")]));
        var error = Assert.Single(e.Errors);
        Assert.Equal(("b.yaml", 1, 1, "'name' is already defined in a.yaml:3"), (error.File, error.Line, error.Column, error.Message));
    }

    [Fact]
    public void A_directory_loads_its_yaml_files_in_name_order()
    {
        var dir = Directory.CreateTempSubdirectory("rules-");
        try
        {
            Assert.Throws<RuleSetException>(() => RuleSetLoader.LoadDirectory(dir.FullName));
            File.WriteAllText(Path.Combine(dir.FullName, "10-main.yaml"), RuleSetLoader.DefaultText());
            File.WriteAllText(Path.Combine(dir.FullName, "README.txt"), "not a rule file");

            var rules = RuleSetLoader.LoadDirectory(dir.FullName);

            Assert.Equal(["10-main.yaml"], rules.Sources.Select(s => s.FileName));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
