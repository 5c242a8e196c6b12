namespace Streaming.Connectors.Datasets;

/// <summary>One event ready to produce: topic, key (the customer id) and the UTF-8 JSON value.</summary>
public sealed record ReplayRecord(string Topic, string Key, byte[] Value);

/// <summary>The datasets <c>streaming replay</c> knows (CONTRACTS.md §4).</summary>
public static class Datasets
{
    public const string OnlineRetail = "online-retail";
    public const string Taobao = "taobao";
    public const string BankCallcenter = "bank-callcenter";

    public static readonly IReadOnlyList<string> Names = [OnlineRetail, Taobao, BankCallcenter];

    /// <summary>The file each dataset reads by default, inside the data directory.</summary>
    public static string DefaultFile(string dataset) => dataset switch
    {
        OnlineRetail => "online_retail_2010_2011.csv.gz",
        Taobao => "taobao_userbehavior_20171126_0100_0255utc.csv.gz",
        BankCallcenter => "anonymous_bank_callcenter_1999_jan_feb.tsv.gz",
        _ => throw new ArgumentException($"unknown dataset '{dataset}'; expected one of {string.Join(", ", Names)}", nameof(dataset)),
    };

    /// <summary>Streams the events of <paramref name="dataset"/> from <paramref name="file"/> (gzip).</summary>
    public static IEnumerable<ReplayRecord> Read(string dataset, DatasetFile file) => dataset switch
    {
        OnlineRetail => OnlineRetailReader.Read(file),
        Taobao => TaobaoReader.Read(file),
        BankCallcenter => BankCallcenterReader.Read(file),
        _ => throw new ArgumentException($"unknown dataset '{dataset}'; expected one of {string.Join(", ", Names)}", nameof(dataset)),
    };
}
