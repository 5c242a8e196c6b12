using System.Text.Json;
using Streaming.Host.Http;
using Streaming.Host.WebConsole;

namespace Streaming.Host.Tests.WebConsole;

/// <summary>The console's view logic: number formats, chart options, the timeline's order, customer-id segments.</summary>
public sealed class ConsoleViewTests
{
    [Theory]
    [InlineData(0, "0")]
    [InlineData(999, "999")]
    [InlineData(1000, "1,000")]
    [InlineData(1234567, "1,234,567")]
    [InlineData(-4321, "-4,321")]
    public void Counts_get_thousands_separators(long value, string expected) => Assert.Equal(expected, ConsoleFormat.Count(value));

    [Fact]
    public void Money_has_two_decimals_separators_and_a_true_minus_sign()
    {
        Assert.Equal("1,234.50", ConsoleFormat.Money(1234.5m));
        Assert.Equal("\u22121,234.57", ConsoleFormat.Money(-1234.567m));
        Assert.Equal("0.00", ConsoleFormat.Money(0m));
    }

    [Fact]
    public void Numbers_carry_the_raw_json_value_in_their_tooltip_and_missing_ones_show_a_dash()
    {
        using var doc = JsonDocument.Parse("""{"a": 1234567.891, "n": 4339, "r": 0.1234, "z": null}""");
        var root = doc.RootElement;
        Assert.Equal("<span class=\"num\" title=\"1234567.891\" data-raw=\"1234567.891\">1,234,567.89</span>", ConsoleFormat.Num(root.GetProperty("a"), NumberKind.Money));
        Assert.Equal("<span class=\"num\" title=\"4339\" data-raw=\"4339\">4,339</span>", ConsoleFormat.Num(root.GetProperty("n")));
        Assert.Contains(">12.3 %<", ConsoleFormat.Num(root.GetProperty("r"), NumberKind.Percent), StringComparison.Ordinal);
        Assert.Contains("\u2013", ConsoleFormat.Num(root.GetProperty("z")), StringComparison.Ordinal);
        Assert.Contains("\u2013", ConsoleFormat.Num(root.Get("absent")), StringComparison.Ordinal);
    }

    [Fact]
    public void Text_from_data_is_html_encoded()
    {
        Assert.Equal("&lt;script&gt;&amp;&quot;&#39;", ConsoleFormat.E("<script>&\"'"));
        Assert.Equal("at risk", ConsoleFormat.Label("at_risk"));
    }

    [Fact]
    public void The_flow_diagram_puts_from_stages_left_and_to_stages_right_so_back_and_forth_is_no_cycle()
    {
        Flow[] flows = [new("new", "active", 600), new("active", "at_risk", 300), new("at_risk", "active", 120), new("new", "at_risk", 100), new("dormant", "active", 0)];
        var option = ConsoleCharts.Flows(flows, "lifecycle transitions")!;
        var series = option["series"]![0]!;
        Assert.Equal("sankey", (string?)series["type"]);

        var nodes = series["data"]!.AsArray().Select(n => (Name: (string)n!["name"]!, Stage: (string)n["stage"]!, Depth: (int)n["depth"]!, Label: (string)n["label"]!["formatter"]!)).ToList();
        // Left: the stages customers left (the 0 flow from dormant is not drawn); right: the stages they entered.
        Assert.Equal(["active", "at_risk", "new"], nodes.Where(n => n.Depth == 0).Select(n => n.Stage));
        Assert.Equal(["active", "at_risk"], nodes.Where(n => n.Depth == 1).Select(n => n.Stage));
        Assert.All(nodes, n => Assert.Equal((n.Depth == 0 ? "from:" : "to:") + n.Stage, n.Name));
        // Labels for people: the stage, and the customers who left it (left) or entered it (right), summed by hand.
        Assert.Equal("at risk \u00b7 120", nodes.Single(n => n.Name == "from:at_risk").Label);
        Assert.Equal("at risk \u00b7 400", nodes.Single(n => n.Name == "to:at_risk").Label);
        Assert.Equal("new \u00b7 700", nodes.Single(n => n.Name == "from:new").Label);
        Assert.Equal(nodes.Count, nodes.Select(n => n.Name).Distinct().Count());

        var links = series["links"]!.AsArray().Select(l => (Source: (string)l!["source"]!, Target: (string)l["target"]!, From: (string)l["from"]!, To: (string)l["to"]!, Value: (long)l["value"]!)).ToList();
        Assert.Equal(4, links.Count);
        var depth = nodes.ToDictionary(n => n.Name, n => n.Depth);
        Assert.All(links, l => Assert.Equal((0, 1), (depth[l.Source], depth[l.Target])));
        Assert.All(links, l => Assert.Equal(("from:" + l.From, "to:" + l.To), (l.Source, l.Target)));
        // Customers into each right node, summed by hand from the flows above.
        var into = links.GroupBy(l => l.To).ToDictionary(g => g.Key, g => g.Sum(l => l.Value));
        Assert.Equal(600 + 120, into["active"]);
        Assert.Equal(300 + 100, into["at_risk"]);
    }

    [Fact]
    public void No_flows_give_no_diagram()
    {
        Assert.Null(ConsoleCharts.Flows([new("a", "b", 0)], "x"));
        Assert.Null(ConsoleCharts.Flows([], "x"));
        Assert.Equal("", ConsoleCharts.Element("x", null, "x", 100));
    }

