using System.Data.Common;
using System.Text.Json;
using Streaming.Connectors.Triggers;
using Streaming.Engine.Rules;

namespace Streaming.Connectors.Sql;

/// <summary>The outbox of firings and the dialers' outreach queue.</summary>
public abstract partial class EngineStore
{
    private const string ItemColumns =
        "outreach_id, customer_id, partition, rule, rule_version, channel, priority, due_at, expires_at, state, lease_until, dialer, attempt, context, reason, outcome";

    private const string InsertItem =
        $"INSERT INTO outreach({ItemColumns}, updated_at) VALUES(@id, @c, @part, @rule, @ver, @ch, @prio, @due, @exp, 'due', 0, NULL, @att, @ctx, @reason, NULL, @now) ON CONFLICT DO NOTHING";

    /// <summary>An item is free to lease (or to defer, drop, expire): due, or leased with its lease ended.</summary>
    private const string Free = "(state = 'due' OR (state = 'leased' AND lease_until <= @now))";

    /// <summary>
    /// Adds firings to the outbox (every one) and the outreach queue (queued ones), in one transaction. Idempotent by
    /// firing id: an id the outbox or the queue holds is ignored, so a firing reported again after a crash creates no
    /// second outreach item. (An outbox row already relayed and deleted is relayed again: the topic is at least once.)
    /// </summary>
    /// <exception cref="DbException">The write failed; nothing of it is stored.</exception>
    public void Append(IReadOnlyList<TriggerFiring> firings)
    {
        if (firings.Count == 0)
        {
            return;
        }

        Write((connection, tx) =>
        {
            WriteFirings(connection, tx, firings);
            return 0;
        });
    }

    private void WriteFirings(DbConnection connection, DbTransaction tx, IReadOnlyList<TriggerFiring> firings)
    {
        var now = Clock.GetUtcNow().UtcTicks;
        using var outbox = Command(connection, tx, "INSERT INTO outbox(id, customer_id, payload, created_at) VALUES(@id, @c, @p, @t) ON CONFLICT DO NOTHING", ("@t", now));
        var id = Bind(outbox, "@id", "");
        var customer = Bind(outbox, "@c", "");
        var payload = Bind(outbox, "@p", Array.Empty<byte>());

        using var outreach = Command(connection, tx, InsertItem, ("@now", now), ("@reason", null));
        var oid = Bind(outreach, "@id", "");
        var ocustomer = Bind(outreach, "@c", "");
        var part = Bind(outreach, "@part", 0);
        var rule = Bind(outreach, "@rule", "");
        var version = Bind(outreach, "@ver", "");
        var channel = Bind(outreach, "@ch", "");
        var priority = Bind(outreach, "@prio", 0);
        var due = Bind(outreach, "@due", 0L);
        var expires = Bind(outreach, "@exp", 0L);
        var attempt = Bind(outreach, "@att", 0);
        var context = Bind(outreach, "@ctx", "");

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
    public IReadOnlyList<OutboxRow> ReadOutbox(long afterSeq, int limit) => Read(connection =>
    {
        using var cmd = Command(connection, null, "SELECT seq, customer_id, payload, created_at FROM outbox WHERE seq > @a ORDER BY seq LIMIT @l", ("@a", afterSeq), ("@l", limit));
        var rows = new List<OutboxRow>();
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            rows.Add(new OutboxRow(reader.GetInt64(0), reader.GetString(1), (byte[])reader.GetValue(2), reader.GetInt64(3)));
        }

        return rows;
    });

    /// <summary>
    /// Removes published rows (those the broker acknowledged), in ascending order: the relays of several nodes may
    /// delete the same rows at once, and one lock order keeps them from deadlocking (PostgreSQL 40P01, seen with three
    /// nodes when acknowledgements came back in different orders).
    /// </summary>
    public void DeleteOutbox(IReadOnlyCollection<long> seqs)
    {
        if (seqs.Count == 0)
        {
            return;
        }

        Write((connection, tx) =>
        {
            using var cmd = Command(connection, tx, "DELETE FROM outbox WHERE seq = @s");
            var seq = Bind(cmd, "@s", 0L);
            foreach (var s in seqs.Order())
            {
                seq.Value = s;
                cmd.ExecuteNonQuery();
            }

            return 0;
        });
    }

    /// <summary>Rows waiting in the outbox.</summary>
    public long OutboxBacklog() => Read(connection =>
    {
        using var cmd = Command(connection, null, "SELECT COUNT(*) FROM outbox");
        return Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    });

