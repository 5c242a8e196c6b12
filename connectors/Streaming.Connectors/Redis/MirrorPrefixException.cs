namespace Streaming.Connectors.Redis;

/// <summary>
/// The Redis prefix holds keys this engine must not write: their <c>seq</c> is of the other kind
/// (<see cref="RedisMirrorOptions.SeqSource"/>). The message says what to do (a resync, or another prefix).
/// </summary>
public sealed class MirrorPrefixException(string message) : Exception(message);
