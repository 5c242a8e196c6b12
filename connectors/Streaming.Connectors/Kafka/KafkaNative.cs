using System.Reflection;
using System.Runtime.InteropServices;

namespace Streaming.Connectors.Kafka;

/// <summary>
/// Binds our own P/Invoke into librdkafka (the mock cluster's <c>rd_kafka_mock_*</c> functions, which Confluent.Kafka
/// does not wrap) to the copy of the <c>librdkafka.redist</c> package that Confluent.Kafka loaded. Confluent.Kafka
/// tries <c>runtimes/linux-x64/native/librdkafka.so</c> first (it needs <c>libsasl2.so.3</c>) and falls back to
/// <c>centos8-librdkafka.so</c> (glibc only); the same order here gives the same file, so one librdkafka is mapped.
/// </summary>
public static class KafkaNative
{
    /// <summary>The name our <c>LibraryImport</c>s use; resolved by <see cref="EnsureLoaded"/>'s resolver.</summary>
    public const string LibraryName = "librdkafka";

    // The redist's file names without extension, in Confluent.Kafka's order of preference on glibc Linux.
    private static readonly string[] s_candidates = [LibraryName, "centos8-librdkafka"];

    private static readonly Lock s_gate = new();
    private static bool s_loaded;
    private static IntPtr s_handle;

    /// <summary>Loads librdkafka through Confluent.Kafka, then the same file for our imports; once.</summary>
    /// <exception cref="InvalidOperationException">no librdkafka of the redist package could be loaded.</exception>
    public static void EnsureLoaded()
    {
        lock (s_gate)
        {
            if (s_loaded)
            {
                return;
            }

            Confluent.Kafka.Library.Load();
            var assembly = typeof(KafkaNative).Assembly;
            foreach (var name in s_candidates)
            {
                if (NativeLibrary.TryLoad(name, assembly, searchPath: null, out s_handle))
                {
                    break;
                }
            }

            if (s_handle == IntPtr.Zero)
            {
                throw new InvalidOperationException(
                    $"librdkafka of the librdkafka.redist package was not found next to the application ({string.Join(", ", s_candidates)})");
            }

            NativeLibrary.SetDllImportResolver(assembly, Resolve);
            s_loaded = true;
        }
    }

    /// <summary>The librdkafka version Confluent.Kafka runs on, e.g. <c>2.16.0</c>.</summary>
    public static string Version => Confluent.Kafka.Library.VersionString;

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) =>
        name == LibraryName ? s_handle : IntPtr.Zero;
}