    [Fact]
    public void Bar_options_keep_each_value_exactly_under_its_category_and_series()
    {
        string[] months = ["2011-01", "2011-02", "2011-03"];
        var option = ConsoleCharts.Bars("per month", months, [new BarSeries("base", "Base", [40, 0, 7]), new BarSeries("compare", "Compare", [80, null, 0.125m])]);
        Assert.Equal(months, option["xAxis"]!["data"]!.AsArray().Select(c => (string)c!));
        Assert.Equal("value", (string?)option["yAxis"]!["type"]);
        var series = option["series"]!.AsArray();
        Assert.Equal(["base", "compare"], series.Select(x => (string)x!["id"]!));
        Assert.Equal(["40", "0", "7"], series[0]!["data"]!.AsArray().Select(v => v!.ToJsonString()));
        Assert.Equal(["80", "null", "0.125"], series[1]!["data"]!.AsArray().Select(v => v?.ToJsonString() ?? "null"));

        // Horizontal: categories on the y axis, first at the top.
        var horizontal = ConsoleCharts.Bars("per rule", ["win-back", "welcome"], [new BarSeries("customers", "Customers", [3, 4])], horizontal: true, valueKind: "percent");
        Assert.Equal(["win-back", "welcome"], horizontal["yAxis"]!["data"]!.AsArray().Select(c => (string)c!));
        Assert.True((bool)horizontal["yAxis"]!["inverse"]!);
        Assert.Equal("percent", (string?)horizontal["valueKind"]);

        Assert.Throws<ArgumentException>(() => ConsoleCharts.Bars("bad", months, [new BarSeries("base", "Base", [1, 2])]));
    }

    [Fact]
    public void A_charts_element_carries_its_option_html_encoded_and_decodes_back_to_the_same_json()
    {
        var option = ConsoleCharts.Bars("it's <b>\"odd\"</b> & more", ["a<b", "c'd"], [new BarSeries("base", "Base & co", [1234567, 0.5m])]);
        var html = ConsoleCharts.Element("rules-chart", option, "firings", 180);
        Assert.DoesNotContain("<b>", html, StringComparison.Ordinal);
        var start = html.IndexOf("data-chart=\"", StringComparison.Ordinal) + "data-chart=\"".Length;
        var attribute = html[start..html.IndexOf('"', start)];
        var decoded = System.Text.Json.Nodes.JsonNode.Parse(System.Net.WebUtility.HtmlDecode(attribute))!;
        Assert.Equal(option.ToJsonString(), decoded.ToJsonString());
        Assert.Equal(1234567m, (decimal)decoded["series"]![0]!["data"]![0]!);
        Assert.Contains("style=\"height:180px\"", html, StringComparison.Ordinal);
        Assert.Contains("id=\"rules-chart\"", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Month_spans_have_no_gaps_and_cross_years()
    {
        Assert.Equal(["2010-11", "2010-12", "2011-01", "2011-02"], ConsoleCharts.MonthSpan(["2011-02", "2010-11"]));
        Assert.Empty(ConsoleCharts.MonthSpan([]));
    }

    [Fact]
    public void Events_per_second_come_from_two_samples_at_least_a_second_apart()
    {
        var sampler = new RateSampler();
        Assert.Null(sampler.Sample(1000, timestamp: 0, frequency: 1000));
        Assert.Null(sampler.Sample(1500, timestamp: 500, frequency: 1000));
        Assert.Equal(1000.0, sampler.Sample(3000, timestamp: 2000, frequency: 1000));
        Assert.Equal(1000.0, sampler.Sample(3100, timestamp: 2100, frequency: 1000));
    }

    [Fact]
    public void The_timeline_is_newest_first_and_holds_orders_stages_firings_and_outcomes()
    {
        using var profile = JsonDocument.Parse("""
            {"orders": {"count": 3, "firstAt": "2011-01-05T10:00:00+00:00", "lastAt": "2011-06-01T09:00:00+00:00"},
             "stages": {"lifecycle": {"stage": "at_risk", "since": "2011-09-01T09:00:00+00:00"}}}
            """);
        using var triggers = JsonDocument.Parse("""
            {"firings": [{"rule": "win-back", "delivery": "queued", "at": "2011-09-02T00:00:00+00:00"}],
             "outreach": [{"outreachId": "o1", "channel": "voice", "outcome": "converted", "dueAt": "2011-09-03T00:00:00+00:00"},
                          {"outreachId": "o2", "channel": "sms", "outcome": null, "dueAt": "2011-09-04T00:00:00+00:00"}]}
            """);
        var timeline = ConsolePages.Timeline(profile.RootElement, triggers.RootElement);
        Assert.Equal(
            ["2011-09-03T00:00:00+00:00", "2011-09-02T00:00:00+00:00", "2011-09-01T09:00:00+00:00", "2011-06-01T09:00:00+00:00", "2011-01-05T10:00:00+00:00"],
            timeline.Select(t => t.Raw));
        Assert.Contains("converted", timeline[0].Html, StringComparison.Ordinal);
        Assert.Contains("win-back", timeline[1].Html, StringComparison.Ordinal);
        Assert.Contains("at risk", timeline[2].Html, StringComparison.Ordinal);
        Assert.Equal("last order (of 3)", timeline[3].Html);
    }

    [Theory]
    [InlineData("a/b", "a%2Fb")]
    [InlineData("a%2Fb", "a%252Fb")]
    [InlineData("..", "%2E%2E")]
    [InlineData("12347", "12347")]
    public void Customer_links_escape_the_id_once_so_it_decodes_back_exactly(string id, string segment)
    {
        Assert.Equal(segment, CustomerIdRoute.Segment(id));
        Assert.Equal(id, Uri.UnescapeDataString(segment));
    }
}
