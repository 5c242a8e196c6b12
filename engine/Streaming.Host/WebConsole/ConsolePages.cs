using System.Globalization;
using System.Text;
using System.Text.Json;
using static Streaming.Host.WebConsole.ConsoleFormat;

namespace Streaming.Host.WebConsole;

/// <summary>
/// The console's pages as HTML, rendered from the very JSON bodies the API answers with (each page is given the
/// API's documents, so every number shown is the API's). Pages work without script; <c>console.js</c> adds live
/// refresh and the rule editor's actions.
/// </summary>
public static class ConsolePages
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>Dimensions of <c>/v1/population</c> shown on the home page, with their headings.</summary>
    public static readonly IReadOnlyList<(string Key, string Title)> Dimensions =
        [("lifecycle", "Lifecycle"), ("aarrr", "AARRR"), ("ladder", "Loyalty ladder"), ("tier", "Tier"), ("rfmSegment", "RFM segment")];

    /// <summary>The page around a view: header with navigation, the main part, the script.</summary>
    /// <param name="signOut">Show a sign-out button (the console needs a sign-in: <c>Streaming:Auth:RequireReadScope</c>).</param>
    public static string Layout(string title, string active, string main, int refreshSeconds = 0, bool signOut = false)
    {
        static string Nav(string href, string text, string key, string active) =>
            $"<a href=\"{href}\"{(key == active ? " aria-current=\"page\"" : "")}>{text}</a>";
        var refresh = refreshSeconds > 0 ? $" data-refresh=\"{refreshSeconds}\"" : "";
        // The chart library only where a page has charts (live refresh may bring charts: refreshing pages load it too).
        var charts = main.Contains("class=\"echart\"", StringComparison.Ordinal) || refreshSeconds > 0
            ? $"<script src=\"{ConsoleAssets.Url(ConsoleAssets.ECharts)}\" defer></script>"
            : "";
        return $"""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{E(title)} · Streaming console</title><link rel="stylesheet" href="{ConsoleAssets.Url("console.css")}"></head>
            <body><a class="skip" href="#main">Skip to content</a>
            <header><span class="brand">Streaming</span><nav aria-label="Console">{Nav("/console", "Home", "home", active)}{Nav("/console/customers", "Customers", "customers", active)}{Nav("/console/rules", "Rules", "rules", active)}{Nav("/console/outreach", "Outreach", "outreach", active)}</nav>{(signOut ? "<form class=\"sign-out\" method=\"post\" action=\"/console/sign-out\"><button type=\"submit\">Sign out</button></form>" : "")}</header>
            <main id="main" tabindex="-1"{refresh}><h1>{E(title)}</h1>
            {main}
            </main>{charts}<script src="{ConsoleAssets.Url("console.js")}" defer></script></body></html>
            """;
    }

    /// <summary>
    /// The sign-in form: a token field (password) posting to <c>/console/sign-in</c>, then back to
    /// <paramref name="next"/>; <paramref name="message"/> says why (an error when <paramref name="error"/>).
    /// </summary>
    public static string SignIn(string next, string message, bool error) =>
        (error ? Problem("Not signed in.", message) : Notice("info", E(message))) +
        $"""
        <form class="sign-in" method="post" action="/console/sign-in"><input type="hidden" name="next" value="{E(next)}">
        <label for="token">Token</label><input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
        <button type="submit">Sign in</button></form>
        <p class="muted">The token is checked by the engine and not stored in the browser: the browser keeps only a session cookie for the console (HttpOnly, for 12 hours or until you sign out or the engine restarts).</p>
        """;

    /// <summary>A notice: <paramref name="kind"/> is <c>info</c>, <c>warn</c> or <c>error</c>.</summary>
    public static string Notice(string kind, string html) =>
        $"<div class=\"notice {kind}\" role=\"{(kind == "error" ? "alert" : "status")}\">{html}</div>";

    /// <summary>An error page body (problem title and detail).</summary>
    public static string Problem(string title, string detail) => Notice("error", $"<strong>{E(title)}</strong> {E(detail)}");

    /// <summary>Home: the population now, the flows between stages, and the engine's vital signs.</summary>
    /// <param name="status">The body of <c>GET /v1/status</c>.</param>
    /// <param name="population">The body of <c>GET /v1/population</c>.</param>
    /// <param name="firings">Per trigger of the running set, the body of <c>GET /v1/rules/{id}/lift</c>.</param>
    /// <param name="eventsPerSecond">Events processed per second since the previous sample (null on the first).</param>
    /// <param name="flowDimension">The dimension whose transitions are drawn.</param>
    public static string Home(JsonElement status, JsonElement population, IReadOnlyList<(string Rule, JsonElement Lift)> firings, double? eventsPerSecond, string flowDimension)
    {
        var sb = new StringBuilder();
        if (status.Get("ready").ValueKind != JsonValueKind.True)
        {
            sb.Append(Notice("warn", "<strong>Engine not ready.</strong> It is waiting for its partitions to be assigned; counts below may be empty or partial."));
        }

        var customers = population.Long("customers");
        sb.Append("<section class=\"vitals\" aria-label=\"Engine\"><dl>");
        sb.Append(Invariant, $"<div><dt>Customers</dt><dd data-testid=\"customers\">{Num(population.Get("customers"))}</dd></div>");
        sb.Append(Invariant, $"<div><dt>Events/s</dt><dd>{(eventsPerSecond is { } rate ? $"<span class=\"num\" title=\"{rate.ToString("0.###", Invariant)}\">{E(rate.ToString("N0", Invariant))}</span>" : "<span class=\"none\" title=\"needs two samples\">\u2013</span>")}</dd></div>");
        sb.Append(Invariant, $"<div><dt>Events processed</dt><dd>{Num(status.Get("eventsProcessed"))}</dd></div>");
        sb.Append(Invariant, $"<div><dt>Consumer lag</dt><dd>{Num(status.Get("consumerLag"))}</dd></div>");
        sb.Append(Invariant, $"<div><dt>Dead letters</dt><dd>{Num(status.Get("deadLetters"))}</dd></div>");
        sb.Append(Invariant, $"<div><dt>Rule set</dt><dd><a href=\"/console/rules\">{E(population.Str("ruleVersion"))}</a></dd></div>");
        sb.Append("</dl></section>");

        if (customers == 0)
        {
            sb.Append(Notice("info", "<strong>No customers yet.</strong> Feed the engine, e.g. <code>streaming replay online-retail</code>; this page refreshes by itself."));
        }

        sb.Append("<section aria-labelledby=\"pop\"><h2 id=\"pop\">Population</h2><div class=\"grid\">");
        foreach (var (key, title) in Dimensions)
        {
            var counts = population.Get(key).Props().ToList();
            var total = counts.Sum(c => c.Value.TryGetInt64(out var n) ? n : 0);
            sb.Append(Invariant, $"<div class=\"card\"><h3>{E(title)}</h3>");
            if (counts.Count == 0)
            {
                sb.Append("<p class=\"none\">No customers.</p></div>");
                continue;
            }

            var ordered = counts.OrderByDescending(c => c.Value.GetInt64()).ThenBy(c => c.Name, StringComparer.Ordinal).ToList();
            sb.Append(ConsoleCharts.Element(
                "stages-" + key,
                ConsoleCharts.Bars($"customers per {title} stage", [.. ordered.Select(c => c.Name.Replace('_', ' '))], [new BarSeries("customers", "Customers", [.. ordered.Select(c => (decimal?)c.Value.GetInt64())])], horizontal: true),
                $"Customers per {title} stage",
                40 + (24 * ordered.Count)));
            sb.Append(Invariant, $"<table data-dimension=\"{E(key)}\"><thead><tr><th scope=\"col\">Stage</th><th scope=\"col\" class=\"n\">Customers</th><th scope=\"col\" class=\"n\">Share</th></tr></thead><tbody>");
            foreach (var c in ordered)
            {
                var share = total == 0 ? 0 : (decimal)c.Value.GetInt64() / total;
                sb.Append(Invariant, $"<tr data-stage=\"{E(c.Name)}\" data-count=\"{c.Value.GetInt64()}\"><th scope=\"row\">{Label(c.Name)}</th><td class=\"n\">{Num(c.Value)}</td><td class=\"n\"><span class=\"share\" style=\"--w:{share * 100:0.#}%\" title=\"{share.ToString("0.####", Invariant)}\">{E(Percent(share))}</span></td></tr>");
            }

            sb.Append("</tbody></table></div>");
        }

        sb.Append("</div></section>");

        // Flows between stages.
        var transitions = population.Get("transitions").Items().ToList();
        var flowDimensions = transitions.Select(t => t.Str("dimension") ?? "").Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        sb.Append("<section aria-labelledby=\"flows\"><h2 id=\"flows\">Flows between stages</h2>");
        if (flowDimensions.Count == 0)
        {
            sb.Append("<p class=\"none\">No transitions yet.</p>");
        }
        else
        {
            sb.Append("<p class=\"tabs\">");
            foreach (var d in flowDimensions)
            {
                sb.Append(Invariant, $"<a href=\"/console?flows={Uri.EscapeDataString(d)}\"{(d == flowDimension ? " aria-current=\"true\"" : "")}>{Label(d)}</a> ");
            }

            sb.Append("</p>");
            var flows = transitions.Where(t => t.Str("dimension") == flowDimension)
                .Select(t => new Flow(t.Str("from") ?? "", t.Str("to") ?? "", t.Long("count"))).ToList();
            if (flows.Count == 0)
            {
                sb.Append(Invariant, $"<p class=\"none\">No {Label(flowDimension)} transitions yet.</p>");
            }
            else
            {
                sb.Append(ConsoleCharts.Element("flows-chart", ConsoleCharts.Flows(flows, $"{flowDimension} transitions"), $"{flowDimension.Replace('_', ' ')} transitions: from each stage (left) to each stage (right)", 360));
                sb.Append("<details><summary>Transitions as a table</summary><table><thead><tr><th scope=\"col\">From</th><th scope=\"col\">To</th><th scope=\"col\" class=\"n\">Customers</th></tr></thead><tbody>");
                foreach (var f in flows.OrderByDescending(f => f.Count))
                {
                    sb.Append(Invariant, $"<tr><td>{Label(f.From)}</td><td>{Label(f.To)}</td><td class=\"n\">{Num(f.Count)}</td></tr>");
                }

                sb.Append("</tbody></table></details>");
            }
        }

        sb.Append("</section>");

        sb.Append("<section aria-labelledby=\"firings\"><h2 id=\"firings\">Firings by rule</h2>");
        decimal? Firings(JsonElement lift, string group) => lift.Get(group).Get("firings") is { ValueKind: JsonValueKind.Number } n ? n.GetDecimal() : null;
        if (!firings.Any(f => new[] { "contacted", "holdout", "suppressed" }.Any(g => Firings(f.Lift, g) > 0)))
        {
            sb.Append("<p class=\"none\">No rule has fired yet.</p>");
        }
        else
        {
            sb.Append(ConsoleCharts.Element(
                "firings-chart",
                ConsoleCharts.Bars("firings per rule", [.. firings.Select(f => f.Rule)], [.. new[] { ("contacted", "Contacted"), ("holdout", "Holdout"), ("suppressed", "Suppressed") }.Select(g => new BarSeries(g.Item1, g.Item2, [.. firings.Select(f => Firings(f.Lift, g.Item1))]))], horizontal: true),
                "Firings per rule: contacted, holdout, suppressed",
                60 + (30 * firings.Count)));
        }


        sb.Append("<table><thead><tr><th scope=\"col\">Rule</th><th scope=\"col\" class=\"n\">Contacted</th><th scope=\"col\" class=\"n\">Holdout</th><th scope=\"col\" class=\"n\">Suppressed</th></tr></thead><tbody>");
        foreach (var (rule, lift) in firings)
        {
            sb.Append(Invariant, $"<tr data-rule=\"{E(rule)}\"><th scope=\"row\"><a href=\"/console/outreach#rule-{E(rule)}\">{E(rule)}</a></th><td class=\"n\">{Num(lift.Get("contacted").Get("firings"))}</td><td class=\"n\">{Num(lift.Get("holdout").Get("firings"))}</td><td class=\"n\">{Num(lift.Get("suppressed").Get("firings"))}</td></tr>");
        }

        sb.Append("</tbody></table></section>");
        return sb.ToString();
    }

    /// <summary>The customer search form (also shown above a customer's page).</summary>
    public static string Search(string? value) =>
        $"<form class=\"search\" action=\"/console/customers\" method=\"get\" role=\"search\"><label for=\"q\">Customer id</label><input id=\"q\" name=\"id\" value=\"{E(value)}\" autocomplete=\"off\" required><button type=\"submit\">Show</button></form>";

    /// <summary>A customer: profile, stages, model values, firings and a timeline.</summary>
    /// <param name="profile">The body of <c>GET /v1/customers/{id}</c>.</param>
    /// <param name="triggers">The body of <c>GET /v1/customers/{id}/triggers</c>.</param>
    public static string Customer(JsonElement profile, JsonElement triggers)
    {
        var sb = new StringBuilder(Search(profile.Str("customerId")));
        var orders = profile.Get("orders");
        var rfm = profile.Get("rfm");
        var tier = profile.Get("tier");
        sb.Append("<div class=\"grid\">");
        sb.Append("<section class=\"card\" aria-labelledby=\"st\"><h2 id=\"st\">Stages</h2><table><tbody>");
        foreach (var stage in profile.Get("stages").Props())
        {
            sb.Append(Invariant, $"<tr data-ladder=\"{E(stage.Name)}\"><th scope=\"row\">{Label(stage.Name)}</th><td data-field=\"stage\">{Label(stage.Value.Str("stage"))}</td><td>since {Time(stage.Value.Get("since"))}</td></tr>");
        }

        sb.Append("</tbody></table></section>");
        sb.Append("<section class=\"card\" aria-labelledby=\"md\"><h2 id=\"md\">Model</h2><dl class=\"kv\">");
        void Row(string label, string field, string html) => sb.Append(Invariant, $"<dt>{E(label)}</dt><dd data-field=\"{field}\">{html}</dd>");
        Row("Tier", "tier", $"{Label(tier.Str("name"))} (projected {Label(tier.Str("projected"))}), review {Time(tier.Get("reviewAt"))}");
        Row("Points", "points", Num(tier.Get("points"), NumberKind.Decimal));
        Row("RFM", "rfm", $"{Label(rfm.Str("segment"))} · R {Num(rfm.Get("r"))} F {Num(rfm.Get("f"))} M {Num(rfm.Get("m"))}");
        Row("Recency (days)", "recencyDays", Num(rfm.Get("recencyDays")));
        Row("Frequency (365 d)", "frequency", Num(rfm.Get("frequency")));
        Row("Monetary (365 d)", "monetary", Num(rfm.Get("monetary"), NumberKind.Money));
        Row("Churn risk (0–100)", "churnRisk", Num(profile.Get("churnRisk")));
        var tags = profile.Get("tags").Items().Select(t => $"<span class=\"tag\">{E(t.GetString())}</span>").ToList();
        Row("Tags", "tags", tags.Count == 0 ? "<span class=\"none\">none</span>" : string.Join(" ", tags));
        Row("Rule set", "ruleVersion", E(profile.Str("ruleVersion")));
        Row("As of", "asOf", Time(profile.Get("asOf")));
        sb.Append("</dl></section>");
        sb.Append("<section class=\"card\" aria-labelledby=\"or\"><h2 id=\"or\">Orders</h2><dl class=\"kv\">");
        Row("Orders", "orders.count", Num(orders.Get("count")));
        Row("Cancelled", "orders.cancelledCount", Num(orders.Get("cancelledCount")));
        Row("Gross", "orders.grossAmount", Num(orders.Get("grossAmount"), NumberKind.Money));
        Row("Refunds", "orders.refundAmount", Num(orders.Get("refundAmount"), NumberKind.Money));
        Row("Net", "orders.netAmount", Num(orders.Get("netAmount"), NumberKind.Money));
        Row("First order", "orders.firstAt", Time(orders.Get("firstAt")));
        Row("Last order", "orders.lastAt", Time(orders.Get("lastAt")));
        sb.Append("</dl></section></div>");

        var firings = triggers.Get("firings").Items().ToList();
        sb.Append("<section aria-labelledby=\"fi\"><h2 id=\"fi\">Firings</h2>");
        if (firings.Count == 0)
        {
            sb.Append("<p class=\"none\">No rule has fired for this customer.</p>");
        }
        else
        {
            sb.Append("<div class=\"scroll\"><table class=\"firings\"><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Rule</th><th scope=\"col\">Why (inputs)</th><th scope=\"col\">Delivery</th><th scope=\"col\">Outreach</th><th scope=\"col\">Outcome</th></tr></thead><tbody>");
            foreach (var f in firings)
            {
                var reason = string.Join("", f.Get("reason").Props().Select(p => $"<li><code>{E(p.Name)}</code> = <code>{E(p.Value.GetString())}</code></li>"));
                var delivery = E(f.Str("delivery")) + (f.Str("suppressedBy") is { } by ? $" <span class=\"muted\">by {E(by)}</span>" : "");
                var outreach = f.Get("outreach");
                var item = outreach.ValueKind == JsonValueKind.Object
                    ? $"{E(outreach.Str("channel"))} · {E(outreach.Str("state"))}{(outreach.Str("reason") is { } r ? $" <span class=\"muted\">({E(r)})</span>" : "")}"
                    : "<span class=\"none\">\u2013</span>";
                var outcome = f.Str("outcome") ?? outreach.Str("outcome");
                sb.Append(Invariant, $"<tr data-firing=\"{E(f.Str("id"))}\" data-rule=\"{E(f.Str("rule"))}\"><td>{Time(f.Get("at"))}</td><td>{E(f.Str("rule"))}</td><td><ul class=\"reason\">{reason}</ul></td><td data-field=\"delivery\">{delivery}</td><td>{item}</td><td>{(outcome is null ? "<span class=\"none\">\u2013</span>" : E(outcome))}</td></tr>");
            }

            sb.Append("</tbody></table></div>");
        }

        sb.Append("</section>");

        sb.Append("<section aria-labelledby=\"tl\"><h2 id=\"tl\">Timeline</h2><ol class=\"timeline\">");
        foreach (var (at, raw, text) in Timeline(profile, triggers))
        {
            sb.Append(Invariant, $"<li><time datetime=\"{E(raw)}\" title=\"{E(raw)}\">{E(When(at))}</time> {text}</li>");
        }

        sb.Append("</ol></section>");
        return sb.ToString();
    }

    /// <summary>
    /// What happened to a customer, newest first: first and last order, the entry into each current stage, each firing
    /// and each outreach outcome; from the profile and triggers documents.
    /// </summary>
    public static IReadOnlyList<(DateTimeOffset At, string Raw, string Html)> Timeline(JsonElement profile, JsonElement triggers)
    {
        var items = new List<(DateTimeOffset, string, string)>();
        void Add(JsonElement time, string html)
        {
            if (time.ValueKind == JsonValueKind.String && time.TryGetDateTimeOffset(out var at))
            {
                items.Add((at, time.GetString()!, html));
            }
        }

        var orders = profile.Get("orders");
        Add(orders.Get("firstAt"), "first order");
        if (orders.Long("count") > 1)
        {
            Add(orders.Get("lastAt"), $"last order (of {Count(orders.Long("count"))})");
        }

        foreach (var stage in profile.Get("stages").Props())
        {
            Add(stage.Value.Get("since"), $"{Label(stage.Name)} stage became <strong>{Label(stage.Value.Str("stage"))}</strong>");
        }

        foreach (var f in triggers.Get("firings").Items())
        {
            Add(f.Get("at"), $"rule <strong>{E(f.Str("rule"))}</strong> fired ({E(f.Str("delivery"))})");
        }

        foreach (var o in triggers.Get("outreach").Items())
        {
            if (o.Str("outcome") is { } outcome)
            {
                Add(o.Get("dueAt"), $"outreach {E(o.Str("outreachId"))} by {E(o.Str("channel"))}: {E(outcome)}");
            }
        }

        return [.. items.OrderByDescending(i => i.Item1)];
    }

    /// <summary>The rules view: the set in force, the editor, backtest and apply.</summary>
    /// <param name="rules">The body of <c>GET /v1/rules</c>.</param>
    public static string Rules(JsonElement rules, IReadOnlyList<string> datasets)
    {
        var sb = new StringBuilder();
        var directory = rules.Str("directory");
        sb.Append("<section aria-labelledby=\"inforce\"><h2 id=\"inforce\">In force</h2><dl class=\"kv\">");
        sb.Append(Invariant, $"<dt>Name</dt><dd data-field=\"name\">{E(rules.Str("name"))}</dd><dt>Version</dt><dd data-field=\"version\">{E(rules.Str("version"))}</dd>");
        sb.Append(Invariant, $"<dt>Origin</dt><dd>{E(rules.Str("origin"))}{(directory is null ? "" : $" (<code>{E(directory)}</code>)")}</dd>");
        if (rules.Str("pending") is { } pending)
        {
            sb.Append(Invariant, $"<dt>Pending</dt><dd>{E(pending)} (switches at the next checkpoint)</dd>");
        }

        sb.Append("</dl>");
        foreach (var file in rules.Get("files").Items())
        {
            sb.Append(Invariant, $"<details><summary>{E(file.Str("file"))}</summary><pre class=\"source\">{E(file.Str("text"))}</pre></details>");
        }

        if (rules.Get("lastError") is { ValueKind: JsonValueKind.Object } last)
        {
            sb.Append(Notice("warn", $"Last rejected set ({E(last.Str("origin"))}, {Time(last.Get("at"))}): " +
                string.Join("; ", last.Get("errors").Items().Select(e => E(e.Str("text"))))));
        }

        sb.Append("</section>");

        var text = string.Join("\n", rules.Get("files").Items().Select(f => f.Str("text")));
        sb.Append("<section aria-labelledby=\"edit\"><h2 id=\"edit\">Edit, check, backtest, apply</h2>");
        if (directory is not null)
        {
            sb.Append(Notice("info", $"This engine reads its rules from <code>{E(directory)}</code>: edit the files there. You can still check and backtest a set here."));
        }

        sb.Append(Invariant, $"""
            <div class="editor"><pre id="gutter" aria-hidden="true"></pre><label class="sr" for="rules-text">Rule file (YAML)</label><textarea id="rules-text" spellcheck="false" autocapitalize="off" wrap="off">{E(text)}</textarea></div>
            <div id="check-status" role="status" class="status"></div>
            <ol id="rule-errors" aria-label="Errors"></ol>
            <div class="actions">
            <button type="button" id="check">Check</button>
            <label for="dataset">Dataset</label><select id="dataset">{string.Join("", datasets.Select(d => $"<option>{E(d)}</option>"))}</select>
            <label for="admin-token">Admin token</label><input id="admin-token" type="password" autocomplete="off" placeholder="needed to backtest and apply">
            <button type="button" id="backtest">Backtest against the running set</button>
            <button type="button" id="cancel-backtest" hidden>Cancel backtest</button>
            <button type="button" id="apply"{(directory is null ? "" : " disabled")}>Apply</button>
            </div>
            <progress id="backtest-progress" max="1" value="0" hidden></progress>
            <div id="action-status" class="status" aria-live="polite"></div>
            """);
        sb.Append("</section>");
        return sb.ToString();
    }

    /// <summary>A backtest: progress while it runs; when done, per rule and per month, base (running set) against compare (edited set).</summary>
    /// <param name="run">The body of <c>GET /v1/backtests/{id}</c>.</param>
    public static string Backtest(JsonElement run)
    {
        var sb = new StringBuilder();
        var state = run.Str("state");
        sb.Append(Invariant, $"<p>Backtest <code>{E(run.Str("id"))}</code> of <strong>{E(string.Join(" vs ", run.Get("ruleVersions").Items().Select(v => v.GetString())))}</strong> on {E(run.Str("dataset"))}, started {Time(run.Get("startedAt"))} by {E(run.Str("startedBy"))}: <span data-field=\"state\">{E(state)}</span>.</p>");
        if (state == "running")
        {
            var share = run.Get("progress").Get("fileShare");
            sb.Append(Invariant, $"<div data-poll=\"{E(run.Str("id"))}\"><progress max=\"1\" value=\"{(share.ValueKind == JsonValueKind.Number ? share.GetDouble() : 0).ToString("0.####", Invariant)}\" aria-label=\"progress\"></progress> {Num(run.Get("progress").Get("records"))} records read</div>");
            return sb.ToString();
        }

        if (state != "done")
        {
            sb.Append(state == "failed" ? Problem("Backtest failed.", run.Str("error") ?? "") : Notice("info", "The backtest was cancelled."));
            return sb.ToString();
        }

        var result = run.Get("result");
        var compared = result.Get("diff").ValueKind == JsonValueKind.Object;
        var baseResult = compared ? result.Get("base") : result;
        var compare = compared ? result.Get("compare") : default;
        sb.Append(Invariant, $"<p>{Num(baseResult.Get("records"))} records, {Num(baseResult.Get("customers"))} customers, {Num(baseResult.Get("deadLetters"))} dead letters.</p>");
        var rules = baseResult.Get("rules").Props().Select(p => p.Name).Union(compare.Get("rules").Props().Select(p => p.Name), StringComparer.Ordinal)
            .OrderBy(r => r, StringComparer.Ordinal).ToList();
        long Fired(JsonElement side, string rule) => side.Get("rules").Get(rule).Long("fired");
        string Cell(JsonElement side, string rule, string field) => side.Get("rules").Get(rule).ValueKind == JsonValueKind.Object ? Num(side.Get("rules").Get(rule).Get(field)) : "<span class=\"none\">\u2013</span>";
        var series = compared ? new[] { "base", "compare" } : ["base"];

        sb.Append("<section aria-labelledby=\"per-rule\"><h2 id=\"per-rule\">Per rule</h2>");
        string SeriesName(string s) => s == "base" ? "Running set (base)" : "Edited set (compare)";
        sb.Append(ConsoleCharts.Element(
            "rules-chart",
            ConsoleCharts.Bars("firings per rule", rules, [.. series.Select(s => new BarSeries(s, SeriesName(s), [.. rules.Select(r => (decimal?)Fired(s == "base" ? baseResult : compare, r))]))], horizontal: true),
            "Firings per rule, running set against edited set",
            50 + (rules.Count * 18 * series.Length)));
        sb.Append("<div class=\"scroll\"><table id=\"backtest-rules\"><thead><tr><th scope=\"col\">Rule</th><th scope=\"col\" class=\"n\">Fired, base</th>");
        if (compared)
        {
            sb.Append("<th scope=\"col\" class=\"n\">Fired, compare</th><th scope=\"col\" class=\"n\">\u0394</th>");
        }

        sb.Append("<th scope=\"col\" class=\"n\">Customers, base</th>");
        if (compared)
        {
            sb.Append("<th scope=\"col\" class=\"n\">Customers, compare</th>");
        }

        sb.Append("</tr></thead><tbody>");
        foreach (var rule in rules)
        {
            sb.Append(Invariant, $"<tr data-rule=\"{E(rule)}\"><th scope=\"row\">{E(rule)}</th><td class=\"n\" data-field=\"base-fired\">{Cell(baseResult, rule, "fired")}</td>");
            if (compared)
            {
                sb.Append(Invariant, $"<td class=\"n\" data-field=\"compare-fired\">{Cell(compare, rule, "fired")}</td><td class=\"n\">{Num(result.Get("diff").Get(rule).Get("fired"), NumberKind.Signed)}</td>");
            }

            sb.Append(Invariant, $"<td class=\"n\">{Cell(baseResult, rule, "customers")}</td>");
            if (compared)
            {
                sb.Append(Invariant, $"<td class=\"n\">{Cell(compare, rule, "customers")}</td>");
            }

            sb.Append("</tr>");
        }

        sb.Append("</tbody></table></div></section>");

        sb.Append("<section aria-labelledby=\"per-month\"><h2 id=\"per-month\">Per month (UTC)</h2>");
        var months = ConsoleCharts.MonthSpan(rules.SelectMany(r => baseResult.Get("rules").Get(r).Get("perMonth").Props().Concat(compare.Get("rules").Get(r).Get("perMonth").Props()).Select(p => p.Name)));
        foreach (var rule in rules.Where(r => Fired(baseResult, r) + (compared ? Fired(compare, r) : 0) > 0).OrderByDescending(r => Math.Max(Fired(baseResult, r), compared ? Fired(compare, r) : 0)))
        {
            long PerMonth(string month, string s) => (s == "base" ? baseResult : compare).Get("rules").Get(rule).Get("perMonth").Long(month);
            sb.Append(Invariant, $"<figure class=\"chart\" data-month-chart=\"{E(rule)}\"><figcaption>{E(rule)}: firings per month</figcaption>");
            sb.Append(ConsoleCharts.Element(
                "month-chart-" + rule,
                ConsoleCharts.Bars($"{rule} firings per month", months, [.. series.Select(s => new BarSeries(s, SeriesName(s), [.. months.Select(m => (decimal?)PerMonth(m, s))]))]),
                $"{rule}: firings per month, running set against edited set",
                200));
            sb.Append("</figure>");
        }

        sb.Append("</section>");
        return sb.ToString();
    }

    /// <summary>The outreach view: the queue by channel and state, and lift per rule.</summary>
    /// <param name="stats">The body of <c>GET /v1/outreach/stats</c>.</param>
    /// <param name="lifts">Per trigger of the running set, the body of <c>GET /v1/rules/{id}/lift</c>.</param>
    public static string Outreach(JsonElement stats, IReadOnlyList<(string Rule, JsonElement Lift)> lifts)
    {
        var sb = new StringBuilder();
        var states = stats.Props().SelectMany(c => c.Value.Props().Select(s => s.Name)).Distinct(StringComparer.Ordinal).ToList();
        sb.Append("<section aria-labelledby=\"queue\"><h2 id=\"queue\">Queue</h2>");
        var any = stats.Props().Any(c => c.Value.Props().Any(s => s.Value.GetInt64() > 0));
        if (!any)
        {
            sb.Append("<p class=\"none\">The queue is empty: no rule has queued a call or a message yet.</p>");
        }

        sb.Append("<div class=\"scroll\"><table id=\"queue-table\"><thead><tr><th scope=\"col\">Channel</th>");
        foreach (var s in states)
        {
            sb.Append(Invariant, $"<th scope=\"col\" class=\"n\">{Label(s)}</th>");
        }

        sb.Append("</tr></thead><tbody>");
        foreach (var channel in stats.Props())
        {
            sb.Append(Invariant, $"<tr data-channel=\"{E(channel.Name)}\"><th scope=\"row\">{E(channel.Name)}</th>");
            foreach (var s in states)
            {
                sb.Append(Invariant, $"<td class=\"n\" data-state=\"{E(s)}\">{Num(channel.Value.Get(s))}</td>");
            }

            sb.Append("</tr>");
        }

        sb.Append("</tbody></table></div></section>");
        sb.Append("<section aria-labelledby=\"lift\"><h2 id=\"lift\">Lift per rule</h2><p class=\"muted\">Conversion of contacted customers against the held-out control group, within each rule's attribution window.</p>");
        decimal? Rate(JsonElement lift, string group) => lift.Get(group).Get("rate") is { ValueKind: JsonValueKind.Number } n ? n.GetDecimal() : null;
        if (!lifts.Any(l => Rate(l.Lift, "contacted") is not null || Rate(l.Lift, "holdout") is not null))
        {
            sb.Append("<p class=\"none\">No conversion rates yet: no rule has contacted or held out a customer.</p>");
        }
        else
        {
            sb.Append(ConsoleCharts.Element(
                "lift-chart",
                ConsoleCharts.Bars("conversion rate per rule", [.. lifts.Select(l => l.Rule)], [new BarSeries("contacted", "Contacted", [.. lifts.Select(l => Rate(l.Lift, "contacted"))]), new BarSeries("holdout", "Holdout", [.. lifts.Select(l => Rate(l.Lift, "holdout"))])], horizontal: true, valueKind: "percent"),
                "Conversion rate per rule: contacted against holdout",
                60 + (36 * lifts.Count)));
        }

        sb.Append("<div class=\"scroll\"><table id=\"lift-table\"><thead><tr><th scope=\"col\">Rule</th><th scope=\"col\" class=\"n\">Contacted</th><th scope=\"col\" class=\"n\">Converted</th><th scope=\"col\" class=\"n\">Rate</th><th scope=\"col\" class=\"n\">Holdout</th><th scope=\"col\" class=\"n\">Converted</th><th scope=\"col\" class=\"n\">Rate</th><th scope=\"col\" class=\"n\">Lift</th><th scope=\"col\" class=\"n\">Relative</th></tr></thead><tbody>");
        foreach (var (rule, lift) in lifts)
        {
            var c = lift.Get("contacted");
            var h = lift.Get("holdout");
            sb.Append(Invariant, $"<tr id=\"rule-{E(rule)}\" data-rule=\"{E(rule)}\"><th scope=\"row\">{E(rule)}</th><td class=\"n\">{Num(c.Get("firings"))}</td><td class=\"n\">{Num(c.Get("conversions"))}</td><td class=\"n\">{Num(c.Get("rate"), NumberKind.Percent)}</td><td class=\"n\">{Num(h.Get("firings"))}</td><td class=\"n\">{Num(h.Get("conversions"))}</td><td class=\"n\">{Num(h.Get("rate"), NumberKind.Percent)}</td><td class=\"n\">{Num(lift.Get("lift"), NumberKind.Percent)}</td><td class=\"n\">{Num(lift.Get("relativeLift"), NumberKind.Percent)}</td></tr>");
        }

        sb.Append("</tbody></table></div></section>");
        return sb.ToString();
    }
}
