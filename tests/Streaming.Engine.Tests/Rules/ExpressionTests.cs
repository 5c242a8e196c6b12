using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Engine.Rules.Expressions;
using static Streaming.Engine.Tests.TestEvents;

namespace Streaming.Engine.Tests.Rules;

public sealed class ExpressionTests
{
    private static readonly ExpressionCompiler Compiler = new(new FieldCatalog(["lifecycle", "aarrr", "ladder"]));

    private static readonly long Day = TimeSpan.TicksPerDay;

    private static EvalContext At(CustomerState state, DateTimeOffset now)
    {
        var ctx = new EvalContext();
        ctx.Reset(state, evt: null, now.UtcTicks);
        return ctx;
    }

    private static CustomerState OrderedAt(DateTimeOffset at, int count = 1) => new("c")
    {
        OrderCount = count,
        FirstOrderTicks = at.UtcTicks,
        LastOrderTicks = at.UtcTicks,
        GrossAmount = 100m,
    };

    [Theory]
    [InlineData("orders.count + 2 * 3 == 7", true)]
    [InlineData("(orders.count + 2) * 3 == 9", true)]
    [InlineData("orders.net / 3 > 33.33 and orders.net / 3 < 33.34", true)]
    [InlineData("orders.net / 0 > 0 or orders.net / 0 <= 0", false)] // division by zero is missing: every comparison is false
    [InlineData("not orders.count == 2", true)]
    [InlineData("customer.country in ['FR', 'DE']", true)]
    [InlineData("customer.country not in ['FR', 'DE']", false)]
    [InlineData("orders.count in [1, 2]", true)]
    [InlineData("'vip' in tags && !('lapsed' in tags)", true)]
    [InlineData("min(orders.count, 5) + max(1, 2) + floor(2.9) == 5", true)]
    [InlineData("if(orders.count > 0, 'buyer', 'prospect') == 'buyer'", true)]
    [InlineData("event.type == 'timer'", true)]
    [InlineData("event.amount > 0", false)] // no event: missing
    [InlineData("orders.lastAt + 1d > orders.firstAt", true)]
    [InlineData("orders.lastAt - orders.firstAt == 0d", true)]
    public void Expressions_evaluate_with_the_documented_semantics(string text, bool expected)
    {
        var state = OrderedAt(T0);
        state.Country = "DE";
        state.Tags = ["vip"];

        Assert.Equal(expected, Compiler.CompileBool(text).Evaluate(At(state, T0)));
    }

    [Theory]
    [InlineData("orders.cont > 1", 0, "unknown field 'orders.cont' (did you mean 'orders.count'?)")]
    [InlineData("orders.count > 'a'", 13, "cannot compare a number with a text")]
    [InlineData("orders.count >", 14, "the expression ends too early")]
    [InlineData("orders.count = 1", 13, "use '==' to compare")]
    [InlineData("now > 3", 4, "cannot compare an instant with a number")]
    [InlineData("customer.country < 'a'", 17, "a text can only be compared with == and !=")]
    [InlineData("count_in(orders.net, 30d) > 1", 9, "'orders.net' is an amount: use sum_in")]
    [InlineData("count_in(orders, 12h) > 1", 17, "a window is a whole number of days written out, such as 30d")]
    [InlineData("(now - orders.lastAt) + 1d > 3d", 5, "compare 'now' or 'now - x' directly with a fixed value (for example now - orders.lastAt > 30d)")]
    [InlineData("frobnicate(1)", 0, "unknown function 'frobnicate' (known: days_since, hours_since, count_in, sum_in, birthday_at, min, max, floor, if)")]
    [InlineData("orders.count in tags", 16, "'in' needs a list such as ['a', 'b'] or a set such as tags on its right")]
    [InlineData("12x > 1", 0, "'12x' is not a number or a duration (durations are like 30d, 12h, 15m, 10s)")]
    [InlineData("'open > 1", 0, "this string is not closed")]
    public void Errors_name_the_offending_offset(string text, int offset, string message)
    {
        var e = Assert.Throws<ExpressionException>(() => Compiler.CompileBool(text));

        Assert.Equal(message, e.Message);
        Assert.Equal(offset, e.Offset);
    }

