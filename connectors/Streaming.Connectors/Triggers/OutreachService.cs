using Streaming.Connectors.Kafka;
using Streaming.Connectors.Telemetry;
using Streaming.Engine.Rules;

namespace Streaming.Connectors.Triggers;

/// <summary>
/// The dialers' side of the outreach queue (CONTRACTS.md §7): leases with a re-check of every item against the live
/// customer and the wall clock, acknowledgements with retries, releases and statistics.
/// </summary>
public sealed class OutreachService(IOutreachQueue store, IStreamingEngine engine, TriggerRelay relay, TimeProvider time, EngineInstruments? instruments = null)
{
    public static readonly IReadOnlyList<string> Outcomes = ["answered", "no_answer", "converted", "opted_out", "failed"];

    /// <summary>Acknowledgements of one item run one at a time (striped by id; unrelated items rarely share a stripe).</summary>
    private readonly SemaphoreSlim[] _ackGates = [.. Enumerable.Range(0, 64).Select(_ => new SemaphoreSlim(1, 1))];

    /// <summary>Due items for <paramref name="channel"/>, highest priority first, then oldest; each re-checked first.</summary>
    public async Task<IReadOnlyList<OutreachItem>> LeaseAsync(string channel, int max, TimeSpan lease, string dialer, CancellationToken ct)
    {
        var now = time.GetUtcNow().UtcTicks;
        var leased = new List<OutreachItem>();
        store.ExpireStale(channel, now);

        // Re-checks may drop or defer candidates: look further until enough are leased or none are left.
        for (var round = 0; round < 5 && leased.Count < max; round++)
        {
            var candidates = store.LeaseCandidates(channel, now, (max - leased.Count) * 2 + 8);
            if (candidates.Count == 0)
            {
                break;
            }

            var decisions = new List<(OutreachItem, LeaseDecision)>(candidates.Count);
            foreach (var item in candidates)
            {
                decisions.Add((item, now > item.ExpiresTicks
                    ? new LeaseDecision(LeaseVerdict.Expire, "expired")
                    : Recheck(await engine.LookupAsync(item.CustomerId, ct).ConfigureAwait(false), item, now)));
            }

            leased.AddRange(store.ApplyLease(decisions, dialer, time, lease, max - leased.Count));
        }

        instruments?.OutreachLeases.Add(leased.Count, new KeyValuePair<string, object?>("channel", channel));
        return leased;
    }

    /// <summary>Whether an unexpired item may still go out now, given a copy of its customer's state.</summary>
    private LeaseDecision Recheck(CustomerLookup found, OutreachItem item, long now)
    {
        if (!found.Served)
        {
            // The customer's partition has no owner now (a rebalance) or its node did not answer in time: ask again in
            // 30 s rather than drop an item that may well still be due.
            return new LeaseDecision(LeaseVerdict.Defer, "customer-unavailable", now + TimeSpan.FromSeconds(30).Ticks);
        }

        if (found.State is not { } state)
        {
            return new LeaseDecision(LeaseVerdict.Drop, "customer-unknown");
        }

        var rules = found.Rules;
        if (rules.FindTrigger(item.Rule) is not { } trigger)
        {
            return new LeaseDecision(LeaseVerdict.Drop, "rule-removed");
        }

        var channel = TriggerNames.Channel(item.Channel) ?? ContactChannel.Voice;
        switch (TriggerEvaluator.Check(rules, trigger, state, channel, now, countContacts: false))
        {
            case TriggerEvaluator.ServiceHoldCheck:
                return new LeaseDecision(LeaseVerdict.Defer, TriggerEvaluator.ServiceHoldCheck, state.LastCallTicks + rules.Contact.ServiceHold.Ticks);
            case { } failed:
                return new LeaseDecision(LeaseVerdict.Drop, failed);
        }

        if (rules.Contact.Caps.TryGetValue(channel, out var cap) && store.AttemptsSince(item, now - cap.Per.Ticks) >= cap.Max)
        {
            return new LeaseDecision(LeaseVerdict.Defer, TriggerEvaluator.CapCheck, now + TimeSpan.FromDays(1).Ticks);
        }

        var zone = LocalCalendar.Zone(state.TimeZone, rules.Contact.DefaultTimeZone);
        var allowed = LocalCalendar.NextAllowed(now, rules.Contact.QuietFrom, rules.Contact.QuietTo, zone);
        if (allowed > now)
        {
            return new LeaseDecision(LeaseVerdict.Defer, "quiet-hours", allowed);
        }

        // The reason must still hold (a win-back is moot once the customer ordered). Event triggers held at their event.
        if (!trigger.IsEventTrigger)
        {
            var ctx = new EvalContext { Rules = rules, DefaultTimeZone = rules.Contact.DefaultTimeZone };
            ctx.Reset(state, null, Math.Max(found.WatermarkTicks, state.EvaluatedAtTicks));
            if (!trigger.When.Evaluate(ctx))
            {
                return new LeaseDecision(LeaseVerdict.Drop, "condition-gone");
            }
        }

        return LeaseDecision.Lease;
    }

