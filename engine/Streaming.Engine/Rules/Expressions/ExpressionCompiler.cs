namespace Streaming.Engine.Rules.Expressions;

/// <summary>A compiled boolean rule expression.</summary>
public sealed class BoolExpression
{
    private readonly Node _root;

    private readonly Node[] _labelled;

    internal BoolExpression(string text, Node root)
    {
        Text = text;
        _root = root;
        Evaluate = root.EvalBool;
        var labelled = new List<Node>();
        ExpressionCompiler.CollectLabelled(root, labelled);
        _labelled = [.. labelled.DistinctBy(n => n.Label)];
    }

    /// <summary>The names of the fields and functions the expression reads.</summary>
    public IEnumerable<string> Labels => _labelled.Select(n => n.Label!);

    /// <summary>
    /// The current value of every field and function the expression reads, for explanations. Leaves the context's
    /// wake-up as it was.
    /// </summary>
    public List<KeyValuePair<string, string>> Explain(EvalContext c)
    {
        var wake = c.Wake;
        var result = new List<KeyValuePair<string, string>>(_labelled.Length);
        foreach (var node in _labelled)
        {
            result.Add(new(node.Label!, node.Describe(c)));
        }

        c.RestoreWake(wake);
        return result;
    }

    public string Text { get; }

    /// <summary>The compiled delegate.</summary>
    public Func<EvalContext, bool> Evaluate { get; }

    /// <summary>The inputs the expression reads.</summary>
    public Inputs Reads => _root.Reads;
}

/// <summary>A compiled numeric rule expression (null when an input is missing).</summary>
public sealed class NumberExpression
{
    private readonly Node _root;

    internal NumberExpression(string text, Node root)
    {
        Text = text;
        _root = root;
        Evaluate = root.EvalNumber;
    }

    public string Text { get; }

    public Func<EvalContext, decimal?> Evaluate { get; }

    public Inputs Reads => _root.Reads;

    /// <summary>The longest window (days) the expression reads, 0 if none.</summary>
    internal int MaxWindowDays { get; init; }
}

/// <summary>
/// Type-checks an expression's syntax against the field catalogue and turns it into a tree of typed nodes, once.
/// Errors carry the offset of the offending part.
/// </summary>
public sealed class ExpressionCompiler(FieldCatalog fields)
{
    /// <summary>Longest window a rule may read; days older than what the rule set needs are dropped from state.</summary>
    public const int MaxWindowDays = 3660;

    private int _maxWindowDays;

    /// <exception cref="ExpressionException">A syntax or type error.</exception>
    public BoolExpression CompileBool(string text)
    {
        var node = CompileChecked(text, ValueKind.Bool);
        return new BoolExpression(text, node);
    }

    /// <exception cref="ExpressionException">A syntax or type error.</exception>
    public NumberExpression CompileNumber(string text)
    {
        _maxWindowDays = 0;
        var node = CompileChecked(text, ValueKind.Number);
        return new NumberExpression(text, node) { MaxWindowDays = _maxWindowDays };
    }

    /// <summary>The longest window read by anything compiled so far.</summary>
    public int LongestWindowDays { get; private set; }

    private Node CompileChecked(string text, ValueKind expected)
    {
        var node = Compile(ExpressionParser.Parse(text));
        if (node.Kind != expected)
        {
            throw new ExpressionException(0, $"the expression is {Describe(node.Kind)}, but {Describe(expected)} is needed here");
        }

        RejectUnboundedTime(node);
        return node;
    }

