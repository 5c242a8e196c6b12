using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;

namespace Streaming.Runtime.Telemetry;

/// <summary>
/// An Akka.NET logger that writes each log event on one line to standard error, for actor systems that run without a
/// host's logging (<c>bench</c>, <c>backtest</c>): their standard output carries the command's JSON, which Akka's
/// default <see cref="StandardOutLogger"/> would interleave with. Configured by <see cref="Hocon"/>.
/// </summary>
public sealed class StandardErrorLogger : ReceiveActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    /// <summary>
    /// Configuration that makes this the system's only logger, at <c>WARNING</c>, and turns the standard-output logger of
    /// the system's start and stop off (it would write before this logger runs).
    /// </summary>
    public const string Hocon = """
        akka.loglevel = WARNING
        akka.stdout-loglevel = OFF
        akka.loggers = ["Streaming.Runtime.Telemetry.StandardErrorLogger, Streaming.Runtime"]
        """;

    public StandardErrorLogger()
    {
        Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
        Receive<LogEvent>(e => Console.Error.WriteLine(e.ToString()));
    }
}