    /// <summary>Marks due items of <paramref name="channel"/> whose expiry passed as expired; returns how many.</summary>
    public int ExpireStale(string channel, long now) =>
        Write(
            "UPDATE outreach SET state = 'expired', reason = 'expired', lease_until = 0, updated_at = @now " +
            $"WHERE channel = @ch AND expires_at < @now AND {Free}",
            ("@ch", channel),
            ("@now", now));

    /// <summary>Items a dialer could lease now on <paramref name="channel"/>: due (or with an ended lease), highest priority first, then oldest.</summary>
    public IReadOnlyList<OutreachItem> LeaseCandidates(string channel, long now, int limit) => Read(connection =>
    {
        using var cmd = Command(
            connection,
            null,
            $"SELECT {ItemColumns} FROM outreach WHERE channel = @ch AND due_at <= @now AND {Free} ORDER BY priority DESC, due_at, outreach_id LIMIT @l",
            ("@ch", channel),
            ("@now", now),
            ("@l", limit));
        return ReadItems(cmd);
    });

    /// <summary>
    /// Applies lease-time decisions atomically: each item is claimed only if it is still free (due, or its lease
    /// ended) when the statement runs, so two dialers never hold the same item, on one node or several. The grant time
    /// is read from <paramref name="clock"/> inside this process's write lock, so its lease ends follow the order in
    /// which leases were granted. Returns the items leased, each held until grant time plus <paramref name="lease"/>.
    /// </summary>
    public IReadOnlyList<OutreachItem> ApplyLease(IReadOnlyList<(OutreachItem Item, LeaseDecision Decision)> decisions, string dialer, TimeProvider clock, TimeSpan lease, int max) =>
        Write((connection, tx) =>
        {
            var leased = new List<OutreachItem>();
            var now = clock.GetUtcNow().UtcTicks;
            var leaseUntil = now + lease.Ticks;
            using var cmd = Command(connection, tx, "", ("@now", now), ("@dialer", dialer));
            var id = Bind(cmd, "@id", "");
            var value = Bind(cmd, "@v", "");
            var number = Bind(cmd, "@n", 0L);
            const string Which = $"outreach_id = @id AND {Free}";
            foreach (var (item, decision) in decisions)
            {
                id.Value = item.OutreachId;
                value.Value = decision.Reason ?? (object)DBNull.Value;
                switch (decision.Verdict)
                {
                    case LeaseVerdict.Lease when leased.Count < max:
                        number.Value = leaseUntil;
                        cmd.CommandText = $"UPDATE outreach SET state = 'leased', lease_until = @n, dialer = @dialer, updated_at = @now WHERE {Which}";
                        if (cmd.ExecuteNonQuery() == 1)
                        {
                            leased.Add(item with { State = OutreachStates.Leased, LeaseUntilTicks = leaseUntil, Dialer = dialer });
                        }

                        break;
                    case LeaseVerdict.Lease:
                        break;
                    case LeaseVerdict.Defer:
                        number.Value = decision.DeferTo;
                        cmd.CommandText = $"UPDATE outreach SET state = 'due', due_at = @n, lease_until = 0, reason = @v, updated_at = @now WHERE {Which}";
                        cmd.ExecuteNonQuery();
                        break;
                    default:
                        cmd.CommandText = $"UPDATE outreach SET state = '{(decision.Verdict == LeaseVerdict.Drop ? OutreachStates.Dropped : OutreachStates.Expired)}', reason = @v, updated_at = @now WHERE {Which}";
                        cmd.ExecuteNonQuery();
                        break;
                }
            }

            return leased;
        });

    /// <inheritdoc />
    public OutreachItem? FindOutreach(string outreachId) => Read(connection =>
    {
        using var cmd = Command(connection, null, $"SELECT {ItemColumns} FROM outreach WHERE outreach_id = @id", ("@id", outreachId));
        return ReadItems(cmd).FirstOrDefault();
    });

    /// <summary>Every item of the queue, in any state, by id (audits and tests).</summary>
    public IReadOnlyList<OutreachItem> ListOutreach() => Read(connection =>
    {
        using var cmd = Command(connection, null, $"SELECT {ItemColumns} FROM outreach ORDER BY outreach_id");
        return ReadItems(cmd);
    });

    /// <summary>Items of a customer, newest first (explanations).</summary>
    public IReadOnlyList<OutreachItem> OutreachOf(string customerId, int limit) => Read(connection =>
    {
        using var cmd = Command(connection, null, $"SELECT {ItemColumns} FROM outreach WHERE customer_id = @c ORDER BY due_at DESC LIMIT @l", ("@c", customerId), ("@l", limit));
        return ReadItems(cmd);
    });

