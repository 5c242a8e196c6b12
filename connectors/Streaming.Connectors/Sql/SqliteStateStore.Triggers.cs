using System.Text.Json;
using Microsoft.Data.Sqlite;
using Streaming.Connectors.Triggers;
using Streaming.Engine.Rules;

namespace Streaming.Connectors.Sql;

/// <summary>The outbox of firings and the dialers' outreach queue, in the state store's database.</summary>
public sealed partial class SqliteStateStore
{
    private const string ItemColumns =
        "outreach_id, customer_id, partition, rule, rule_version, channel, priority, due_at, expires_at, state, lease_until, dialer, attempt, context, reason, outcome";

    /// <summary>The clock of the queue's bookkeeping (created/updated times).</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>
    /// Adds firings to the outbox (every one) and the outreach queue (queued ones), in one transaction. Idempotent by
    /// firing id: an id the outbox or the queue holds is ignored, so a firing reported again after a crash creates no
    /// second outreach item. (An outbox row already relayed and deleted is relayed again: the topic is at least once.)
    /// </summary>
    /// <exception cref="SqliteException">The write failed; nothing of it is stored.</exception>
    public void Append(IReadOnlyList<TriggerFiring> firings)
    {
        if (firings.Count == 0)
        {
            return;
        }

        lock (_gate)
        {
            using var tx = _connection.BeginTransaction();
            WriteFirings(firings, tx);
            tx.Commit();
        }
    }

    private void WriteFirings(IReadOnlyList<TriggerFiring> firings, SqliteTransaction tx)
    {
        var now = Clock.GetUtcNow().UtcTicks;
        using var outbox = _connection.CreateCommand();
        outbox.Transaction = tx;
        outbox.CommandText = "INSERT OR IGNORE INTO outbox(id, customer_id, payload, created_at) VALUES($id, $c, $p, $t)";
        var id = outbox.Parameters.Add("$id", SqliteType.Text);
        var customer = outbox.Parameters.Add("$c", SqliteType.Text);
        var payload = outbox.Parameters.Add("$p", SqliteType.Blob);
        outbox.Parameters.AddWithValue("$t", now);

        using var outreach = _connection.CreateCommand();
        outreach.Transaction = tx;
        outreach.CommandText =
            $"INSERT OR IGNORE INTO outreach({ItemColumns}, updated_at) VALUES($id, $c, $part, $rule, $ver, $ch, $prio, $due, $exp, 'due', 0, NULL, $att, $ctx, NULL, NULL, $t)";
        var oid = outreach.Parameters.Add("$id", SqliteType.Text);
        var ocustomer = outreach.Parameters.Add("$c", SqliteType.Text);
        var part = outreach.Parameters.Add("$part", SqliteType.Integer);
        var rule = outreach.Parameters.Add("$rule", SqliteType.Text);
        var version = outreach.Parameters.Add("$ver", SqliteType.Text);
        var channel = outreach.Parameters.Add("$ch", SqliteType.Text);
        var priority = outreach.Parameters.Add("$prio", SqliteType.Integer);
        var due = outreach.Parameters.Add("$due", SqliteType.Integer);
        var expires = outreach.Parameters.Add("$exp", SqliteType.Integer);
        var attempt = outreach.Parameters.Add("$att", SqliteType.Integer);
        var context = outreach.Parameters.Add("$ctx", SqliteType.Text);
        outreach.Parameters.AddWithValue("$t", now);

        foreach (var f in firings)
        {
            id.Value = f.Id;
            customer.Value = f.CustomerId;
            payload.Value = CloudEvents.Serialize(f);
            outbox.ExecuteNonQuery();
            if (f.Delivery != Delivery.Queued)
            {
                continue;
            }

            oid.Value = f.Id;
            ocustomer.Value = f.CustomerId;
            part.Value = f.Partition;
            rule.Value = f.Rule;
            version.Value = f.RuleVersion;
            channel.Value = TriggerNames.Of(f.Channel);
            priority.Value = f.Priority;
            due.Value = f.DueTicks;
            expires.Value = f.ExpiresTicks;
            attempt.Value = f.Attempt;
            context.Value = Context(f);
            outreach.ExecuteNonQuery();
        }
    }

