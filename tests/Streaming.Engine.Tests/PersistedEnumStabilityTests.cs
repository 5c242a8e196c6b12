using Streaming.Engine.Events;
using Streaming.Engine.Model;

namespace Streaming.Engine.Tests;

/// <summary>Values that are persisted or exchanged must never be renumbered or reordered.</summary>
public sealed class PersistedEnumStabilityTests
{
    [Theory]
    [InlineData(EventType.OrderPlaced, 1)]
    [InlineData(EventType.OrderCancelled, 2)]
    [InlineData(EventType.PageView, 3)]
    [InlineData(EventType.ProductView, 4)]
    [InlineData(EventType.AddToCart, 5)]
    [InlineData(EventType.Favorite, 6)]
    [InlineData(EventType.Search, 7)]
    [InlineData(EventType.Login, 8)]
    [InlineData(EventType.CallCompleted, 9)]
    [InlineData(EventType.CallAbandoned, 10)]
    [InlineData(EventType.Attributes, 11)]
    [InlineData(EventType.Consent, 12)]
    [InlineData(EventType.OutreachOutcome, 13)]
    public void Event_type_values_are_frozen(EventType type, int expected)
    {
        Assert.Equal(expected, (int)type);
    }

    [Fact]
    public void Profile_field_values_are_frozen()
    {
        // Indexes of CustomerState.FieldTicks, written in this order by state codec version 4.
        (ProfileField Field, byte Value)[] expected =
        [
            (ProfileField.Birthday, 0), (ProfileField.TimeZone, 1), (ProfileField.Country, 2), (ProfileField.ConsentVoice, 3),
            (ProfileField.ConsentSms, 4), (ProfileField.ConsentEmail, 5), (ProfileField.DoNotContact, 6),
        ];

        Assert.Equal(expected.Select(e => e.Value), expected.Select(e => (byte)e.Field));
        Assert.Equal(expected.Length, Enum.GetValues<ProfileField>().Length);
        Assert.Equal(7, ProfileFields.Count);
    }

    [Fact]
    public void Event_type_has_exactly_the_frozen_members()
    {
        string[] expected =
        [
            "OrderPlaced", "OrderCancelled", "PageView", "ProductView", "AddToCart", "Favorite", "Search", "Login",
            "CallCompleted", "CallAbandoned", "Attributes", "Consent", "OutreachOutcome",
        ];

        Assert.Equal(expected, Enum.GetNames<EventType>());
        Assert.Equal(Enumerable.Range(1, 13).Select(i => (byte)i), Enum.GetValues<EventType>().Select(v => (byte)v));
        Assert.Equal(typeof(byte), Enum.GetUnderlyingType(typeof(EventType)));
    }

    [Theory]
    [InlineData(InputTopic.Clickstream, 0)]
    [InlineData(InputTopic.Orders, 1)]
    [InlineData(InputTopic.Callcenter, 2)]
    [InlineData(InputTopic.CustomerUpdates, 3)]
    [InlineData(InputTopic.OutreachOutcomes, 4)]
    public void Input_topic_values_are_frozen(InputTopic topic, int expected)
    {
        Assert.Equal(expected, (int)topic);
    }

    [Fact]
    public void Input_topic_has_exactly_the_frozen_members()
    {
        Assert.Equal(["Clickstream", "Orders", "Callcenter", "CustomerUpdates", "OutreachOutcomes"], Enum.GetNames<InputTopic>());
        Assert.Equal(typeof(byte), Enum.GetUnderlyingType(typeof(InputTopic)));
    }

    [Fact]
    public void Topic_names_and_input_order_are_frozen()
    {
        Assert.Equal(["clickstream", "orders", "callcenter", "customer-updates", "outreach-outcomes"], Topics.Inputs);
        Assert.Equal(["customer-triggers", "dead-letters"], Topics.Outputs);
        Assert.Equal(
            ["clickstream", "orders", "callcenter", "customer-updates", "outreach-outcomes", "customer-triggers", "dead-letters"],
            Topics.All);
    }

    [Theory]
    [InlineData(InputTopic.Clickstream, "clickstream")]
    [InlineData(InputTopic.Orders, "orders")]
    [InlineData(InputTopic.Callcenter, "callcenter")]
    [InlineData(InputTopic.CustomerUpdates, "customer-updates")]
    [InlineData(InputTopic.OutreachOutcomes, "outreach-outcomes")]
    public void Input_topic_maps_to_its_name_and_back(InputTopic topic, string name)
    {
        Assert.Equal(name, topic.Name());
        Assert.True(Topics.TryParseInput(name, out var parsed));
        Assert.Equal(topic, parsed);
    }

    [Theory]
    [InlineData("customer-triggers")]
    [InlineData("dead-letters")]
    [InlineData("Orders")]
    [InlineData("")]
    public void Non_input_topic_names_do_not_parse(string name)
    {
        Assert.False(Topics.TryParseInput(name, out _));
    }
}
