using System.Runtime.InteropServices;

namespace Streaming.Connectors.Kafka;

/// <summary>
/// Binds Confluent.Kafka (and our own P/Invoke) to the operating system's librdkafka (Debian <c>librdkafka1</c>).
/// Confluent.Kafka 1.9's own loader looks for a bundled copy that is not installed here.
/// </summary>
public static class KafkaNative
{
    public const string LibraryName = "librdkafka.so.1";

    private static readonly Lock s_gate = new();
    private static bool s_loaded;
    private static IntPtr s_handle;

    /// <summary>Installs the resolver and loads the library once.</summary>
    /// <exception cref="InvalidOperationException">librdkafka is not installed.</exception>
    public static void EnsureLoaded()
    {
        lock (s_gate)
        {
            if (s_loaded)
            {
                return;
            }

            if (!NativeLibrary.TryLoad(LibraryName, out s_handle))
            {
                throw new InvalidOperationException(
                    $"{LibraryName} was not found. Install it with 'apt-get install -y librdkafka1' (deploy/local/streaming does this for you).");
            }

            NativeLibrary.SetDllImportResolver(typeof(Confluent.Kafka.Library).Assembly, Resolve);
            NativeLibrary.SetDllImportResolver(typeof(KafkaNative).Assembly, Resolve);
            s_loaded = true;
        }
    }

    private static IntPtr Resolve(string name, System.Reflection.Assembly assembly, DllImportSearchPath? path) =>
        name.StartsWith("librdkafka", StringComparison.Ordinal) ? s_handle : IntPtr.Zero;
}
