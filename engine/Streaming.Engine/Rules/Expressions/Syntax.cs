using System.Globalization;

namespace Streaming.Engine.Rules.Expressions;

/// <summary>A problem in an expression, at a character offset of its text.</summary>
public sealed class ExpressionException(int offset, string message) : Exception(message)
{
    public int Offset { get; } = offset;
}

/// <summary>The parsed form of a rule expression. Every node keeps the offset of its first character.</summary>
public abstract record Syntax(int Offset);

public sealed record NumberLiteral(int Offset, decimal Value) : Syntax(Offset);

public sealed record DurationLiteral(int Offset, TimeSpan Value, string Text) : Syntax(Offset);

public sealed record StringLiteral(int Offset, string Value) : Syntax(Offset);

public sealed record BoolLiteral(int Offset, bool Value) : Syntax(Offset);

public sealed record ListLiteral(int Offset, IReadOnlyList<Syntax> Items) : Syntax(Offset);

/// <summary>A dotted name such as <c>orders.count</c>, or <c>now</c>.</summary>
public sealed record PathSyntax(int Offset, string Path) : Syntax(Offset);

public sealed record CallSyntax(int Offset, string Function, IReadOnlyList<Syntax> Arguments) : Syntax(Offset);

public sealed record UnarySyntax(int Offset, string Operator, Syntax Operand) : Syntax(Offset);

public sealed record BinarySyntax(int Offset, string Operator, Syntax Left, Syntax Right) : Syntax(Offset);

/// <summary>
/// Recursive-descent parser of the rule expression language:
/// <code>
/// or      := and (("||" | "or") and)*
/// and     := not (("&amp;&amp;" | "and") not)*
/// not     := ("!" | "not") not | compare
/// compare := sum (("==" | "!=" | "&lt;" | "&lt;=" | "&gt;" | "&gt;=") sum | "not"? "in" sum)?
/// sum     := product (("+" | "-") product)*
/// product := unary (("*" | "/") unary)*
/// unary   := "-" unary | primary
/// primary := number | duration | string | true | false | path | name "(" args ")" | "(" or ")" | "[" items "]"
/// </code>
/// </summary>
public sealed class ExpressionParser
{
    private readonly string _text;
    private readonly List<Token> _tokens;
    private int _next;

    private ExpressionParser(string text)
    {
        _text = text;
        _tokens = Lex(text);
    }

    /// <exception cref="ExpressionException">The text is not a well-formed expression.</exception>
    public static Syntax Parse(string text)
    {
        var parser = new ExpressionParser(text);
        var result = parser.ParseOr();
        var rest = parser.Peek();
        if (rest.Kind != TokenKind.End)
        {
            throw new ExpressionException(rest.Offset, $"unexpected '{rest.Text}' after the end of the expression");
        }

        return result;
    }

    private Syntax ParseOr()
    {
        var left = ParseAnd();
        while (Accept("||") || Accept("or"))
        {
            var op = Previous;
            left = new BinarySyntax(op.Offset, "||", left, ParseAnd());
        }

        return left;
    }

    private Syntax ParseAnd()
    {
        var left = ParseNot();
        while (Accept("&&") || Accept("and"))
        {
            var op = Previous;
            left = new BinarySyntax(op.Offset, "&&", left, ParseNot());
        }

        return left;
    }

    private Syntax ParseNot()
    {
        if (Accept("!") || Accept("not"))
        {
            var op = Previous;
            return new UnarySyntax(op.Offset, "!", ParseNot());
        }

        return ParseCompare();
    }

    private Syntax ParseCompare()
    {
        var left = ParseSum();
        var token = Peek();
        if (token.Kind == TokenKind.Symbol && token.Text is "==" or "!=" or "<" or "<=" or ">" or ">=")
        {
            _next++;
            return new BinarySyntax(token.Offset, token.Text, left, ParseSum());
        }

        if (Accept("in"))
        {
            return new BinarySyntax(Previous.Offset, "in", left, ParseSum());
        }

        if (token.Kind == TokenKind.Name && token.Text == "not" && PeekAt(1) is { Kind: TokenKind.Name, Text: "in" })
        {
            _next += 2;
            return new UnarySyntax(token.Offset, "!", new BinarySyntax(token.Offset, "in", left, ParseSum()));
        }

        return left;
    }

    private Syntax ParseSum()
    {
        var left = ParseProduct();
        while (Accept("+") || Accept("-"))
        {
            var op = Previous;
            left = new BinarySyntax(op.Offset, op.Text, left, ParseProduct());
        }

        return left;
    }

    private Syntax ParseProduct()
    {
        var left = ParseUnary();
        while (Accept("*") || Accept("/"))
        {
            var op = Previous;
            left = new BinarySyntax(op.Offset, op.Text, left, ParseUnary());
        }

        return left;
    }

    private Syntax ParseUnary()
    {
        if (Accept("-"))
        {
            var op = Previous;
            return new UnarySyntax(op.Offset, "-", ParseUnary());
        }

        return ParsePrimary();
    }