    private Node Compile(Syntax syntax)
    {
        switch (syntax)
        {
            case NumberLiteral n:
                return new ConstNode(n.Offset, ValueKind.Number, n.Value);
            case DurationLiteral d:
                return new ConstNode(d.Offset, ValueKind.Duration, (long?)d.Value.Ticks);
            case StringLiteral s:
                return new ConstNode(s.Offset, ValueKind.String, s.Value);
            case BoolLiteral b:
                return new ConstNode(b.Offset, ValueKind.Bool, b.Value);
            case ListLiteral list:
                return CompileList(list);
            case PathSyntax { Path: "now" } now:
                return new NowNode(now.Offset);
            case PathSyntax path:
                var field = fields.Resolve(path.Path, path.Offset)
                    ?? throw new ExpressionException(path.Offset, $"unknown field '{path.Path}'{Suggest(path.Path)}");
                field.Label = path.Path;
                return field;
            case CallSyntax call:
                var result = CompileCall(call);
                if (call.Function is "days_since" or "hours_since" or "count_in" or "sum_in" or "birthday_at")
                {
                    result.Label = $"{call.Function}({string.Join(", ", call.Arguments.Select(Render))})";
                }

                return result;
            case UnarySyntax { Operator: "!" } not:
                return new NotNode(not.Offset, Expect(Compile(not.Operand), ValueKind.Bool, not.Operand.Offset, "'not'"));
            case UnarySyntax negate:
                var operand = Compile(negate.Operand);
                if (operand.Kind is not (ValueKind.Number or ValueKind.Duration))
                {
                    throw new ExpressionException(negate.Offset, $"'-' needs a number or a duration, not {Describe(operand.Kind)}");
                }

                return new NegateNode(negate.Offset, operand);
            case BinarySyntax binary:
                return CompileBinary(binary);
            default:
                throw new ExpressionException(syntax.Offset, "unsupported expression");
        }
    }

    private Node CompileBinary(BinarySyntax b)
    {
        var left = Compile(b.Left);
        var right = Compile(b.Right);
        switch (b.Operator)
        {
            case "&&":
                return new AndNode(b.Offset, Expect(left, ValueKind.Bool, b.Left.Offset, "'and'"), Expect(right, ValueKind.Bool, b.Right.Offset, "'and'"));
            case "||":
                return new OrNode(b.Offset, Expect(left, ValueKind.Bool, b.Left.Offset, "'or'"), Expect(right, ValueKind.Bool, b.Right.Offset, "'or'"));
            case "in":
                return CompileIn(b, left, right);
            case "==" or "!=" or "<" or "<=" or ">" or ">=":
                if (left.Kind != right.Kind || left.Kind is ValueKind.StringSet or ValueKind.List)
                {
                    throw new ExpressionException(b.Offset, $"cannot compare {Describe(left.Kind)} with {Describe(right.Kind)}");
                }

                if (left.Kind is ValueKind.String or ValueKind.Bool && b.Operator is not ("==" or "!="))
                {
                    throw new ExpressionException(b.Offset, $"{Describe(left.Kind)} can only be compared with == and !=");
                }

                return new CompareNode(b.Offset, b.Operator, left, right);
            default:
                return CompileArithmetic(b, left, right);
        }
    }

    private Node CompileArithmetic(BinarySyntax b, Node left, Node right)
    {
        var op = b.Operator[0];
        if (left.Kind == ValueKind.Number && right.Kind == ValueKind.Number)
        {
            return new ArithmeticNode(b.Offset, op, left, right);
        }

        if (op == '-' && left is NowNode && right.Kind == ValueKind.Instant && !right.TimeDependent)
        {
            return new ElapsedNode(b.Offset, right);
        }

        var kind = (op, left.Kind, right.Kind) switch
        {
            ('+' or '-', ValueKind.Instant, ValueKind.Duration) => ValueKind.Instant,
            ('+', ValueKind.Duration, ValueKind.Instant) => ValueKind.Instant,
            ('+' or '-', ValueKind.Duration, ValueKind.Duration) => ValueKind.Duration,
            ('-', ValueKind.Instant, ValueKind.Instant) => ValueKind.Duration,
            _ => throw new ExpressionException(b.Offset, $"'{b.Operator}' is not defined for {Describe(left.Kind)} and {Describe(right.Kind)}"),
        };
        return new TicksArithmeticNode(b.Offset, kind, op == '-', left, right);
    }

