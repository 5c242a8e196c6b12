using Streaming.Connectors.Datasets;

namespace Streaming.Connectors.Tests;

public sealed class CsvTests
{
    private static List<string> Split(string line, char delimiter = ',')
    {
        var fields = new List<string> { "left over from a previous line" };
        Csv.Split(line, delimiter, fields);
        return fields;
    }

    [Fact]
    public void Plain_fields()
    {
        Assert.Equal(["a", "b", "c"], Split("a,b,c"));
    }

    [Fact]
    public void Quoted_field_keeps_commas()
    {
        Assert.Equal(["536381", "AIRLINE LOUNGE,METAL SIGN", "2"], Split("536381,\"AIRLINE LOUNGE,METAL SIGN\",2"));
    }

    [Fact]
    public void Doubled_quotes_inside_quotes_become_one_quote()
    {
        Assert.Equal(["x", "RECORD FRAME 7\" SINGLE SIZE ", "48"], Split("x,\"RECORD FRAME 7\"\" SINGLE SIZE \",48"));
        Assert.Equal(["\"", "say \"hi\", twice"], Split("\"\"\"\",\"say \"\"hi\"\", twice\""));
    }

    [Fact]
    public void Empty_fields_are_kept()
    {
        Assert.Equal(["a", "", "", "d"], Split("a,,,d"));
        Assert.Equal(["", "b"], Split(",b"));
        Assert.Equal(["", "x"], Split("\"\",x"));
    }

    [Fact]
    public void Trailing_delimiter_gives_a_trailing_empty_field()
    {
        Assert.Equal(["a", "b", ""], Split("a,b,"));
        Assert.Equal(["a", "quoted", ""], Split("a,\"quoted\","));
        Assert.Equal(["a", "", ""], Split("a,,"));
    }

    [Fact]
    public void Empty_line_is_one_empty_field()
    {
        Assert.Equal([""], Split(""));
    }

    [Fact]
    public void Other_delimiters_leave_commas_alone()
    {
        Assert.Equal(["AA0101", "33116", "a,b", ""], Split("AA0101\t33116\ta,b\t", '\t'));
    }

    [Theory]
    [InlineData("536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom")]
    [InlineData("536394,21506,\"FANCY FONT BIRTHDAY CARD, \",24,2010-12-01 10:39:00,0.42,13408.0,United Kingdom")]
    [InlineData("a,\"b\"\"c\"\"\",,\"\",e,")]
    public void Agrees_with_an_independent_splitter(string line)
    {
        Assert.Equal(ReferenceCsv.Split(line, ','), Split(line));
    }
}
