using Akka.Actor;
using Akka.Persistence;
using Streaming.Runtime.Local;

namespace Streaming.Runtime.Tests;

/// <summary>The local actor system that <c>bench --core</c> and <c>backtest</c> run the runtime in.</summary>
public sealed class LocalEngineTests
{
    /// <summary>
    /// Its in-memory journal replays every event as written, as the engine's SQL journal does: Akka's replay filter
    /// (default mode <c>repair-by-discard-old</c>) would drop an event of a writer after a newer writer's, and start an
    /// actor for every recovery to do it. Events of two writers are written interleaved straight to the journal; a
    /// persistent actor then recovers all three.
    /// </summary>
    [Fact]
    public async Task The_in_memory_journal_replays_events_of_interleaved_writers_without_a_replay_filter()
    {
        var system = await LocalEngine.StartSystemAsync("local-engine-test", TimeSpan.FromSeconds(30));
        try
        {
            const string persistenceId = "interleaved";
            var journal = Persistence.Instance.Apply(system).JournalFor(null);
            var written = new TaskCompletionSource<object>(TaskCreationOptions.RunContinuationsAsynchronously);
            var writer = system.ActorOf(Props.Create(() => new Collector(written)), "writer");
            AtomicWrite Event(string payload, long seq, string writerGuid) =>
                new(new Persistent(payload, seq, persistenceId, writerGuid: writerGuid));
            journal.Tell(new WriteMessages([Event("a1", 1, "writer-a"), Event("b2", 2, "writer-b"), Event("a3", 3, "writer-a")], writer, 1));
            Assert.IsType<WriteMessagesSuccessful>(await written.Task.WaitAsync(TimeSpan.FromSeconds(30)));

            var recovered = new TaskCompletionSource<List<string>>(TaskCreationOptions.RunContinuationsAsynchronously);
            system.ActorOf(Props.Create(() => new Recovering(persistenceId, recovered)), "recovering");
            var events = await recovered.Task.WaitAsync(TimeSpan.FromSeconds(30));

            Assert.Equal(["a1", "b2", "a3"], events);
        }
        finally
        {
            await system.Terminate();
        }
    }

    /// <summary>Completes with the journal's answer to a whole write (success or failure).</summary>
    private sealed class Collector(TaskCompletionSource<object> done) : UntypedActor
    {
        protected override void OnReceive(object message)
        {
            if (message is WriteMessagesSuccessful or WriteMessagesFailed)
            {
                done.TrySetResult(message);
            }
        }
    }

    /// <summary>Completes with the payloads it recovered, in order.</summary>
    private sealed class Recovering(string persistenceId, TaskCompletionSource<List<string>> done) : PersistentActor
    {
        private readonly List<string> _events = [];

        public override string PersistenceId => persistenceId;

        protected override bool ReceiveRecover(object message)
        {
            switch (message)
            {
                case string payload:
                    _events.Add(payload);
                    return true;
                case RecoveryCompleted:
                    done.TrySetResult(_events);
                    return true;
                default:
                    return false;
            }
        }

        protected override bool ReceiveCommand(object message) => false;
    }
}