    /// <summary>
    /// Attempts (leased or done items) of a customer on a channel since <paramref name="since"/>, other than those of
    /// <paramref name="item"/>'s own firing (its earlier attempts: a retry is not a new contact).
    /// </summary>
    public int AttemptsSince(OutreachItem item, long since) => Read(connection =>
    {
        using var cmd = Command(
            connection,
            null,
            "SELECT COUNT(*) FROM outreach WHERE customer_id = @c AND channel = @ch AND outreach_id <> @x " +
            "AND NOT (rule = @rule AND context = @ctx) AND state IN ('leased', 'done') AND updated_at > @s",
            ("@c", item.CustomerId),
            ("@ch", item.Channel),
            ("@x", item.OutreachId),
            ("@rule", item.Rule),
            ("@ctx", item.Context),
            ("@s", since));
        return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    });

    /// <summary>
    /// Records a dialer's outcome. Idempotent: the same outcome again changes nothing. The item's row is locked while
    /// its state is checked, so of two calls with different outcomes (from two nodes) one records and the other is
    /// refused. Returns the item as it was before and whether this call recorded it (false: already done with this
    /// outcome); <paramref name="retry"/>, when given, is queued in the same transaction.
    /// </summary>
    /// <exception cref="InvalidOperationException">The item is done with another outcome, or dropped or expired.</exception>
    public (OutreachItem? Item, bool Recorded) Ack(string outreachId, string outcome, long now, OutreachItem? retry) =>
        Write<(OutreachItem?, bool)>((connection, tx) =>
        {
            OutreachItem? item;
            using (var find = Command(connection, tx, $"SELECT {ItemColumns} FROM outreach WHERE outreach_id = @id{ForUpdate}", ("@id", outreachId)))
            {
                item = ReadItems(find).FirstOrDefault();
            }

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

            using (var done = Command(connection, tx, "UPDATE outreach SET state = 'done', outcome = @o, lease_until = 0, updated_at = @now WHERE outreach_id = @id", ("@o", outcome), ("@now", now), ("@id", outreachId)))
            {
                done.ExecuteNonQuery();
            }

            if (retry is not null)
            {
                using var insert = Command(
                    connection,
                    tx,
                    InsertItem,
                    ("@id", retry.OutreachId),
                    ("@c", retry.CustomerId),
                    ("@part", retry.Partition),
                    ("@rule", retry.Rule),
                    ("@ver", retry.RuleVersion),
                    ("@ch", retry.Channel),
                    ("@prio", retry.Priority),
                    ("@due", retry.DueTicks),
                    ("@exp", retry.ExpiresTicks),
                    ("@att", retry.Attempt),
                    ("@ctx", retry.Context),
                    ("@reason", retry.Reason),
                    ("@now", now));
                insert.ExecuteNonQuery();
            }

            return (item, true);
        });

    /// <summary>
    /// Gives a leased item back while its lease runs (a lease that ended is due already); with
    /// <paramref name="dialer"/>, only if that dialer holds the lease. Returns the dialer that held it (its name at
    /// lease time), or null when nothing was released.
    /// </summary>
    public string? Release(string outreachId, long now, string? dialer = null) => Write((connection, tx) =>
    {
        const string Held = "outreach_id = @id AND state = 'leased' AND lease_until > @now AND (@dialer IS NULL OR dialer = @dialer)";
        using var cmd = Command(connection, tx, $"SELECT dialer FROM outreach WHERE {Held}{ForUpdate}", ("@now", now), ("@id", outreachId), ("@dialer", dialer));
        if (cmd.ExecuteScalar() is not { } found)
        {
            return null;
        }

        // The row is locked (or, on SQLite, the database is held by this write): the holder read is the one cleared.
        cmd.CommandText = $"UPDATE outreach SET state = 'due', lease_until = 0, dialer = NULL, updated_at = @now WHERE {Held}";
        return cmd.ExecuteNonQuery() == 1 ? found as string ?? "" : null;
    });

    /// <summary>Counts by channel and state; a leased item whose lease ended counts as due.</summary>
    public IReadOnlyDictionary<(string Channel, string State), long> OutreachStats(long now) => Read(connection =>
    {
        using var cmd = Command(
            connection,
            null,
            "SELECT channel, CASE WHEN state = 'leased' AND lease_until <= @now THEN 'due' ELSE state END AS s, COUNT(*) " +
            "FROM outreach GROUP BY channel, s",
            ("@now", now));
        var result = new Dictionary<(string, string), long>();
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            result[(reader.GetString(0), reader.GetString(1))] = reader.GetInt64(2);
        }

        return (IReadOnlyDictionary<(string, string), long>)result;
    });

    private static List<OutreachItem> ReadItems(DbCommand cmd)
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
