using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.TestKit;
using Streaming.Engine.Events;
using Streaming.Engine.Model;
using Streaming.Engine.Rules;
using Streaming.Runtime.Customers;
using Streaming.Runtime.Partitions;
using Streaming.Runtime.Rules;

namespace Streaming.Runtime.Tests;

/// <summary>What became of one record sent through a <see cref="PartitionHarness"/>.</summary>
internal enum RecordResult
{
    /// <summary>Its customer applied it.</summary>
    Applied,

    /// <summary>Its customer had it already (its offset or its business key).</summary>
    Duplicate,

    /// <summary>The partition dead-lettered it (undecodable, or its change failed).</summary>
    DeadLetter,
}

/// <summary>
/// One partition of the Akka runtime on a test's actor system: a <see cref="PartitionCoordinator"/> and real
/// <see cref="CustomerEntity"/> children of <see cref="LocalCustomers"/> (a one-node stand-in for the shard region), on
/// the system's in-memory journal. The test's probe is the coordinator's listener: it answers dead-letter flushes at once
/// and keeps dead letters and firings (firings as the outbox does: once per id, in the order first seen). Each record
/// goes out with the next offset of its topic; raw records are decoded with the engine's <see cref="EventDecoder"/>, as
/// the Kafka ingestion stage does. Methods that send wait until the partition is quiet (nothing in flight or waiting).
/// </summary>
internal sealed class PartitionHarness
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly TestKitBase _kit;
    private readonly ActorSystem _system;
    private readonly RuleBook _book;
    private readonly CustomerEntityOptions _entityOptions;
    private readonly EventDecoder _decoder;
    private readonly Dictionary<string, long> _nextOffsets = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TriggerFiring> _outbox = new(StringComparer.Ordinal);
    private readonly List<TriggerFiring> _firings = [];
    private readonly List<DeadLettered> _deadLetters = [];
    private readonly List<CheckpointCompleted> _completed = [];
    private PartitionCoordinatorOptions _options;
    private TestProbe _listener = null!;
    private TestProbe _asker = null!;
    private IActorRef _customers = ActorRefs.Nobody;
    private IActorRef _coordinator = ActorRefs.Nobody;
    private readonly IActorRef? _tap;

    /// <summary>Starts partition <paramref name="partition"/> (its coordinator recovers whatever the journal holds for it).</summary>
    /// <param name="options">Coordinator settings; the quiet checkpoint defaults to an hour here, so checkpoints happen only when a test asks.</param>
    /// <param name="system">The actor system (and so the journal) to run on; the test kit's own when null.</param>
    /// <param name="tap">Told a copy of every wake-up sent to a customer, in the order the customers receive them (none when null).</param>
    public PartitionHarness(TestKitBase kit, int partition, RuleBook book, PartitionCoordinatorOptions? options = null, CustomerEntityOptions? entity = null, DecoderOptions? decoder = null, ActorSystem? system = null, IActorRef? tap = null)
    {
        _tap = tap;
        _kit = kit;
        _system = system ?? kit.Sys;
        Partition = partition;
        _book = book;
        _options = options ?? new PartitionCoordinatorOptions { QuietCheckpointAfter = TimeSpan.FromHours(1) };
        _entityOptions = entity ?? new CustomerEntityOptions();
        _decoder = new EventDecoder(decoder ?? new DecoderOptions());
        Start();
    }

    /// <summary>Whether the harness's waits for a quiet partition accept a wake-up page-in still running (default: no).</summary>
    public bool QuietWhilePaging { get; set; }

    /// <summary>The Kafka partition.</summary>
    public int Partition { get; }

    /// <summary>The rule sets the partition's actors resolve versions in.</summary>
    public RuleBook Book => _book;

    /// <summary>Every firing handed on so far, once per id (the outbox), in the order first seen.</summary>
    public IReadOnlyList<TriggerFiring> Firings => _firings;

    /// <summary>Every dead letter reported so far.</summary>
    public IReadOnlyList<DeadLettered> DeadLetters => _deadLetters;

    /// <summary>Every checkpoint completion reported so far (recovered ones included).</summary>
    public IReadOnlyList<CheckpointCompleted> Completed => _completed;

    /// <summary>The coordinator of the current incarnation.</summary>
    public IActorRef Coordinator => _coordinator;

    /// <summary>The next offset the harness gives a record of <paramref name="topic"/>.</summary>
    public long NextOffset(InputTopic topic) => _nextOffsets.GetValueOrDefault(topic.Name());

    private void Start()
    {
        _listener = _kit.CreateTestProbe(_system);
        _asker = _kit.CreateTestProbe(_system);
        var book = _book;
        var entityOptions = _entityOptions;
        var tap = _tap;
        _customers = _system.ActorOf(Props.Create(() => new LocalCustomers(book, entityOptions, tap)));
        _coordinator = _system.ActorOf(PartitionCoordinator.Props(Partition, _customers, _listener, _book, _options));
    }

    /// <summary>
    /// Stops the coordinator and every customer entity (a node that dies: what no checkpoint saved is lost) and starts
    /// them again on the same journal, optionally with other coordinator settings. Offsets go on from where they were
    /// unless the test resets them (<see cref="ResumeFromCheckpoint"/>).
    /// </summary>
    public void Restart(PartitionCoordinatorOptions? options = null)
    {
        Pump();
        foreach (var actor in new[] { _coordinator, _customers })
        {
            _asker.Watch(actor);
            _system.Stop(actor);
            _asker.ExpectTerminated(actor, Patience);
        }

        if (options is not null)
        {
            _options = options;
        }

        Start();
    }

    /// <summary>Sets the harness's next offsets to where the coordinator's last checkpoint ends (a consumer's seek).</summary>
    public void ResumeFromCheckpoint()
    {
        _nextOffsets.Clear();
        foreach (var (topic, next) in Status().CommittedOffsets)
        {
            _nextOffsets[topic] = next;
        }
    }

    /// <summary>The input topic a decoded event is read from.</summary>
    public static InputTopic TopicOf(CustomerEvent evt) => evt switch
    {
        OrderEvent => InputTopic.Orders,
        ClickEvent => InputTopic.Clickstream,
        CallEvent => InputTopic.Callcenter,
        UpdateEvent => InputTopic.CustomerUpdates,
        OutcomeEvent => InputTopic.OutreachOutcomes,
        _ => throw new ArgumentOutOfRangeException(nameof(evt), evt.GetType().Name),
    };

    /// <summary>Sends a decoded event at its topic's next offset without waiting.</summary>
    public void Feed(CustomerEvent evt)
    {
        var topic = TopicOf(evt).Name();
        var offset = _nextOffsets.GetValueOrDefault(topic);
        _nextOffsets[topic] = offset + 1;
        _coordinator.Tell(new PartitionRecord(topic, offset, evt));
    }

    /// <summary>Sends a decoded event at its topic's next offset and waits for the partition to be quiet.</summary>
    public RecordResult Apply(CustomerEvent evt)
    {
        var topic = TopicOf(evt);
        return Send(new PartitionRecord(topic.Name(), NextOffset(topic), evt), out _);
    }

    /// <summary>
    /// Decodes a raw record as the ingestion stage does (the key, the value, the broker's append time) and sends it at
    /// <paramref name="offset"/> (the topic's next offset when null); waits for the partition to be quiet.
    /// </summary>
    /// <param name="deadLetter">The dead letter the record became (null unless the result is <see cref="RecordResult.DeadLetter"/>).</param>
    public RecordResult Process(InputTopic topic, long? offset, byte[] key, byte[] value, DateTimeOffset? appended, out DeadLettered? deadLetter)
    {
        var at = offset ?? NextOffset(topic);
        var record = _decoder.TryDecode(topic, key, value, appended, out var evt, out var error)
            ? new PartitionRecord(topic.Name(), at, evt)
            : new PartitionRecord(topic.Name(), at, null, error);
        return Send(record with { Key = key, Value = value, AppendedTicks = appended?.UtcTicks ?? 0 }, out deadLetter);
    }

    private RecordResult Send(PartitionRecord record, out DeadLettered? deadLetter)
    {
        var before = AwaitQuiet();
        var letters = _deadLetters.Count;
        _nextOffsets[record.Topic] = Math.Max(_nextOffsets.GetValueOrDefault(record.Topic), record.Offset + 1);
        _coordinator.Tell(record);
        var after = AwaitQuiet();
        deadLetter = _deadLetters.Skip(letters).FirstOrDefault(d => d.Topic == record.Topic && d.Offset == record.Offset);
        if (deadLetter is not null)
        {
            return RecordResult.DeadLetter;
        }

        if (after.Duplicates > before.Duplicates)
        {
            return RecordResult.Duplicate;
        }

        return after.Applied > before.Applied
            ? RecordResult.Applied
            : throw new InvalidOperationException($"record {record.Topic}@{record.Offset}: neither applied, duplicate nor dead-lettered");
    }

    /// <summary>The coordinator's status (answered after everything sent to it before).</summary>
    public PartitionStatus Status()
    {
        _asker.Send(_coordinator, GetPartitionStatus.Instance);
        var status = _asker.ExpectMsg<PartitionStatus>(Patience);
        Pump();
        return status;
    }

    /// <summary>
    /// Waits until nothing is in flight or waiting (wake-ups the records caused included) and no wake-up page-in runs
    /// (unless <paramref name="paging"/>, or else <see cref="QuietWhilePaging"/>, allows one); answers flushes meanwhile.
    /// </summary>
    public PartitionStatus AwaitQuiet(bool? paging = null)
    {
        var whilePaging = paging ?? QuietWhilePaging;
        PartitionStatus? status = null;
        _kit.AwaitCondition(() => (status = Status()) is { InFlight: 0, Waiting: 0 } && (whilePaging || !status.PagingWakeUps), Patience, TimeSpan.FromMilliseconds(5));
        return status!;
    }

    /// <summary>
    /// Once the partition is quiet, asks for a checkpoint and returns its completion, which covers every record sent so
    /// far (its firings are also added to <see cref="Firings"/>).
    /// </summary>
    /// <param name="paging">Also while a wake-up page-in runs (see <see cref="AwaitQuiet"/>).</param>
    public CheckpointCompleted Checkpoint(bool? paging = null)
    {
        AwaitQuiet(paging);
        var done = _completed.Count;
        _coordinator.Tell(CheckpointNow.Instance);
        return AwaitCheckpoint(done);
    }

    /// <summary>Asks for a checkpoint without waiting for it (a barrier already up takes it instead).</summary>
    public void RequestCheckpoint()
    {
        Pump();
        _coordinator.Tell(CheckpointNow.Instance);
    }

    /// <summary>Answers what the listener has received so far (dead-letter flushes above all), without waiting.</summary>
    public void Pump()
    {
        while (_listener.HasMessages)
        {
            Handle(_listener.ReceiveOne(TimeSpan.Zero)!);
        }
    }

    /// <summary>Waits for the next completed (not recovered) checkpoint after the first <paramref name="seen"/> completions.</summary>
    private CheckpointCompleted AwaitCheckpoint(int seen)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            var fresh = _completed.Skip(seen).FirstOrDefault(c => !c.Recovered);
            if (fresh is not null)
            {
                return fresh;
            }

            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                throw new TimeoutException("no checkpoint completed");
            }

            Handle(_listener.ReceiveOne(left) ?? throw new TimeoutException("no checkpoint completed"));
        }
    }

    /// <summary>
    /// Switches the partition to <paramref name="rules"/> (added to the book): the coordinator takes it at the checkpoint
    /// the switch starts, then re-derives its customers in memory. Returns once the partition runs the new version and is quiet.
    /// </summary>
    public void SwitchRules(RuleSet rules)
    {
        _book.Add(rules);
        Pump();
        var done = _completed.Count;
        _coordinator.Tell(new SwitchRules(rules.Version));
        AwaitCheckpoint(done);
        _kit.AwaitCondition(() => Status().RuleVersion == rules.Version, Patience);
        AwaitQuiet();
    }

    /// <summary>A copy of the customer's state from its entity (null: unknown), once the partition is quiet.</summary>
    public CustomerState? Find(string customerId)
    {
        AwaitQuiet();
        _asker.Send(_customers, new GetCustomer(customerId, Partition));
        return _asker.ExpectMsg<CustomerFound>(Patience).State;
    }

    /// <summary>Whether the customer's entity is running (in memory) now.</summary>
    public bool Resident(string customerId)
    {
        _system.ActorSelection(_customers.Path / Uri.EscapeDataString(customerId)).Tell(new Identify(customerId), _asker.Ref);
        return _asker.ExpectMsg<ActorIdentity>(Patience).Subject is not null;
    }

    private void Handle(object message)
    {
        switch (message)
        {
            case FlushDeadLetters flush:
                _listener.Send(_listener.LastSender, new DeadLettersFlushed(flush.Partition, flush.Seq));
                break;
            case DeadLettered dead:
                _deadLetters.Add(dead);
                break;
            case CheckpointCompleted completed:
                _completed.Add(completed);
                foreach (var firing in completed.Firings)
                {
                    if (_outbox.TryAdd(firing.Id, firing))
                    {
                        _firings.Add(firing);
                    }
                }

                _listener.Send(_listener.LastSender, new FiringsStored(completed.Partition, completed.Seq));
                break;
            case PartitionFailed failed:
                throw new InvalidOperationException($"partition {failed.Partition} failed: {failed.Reason}");
            case CheckpointFailed failed:
                throw new InvalidOperationException($"checkpoint {failed.Seq} of partition {failed.Partition} failed: {failed.Reason}");
            default:
                throw new InvalidOperationException($"unexpected message to the listener: {message}");
        }
    }

    /// <summary>
    /// Routes customer commands to one child entity per customer, as a shard region does on one node, and passivates as
    /// a shard does: a child asking to passivate is sent its stop message, and commands for it wait until it has stopped,
    /// then start it again.
    /// </summary>
    internal sealed class LocalCustomers : ReceiveActor
    {
        private readonly Dictionary<string, List<(object Message, IActorRef Sender)>> _stopping = new(StringComparer.Ordinal);

        public LocalCustomers(RuleBook book, CustomerEntityOptions options, IActorRef? tap)
        {
            Receive<ICustomerCommand>(m =>
            {
                if (m is WakeUp && tap is not null)
                {
                    tap.Tell(m);
                }

                var name = Uri.EscapeDataString(m.CustomerId);
                if (_stopping.TryGetValue(name, out var waiting))
                {
                    waiting.Add((m, Sender));
                    return;
                }

                var child = Context.Child(name);
                if (child.IsNobody())
                {
                    child = Context.ActorOf(CustomerEntity.Props(m.CustomerId, options, book), name);
                }

                child.Forward(m);
            });
            Receive<Passivate>(p =>
            {
                var child = Sender;
                if (_stopping.TryAdd(child.Path.Name, []))
                {
                    Context.Watch(child);
                    child.Tell(p.StopMessage);
                }
            });
            Receive<Terminated>(t =>
            {
                if (_stopping.Remove(t.ActorRef.Path.Name, out var waiting) && waiting.Count > 0)
                {
                    var customer = Uri.UnescapeDataString(t.ActorRef.Path.Name);
                    var child = Context.ActorOf(CustomerEntity.Props(customer, options, book), t.ActorRef.Path.Name);
                    foreach (var (message, sender) in waiting)
                    {
                        child.Tell(message, sender);
                    }
                }
            });
        }
    }
}