    private static string Context(TriggerFiring f) => JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["firedAt"] = CloudEvents.Time(f.AtTicks),
        ["reason"] = f.Reason.ToDictionary(p => p.Key, p => p.Value),
        ["profile"] = f.Profile,
    });

    /// <summary>The oldest outbox rows after <paramref name="afterSeq"/>, in order.</summary>
    public IReadOnlyList<OutboxRow> ReadOutbox(long afterSeq, int limit)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = "SELECT seq, customer_id, payload, created_at FROM outbox WHERE seq > $a ORDER BY seq LIMIT $l";
            cmd.Parameters.AddWithValue("$a", afterSeq);
            cmd.Parameters.AddWithValue("$l", limit);
            var rows = new List<OutboxRow>();
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                rows.Add(new OutboxRow(reader.GetInt64(0), reader.GetString(1), (byte[])reader.GetValue(2), reader.GetInt64(3)));
            }

            return rows;
        }
    }

    /// <summary>Removes published rows (those the broker acknowledged).</summary>
    public void DeleteOutbox(IReadOnlyCollection<long> seqs)
    {
        if (seqs.Count == 0)
        {
            return;
        }

        lock (_gate)
        {
            using var tx = _connection.BeginTransaction();
            using var cmd = _connection.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "DELETE FROM outbox WHERE seq = $s";
            var seq = cmd.Parameters.Add("$s", SqliteType.Integer);
            foreach (var s in seqs)
            {
                seq.Value = s;
                cmd.ExecuteNonQuery();
            }

            tx.Commit();
        }
    }

    /// <summary>Rows waiting in the outbox.</summary>
    public long OutboxBacklog()
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = "SELECT COUNT(*) FROM outbox";
            return Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    /// <summary>Marks due items of <paramref name="channel"/> whose expiry passed as expired; returns how many.</summary>
    public int ExpireStale(string channel, long now)
    {
        lock (_gate)
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText =
                "UPDATE outreach SET state = 'expired', reason = 'expired', lease_until = 0, updated_at = $now " +
                "WHERE channel = $ch AND expires_at < $now AND (state = 'due' OR (state = 'leased' AND lease_until <= $now))";
            cmd.Parameters.AddWithValue("$ch", channel);
            cmd.Parameters.AddWithValue("$now", now);
            return cmd.ExecuteNonQuery();
        }
    }

    /// <summary>Items a dialer could lease now on <paramref name="channel"/>: due (or with an ended lease), highest priority first, then oldest.</summary>
    public IReadOnlyList<OutreachItem> LeaseCandidates(string channel, long now, int limit)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText =
                $"SELECT {ItemColumns} FROM outreach WHERE channel = $ch AND due_at <= $now " +
                "AND (state = 'due' OR (state = 'leased' AND lease_until <= $now)) ORDER BY priority DESC, due_at, outreach_id LIMIT $l";
            cmd.Parameters.AddWithValue("$ch", channel);
            cmd.Parameters.AddWithValue("$now", now);
            cmd.Parameters.AddWithValue("$l", limit);
            return ReadItems(cmd);
        }
    }

    /// <summary>
    /// Applies lease-time decisions atomically: each item is claimed only if it is still free (due, or its lease
    /// ended), so two dialers never hold the same item. The grant time is read from <paramref name="clock"/> inside the
    /// store's write lock, so lease ends follow the order in which leases were granted. Returns the items leased, each
    /// held until grant time plus <paramref name="lease"/>.
    /// </summary>
    public IReadOnlyList<OutreachItem> ApplyLease(IReadOnlyList<(OutreachItem Item, LeaseDecision Decision)> decisions, string dialer, TimeProvider clock, TimeSpan lease, int max)
    {
        var leased = new List<OutreachItem>();
        lock (_gate)
        {
            var now = clock.GetUtcNow().UtcTicks;
            var leaseUntil = now + lease.Ticks;
            using var tx = _connection.BeginTransaction();
            using var cmd = _connection.CreateCommand();
            cmd.Transaction = tx;
            const string free = "outreach_id = $id AND (state = 'due' OR (state = 'leased' AND lease_until <= $now))";
            cmd.Parameters.AddWithValue("$now", now);
            var id = cmd.Parameters.Add("$id", SqliteType.Text);
            var value = cmd.Parameters.Add("$v", SqliteType.Text);
            var number = cmd.Parameters.Add("$n", SqliteType.Integer);
            cmd.Parameters.AddWithValue("$dialer", dialer);
            foreach (var (item, decision) in decisions)
            {
                id.Value = item.OutreachId;
                value.Value = decision.Reason ?? (object)DBNull.Value;
                switch (decision.Verdict)
                {
                    case LeaseVerdict.Lease when leased.Count < max:
                        number.Value = leaseUntil;
                        cmd.CommandText = $"UPDATE outreach SET state = 'leased', lease_until = $n, dialer = $dialer, updated_at = $now WHERE {free}";
                        if (cmd.ExecuteNonQuery() == 1)
                        {
                            leased.Add(item with { State = OutreachStates.Leased, LeaseUntilTicks = leaseUntil, Dialer = dialer });
                        }

                        break;
                    case LeaseVerdict.Lease:
                        break;
                    case LeaseVerdict.Defer:
                        number.Value = decision.DeferTo;
                        cmd.CommandText = $"UPDATE outreach SET state = 'due', due_at = $n, lease_until = 0, reason = $v, updated_at = $now WHERE {free}";
                        cmd.ExecuteNonQuery();
                        break;
                    default:
                        cmd.CommandText = $"UPDATE outreach SET state = '{(decision.Verdict == LeaseVerdict.Drop ? OutreachStates.Dropped : OutreachStates.Expired)}', reason = $v, updated_at = $now WHERE {free}";
                        cmd.ExecuteNonQuery();
                        break;
                }
            }

            tx.Commit();
        }

        return leased;
    }

    public OutreachItem? FindOutreach(string outreachId)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = $"SELECT {ItemColumns} FROM outreach WHERE outreach_id = $id";
            cmd.Parameters.AddWithValue("$id", outreachId);
            return ReadItems(cmd).FirstOrDefault();
        }
    }

    /// <summary>Every item of the queue, in any state, by id (audits and tests).</summary>
    public IReadOnlyList<OutreachItem> ListOutreach()
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = $"SELECT {ItemColumns} FROM outreach ORDER BY outreach_id";
            return ReadItems(cmd);
        }
    }

    /// <summary>Items of a customer, newest first (explanations).</summary>
    public IReadOnlyList<OutreachItem> OutreachOf(string customerId, int limit)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText = $"SELECT {ItemColumns} FROM outreach WHERE customer_id = $c ORDER BY due_at DESC LIMIT $l";
            cmd.Parameters.AddWithValue("$c", customerId);
            cmd.Parameters.AddWithValue("$l", limit);
            return ReadItems(cmd);
        }
    }

    /// <summary>
    /// Attempts (leased or done items) of a customer on a channel since <paramref name="since"/>, other than those of
    /// <paramref name="item"/>'s own firing (its earlier attempts: a retry is not a new contact).
    /// </summary>
    public int AttemptsSince(OutreachItem item, long since)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText =
                "SELECT COUNT(*) FROM outreach WHERE customer_id = $c AND channel = $ch AND outreach_id <> $x " +
                "AND NOT (rule = $rule AND context = $ctx) AND state IN ('leased', 'done') AND updated_at > $s";
            cmd.Parameters.AddWithValue("$c", item.CustomerId);
            cmd.Parameters.AddWithValue("$ch", item.Channel);
            cmd.Parameters.AddWithValue("$x", item.OutreachId);
            cmd.Parameters.AddWithValue("$rule", item.Rule);
            cmd.Parameters.AddWithValue("$ctx", item.Context);
            cmd.Parameters.AddWithValue("$s", since);
            return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    /// <summary>
    /// Records a dialer's outcome. Idempotent: the same outcome again changes nothing. Returns the item as it was before
    /// and whether this call recorded it (false: already done with this outcome).
    /// </summary>
    /// <exception cref="InvalidOperationException">The item is done with another outcome, or dropped or expired.</exception>
    public (OutreachItem? Item, bool Recorded) Ack(string outreachId, string outcome, long now, OutreachItem? retry)
    {
        lock (_gate)
        {
            var item = FindOutreach(outreachId);
            if (item is null)
            {
                return (null, false);
            }

            if (item.State == OutreachStates.Done)
            {
                return item.Outcome == outcome
                    ? (item, false)
                    : throw new InvalidOperationException($"outreach {outreachId} is already done with outcome '{item.Outcome}'");
            }

            if (item.State is OutreachStates.Dropped or OutreachStates.Expired)
            {
                throw new InvalidOperationException($"outreach {outreachId} was {item.State} ({item.Reason})");
            }

            using var tx = _connection.BeginTransaction();
            using var cmd = _connection.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "UPDATE outreach SET state = 'done', outcome = $o, lease_until = 0, updated_at = $now WHERE outreach_id = $id";
            cmd.Parameters.AddWithValue("$o", outcome);
            cmd.Parameters.AddWithValue("$now", now);
            cmd.Parameters.AddWithValue("$id", outreachId);
            cmd.ExecuteNonQuery();
            if (retry is not null)
            {
                cmd.Parameters.Clear();
                cmd.CommandText =
                    $"INSERT OR IGNORE INTO outreach({ItemColumns}, updated_at) VALUES($id, $c, $part, $rule, $ver, $ch, $prio, $due, $exp, 'due', 0, NULL, $att, $ctx, $reason, NULL, $now)";
                cmd.Parameters.AddWithValue("$id", retry.OutreachId);
                cmd.Parameters.AddWithValue("$c", retry.CustomerId);
                cmd.Parameters.AddWithValue("$part", retry.Partition);
                cmd.Parameters.AddWithValue("$rule", retry.Rule);
                cmd.Parameters.AddWithValue("$ver", retry.RuleVersion);
                cmd.Parameters.AddWithValue("$ch", retry.Channel);
                cmd.Parameters.AddWithValue("$prio", retry.Priority);
                cmd.Parameters.AddWithValue("$due", retry.DueTicks);
                cmd.Parameters.AddWithValue("$exp", retry.ExpiresTicks);
                cmd.Parameters.AddWithValue("$att", retry.Attempt);
                cmd.Parameters.AddWithValue("$ctx", retry.Context);
                cmd.Parameters.AddWithValue("$reason", retry.Reason ?? (object)DBNull.Value);
                cmd.Parameters.AddWithValue("$now", now);
                cmd.ExecuteNonQuery();
            }

            tx.Commit();
            return (item, true);
        }
    }

    /// <summary>
    /// Gives a leased item back while its lease runs (a lease that ended is due already); with
    /// <paramref name="dialer"/>, only if that dialer holds the lease. Returns the dialer that held it (its name at
    /// lease time), or null when nothing was released.
    /// </summary>
    public string? Release(string outreachId, long now, string? dialer = null)
    {
        lock (_gate)
        {
            // Every write goes through this connection under _gate: the holder read here is the one the update clears.
            using var cmd = _connection.CreateCommand();
            const string Held = "outreach_id = $id AND state = 'leased' AND lease_until > $now AND ($dialer IS NULL OR dialer = $dialer)";
            cmd.CommandText = $"SELECT dialer FROM outreach WHERE {Held}";
            cmd.Parameters.AddWithValue("$now", now);
            cmd.Parameters.AddWithValue("$id", outreachId);
            cmd.Parameters.AddWithValue("$dialer", (object?)dialer ?? DBNull.Value);
            if (cmd.ExecuteScalar() is not { } found)
            {
                return null;
            }

            cmd.CommandText = $"UPDATE outreach SET state = 'due', lease_until = 0, dialer = NULL, updated_at = $now WHERE {Held}";
            return cmd.ExecuteNonQuery() == 1 ? found as string ?? "" : null;
        }
    }

    /// <summary>Counts by channel and state; a leased item whose lease ended counts as due.</summary>
    public IReadOnlyDictionary<(string Channel, string State), long> OutreachStats(long now)
    {
        lock (_readGate)
        {
            using var cmd = _reader.CreateCommand();
            cmd.CommandText =
                "SELECT channel, CASE WHEN state = 'leased' AND lease_until <= $now THEN 'due' ELSE state END AS s, COUNT(*) " +
                "FROM outreach GROUP BY channel, s";
            cmd.Parameters.AddWithValue("$now", now);
            var result = new Dictionary<(string, string), long>();
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                result[(reader.GetString(0), reader.GetString(1))] = reader.GetInt64(2);
            }

            return result;
        }
    }

    private static List<OutreachItem> ReadItems(SqliteCommand cmd)
    {
        var items = new List<OutreachItem>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            items.Add(new OutreachItem
            {
                OutreachId = r.GetString(0),
                CustomerId = r.GetString(1),
                Partition = r.GetInt32(2),
                Rule = r.GetString(3),
                RuleVersion = r.GetString(4),
                Channel = r.GetString(5),
                Priority = r.GetInt32(6),
                DueTicks = r.GetInt64(7),
                ExpiresTicks = r.GetInt64(8),
                State = r.GetString(9),
                LeaseUntilTicks = r.GetInt64(10),
                Dialer = r.IsDBNull(11) ? null : r.GetString(11),
                Attempt = r.GetInt32(12),
                Context = r.GetString(13),
                Reason = r.IsDBNull(14) ? null : r.GetString(14),
                Outcome = r.IsDBNull(15) ? null : r.GetString(15),
            });
        }

        return items;
    }
}
