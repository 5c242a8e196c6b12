using System.Text.Json;
using Streaming.Host.Http;
using Streaming.Host.WebConsole;

namespace Streaming.Host.Tests.WebConsole;

/// <summary>The console's view logic: number formats, chart geometry, the timeline's order, customer-id segments.</summary>
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
    public void Flow_bands_are_as_thick_as_their_counts_and_fill_their_nodes_without_overlap()
    {
        Flow[] flows = [new("new", "active", 600), new("active", "at_risk", 300), new("new", "at_risk", 100), new("at_risk", "dormant", 50)];
        var layout = ConsoleCharts.Flows(flows, height: 300, gap: 10);

        // One scale: the side with more nodes (3 on each side here) fills the height exactly.
        var left = layout.Nodes.Where(n => n.Left).ToList();
        var right = layout.Nodes.Where(n => !n.Left).ToList();
        Assert.Equal(["new", "active", "at_risk"], left.Select(n => n.Stage));
        Assert.Equal(["active", "at_risk", "dormant"], right.Select(n => n.Stage));
        var scale = (300 - (10 * 2)) / 1050.0;
        Assert.Equal(700 * scale, left[0].Height, 6);
        Assert.Equal(400 * scale, right[1].Height, 6);
        Assert.Equal(300, left[^1].Y + left[^1].Height, 6);
        foreach (var link in layout.Links)
        {
            Assert.Equal(link.Flow.Count * scale, link.Thickness, 6);
        }

        foreach (var side in new[] { left, right })
        {
            for (var i = 1; i < side.Count; i++)
            {
                Assert.True(side[i].Y >= side[i - 1].Y + side[i - 1].Height + 10 - 1e-9, "nodes overlap");
            }

            // The bands at each node stack from its top to its bottom.
            foreach (var node in side)
            {
                var bands = layout.Links.Where(l => (node.Left ? l.Flow.From : l.Flow.To) == node.Stage)
                    .Select(l => (Top: node.Left ? l.Y0 : l.Y1, l.Thickness)).OrderBy(b => b.Top).ToList();
                var y = node.Y;
                foreach (var (top, thickness) in bands)
                {
                    Assert.Equal(y, top, 6);
                    y += thickness;
                }

                Assert.Equal(node.Y + node.Height, y, 6);
            }
        }
    }

    [Fact]
    public void No_flows_lay_out_as_nothing()
    {
        var layout = ConsoleCharts.Flows([new("a", "b", 0)], 100, 5);
        Assert.Empty(layout.Nodes);
        Assert.Empty(layout.Links);
    }

    [Fact]
    public void Bars_are_proportional_to_their_values_with_the_largest_at_full_height()
    {
        var values = new Dictionary<(string, string), long> { [("2011-01", "base")] = 40, [("2011-01", "compare")] = 80, [("2011-02", "base")] = 0, [("2011-02", "compare")] = 20 };
        var bars = ConsoleCharts.Bars(["2011-01", "2011-02"], ["base", "compare"], (g, s) => values[(g, s)], width: 400, height: 100);
        Assert.Equal(4, bars.Count);
        Assert.Equal([50.0, 100.0, 0.0, 25.0], bars.Select(b => Math.Round(b.Height, 6)));
        Assert.All(bars, b => Assert.Equal(100, b.Y + b.Height, 6));
        Assert.All(bars, b => Assert.Equal(values[(b.Group, b.Series)], b.Value));
        // Groups side by side, inside the width, bars of a group next to each other.
        Assert.True(bars[1].X > bars[0].X && bars[2].X > bars[1].X + bars[1].Width);
        Assert.True(bars[^1].X + bars[^1].Width <= 400);
        Assert.All(ConsoleCharts.Bars(["x"], ["base"], (_, _) => 0, 100, 50), b => Assert.Equal(0, b.Height));
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
