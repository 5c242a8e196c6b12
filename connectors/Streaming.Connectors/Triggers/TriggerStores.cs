namespace Streaming.Connectors.Triggers;

/// <summary>
/// The outbox of firings as the trigger relay reads it: rows in insertion order, deleted once the broker acknowledged
/// them. Written through <see cref="Kafka.IFiringOutbox"/> (the same store). Implemented by the engine store (<c>Sql.EngineStore</c>).
/// </summary>
public interface ITriggerOutbox
{
    /// <summary>The oldest rows after <paramref name="afterSeq"/>, in order, at most <paramref name="limit"/>.</summary>
    IReadOnlyList<OutboxRow> ReadOutbox(long afterSeq, int limit);

    /// <summary>Removes published rows (those the broker acknowledged).</summary>
    void DeleteOutbox(IReadOnlyCollection<long> seqs);
}

/// <summary>
/// The dialers' outreach queue (CONTRACTS §7) as <see cref="OutreachService"/> drives it: leases claimed atomically,
/// acks idempotent. Times are UTC ticks. Implemented by the engine store (<c>Sql.EngineStore</c>).
/// </summary>
public interface IOutreachQueue
{
    /// <summary>Marks due items of <paramref name="channel"/> whose expiry passed as expired; returns how many.</summary>
    int ExpireStale(string channel, long now);

    /// <summary>Items a dialer could lease now on <paramref name="channel"/>: due (or with an ended lease), highest priority first, then oldest.</summary>
    IReadOnlyList<OutreachItem> LeaseCandidates(string channel, long now, int limit);

    /// <summary>
    /// Applies lease-time decisions atomically: an item is claimed only if it is still free, so two dialers never hold
    /// the same item; the grant time is read from <paramref name="clock"/> at the claim. Returns the items leased (at
    /// most <paramref name="max"/>), each held for <paramref name="lease"/>.
    /// </summary>
    IReadOnlyList<OutreachItem> ApplyLease(IReadOnlyList<(OutreachItem Item, LeaseDecision Decision)> decisions, string dialer, TimeProvider clock, TimeSpan lease, int max);

    /// <summary>The item with this id; null if there is none.</summary>
    OutreachItem? FindOutreach(string outreachId);

    /// <summary>Attempts (leased or done items) of the item's customer on its channel since <paramref name="since"/>, its own firing's excluded.</summary>
    int AttemptsSince(OutreachItem item, long since);

    /// <summary>Records a dialer's outcome, idempotently; returns the item as it was and whether this call recorded it.</summary>
    /// <exception cref="InvalidOperationException">The item is done with another outcome, or dropped or expired.</exception>
    (OutreachItem? Item, bool Recorded) Ack(string outreachId, string outcome, long now, OutreachItem? retry);

    /// <summary>Gives a leased item back while its lease runs (only <paramref name="dialer"/>'s, if given); returns the dialer that held it, or null.</summary>
    string? Release(string outreachId, long now, string? dialer = null);

    /// <summary>Counts by channel and state; a leased item whose lease ended counts as due.</summary>
    IReadOnlyDictionary<(string Channel, string State), long> OutreachStats(long now);
}
