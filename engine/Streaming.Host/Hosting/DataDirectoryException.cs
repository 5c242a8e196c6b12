namespace Streaming.Host.Hosting;

/// <summary>
/// The data directory holds state the chosen runtime cannot read (the partition host's customers under the actor
/// runtime): the engine refuses to start rather than begin from nothing. The message says what was found and what to do.
/// </summary>
public sealed class DataDirectoryException(string message) : Exception(message);
