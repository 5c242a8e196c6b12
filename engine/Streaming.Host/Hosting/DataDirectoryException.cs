namespace Streaming.Host.Hosting;

/// <summary>
/// The store holds state this build cannot read (the partition host's customers under the actor runtime, or engine
/// tables from a newer build): the engine refuses to start rather than begin from nothing or change them. The message says what was found and what to do.
/// </summary>
public sealed class DataDirectoryException(string message) : Exception(message);
