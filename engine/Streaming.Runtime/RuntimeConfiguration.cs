using Streaming.Runtime.Customers;
using Streaming.Runtime.Serialization;

namespace Streaming.Runtime;

/// <summary>
/// The actor-system configuration that every system hosting the runtime's actors needs, whatever its journal: the
/// serializers and their bindings (<see cref="RuntimeSerialization"/>) and the customer entities' mailbox
/// (<see cref="CustomerMailbox"/>). Without it, starting a customer entity fails with Akka's
/// <c>ConfigurationException</c> ("Mailbox Type [streaming.customer-mailbox] not configured").
/// </summary>
public static class RuntimeConfiguration
{
    /// <summary>HOCON: <see cref="RuntimeSerialization.Hocon"/> and <see cref="CustomerMailbox.Hocon"/>.</summary>
    public const string Hocon = RuntimeSerialization.Hocon + "\n" + CustomerMailbox.Hocon;
}
