using System.IO.Compression;
using System.Text;

namespace Streaming.Connectors.Datasets;

/// <summary>
/// A gzip-compressed text dataset read line by line (never whole). <see cref="Progress"/> is the share of the compressed
/// file consumed so far, for progress displays.
/// </summary>
public sealed class DatasetFile : IDisposable
{
    private readonly FileStream _file;
    private readonly StreamReader _reader;

    public DatasetFile(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"dataset file not found: {path}", path);
        }

        Path = path;
        _file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(_file, CompressionMode.Decompress) : _file;
        _reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
    }

    public string Path { get; }

    public double Progress => _file.Length == 0 ? 1 : (double)_file.Position / _file.Length;

    /// <summary>1-based number of the line last returned by <see cref="ReadLine"/>.</summary>
    public long LineNumber { get; private set; }

    public string? ReadLine()
    {
        var line = _reader.ReadLine();
        if (line is not null)
        {
            LineNumber++;
        }

        return line;
    }

    public void Dispose()
    {
        _reader.Dispose();
        _file.Dispose();
    }
}
