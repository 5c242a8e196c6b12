using System.Text;
using System.Text.RegularExpressions;

namespace Streaming.Host.Tests.Dashboards;

/// <summary>
/// Just enough PromQL handling to test the dashboards and rules against a real Prometheus: Grafana variables replaced by
/// concrete values, the metric names an expression reads, and the parts of an alert expression that must return data.
/// </summary>
public static partial class PromQl
{
    /// <summary>Grafana's variables as evaluated by the tests: a 1-minute rate window, a 5-minute range, every engine.</summary>
    public static readonly IReadOnlyDictionary<string, string> GrafanaVariables = new Dictionary<string, string>
    {
        ["$__rate_interval"] = "1m",
        ["$__interval"] = "15s",
        ["$__range"] = "5m",
        ["$instance"] = ".+",
    };

    private static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "Inf", "NaN",
    };

    private static readonly string[] SetOperators = ["and", "or", "unless"];

    /// <summary>Replaces Grafana's variables by <see cref="GrafanaVariables"/>; throws on any other variable.</summary>
    public static string Substitute(string expr)
    {
        foreach (var (name, value) in GrafanaVariables)
        {
            expr = expr.Replace("${" + name[1..] + "}", value, StringComparison.Ordinal).Replace(name, value, StringComparison.Ordinal);
        }

        return expr.Contains('$', StringComparison.Ordinal)
            ? throw new InvalidOperationException($"unknown Grafana variable in: {expr}")
            : expr;
    }

    /// <summary>
    /// The metric names (and recorded series names, which contain ':') an expression reads: identifiers outside label
    /// matchers, grouping lists, range selectors and strings, that are neither functions nor keywords.
    /// </summary>
    public static IReadOnlySet<string> MetricNames(string expr)
    {
        var text = StringLiteral().Replace(expr, "\"\"");
        text = LabelMatchers().Replace(text, "{}");
        text = GroupingLists().Replace(text, " ");
        text = RangeSelectors().Replace(text, " ");
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (Match m in Identifier().Matches(text))
        {
            var name = m.Groups[1].Value;
            if (!Keywords.Contains(name) && !m.Groups[2].Success)
            {
                names.Add(name);
            }
        }

        return names;
    }

    /// <summary>
    /// The parts of an alert expression that must each return data for the alert to be able to fire: the operands of
    /// its top-level <c>and</c>, <c>or</c> and <c>unless</c> (recursively, without their <c>on (…)</c>/<c>ignoring (…)</c>),
    /// each without a trailing comparison with a number (the threshold).
    /// </summary>
    public static IReadOnlyList<string> DataParts(string expr)
    {
        var parts = new List<string>();
        Collect(expr, parts);
        return parts;
    }

    private static void Collect(string expr, List<string> parts)
    {
        expr = StripEnclosingParentheses(expr.Trim());
        var operands = SplitTopLevel(expr);
        if (operands.Count > 1)
        {
            foreach (var operand in operands)
            {
                Collect(VectorMatching().Replace(operand, string.Empty), parts);
            }

            return;
        }

        parts.Add(StripEnclosingParentheses(StripThreshold(expr)));
    }

    /// <summary>Splits at set operators outside parentheses, brackets, braces and strings.</summary>
    private static List<string> SplitTopLevel(string expr)
    {
        var operands = new List<string>();
        var depth = 0;
        var start = 0;
        for (var i = 0; i < expr.Length; i++)
        {
            var c = expr[i];
            if (c == '"' || c == '\'')
            {
                i = EndOfString(expr, i);
                continue;
            }

            if (c is '(' or '[' or '{')
            {
                depth++;
            }
            else if (c is ')' or ']' or '}')
            {
                depth--;
            }
            else if (depth == 0 && (i == 0 || !IsIdentifierChar(expr[i - 1])))
            {
                foreach (var op in SetOperators)
                {
                    var end = i + op.Length;
                    if (string.CompareOrdinal(expr, i, op, 0, op.Length) == 0 && end < expr.Length && !IsIdentifierChar(expr[end]))
                    {
                        operands.Add(expr[start..i].Trim());
                        start = end;
                        i = end - 1;
                        break;
                    }
                }
            }
        }

        operands.Add(expr[start..].Trim());
        return operands;
    }

    /// <summary>Removes a top-level trailing <c>OP [bool] NUMBER</c>, where OP is a comparison.</summary>
    private static string StripThreshold(string expr)
    {
        var depth = 0;
        var cut = -1;
        for (var i = 0; i < expr.Length; i++)
        {
            var c = expr[i];
            if (c == '"' || c == '\'')
            {
                i = EndOfString(expr, i);
                continue;
            }

            if (c is '(' or '[' or '{')
            {
                depth++;
            }
            else if (c is ')' or ']' or '}')
            {
                depth--;
            }
            else if (depth == 0 && c is '>' or '<' or '=' or '!')
            {
                var isComparison = c is '>' or '<' || (i + 1 < expr.Length && expr[i + 1] == '=');
                if (isComparison && (c != '=' || i == 0 || expr[i - 1] is not ('=' or '!' or '<' or '>')))
                {
                    cut = i;
                    if (i + 1 < expr.Length && expr[i + 1] == '=')
                    {
                        i++;
                    }
                }
            }
        }

        if (cut < 0)
        {
            return expr;
        }

        var operatorLength = cut + 1 < expr.Length && expr[cut + 1] == '=' ? 2 : 1;
        var right = expr[(cut + operatorLength)..].Trim();
        return Threshold().IsMatch(right) ? expr[..cut].Trim() : expr;
    }

    private static string StripEnclosingParentheses(string expr)
    {
        while (expr.Length > 1 && expr[0] == '(' && MatchingParenthesis(expr, 0) == expr.Length - 1)
        {
            expr = expr[1..^1].Trim();
        }

        return expr;
    }

    private static int MatchingParenthesis(string expr, int open)
    {
        var depth = 0;
        for (var i = open; i < expr.Length; i++)
        {
            if (expr[i] == '"' || expr[i] == '\'')
            {
                i = EndOfString(expr, i);
                continue;
            }

            if (expr[i] == '(')
            {
                depth++;
            }
            else if (expr[i] == ')' && --depth == 0)
            {
                return i;
            }
        }

        return -1;
    }

    private static int EndOfString(string expr, int start)
    {
        var quote = expr[start];
        for (var i = start + 1; i < expr.Length; i++)
        {
            if (expr[i] == '\\')
            {
                i++;
            }
            else if (expr[i] == quote)
            {
                return i;
            }
        }

        return expr.Length - 1;
    }

    private static bool IsIdentifierChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or ':';

    /// <summary>An expression with its whitespace collapsed, for messages.</summary>
    public static string OneLine(string expr)
    {
        var sb = new StringBuilder(expr.Length);
        foreach (var part in expr.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            sb.Append(sb.Length == 0 ? string.Empty : " ").Append(part);
        }

        return sb.ToString();
    }

    [GeneratedRegex(@"""(?:[^""\\]|\\.)*""|'(?:[^'\\]|\\.)*'")]
    private static partial Regex StringLiteral();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex LabelMatchers();

    [GeneratedRegex(@"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")]
    private static partial Regex GroupingLists();

    [GeneratedRegex(@"\[[^\]]*\]")]
    private static partial Regex RangeSelectors();

    [GeneratedRegex(@"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"^\s*(?:(?:on|ignoring)\s*\([^)]*\)\s*)?(?:(?:group_left|group_right)\s*(?:\([^)]*\))?\s*)?")]
    private static partial Regex VectorMatching();

    [GeneratedRegex(@"^(?:bool\s+)?[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")]
    private static partial Regex Threshold();
}