    /// <summary>Records an outcome. Idempotent. Produces it to <c>outreach-outcomes</c> first, so a failure can be retried.</summary>
    public async Task<AckResult> AckAsync(string outreachId, string outcome, CancellationToken ct)
    {
        // The outcome goes to the broker before the item is marked done, so two simultaneous acks of one item (a
        // dialer retrying a timed-out call, or two outcomes at once) would both pass the check below and both reach
        // the customer, even the one then refused with 409. One at a time, the second sees what the first did.
        var gate = _ackGates[(int)((uint)StringComparer.Ordinal.GetHashCode(outreachId) % (uint)_ackGates.Length)];
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await AckOneAsync(outreachId, outcome, ct).ConfigureAwait(false);
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task<AckResult> AckOneAsync(string outreachId, string outcome, CancellationToken ct)
    {
        var item = store.FindOutreach(outreachId);
        if (item is null)
        {
            return AckResult.NotFound;
        }

        if (item.State == OutreachStates.Done)
        {
            return item.Outcome == outcome ? AckResult.Done with { Dialer = item.Dialer } : AckResult.Conflict($"already done with outcome '{item.Outcome}'") with { Dialer = item.Dialer };
        }

        if (item.State is OutreachStates.Dropped or OutreachStates.Expired)
        {
            return AckResult.Conflict($"the item was {item.State} ({item.Reason})") with { Dialer = item.Dialer };
        }

        var now = time.GetUtcNow().UtcTicks;
        OutreachItem? retry = null;
        var trigger = engine.ActiveRules.FindTrigger(item.Rule);
        if (outcome is "no_answer" or "failed" && trigger is not null && item.Attempt <= trigger.RetryAttempts)
        {
            var due = now + trigger.RetryAfter.Ticks;
            retry = item with
            {
                OutreachId = TriggerEvaluator.RetryId(item.OutreachId, item.Attempt + 1),
                Attempt = item.Attempt + 1,
                DueTicks = due,
                ExpiresTicks = due + trigger.Expires.Ticks,
                State = OutreachStates.Due,
                Reason = "retry after " + outcome,
                Outcome = null,
            };
        }

        await relay.ProduceOutcomeAsync(item.CustomerId, item.OutreachId, item.Channel, outcome, item.Attempt, ct).ConfigureAwait(false);
        try
        {
            store.Ack(outreachId, outcome, now, retry);
        }
        catch (InvalidOperationException ex)
        {
            return AckResult.Conflict(ex.Message) with { Dialer = item.Dialer };
        }

        instruments?.OutreachOutcomes.Add(1, new KeyValuePair<string, object?>("channel", item.Channel), new KeyValuePair<string, object?>("outcome", outcome));
        return AckResult.Done with { Dialer = item.Dialer };
    }

    /// <summary>
    /// Gives a leased item back before its lease ends; with <paramref name="dialer"/>, only if that dialer holds it.
    /// Returns the name of the dialer whose lease ended (as given at lease time); null when the item is not leased (or
    /// the lease ended, or another dialer holds it).
    /// </summary>
    public string? Release(string outreachId, string? dialer = null) => store.Release(outreachId, time.GetUtcNow().UtcTicks, dialer);

    public IReadOnlyDictionary<(string Channel, string State), long> Stats() => store.OutreachStats(time.GetUtcNow().UtcTicks);
}

/// <summary>
/// The result of an acknowledgement: 204, 404 or 409 with why, and <paramref name="Dialer"/>, the dialer of the
/// item's last lease (the name given at lease time; null for an unknown item or one never leased).
/// </summary>
public sealed record AckResult(int Status, string? Detail = null, string? Dialer = null)
{
    public static readonly AckResult Done = new(204);
    public static readonly AckResult NotFound = new(404, "no such outreach item");

    public static AckResult Conflict(string detail) => new(409, detail);
}
