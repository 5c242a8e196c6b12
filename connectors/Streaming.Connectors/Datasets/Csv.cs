using System.Text;

namespace Streaming.Connectors.Datasets;

/// <summary>Splits one delimited line (RFC 4180 quoting: "a, b" and doubled quotes inside quotes).</summary>
public static class Csv
{
    public static void Split(string line, char delimiter, List<string> fields)
    {
        fields.Clear();
        var i = 0;
        while (true)
        {
            if (i < line.Length && line[i] == '"')
            {
                var sb = new StringBuilder();
                i++;
                while (i < line.Length)
                {
                    if (line[i] == '"')
                    {
                        if (i + 1 < line.Length && line[i + 1] == '"')
                        {
                            sb.Append('"');
                            i += 2;
                            continue;
                        }

                        i++;
                        break;
                    }

                    sb.Append(line[i++]);
                }

                // Anything between the closing quote and the delimiter is kept verbatim.
                var end = line.IndexOf(delimiter, i);
                if (end < 0)
                {
                    sb.Append(line, i, line.Length - i);
                    fields.Add(sb.ToString());
                    return;
                }

                sb.Append(line, i, end - i);
                fields.Add(sb.ToString());
                i = end + 1;
            }
            else
            {
                var end = line.IndexOf(delimiter, i);
                if (end < 0)
                {
                    fields.Add(line[i..]);
                    return;
                }

                fields.Add(line[i..end]);
                i = end + 1;
            }
        }
    }
}