    [Fact]
    public void A_number_where_a_condition_is_needed_is_a_type_error()
    {
        var e = Assert.Throws<ExpressionException>(() => Compiler.CompileBool("orders.count + 1"));

        Assert.Contains("is a number, but a condition (true/false) is needed", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    // days_since(x) > 90 becomes true once 91 whole days have passed.
    [InlineData("days_since(orders.lastAt) > 90", 10, false, 91)]
    // <= 90 is true now and false from 91 whole days on.
    [InlineData("rfm.recencyDays <= 90", 10, true, 91)]
    // >= 30 flips at exactly 30 days; < 30 likewise.
    [InlineData("days_since(orders.firstAt) >= 30", 0, false, 30)]
    [InlineData("days_since(orders.firstAt) < 30", 29, true, 30)]
    // The monotone side on the right is mirrored: 90 < days_since(x) is days_since(x) > 90.
    [InlineData("90 < days_since(orders.lastAt)", 0, false, 91)]
    // Already true and can only stay true: no wake-up.
    [InlineData("days_since(orders.lastAt) > 5", 10, true, -1)]
    public void Time_comparisons_report_the_exact_instant_they_flip(string text, int daysLater, bool expected, int flipDay)
    {
        var state = OrderedAt(T0);
        var ctx = At(state, T0.AddDays(daysLater));

        Assert.Equal(expected, Compiler.CompileBool(text).Evaluate(ctx));
        Assert.Equal(flipDay < 0 ? long.MaxValue : T0.UtcTicks + (flipDay * Day), ctx.Wake);

        if (flipDay >= 0)
        {
            // Just before the flip the result is unchanged; at the flip it has changed.
            Assert.Equal(expected, Compiler.CompileBool(text).Evaluate(At(state, new DateTimeOffset(ctx.Wake - 1, TimeSpan.Zero))));
            Assert.NotEqual(expected, Compiler.CompileBool(text).Evaluate(At(state, new DateTimeOffset(ctx.Wake, TimeSpan.Zero))));
        }
    }

    [Fact]
    public void Elapsed_durations_flip_one_tick_after_the_threshold()
    {
        var ctx = At(OrderedAt(T0), T0.AddDays(1));

        Assert.False(Compiler.CompileBool("now - orders.lastAt > 30d").Evaluate(ctx));
        Assert.Equal(T0.AddDays(30).UtcTicks + 1, ctx.Wake);
    }

    [Fact]
    public void Windows_count_whole_utc_days_and_wake_when_the_oldest_day_leaves()
    {
        var state = new CustomerState("c");
        var day = (int)(T0.UtcTicks / Day);
        state.Days.At(day - 3).Orders = 2;
        state.Days.At(day - 10).Orders = 5; // outside a 7-day window
        state.Days.At(day).Orders = 1;
        var ctx = At(state, T0);

        Assert.Equal(3m, Compiler.CompileNumber("count_in(orders, 7d)").Evaluate(ctx));
        // The window holds today and the 6 days before; day-3 leaves it at the start of day+4.
        Assert.Equal((long)(day + 4) * Day, ctx.Wake);
    }

    [Fact]
    public void Arithmetic_on_days_since_wakes_at_each_whole_day()
    {
        var ctx = At(OrderedAt(T0), T0.AddHours(36));

        Assert.Equal(3m, Compiler.CompileNumber("days_since(orders.lastAt) * 2 + 1").Evaluate(ctx));
        Assert.Equal(T0.AddDays(2).UtcTicks, ctx.Wake);
    }

    [Fact]
    public void Only_the_taken_branch_reports_its_wake_up()
    {
        var state = OrderedAt(T0);
        var ctx = At(state, T0.AddDays(1));

        var value = Compiler.CompileNumber("if(orders.count == 0, days_since(orders.lastAt), 7)").Evaluate(ctx);

        Assert.Equal(7m, value);
        Assert.Equal(long.MaxValue, ctx.Wake);
    }

    [Fact]
    public void Inputs_name_what_an_expression_reads()
    {
        var reads = Compiler.CompileBool("count_in(calls.abandoned, 30d) >= 1 || lifecycle.stage == 'new'").Reads;

        Assert.Equal(Inputs.Calls | Inputs.Time | Inputs.Stages, reads);
    }
}
