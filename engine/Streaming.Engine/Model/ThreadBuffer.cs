using System.Buffers;

namespace Streaming.Engine.Model;

/// <summary>
/// One encoding buffer per thread, shared by the encoders that copy their result out at its exact length (customer
/// state, the runtime's journal events, CloudEvents records): an encoding then allocates its result and nothing to grow
/// into. Not re-entrant: take the buffer, write, and call <see cref="ToArray"/> before anything else on the thread takes
/// it.
/// </summary>
public static class ThreadBuffer
{
    /// <summary>Bytes a thread's buffer may keep between encodings; one grown larger (a partition's snapshot) is dropped.</summary>
    public const int KeptBytes = 1 << 20;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    /// <summary>This thread's buffer, emptied.</summary>
    public static ArrayBufferWriter<byte> Take()
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(4096);
        buffer.ResetWrittenCount();
        return buffer;
    }

    /// <summary>What <paramref name="buffer"/> (from <see cref="Take"/>) holds, as a new array of exactly its length.</summary>
    public static byte[] ToArray(ArrayBufferWriter<byte> buffer)
    {
        var bytes = buffer.WrittenSpan.ToArray();
        if (buffer.Capacity > KeptBytes)
        {
            t_buffer = null;
        }

        return bytes;
    }
}
