namespace Streaming.Engine.Events;

/// <summary>Names of the Kafka topics of the public contract (CONTRACTS.md §2).</summary>
public static class Topics
{
    public const string Clickstream = "clickstream";
    public const string Orders = "orders";
    public const string Callcenter = "callcenter";
    public const string CustomerUpdates = "customer-updates";
    public const string OutreachOutcomes = "outreach-outcomes";
    public const string CustomerTriggers = "customer-triggers";
    public const string DeadLetters = "dead-letters";

    /// <summary>The input topics, in a fixed order (their index is the <see cref="InputTopic"/> value).</summary>
    public static readonly IReadOnlyList<string> Inputs = [Clickstream, Orders, Callcenter, CustomerUpdates, OutreachOutcomes];

    /// <summary>The output topics.</summary>
    public static readonly IReadOnlyList<string> Outputs = [CustomerTriggers, DeadLetters];

    /// <summary>Every topic the engine uses.</summary>
    public static readonly IReadOnlyList<string> All = [.. Inputs, .. Outputs];

    public static bool TryParseInput(string name, out InputTopic topic)
    {
        for (var i = 0; i < Inputs.Count; i++)
        {
            if (string.Equals(Inputs[i], name, StringComparison.Ordinal))
            {
                topic = (InputTopic)i;
                return true;
            }
        }

        topic = default;
        return false;
    }

    public static string Name(this InputTopic topic) => Inputs[(int)topic];
}

/// <summary>An input topic. Persisted values: never renumber.</summary>
public enum InputTopic : byte
{
    Clickstream = 0,
    Orders = 1,
    Callcenter = 2,
    CustomerUpdates = 3,
    OutreachOutcomes = 4,
}
