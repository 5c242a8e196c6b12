using System.Globalization;
using Streaming.Engine.Events;

namespace Streaming.Connectors.Datasets;

/// <summary>
/// Anonymous Bank call centre, 1999 (CONTRACTS.md §4). The file is ordered by VRU line, not time, so the identified
/// calls (customer_id ≠ 0; about 27k rows, a few MB) are collected and replayed in (time, file order).
/// </summary>
public static class BankCallcenterReader
{
    public static IEnumerable<ReplayRecord> Read(DatasetFile file)
    {
        var jerusalem = TimeZoneInfo.FindSystemTimeZoneById("Asia/Jerusalem");
        var header = file.ReadLine() ?? throw new InvalidDataException($"{file.Path}: empty file");
        if (!header.StartsWith("vru+line", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{file.Path}: not the bank call-centre TSV (header '{header}')");
        }

        var calls = new List<Call>();
        var fields = new List<string>(17);
        string? line;
        while ((line = file.ReadLine()) is not null)
        {
            if (line.Length == 0)
            {
                continue;
            }

            Csv.Split(line, '\t', fields);
            if (fields.Count < 17)
            {
                throw new InvalidDataException($"{file.Path}:{file.LineNumber}: expected 17 tab-separated columns, found {fields.Count}");
            }

            var customer = fields[2].Trim();
            if (customer == "0")
            {
                continue;
            }

            var date = DateTime.ParseExact(fields[5].Trim(), "yyMMdd", CultureInfo.InvariantCulture);
            var time = TimeSpan.ParseExact(fields[6].Trim(), @"h\:mm\:ss", CultureInfo.InvariantCulture);
            calls.Add(new Call(
                EventJson.Local(date + time, jerusalem),
                calls.Count,
                fields[0].Trim(),
                fields[1].Trim(),
                customer,
                fields[3].Trim(),
                fields[4].Trim(),
                int.Parse(fields[11].Trim(), CultureInfo.InvariantCulture),
                fields[12].Trim(),
                int.Parse(fields[15].Trim(), CultureInfo.InvariantCulture),
                fields[16].Trim()));
        }

        calls.Sort(static (a, b) => a.At != b.At ? a.At.CompareTo(b.At) : a.Order.CompareTo(b.Order));
        var json = new EventJson();
        foreach (var call in calls)
        {
            var customerId = "bank-" + call.CustomerId;
            var w = json.Begin("bank:" + call.VruLine + ":" + call.CallId, customerId, call.At, call.Outcome == "AGENT" ? "call_completed" : "call_abandoned");
            w.WriteString("callId", call.CallId);
            w.WriteString("queue", call.Type);
            if (int.TryParse(call.Priority, NumberStyles.Integer, CultureInfo.InvariantCulture, out var priority))
            {
                w.WriteNumber("priority", priority);
            }

            w.WriteNumber("waitSeconds", call.WaitSeconds);
            w.WriteNumber("talkSeconds", call.TalkSeconds);
            w.WriteString("outcome", call.Outcome);
            w.WriteString("agent", call.Agent);
            yield return new ReplayRecord(Topics.Callcenter, customerId, json.End());
        }
    }

    private sealed record Call(
        DateTimeOffset At,
        int Order,
        string VruLine,
        string CallId,
        string CustomerId,
        string Priority,
        string Type,
        int WaitSeconds,
        string Outcome,
        int TalkSeconds,
        string Agent);
}
