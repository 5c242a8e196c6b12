namespace Streaming.Runtime.Telemetry;

/// <summary>The persistent actors of the runtime, as metrics label them.</summary>
public enum PersistentActorKind
{
    /// <summary>A customer entity (journal events: the customer's state per checkpoint).</summary>
    Customer,

    /// <summary>A partition coordinator (journal events: checkpoints and known customers).</summary>
    Partition,
}

/// <summary>How a journal write ended when it did not succeed (Akka.Persistence's two failure callbacks).</summary>
public enum PersistenceFailure
{
    /// <summary>The journal could not write (<c>OnPersistFailure</c>: the store is unreachable or failed); Akka stops the actor.</summary>
    Failed,

    /// <summary>The journal refused the event (<c>OnPersistRejected</c>: e.g. it could not be serialized); the actor goes on.</summary>
    Rejected,
}

/// <summary>
/// Receives what persistent actors measure about their journal: write latency, recovery time and failures. The runtime
/// knows no metrics library; the host turns these into instruments. Called on actor threads, many at once: an
/// implementation must be thread-safe and must not block.
/// </summary>
public interface IPersistenceObserver
{
    /// <summary>A journal write of <paramref name="actor"/> succeeded <paramref name="latency"/> after it was asked for.</summary>
    void Persisted(PersistentActorKind actor, TimeSpan latency);

    /// <summary>
    /// An actor of kind <paramref name="actor"/> finished recovering, <paramref name="duration"/> after it started
    /// (journal replay included; a customer its partition never saved recovers without a query).
    /// </summary>
    void Recovered(PersistentActorKind actor, TimeSpan duration);

    /// <summary>A journal write of <paramref name="actor"/> failed as <paramref name="failure"/> says.</summary>
    void Failed(PersistentActorKind actor, PersistenceFailure failure);
}
