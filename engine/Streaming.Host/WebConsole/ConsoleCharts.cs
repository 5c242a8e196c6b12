using System.Globalization;
using System.Text;

namespace Streaming.Host.WebConsole;

/// <summary>A transition between two stages and how many customers made it.</summary>
public sealed record Flow(string From, string To, long Count);

/// <summary>A node of a flow diagram: a stage on the left (flows out) or right (flows in), its band and total.</summary>
public sealed record FlowNode(string Stage, bool Left, double Y, double Height, long Total);

/// <summary>A band from a left node to a right node: top edges at <see cref="Y0"/> and <see cref="Y1"/>, thickness proportional to the count.</summary>
public sealed record FlowLink(Flow Flow, double Y0, double Y1, double Thickness);

/// <summary>The geometry of a two-column flow diagram (a Sankey of <c>from → to</c> counts).</summary>
public sealed record FlowLayout(IReadOnlyList<FlowNode> Nodes, IReadOnlyList<FlowLink> Links, double Height);

/// <summary>A bar of a grouped bar chart: its group (e.g. a month), series (e.g. base or compare), value and geometry.</summary>
public sealed record Bar(string Group, string Series, long Value, double X, double Y, double Width, double Height);

/// <summary>
/// Layout of the console's charts, drawn as SVG on the server (no script, no chart library at run time): a two-column
/// flow diagram, and grouped bars. Pure geometry, so it is unit-tested.
/// </summary>
public static class ConsoleCharts
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>
    /// Lays out <paramref name="flows"/> in <paramref name="height"/> units: left nodes are the <c>from</c> stages and
    /// right nodes the <c>to</c> stages, each as tall as its total (largest first, <paramref name="gap"/> apart, one
    /// scale for both sides); each link is as thick as its count and links stack inside their nodes without overlap.
    /// </summary>
    public static FlowLayout Flows(IReadOnlyList<Flow> flows, double height, double gap)
    {
        var kept = flows.Where(f => f.Count > 0).ToList();
        if (kept.Count == 0)
        {
            return new FlowLayout([], [], height);
        }

        static List<(string Stage, long Total)> Side(IEnumerable<(string Stage, long Count)> items) => items
            .GroupBy(i => i.Stage, StringComparer.Ordinal)
            .Select(g => (g.Key, g.Sum(i => i.Count)))
            .OrderByDescending(g => g.Item2).ThenBy(g => g.Key, StringComparer.Ordinal)
            .ToList();

        var left = Side(kept.Select(f => (f.From, f.Count)));
        var right = Side(kept.Select(f => (f.To, f.Count)));
        var total = kept.Sum(f => f.Count);
        var scale = Math.Min(
            (height - (gap * (left.Count - 1))) / total,
            (height - (gap * (right.Count - 1))) / total);
        var nodes = new List<FlowNode>();
        var nextIn = new Dictionary<(bool, string), double>();
        foreach (var (side, isLeft) in new[] { (left, true), (right, false) })
        {
            var y = 0.0;
            foreach (var (stage, sum) in side)
            {
                nodes.Add(new FlowNode(stage, isLeft, y, sum * scale, sum));
                nextIn[(isLeft, stage)] = y;
                y += (sum * scale) + gap;
            }
        }

        // Links in node order on both sides, so bands leaving one node do not cross each other needlessly.
        var leftRank = left.Select((n, i) => (n.Stage, i)).ToDictionary(p => p.Stage, p => p.i, StringComparer.Ordinal);
        var rightRank = right.Select((n, i) => (n.Stage, i)).ToDictionary(p => p.Stage, p => p.i, StringComparer.Ordinal);
        var links = new List<FlowLink>();
        foreach (var flow in kept.OrderBy(f => leftRank[f.From]).ThenBy(f => rightRank[f.To]))
        {
            var thickness = flow.Count * scale;
            links.Add(new FlowLink(flow, nextIn[(true, flow.From)], 0, thickness));
            nextIn[(true, flow.From)] += thickness;
        }

        var byTarget = links.Select((l, i) => (l, i)).OrderBy(p => rightRank[p.l.Flow.To]).ThenBy(p => leftRank[p.l.Flow.From]).ToList();
        foreach (var (link, i) in byTarget)
        {
            links[i] = link with { Y1 = nextIn[(false, link.Flow.To)] };
            nextIn[(false, link.Flow.To)] += link.Thickness;
        }

        return new FlowLayout(nodes, links, height);
    }

    /// <summary>
    /// Grouped vertical bars: one group per entry of <paramref name="groups"/> (in order), one bar per series inside it,
    /// heights proportional to the values with the largest reaching <paramref name="height"/>.
    /// </summary>
    public static IReadOnlyList<Bar> Bars(IReadOnlyList<string> groups, IReadOnlyList<string> series, Func<string, string, long> value, double width, double height)
    {
        var max = groups.SelectMany(g => series.Select(s => value(g, s))).DefaultIfEmpty(0).Max();
        var slot = groups.Count == 0 ? 0 : width / groups.Count;
        var barWidth = series.Count == 0 ? 0 : slot * 0.8 / series.Count;
        var bars = new List<Bar>();
        for (var g = 0; g < groups.Count; g++)
        {
            for (var s = 0; s < series.Count; s++)
            {
                var v = value(groups[g], series[s]);
                var h = max <= 0 ? 0 : Math.Max(0, v) * height / max;
                bars.Add(new Bar(groups[g], series[s], v, (g * slot) + (slot * 0.1) + (s * barWidth), height - h, barWidth, h));
            }
        }

        return bars;
    }

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

    /// <summary>The flow diagram as SVG (with a title per link and node giving the raw count).</summary>
    public static string FlowSvg(FlowLayout layout, string label)
    {
        const double width = 640, nodeWidth = 14, labelRoom = 130;
        var sb = new StringBuilder();
        sb.Append(Invariant, $"<svg class=\"flows\" viewBox=\"0 0 {width} {layout.Height + 4}\" role=\"img\" aria-label=\"{ConsoleFormat.E(label)}\">");
        var x0 = labelRoom;
        var x1 = width - labelRoom;
        foreach (var link in layout.Links)
        {
            var a = x0 + nodeWidth;
            var mid = (a + x1) / 2;
            var t = link.Thickness;
            sb.Append(Invariant, $"<path class=\"link\" data-from=\"{ConsoleFormat.E(link.Flow.From)}\" data-to=\"{ConsoleFormat.E(link.Flow.To)}\" data-count=\"{link.Flow.Count}\" d=\"M{a:0.#},{link.Y0 + 2:0.##} C{mid:0.#},{link.Y0 + 2:0.##} {mid:0.#},{link.Y1 + 2:0.##} {x1:0.#},{link.Y1 + 2:0.##} L{x1:0.#},{link.Y1 + t + 2:0.##} C{mid:0.#},{link.Y1 + t + 2:0.##} {mid:0.#},{link.Y0 + t + 2:0.##} {a:0.#},{link.Y0 + t + 2:0.##} Z\">");
            sb.Append(Invariant, $"<title>{ConsoleFormat.Label(link.Flow.From)} \u2192 {ConsoleFormat.Label(link.Flow.To)}: {ConsoleFormat.Count(link.Flow.Count)} (raw {link.Flow.Count})</title></path>");
        }

        foreach (var node in layout.Nodes)
        {
            var x = node.Left ? x0 : x1;
            sb.Append(Invariant, $"<rect class=\"node\" x=\"{x:0.#}\" y=\"{node.Y + 2:0.##}\" width=\"{nodeWidth}\" height=\"{Math.Max(1, node.Height):0.##}\"><title>{ConsoleFormat.Label(node.Stage)}: {ConsoleFormat.Count(node.Total)} (raw {node.Total})</title></rect>");
            var tx = node.Left ? x - 6 : x + nodeWidth + 6;
            sb.Append(Invariant, $"<text x=\"{tx:0.#}\" y=\"{node.Y + 2 + (node.Height / 2) + 4:0.##}\" text-anchor=\"{(node.Left ? "end" : "start")}\">{ConsoleFormat.Label(node.Stage)} {ConsoleFormat.Count(node.Total)}</text>");
        }

        sb.Append("</svg>");
        return sb.ToString();
    }

    /// <summary>
    /// Grouped bars as SVG: each bar carries <c>data-group</c>, <c>data-series</c>, <c>data-value</c> and a title with
    /// the raw value. Long group names (<paramref name="slanted"/>) are written at an angle under every group.
    /// </summary>
    public static string BarSvg(IReadOnlyList<Bar> bars, IReadOnlyList<string> groups, string label, double width, double height, bool slanted = false)
    {
        var sb = new StringBuilder();
        var below = slanted ? 110 : 34;
        var left = slanted ? 90 : 0;
        sb.Append(Invariant, $"<svg class=\"bars\" viewBox=\"{-left} 0 {width + left:0.#} {height + below:0.#}\" role=\"img\" aria-label=\"{ConsoleFormat.E(label)}\">");
        sb.Append(Invariant, $"<line class=\"axis\" x1=\"0\" y1=\"{height:0.#}\" x2=\"{width:0.#}\" y2=\"{height:0.#}\"/>");
        foreach (var bar in bars)
        {
            sb.Append(Invariant, $"<rect class=\"bar s-{ConsoleFormat.E(bar.Series)}\" data-group=\"{ConsoleFormat.E(bar.Group)}\" data-series=\"{ConsoleFormat.E(bar.Series)}\" data-value=\"{bar.Value}\" x=\"{bar.X:0.##}\" y=\"{bar.Y:0.##}\" width=\"{bar.Width:0.##}\" height=\"{bar.Height:0.##}\">");
            sb.Append(Invariant, $"<title>{ConsoleFormat.E(bar.Group)} {ConsoleFormat.E(bar.Series)}: {ConsoleFormat.Count(bar.Value)} (raw {bar.Value})</title></rect>");
        }

        var slot = groups.Count == 0 ? 0 : width / groups.Count;
        var every = slanted ? 1 : Math.Max(1, (int)Math.Ceiling(groups.Count / 12.0));
        for (var g = 0; g < groups.Count; g += every)
        {
            var x = (g * slot) + (slot / 2);
            if (slanted)
            {
                sb.Append(Invariant, $"<text x=\"{x:0.#}\" y=\"{height + 12:0.#}\" text-anchor=\"end\" transform=\"rotate(-35 {x:0.#} {height + 12:0.#})\">{ConsoleFormat.E(groups[g])}</text>");
            }
            else
            {
                sb.Append(Invariant, $"<text x=\"{x:0.#}\" y=\"{height + 16:0.#}\" text-anchor=\"middle\">{ConsoleFormat.E(groups[g])}</text>");
            }
        }

        sb.Append("</svg>");
        return sb.ToString();
    }
}
