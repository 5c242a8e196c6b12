using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Streaming.Host.WebConsole;

/// <summary>A transition between two stages and how many customers made it.</summary>
public sealed record Flow(string From, string To, long Count);

/// <summary>A series of a bar chart: its key (e.g. <c>base</c>), its legend text and one value per category (null: no value).</summary>
public sealed record BarSeries(string Key, string Name, IReadOnlyList<decimal?> Values);

/// <summary>
/// The console's charts as Apache ECharts options (drawn in the browser by the ECharts build the engine serves,
/// <c>/console/assets/echarts.min.js</c>, with its SVG renderer). Each chart is a <c>div</c> whose
/// <c>data-chart</c> attribute holds the option as JSON, built here from the API's numbers; <c>console.js</c>
/// initialises it and adds tooltips that give each value formatted and raw. Numbers stay in the option as the API
/// gave them (counts, rates 0–1), so a test can read them back with <c>echarts.getInstanceByDom(el).getOption()</c>.
/// </summary>
public static class ConsoleCharts
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>Series colours: the running set (base) grey, the edited set (compare) green, others from the palette.</summary>
    private static readonly Dictionary<string, string> Colours = new(StringComparer.Ordinal)
    {
        ["base"] = "#8a94a6",
        ["compare"] = "#1f8f5f",
        ["contacted"] = "#1f5fbf",
        ["holdout"] = "#8a94a6",
        ["suppressed"] = "#c07a00",
        ["customers"] = "#1f5fbf",
    };

    /// <summary>
    /// A Sankey diagram of <paramref name="flows"/> in two columns: each <c>from</c> stage on the left (node name
    /// <c>from:STAGE</c>), each <c>to</c> stage on the right (<c>to:STAGE</c>), so transitions back and forth
    /// (<c>active → at_risk</c> and <c>at_risk → active</c>) never form a cycle. Links carry the raw stages
    /// (<c>from</c>, <c>to</c>) and the count (<c>value</c>); flows of 0 are left out. Null when nothing is left.
    /// </summary>
    public static JsonObject? Flows(IReadOnlyList<Flow> flows, string label)
    {
        var kept = flows.Where(f => f.Count > 0).ToList();
        if (kept.Count == 0)
        {
            return null;
        }

        // Each node is labelled with its stage and the customers who left it (left) or entered it (right), for people.
        var nodes = new JsonArray();
        foreach (var (prefix, stages, depth) in new[]
        {
            ("from:", kept.Select(f => (Stage: f.From, f.Count)), 0),
            ("to:", kept.Select(f => (Stage: f.To, f.Count)), 1),
        })
        {
            foreach (var node in stages.GroupBy(s => s.Stage, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                nodes.Add(new JsonObject
                {
                    ["name"] = prefix + node.Key,
                    ["stage"] = node.Key,
                    ["depth"] = depth,
                    ["label"] = new JsonObject
                    {
                        ["formatter"] = $"{Human(node.Key)} \u00b7 {ConsoleFormat.Count(node.Sum(s => s.Count))}",
                        ["position"] = depth == 0 ? "right" : "left",
                    },
                });
            }
        }

        var links = new JsonArray();
        foreach (var f in kept)
        {
            links.Add(new JsonObject { ["source"] = "from:" + f.From, ["target"] = "to:" + f.To, ["from"] = f.From, ["to"] = f.To, ["value"] = f.Count });
        }

        return new JsonObject
        {
            ["aria"] = new JsonObject { ["enabled"] = true, ["label"] = new JsonObject { ["description"] = label } },
            ["tooltip"] = new JsonObject { ["trigger"] = "item" },
            ["series"] = new JsonArray
            {
                new JsonObject
                {
                    ["type"] = "sankey",
                    ["name"] = label,
                    ["left"] = 8,
                    ["right"] = 8,
                    ["top"] = 8,
                    ["bottom"] = 8,
                    ["nodeAlign"] = "justify",
                    ["layoutIterations"] = 32,
                    ["emphasis"] = new JsonObject { ["focus"] = "adjacency" },
                    ["label"] = new JsonObject { ["color"] = "#1d2430", ["fontSize"] = 11 },
                    ["lineStyle"] = new JsonObject { ["color"] = "source", ["opacity"] = 0.35, ["curveness"] = 0.5 },
                    ["data"] = nodes,
                    ["links"] = links,
                },
            },
        };
    }

    /// <summary>
    /// A bar chart: one bar per category and series (grouped), <paramref name="horizontal"/> for long category names.
    /// <paramref name="valueKind"/> (<c>count</c> or <c>percent</c>, for rates 0–1) tells <c>console.js</c> how to
    /// write values in tooltips and on the value axis. Values are kept exactly (no rounding); null stays null.
    /// </summary>
    public static JsonObject Bars(string label, IReadOnlyList<string> categories, IReadOnlyList<BarSeries> series, bool horizontal = false, string valueKind = "count")
    {
        foreach (var s in series)
        {
            if (s.Values.Count != categories.Count)
            {
                throw new ArgumentException($"series '{s.Key}' has {s.Values.Count} values for {categories.Count} categories", nameof(series));
            }
        }

        var categoryAxis = new JsonObject
        {
            ["type"] = "category",
            ["data"] = new JsonArray([.. categories.Select(c => (JsonNode?)JsonValue.Create(c))]),
            ["axisLabel"] = horizontal ? new JsonObject { ["width"] = 120, ["overflow"] = "truncate" } : new JsonObject { ["hideOverlap"] = true },
        };
        if (horizontal)
        {
            categoryAxis["inverse"] = true;
        }

        var valueAxis = new JsonObject { ["type"] = "value", ["axisLabel"] = new JsonObject { ["hideOverlap"] = true } };
        if (horizontal)
        {
            valueAxis["splitNumber"] = 3;
        }

        if (valueKind == "count")
        {
            valueAxis["minInterval"] = 1;
        }

        var bars = new JsonArray();
        foreach (var s in series)
        {
            var item = new JsonObject
            {
                ["type"] = "bar",
                ["id"] = s.Key,
                ["name"] = s.Name,
                ["data"] = new JsonArray([.. s.Values.Select(v => v is { } d ? (JsonNode?)JsonValue.Create(d) : null)]),
            };
            if (Colours.TryGetValue(s.Key, out var colour))
            {
                item["itemStyle"] = new JsonObject { ["color"] = colour };
            }

            bars.Add(item);
        }

        return new JsonObject
        {
            ["aria"] = new JsonObject { ["enabled"] = true, ["label"] = new JsonObject { ["description"] = label } },
            ["valueKind"] = valueKind,
            ["tooltip"] = new JsonObject { ["trigger"] = "axis", ["axisPointer"] = new JsonObject { ["type"] = "shadow" } },
            ["legend"] = series.Count > 1 ? new JsonObject { ["top"] = 0 } : new JsonObject { ["show"] = false },
            ["grid"] = new JsonObject { ["left"] = 8, ["right"] = 16, ["top"] = series.Count > 1 ? 30 : 10, ["bottom"] = 8, ["containLabel"] = true },
            ["xAxis"] = horizontal ? valueAxis : categoryAxis,
            ["yAxis"] = horizontal ? categoryAxis : valueAxis,
            ["series"] = bars,
        };
    }

    /// <summary>
    /// The chart's element: a <c>div</c> with the option as JSON in <c>data-chart</c> (HTML-encoded), labelled for
    /// screen readers; <paramref name="height"/> in CSS pixels. An empty string for a null option.
    /// </summary>
    public static string Element(string id, JsonObject? option, string label, int height) => option is null
        ? ""
        : $"<div class=\"echart\" id=\"{ConsoleFormat.E(id)}\" role=\"img\" aria-label=\"{ConsoleFormat.E(label)}\" style=\"height:{height.ToString(Invariant)}px\" data-chart=\"{ConsoleFormat.E(option.ToJsonString(JsonOptions))}\"></div>";

    /// <summary>Every month (<c>yyyy-MM</c>) from the earliest to the latest of <paramref name="months"/>, with no gaps.</summary>
    public static IReadOnlyList<string> MonthSpan(IEnumerable<string> months)
    {
        var all = months.ToList();
        if (all.Count == 0)
        {
            return [];
        }

        var first = DateTime.ParseExact(all.Min(StringComparer.Ordinal)!, "yyyy-MM", Invariant);
        var last = DateTime.ParseExact(all.Max(StringComparer.Ordinal)!, "yyyy-MM", Invariant);
        var span = new List<string>();
        for (var m = first; m <= last; m = m.AddMonths(1))
        {
            span.Add(m.ToString("yyyy-MM", Invariant));
        }

        return span;
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = false };

    private static string Human(string stage) => stage.Replace('_', ' ');
}