    private static InNode CompileIn(BinarySyntax b, Node item, Node collection)
    {
        switch (collection)
        {
            case ListNode list when list.Items.Length == 0 || list.ItemKind == item.Kind:
                return new InNode(b.Offset, item, collection);
            case ListNode list:
                throw new ExpressionException(b.Offset, $"'in' looks for {Describe(item.Kind)} in a list of {Describe(list.ItemKind)}");
            case { Kind: ValueKind.StringSet } when item.Kind == ValueKind.String:
                return new InNode(b.Offset, item, collection);
            default:
                throw new ExpressionException(b.Right.Offset, "'in' needs a list such as ['a', 'b'] or a set such as tags on its right");
        }
    }

    private ListNode CompileList(ListLiteral list)
    {
        var items = new object[list.Items.Count];
        var kind = ValueKind.String;
        for (var i = 0; i < items.Length; i++)
        {
            var item = Compile(list.Items[i]);
            if (item is not ConstNode { Kind: ValueKind.String or ValueKind.Number } constant)
            {
                throw new ExpressionException(list.Items[i].Offset, "list items must be strings or numbers written out");
            }

            if (i > 0 && constant.Kind != kind)
            {
                throw new ExpressionException(list.Items[i].Offset, "all items of a list must be of one type");
            }

            kind = constant.Kind;
            items[i] = constant.Value!;
        }

        return new ListNode(list.Offset, kind, items);
    }

    private Node CompileCall(CallSyntax call)
    {
        var args = call.Arguments;
        switch (call.Function)
        {
            case "days_since" or "hours_since":
                Arity(call, 1);
                var instant = Expect(Compile(args[0]), ValueKind.Instant, args[0].Offset, call.Function);
                if (instant.TimeDependent && instant is not ISegmentedInstant)
                {
                    throw new ExpressionException(args[0].Offset, $"{call.Function} needs an instant that does not move with time");
                }

                return new UnitsSinceNode(call.Offset, instant, call.Function == "days_since" ? TimeSpan.TicksPerDay : TimeSpan.TicksPerHour, clampAtZero: false);
            case "count_in" or "sum_in":
                return CompileWindow(call);
            case "birthday_at":
                Arity(call, 1);
                if (args[0] is not StringLiteral { Value: var text } || !TimeSpan.TryParseExact(text, @"hh\:mm", System.Globalization.CultureInfo.InvariantCulture, out var localTime))
                {
                    throw new ExpressionException(args[0].Offset, "birthday_at takes a local time written out, such as '09:00'");
                }

                return new BirthdayNode(call.Offset, localTime);
            case "min" or "max":
                Arity(call, 2);
                return new MinMaxNode(
                    call.Offset,
                    call.Function == "max",
                    Expect(Compile(args[0]), ValueKind.Number, args[0].Offset, call.Function),
                    Expect(Compile(args[1]), ValueKind.Number, args[1].Offset, call.Function));
            case "floor":
                Arity(call, 1);
                return new FloorNode(call.Offset, Expect(Compile(args[0]), ValueKind.Number, args[0].Offset, "floor"));
            case "if":
                Arity(call, 3);
                var condition = Expect(Compile(args[0]), ValueKind.Bool, args[0].Offset, "if");
                var then = Compile(args[1]);
                var otherwise = Compile(args[2]);
                if (then.Kind != otherwise.Kind || then.Kind is ValueKind.List or ValueKind.StringSet)
                {
                    throw new ExpressionException(args[2].Offset, $"both branches of if must have one type ({Describe(then.Kind)} and {Describe(otherwise.Kind)} here)");
                }

                return new IfNode(call.Offset, condition, then, otherwise);
            default:
                throw new ExpressionException(call.Offset, $"unknown function '{call.Function}' (known: days_since, hours_since, count_in, sum_in, birthday_at, min, max, floor, if)");
        }
    }

