using Akka.Actor;
using Akka.Configuration;
using Akka.Dispatch;
using Akka.Dispatch.MessageQueues;

namespace Streaming.Runtime.Customers;

/// <summary>
/// The mailbox of customer entities: Akka's unbounded double-ended mailbox semantics (what a persistent actor's stash
/// requires) over <see cref="CustomerMessageQueue"/>, a queue that costs almost nothing while empty. Configured by
/// <see cref="Hocon"/> under <see cref="Id"/>; <see cref="CustomerEntity.Props"/> asks for it.
/// </summary>
/// <remarks>
/// Akka's own deque mailbox wraps a <see cref="System.Collections.Concurrent.ConcurrentQueue{T}"/>, whose first segment
/// holds 32 envelopes: about 1 KB allocated and kept for every entity, most of which hold no message most of the time.
/// With one entity per customer that was the largest single item of a cached customer's memory (a heap dump of
/// <c>bench --core</c> at the end of its core pass).
/// </remarks>
public sealed class CustomerMailbox : MailboxType, IProducesMessageQueue<CustomerMessageQueue>
{
    /// <summary>The configuration path of the mailbox (as <c>Props.WithMailbox</c> names it).</summary>
    public const string Id = "streaming.customer-mailbox";

    /// <summary>HOCON that defines <see cref="Id"/>; every actor system that starts customer entities needs it.</summary>
    public const string Hocon = Id + """
         {
          mailbox-type = "Streaming.Runtime.Customers.CustomerMailbox, Streaming.Runtime"
        }
        """;

    /// <summary>Called by Akka with the system's settings and the mailbox's configuration section.</summary>
    public CustomerMailbox(Settings settings, Config config)
        : base(settings, config)
    {
    }

    /// <inheritdoc />
    public override IMessageQueue Create(IActorRef owner, ActorSystem system) => new CustomerMessageQueue();
}

/// <summary>
/// An unbounded message queue for one actor: any thread enqueues, the actor's own thread dequeues and puts stashed
/// messages back in front (<see cref="EnqueueFirst"/>). A ring buffer under a lock, allocated at the first message
/// (4 envelopes, doubling when full) and never shrunk; messages put back in front go to a stack made at first use.
/// </summary>
public sealed class CustomerMessageQueue : IMessageQueue, IUnboundedDequeBasedMessageQueueSemantics
{
    private const int FirstCapacity = 4;

    private readonly object _gate = new();
    private Envelope[] _ring = [];
    private int _head;
    private int _queued;

    /// <summary>Only the actor's thread touches it (as in Akka's <see cref="DequeWrapperMessageQueue"/>).</summary>
    private Stack<Envelope>? _front;

    /// <inheritdoc />
    public bool HasMessages => Count > 0;

    /// <inheritdoc />
    public int Count => Volatile.Read(ref _queued) + (_front?.Count ?? 0);

    /// <inheritdoc />
    public void Enqueue(IActorRef receiver, Envelope envelope)
    {
        lock (_gate)
        {
            if (_queued == _ring.Length)
            {
                Grow();
            }

            _ring[(_head + _queued) % _ring.Length] = envelope;
            Volatile.Write(ref _queued, _queued + 1);
        }
    }

    /// <inheritdoc />
    public bool TryDequeue(out Envelope envelope)
    {
        if (_front is { Count: > 0 } front)
        {
            envelope = front.Pop();
            return true;
        }

        lock (_gate)
        {
            if (_queued == 0)
            {
                envelope = default;
                return false;
            }

            envelope = _ring[_head];
            _ring[_head] = default;
            _head = (_head + 1) % _ring.Length;
            Volatile.Write(ref _queued, _queued - 1);
            return true;
        }
    }

    /// <inheritdoc />
    public void EnqueueFirst(Envelope envelope) => (_front ??= new Stack<Envelope>()).Push(envelope);

    /// <inheritdoc />
    public void CleanUp(IActorRef owner, IMessageQueue deadletters)
    {
        while (TryDequeue(out var envelope))
        {
            deadletters.Enqueue(owner, envelope);
        }
    }

    private void Grow()
    {
        var grown = new Envelope[Math.Max(FirstCapacity, _ring.Length * 2)];
        for (var i = 0; i < _queued; i++)
        {
            grown[i] = _ring[(_head + i) % _ring.Length];
        }

        _ring = grown;
        _head = 0;
    }
}
