using Akka.Actor;
using Akka.Dispatch.MessageQueues;
using Streaming.Engine.Rules;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Rules;
using Xunit.Abstractions;

namespace Streaming.Runtime.Tests;

/// <summary>
/// The customer entities' message queue against a plain model (a FIFO queue behind a stack of messages put back in
/// front, which is what Akka's own deque mailbox does), under concurrent producers, and wired into entities.
/// </summary>
public sealed class CustomerMailboxTests(ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit(CustomerEntityTests.RuntimeConfig, nameof(CustomerMailboxTests), output)
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Random_enqueues_dequeues_and_messages_put_back_in_front_come_out_as_the_model_says(int seed)
    {
        var random = new Random(seed);
        var queue = new CustomerMessageQueue();
        var modelQueue = new Queue<int>();
        var modelFront = new Stack<int>();
        var next = 0;
        for (var step = 0; step < 5_000; step++)
        {
            var roll = random.Next(10);
            if (roll < 5)
            {
                // Bursts, so that the ring wraps around and grows several times.
                for (var i = random.Next(1, 12); i > 0; i--)
                {
                    queue.Enqueue(ActorRefs.Nobody, new Envelope(next, ActorRefs.NoSender));
                    modelQueue.Enqueue(next++);
                }
            }
            else if (roll < 6)
            {
                queue.EnqueueFirst(new Envelope(next, ActorRefs.NoSender));
                modelFront.Push(next++);
            }
            else
            {
                var expected = modelFront.Count > 0 ? modelFront.Pop() : modelQueue.Count > 0 ? modelQueue.Dequeue() : (int?)null;
                var got = queue.TryDequeue(out var envelope);
                Assert.Equal(expected is not null, got);
                if (got)
                {
                    Assert.Equal(expected, (int)envelope.Message);
                }
            }

            Assert.Equal(modelQueue.Count + modelFront.Count, queue.Count);
            Assert.Equal(queue.Count > 0, queue.HasMessages);
        }
    }

    [Fact]
    public async Task Messages_from_concurrent_senders_each_arrive_once_and_in_each_senders_order()
    {
        const int Senders = 4;
        const int PerSender = 20_000;
        var queue = new CustomerMessageQueue();
        var received = new List<(int Sender, int Number)>(Senders * PerSender);
        using var start = new ManualResetEventSlim();
        var senders = Enumerable.Range(0, Senders).Select(s => Task.Run(() =>
        {
            start.Wait();
            for (var i = 0; i < PerSender; i++)
            {
                queue.Enqueue(ActorRefs.Nobody, new Envelope((s, i), ActorRefs.NoSender));
            }
        })).ToArray();
        var receiver = Task.Run(() =>
        {
            start.Wait();
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (received.Count < Senders * PerSender && DateTime.UtcNow < deadline)
            {
                if (queue.TryDequeue(out var envelope))
                {
                    received.Add(((int, int))envelope.Message);
                }
            }
        });
        start.Set();
        await Task.WhenAll([.. senders, receiver]).WaitAsync(TimeSpan.FromMinutes(3));

        Assert.Equal(Senders * PerSender, received.Count);
        for (var s = 0; s < Senders; s++)
        {
            Assert.Equal(Enumerable.Range(0, PerSender), received.Where(r => r.Sender == s).Select(r => r.Number));
        }

        Assert.False(queue.HasMessages);
        Assert.False(queue.TryDequeue(out _));
    }

    [Fact]
    public void Clean_up_hands_what_is_left_to_dead_letters_front_first()
    {
        var queue = new CustomerMessageQueue();
        foreach (var m in new[] { "a", "b", "c" })
        {
            queue.Enqueue(ActorRefs.Nobody, new Envelope(m, ActorRefs.NoSender));
        }

        queue.TryDequeue(out _);
        queue.EnqueueFirst(new Envelope("front", ActorRefs.NoSender));
        var deadLetters = new UnboundedMessageQueue();

        queue.CleanUp(ActorRefs.Nobody, deadLetters);

        var left = new List<object>();
        while (deadLetters.TryDequeue(out var envelope))
        {
            left.Add(envelope.Message);
        }

        Assert.Equal(["front", "b", "c"], left);
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public void A_customer_entity_gets_the_customer_mailbox()
    {
        var entity = Sys.ActorOf(CustomerEntity.Props("mailbox-1", new CustomerEntityOptions(), new RuleBook(RuleSetLoader.Default)));
        var reference = Assert.IsAssignableFrom<ActorRefWithCell>(entity);

        // The reference is repointed from a placeholder cell to the actor's own once it has started.
        AwaitAssert(() => Assert.IsType<CustomerMessageQueue>(Assert.IsType<ActorCell>(reference.Underlying).Mailbox?.MessageQueue), TimeSpan.FromSeconds(30));
    }
}
