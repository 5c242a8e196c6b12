using Microsoft.Extensions.Logging;

namespace Streaming.Connectors.Kafka;

public sealed partial class KafkaEngine
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Assigned {Count} partitions; now own {Total}")]
    private partial void LogAssigned(int count, int total);

    [LoggerMessage(Level = LogLevel.Information, Message = "Revoked {Count} partitions after checkpointing; now own {Total}")]
    private partial void LogRevoked(int count, int total);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Lost {Count} partitions; their unsaved progress will be re-read by the new owner")]
    private partial void LogLost(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dead letter from {Topic}[{Partition}]@{Offset}: {Code}: {Detail}")]
    private partial void LogDeadLetter(string topic, int partition, long offset, string code, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Checkpoint deferred: {Count} dead letter(s) not acknowledged by the broker ({Reason}); the store and the committed offsets stay at the last checkpoint")]
    private partial void LogCheckpointDeferred(long count, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} dead letter(s) were not delivered ({Reason}); producing them again")]
    private partial void LogDeadLettersRetried(int count, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Consumption paused: {Records} records processed since the last checkpoint, which waits for {Count} dead letter(s) the broker has not acknowledged")]
    private partial void LogConsumptionPaused(long records, long count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Consumption resumed: the dead letters are on the broker and the checkpoint went through")]
    private partial void LogConsumptionResumed();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Committing offsets to Kafka failed (the store keeps the truth): {Reason}")]
    private partial void LogCommitFailed(string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Passivated {Evicted} idle customers of {Total} cached")]
    private partial void LogPassivated(int evicted, long total);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kafka consumer error: {Reason}")]
    private partial void LogConsumeError(string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kafka client {Name} [{Facility}]: {Text}")]
    private partial void LogKafkaClient(string name, string facility, string text);

    [LoggerMessage(Level = LogLevel.Information, Message = "Engine stopping after checkpoint {Seq}")]
    private partial void LogStopping(long seq);

    [LoggerMessage(Level = LogLevel.Information, Message = "Rules switched from {From} to {To} at checkpoint {Seq}")]
    private partial void LogRulesSwitched(string from, string to, long seq);

    [LoggerMessage(Level = LogLevel.Error, Message = "Partition {Partition}: {Count} wake-up(s) or re-evaluation(s) failed; the customers kept their state (latest: {Failure})")]
    private partial void LogWakeUpsFailed(int partition, long count, string failure);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Engine thread failed; the process must stop")]
    private partial void LogFatal(Exception ex);
}