    private Syntax ParsePrimary()
    {
        var token = Next();
        switch (token.Kind)
        {
            case TokenKind.Number:
                return new NumberLiteral(token.Offset, decimal.Parse(token.Text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture));
            case TokenKind.Duration:
                return new DurationLiteral(token.Offset, ParseDuration(token), token.Text);
            case TokenKind.String:
                return new StringLiteral(token.Offset, token.Text);
            case TokenKind.Name when token.Text is "true" or "false":
                return new BoolLiteral(token.Offset, token.Text == "true");
            case TokenKind.Name when Accept("("):
                return new CallSyntax(token.Offset, token.Text, ParseItems(")"));
            case TokenKind.Name when token.Text is "and" or "or" or "not" or "in":
                throw new ExpressionException(token.Offset, $"'{token.Text}' needs an operand before it");
            case TokenKind.Name:
                return new PathSyntax(token.Offset, token.Text);
            case TokenKind.Symbol when token.Text == "(":
                var inner = ParseOr();
                Expect(")");
                return inner;
            case TokenKind.Symbol when token.Text == "[":
                return new ListLiteral(token.Offset, ParseItems("]"));
            case TokenKind.End:
                throw new ExpressionException(token.Offset, "the expression ends too early");
            default:
                throw new ExpressionException(token.Offset, $"unexpected '{token.Text}'");
        }
    }

    private List<Syntax> ParseItems(string close)
    {
        var items = new List<Syntax>();
        if (Accept(close))
        {
            return items;
        }

        do
        {
            items.Add(ParseOr());
        }
        while (Accept(","));

        Expect(close);
        return items;
    }

    private static TimeSpan ParseDuration(Token token)
    {
        var number = long.Parse(token.Text.AsSpan(0, token.Text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture);
        var unit = token.Text[^1];
        try
        {
            return unit switch
            {
                'd' => TimeSpan.FromDays(number),
                'h' => TimeSpan.FromHours(number),
                'm' => TimeSpan.FromMinutes(number),
                _ => TimeSpan.FromSeconds(number),
            };
        }
        catch (OverflowException)
        {
            throw new ExpressionException(token.Offset, $"duration '{token.Text}' is too long");
        }
    }

    private Token Previous => _tokens[_next - 1];

    private Token Peek() => _tokens[_next];

    private Token? PeekAt(int ahead) => _next + ahead < _tokens.Count ? _tokens[_next + ahead] : null;

    private Token Next()
    {
        var token = _tokens[_next];
        if (token.Kind != TokenKind.End)
        {
            _next++;
        }

        return token;
    }

    private bool Accept(string text)
    {
        var token = _tokens[_next];
        if (token.Kind is TokenKind.Symbol or TokenKind.Name && token.Text == text)
        {
            _next++;
            return true;
        }

        return false;
    }

    private void Expect(string text)
    {
        if (!Accept(text))
        {
            var token = Peek();
            var found = token.Kind == TokenKind.End ? "the end" : $"'{token.Text}'";
            throw new ExpressionException(token.Kind == TokenKind.End ? _text.Length : token.Offset, $"expected '{text}' but found {found}");
        }
    }

    private enum TokenKind
    {
        Number,
        Duration,
        String,
        Name,
        Symbol,
        End,
    }

    private readonly record struct Token(TokenKind Kind, string Text, int Offset);

    private static List<Token> Lex(string text)
    {
        var tokens = new List<Token>();
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
                continue;
            }

            var start = i;
            if (char.IsAsciiDigit(c))
            {
                while (i < text.Length && char.IsAsciiDigit(text[i]))
                {
                    i++;
                }

                if (i < text.Length && text[i] is 'd' or 'h' or 'm' or 's' && (i + 1 == text.Length || !IsNameChar(text[i + 1])))
                {
                    i++;
                    tokens.Add(new Token(TokenKind.Duration, text[start..i], start));
                    continue;
                }

                if (i + 1 < text.Length && text[i] == '.' && char.IsAsciiDigit(text[i + 1]))
                {
                    i++;
                    while (i < text.Length && char.IsAsciiDigit(text[i]))
                    {
                        i++;
                    }
                }

                if (i < text.Length && IsNameChar(text[i]))
                {
                    throw new ExpressionException(start, $"'{text[start..(i + 1)]}' is not a number or a duration (durations are like 30d, 12h, 15m, 10s)");
                }

                tokens.Add(new Token(TokenKind.Number, text[start..i], start));
                continue;
            }

            if (char.IsAsciiLetter(c) || c == '_')
            {
                while (i < text.Length && (IsNameChar(text[i]) || (text[i] == '.' && i + 1 < text.Length && (char.IsAsciiLetter(text[i + 1]) || text[i + 1] == '_'))))
                {
                    i++;
                }

                tokens.Add(new Token(TokenKind.Name, text[start..i], start));
                continue;
            }

            if (c is '\'' or '"')
            {
                i++;
                while (i < text.Length && text[i] != c)
                {
                    i++;
                }

                if (i == text.Length)
                {
                    throw new ExpressionException(start, "this string is not closed");
                }

                tokens.Add(new Token(TokenKind.String, text[(start + 1)..i], start));
                i++;
                continue;
            }

            var two = i + 1 < text.Length ? text.Substring(i, 2) : null;
            if (two is "==" or "!=" or "<=" or ">=" or "&&" or "||")
            {
                tokens.Add(new Token(TokenKind.Symbol, two, start));
                i += 2;
                continue;
            }

            if (c is '<' or '>' or '!' or '+' or '-' or '*' or '/' or '(' or ')' or '[' or ']' or ',')
            {
                tokens.Add(new Token(TokenKind.Symbol, c.ToString(), start));
                i++;
                continue;
            }

            throw new ExpressionException(start, c == '=' ? "use '==' to compare" : $"unexpected character '{c}'");
        }

        tokens.Add(new Token(TokenKind.End, "", text.Length));
        return tokens;
    }

    private static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';
}