    private WindowNode CompileWindow(CallSyntax call)
    {
        Arity(call, 2);
        if (call.Arguments[0] is not PathSyntax series || !FieldCatalog.TryGetSeries(series.Path, out var kind, out var reads, out var countable))
        {
            throw new ExpressionException(call.Arguments[0].Offset, $"{call.Function} reads one of: {string.Join(", ", FieldCatalog.SeriesNames)}");
        }

        if (call.Function == "count_in" && !countable)
        {
            throw new ExpressionException(call.Arguments[0].Offset, $"'{series.Path}' is an amount: use sum_in");
        }

        if (call.Arguments[1] is not DurationLiteral window || window.Value.Ticks % TimeSpan.TicksPerDay != 0 || window.Value <= TimeSpan.Zero)
        {
            throw new ExpressionException(call.Arguments[1].Offset, "a window is a whole number of days written out, such as 30d");
        }

        var days = (int)Math.Min(window.Value.TotalDays, int.MaxValue);
        if (days > MaxWindowDays)
        {
            throw new ExpressionException(call.Arguments[1].Offset, $"windows longer than {MaxWindowDays}d are not kept");
        }

        _maxWindowDays = Math.Max(_maxWindowDays, days);
        LongestWindowDays = Math.Max(LongestWindowDays, days);
        return new WindowNode(call.Offset, kind, days, reads);
    }

    private static string Render(Syntax syntax) => syntax switch
    {
        PathSyntax p => p.Path,
        DurationLiteral d => d.Text,
        StringLiteral s => "'" + s.Value + "'",
        NumberLiteral n => n.Value.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => "…",
    };

    internal static void CollectLabelled(Node node, List<Node> sink)
    {
        if (node.Label is not null)
        {
            sink.Add(node);
        }

        foreach (var child in Children(node))
        {
            CollectLabelled(child, sink);
        }
    }

    /// <summary><c>now</c> and <c>now − x</c> change continuously: only an exact comparison can turn them into a timer.</summary>
    private static void RejectUnboundedTime(Node node)
    {
        if (node is IMonotone { Registers: true } and (NowNode or ElapsedNode))
        {
            throw new ExpressionException(node.Offset, "compare 'now' or 'now - x' directly with a fixed value (for example now - orders.lastAt > 30d)");
        }

        foreach (var child in Children(node))
        {
            RejectUnboundedTime(child);
        }
    }

    private static IEnumerable<Node> Children(Node node)
    {
        // Operands are captured constructor parameters; this walk runs once per compile, never per event.
        foreach (var field in node.GetType().GetFields(System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance))
        {
            if (field.GetValue(node) is Node child)
            {
                yield return child;
            }
        }
    }

    private static Node Expect(Node node, ValueKind kind, int offset, string where)
    {
        if (node.Kind != kind)
        {
            throw new ExpressionException(offset, $"{where} needs {Describe(kind)}, not {Describe(node.Kind)}");
        }

        return node;
    }

    private static void Arity(CallSyntax call, int count)
    {
        if (call.Arguments.Count != count)
        {
            throw new ExpressionException(call.Offset, $"{call.Function} takes {count} argument{(count == 1 ? "" : "s")}, not {call.Arguments.Count}");
        }
    }

    private string Suggest(string path)
    {
        var best = fields.Names.Select(n => (Name: n, Distance: Distance(n, path))).MinBy(p => p.Distance);
        return best.Name is not null && best.Distance <= Math.Max(2, path.Length / 4) ? $" (did you mean '{best.Name}'?)" : "";
    }

    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }

    internal static string Describe(ValueKind kind) => kind switch
    {
        ValueKind.Bool => "a condition (true/false)",
        ValueKind.Number => "a number",
        ValueKind.String => "a text",
        ValueKind.Instant => "an instant",
        ValueKind.Duration => "a duration",
        ValueKind.StringSet => "a set",
        _ => "a list",
    };
}
