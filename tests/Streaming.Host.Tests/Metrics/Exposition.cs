namespace Streaming.Host.Tests.Metrics;

/// <summary>A text exposition read back for assertions: samples by series (<c>name{labels}</c>) and the comment lines.</summary>
internal sealed class Exposition
{
    private readonly Dictionary<string, string> _samples = new(StringComparer.Ordinal);
    private readonly List<string> _comments = [];

    private Exposition(string text)
    {
        Text = text;
        Assert.DoesNotContain('\r', text);
        Assert.True(text.Length == 0 || text.EndsWith('\n'), "an exposition ends with a line feed");
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith('#'))
            {
                _comments.Add(line);
                continue;
            }

            // The value is the last token; label values may hold spaces, the value never does.
            var space = line.LastIndexOf(' ');
            Assert.True(space > 0, "sample line without a value: " + line);
            Assert.True(_samples.TryAdd(line[..space], line[(space + 1)..]), "duplicate series: " + line);
        }
    }

    public string Text { get; }

    public IReadOnlyDictionary<string, string> Samples => _samples;

    public IReadOnlyList<string> Comments => _comments;

    public static Exposition Parse(string text) => new(text);

    /// <summary>The value of one series; fails with the whole exposition when it is absent.</summary>
    public string this[string series] =>
        _samples.TryGetValue(series, out var value) ? value : throw new Xunit.Sdk.XunitException($"no series {series} in:\n{Text}");

    public IEnumerable<string> SeriesOf(string family) =>
        _samples.Keys.Where(k => k == family || k.StartsWith(family + "{", StringComparison.Ordinal));

    public int CountComments(string line) => _comments.Count(c => c == line);
}
