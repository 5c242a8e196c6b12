using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Streaming.Host.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Streaming.Host.Tests;

/// <summary>
/// The outreach queue of CONTRACTS.md §7 driven from outside, as dialers would: concurrent leases, lease expiry,
/// idempotent acknowledgements and retries, lease-time re-checks (a reason that went away, quiet hours) and tokens.
/// </summary>
/// <remarks>
/// Two clocks meet here. Firings happen in event time: an event trigger (<c>service-recovery</c>: an abandoned call
/// waiting 120 s or more) fires at the event's <c>occurredAt</c>, a timed trigger (<c>cart-abandoned</c>: 24 h after a
/// cart add) at the instant its wake-up was due once the customer's time has passed it; the item's <c>dueAt</c> is
/// that instant (moved past quiet hours in the customer's zone, by event time) and <c>expiresAt</c> the rule's
/// <c>expires</c> later. Leasing runs on the wall clock: an item is offered when <c>dueAt</c> is at or before the wall
/// clock, is expired when the wall clock passed <c>expiresAt</c>, and quiet hours are checked by the wall clock in the
/// customer's zone; whether the rule's condition still holds is evaluated on the customer's live state as of its
/// event time. So every event here is stamped at (or a fixed distance before) the current wall time, and the time
/// zones are chosen at run time: fixed-offset <c>Etc/GMT±N</c> zones (POSIX sign: <c>Etc/GMT-3</c> is UTC+3) in which
/// it is now 14:xx (contact allowed), 03:xx or 22:xx (quiet: 21:00–09:00 in the default pack).
/// One broker and one engine serve all scenarios; each uses its own customers and leaves no item of its own due or
/// leased, and leases go through <see cref="LeaseOwnAsync"/>, which gives back at once anything not its own.
/// </remarks>
[Collection(EndToEnd.Name)]
public sealed class OutreachEndToEndTests(OutreachEndToEndTests.SharedEngine fixture, ITestOutputHelper output) : IClassFixture<OutreachEndToEndTests.SharedEngine>
{
    private const string DialerToken = "dialer-token-for-outreach-tests-0123";
    private const string AdminToken = "admin-token-for-outreach-tests-01234";
    private const string ReaderToken = "reader-token-for-outreach-tests-0123";

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private HttpClient Http => fixture.Http;

    [Fact]
    public async Task Concurrent_dialers_never_receive_the_same_item_and_lease_every_item_exactly_once()
    {
        var t = Now();
        var customers = Enumerable.Range(1, 40).Select(i => $"cc-{i:00}").ToList();
        var baseline = await StatsAsync("voice");
        await ContactableAsync(customers, ZoneAt(t, 14), t.AddMinutes(-1));
        await fixture.ProduceAsync("callcenter", customers.Select(c => (c, AbandonedCall(c, t, waitSeconds: 150))));

        await Eventually.WaitAsync(
            async () => (await StatsAsync("voice"))["due"] >= baseline["due"] + 40,
            Patience,
            () => "40 voice items due");

        var leases = new ConcurrentBag<(string Dialer, string OutreachId, string CustomerId, int Attempt)>();
        var clock = Stopwatch.StartNew();
        async Task DialAsync(string dialer)
        {
            while (true)
            {
                var (status, items) = await LeaseAsync("voice", max: 5, leaseSeconds: 60, dialer);
                Assert.Equal(HttpStatusCode.OK, status);
                if (items.Count == 0)
                {
                    return;
                }

                foreach (var item in items)
                {
                    leases.Add((dialer, Id(item), item.GetProperty("customerId").GetString()!, item.GetProperty("attempt").GetInt32()));
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(1, 3).Select(i => Task.Run(() => DialAsync("dialer-" + i))));
        output.WriteLine($"3 dialers leased {leases.Count} items in {clock.ElapsedMilliseconds} ms: " +
                         string.Join(", ", leases.GroupBy(l => l.Dialer).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}")));

        var twice = leases.GroupBy(l => l.OutreachId).Where(g => g.Count() > 1).Select(g => $"{g.Key} to {string.Join(" and ", g.Select(l => l.Dialer))}").ToList();
        Assert.True(twice.Count == 0, $"{twice.Count} items given to more than one dialer, e.g. " + string.Join("; ", twice.Take(5)));
        var ours = leases.Where(l => customers.Contains(l.CustomerId)).ToList();
        Assert.Equal(customers, ours.Select(l => l.CustomerId).Order(StringComparer.Ordinal));
        Assert.All(ours, l => Assert.Equal(1, l.Attempt));

        var after = await StatsAsync("voice");
        Assert.Equal(baseline["leased"] + leases.Count, after["leased"]);

        // Leave nothing leased behind for the other scenarios.
        foreach (var lease in leases)
        {
            if (customers.Contains(lease.CustomerId))
            {
                Assert.Equal(HttpStatusCode.NoContent, await AckAsync(lease.OutreachId, "answered"));
            }
            else
            {
                using var released = await PostAsync($"/v1/outreach/{lease.OutreachId}/release", new { }, DialerToken);
                Assert.Equal(HttpStatusCode.NoContent, released.StatusCode);
            }
        }
    }

    [Fact]
    public async Task An_expired_lease_returns_the_item_to_the_queue_with_its_attempt_unchanged()
    {
        var t = Now();
        const string customer = "exp-1";
        await ContactableAsync([customer], ZoneAt(t, 14), t.AddMinutes(-1));
        await fixture.ProduceAsync("callcenter", [(customer, AbandonedCall(customer, t, waitSeconds: 150))]);
        var queued = await WaitForItemAsync(customer, i => i.GetProperty("state").GetString() == "due");

        var first = Assert.Single(await LeaseOwnAsync("voice", [customer], leaseSeconds: 5, "first"));
        Assert.Equal(Id(queued), Id(first));
        Assert.Equal(1, first.GetProperty("attempt").GetInt32());
        var leaseUntil = first.GetProperty("leaseUntil").GetDateTimeOffset();
        Assert.InRange(leaseUntil - DateTimeOffset.UtcNow, TimeSpan.FromSeconds(-1), TimeSpan.FromSeconds(5));

        // No fixed sleep: another dialer keeps asking; the item comes back only once its lease ended.
        JsonElement? again = null;
        var polls = 0;
        await Eventually.WaitAsync(
            async () =>
            {
                polls++;
                var items = await LeaseOwnAsync("voice", [customer], leaseSeconds: 60, "second");
                var answered = DateTimeOffset.UtcNow;
                if (items.Count == 0)
                {
                    return false;
                }

                Assert.True(answered >= leaseUntil, $"the item was leased again at {answered:O}, before its lease ended at {leaseUntil:O}");
                again = Assert.Single(items);
                return true;
            },
            TimeSpan.FromSeconds(20),
            () => "the item leased again after its 5 s lease ended");
        output.WriteLine($"leased again after {polls} lease calls");

        Assert.Equal(Id(first), Id(again!.Value));
        Assert.Equal(1, again.Value.GetProperty("attempt").GetInt32());
        Assert.True(again.Value.GetProperty("leaseUntil").GetDateTimeOffset() >= leaseUntil.AddSeconds(55));
        var view = await ItemAsync(customer, Id(first));
        Assert.Equal(("leased", 1), (view.GetProperty("state").GetString(), view.GetProperty("attempt").GetInt32()));

        // The first dialer's lease went to "second": naming itself, the first can no longer give the item back.
        using (var stale = await PostAsync($"/v1/outreach/{Id(first)}/release", new { dialer = "first" }, DialerToken))
        {
            Assert.Equal(HttpStatusCode.Conflict, stale.StatusCode);
        }

        Assert.Equal("leased", (await ItemAsync(customer, Id(first))).GetProperty("state").GetString());
        Assert.Empty(await LeaseOwnAsync("voice", [customer], leaseSeconds: 60, "third"));

        Assert.Equal(HttpStatusCode.NoContent, await AckAsync(Id(first), "answered"));
    }

    [Fact]
    public async Task Acknowledging_twice_has_one_effect_and_a_different_second_outcome_conflicts()
    {
        var t = Now();
        const string customer = "ack-1";
        await ContactableAsync([customer], ZoneAt(t, 14), t.AddMinutes(-1));
        await fixture.ProduceAsync("callcenter", [(customer, AbandonedCall(customer, t, waitSeconds: 150))]);
        await WaitForItemAsync(customer, i => i.GetProperty("state").GetString() == "due");
        var item = Assert.Single(await LeaseOwnAsync("voice", [customer], leaseSeconds: 60, "acker"));
        var id = Id(item);

        var before = await StatsAsync("voice");
        Assert.Equal(HttpStatusCode.NoContent, await AckAsync(id, "answered"));
        var once = await StatsAsync("voice");
        Assert.Equal((before["done"] + 1, before["leased"] - 1), (once["done"], once["leased"]));
        Assert.Equal(HttpStatusCode.NoContent, await AckAsync(id, "answered"));
        Assert.Equal(once, await StatsAsync("voice"));

        using (var conflict = await PostAsync($"/v1/outreach/{id}/ack", new { outcome = "no_answer" }, DialerToken))
        {
            Assert.Equal(HttpStatusCode.Conflict, conflict.StatusCode);
            Assert.Equal("application/problem+json", conflict.Content.Headers.ContentType?.MediaType);
        }

        Assert.Equal(once, await StatsAsync("voice"));

        // The outcome flows back through outreach-outcomes into the customer: once, on the firing it answers.
        await Eventually.WaitAsync(
            async () => (await FiringsAsync(customer)).Any(f => Id(f) == id && f.GetProperty("outcome").GetString() == "answered"),
            Patience,
            () => "the outcome on the customer's firing");
        var triggers = await TriggersAsync(customer);
        var firing = Assert.Single(triggers.GetProperty("firings").EnumerateArray(), f => Id(f) == id);
        Assert.Equal(("service-recovery", "queued"), (firing.GetProperty("rule").GetString(), firing.GetProperty("delivery").GetString()));
        var queued = Assert.Single(triggers.GetProperty("outreach").EnumerateArray());
        Assert.Equal((id, "done", "answered", 1), (Id(queued), queued.GetProperty("state").GetString(), queued.GetProperty("outcome").GetString(), queued.GetProperty("attempt").GetInt32()));

        // One outcome record on the topic, as an external consumer sees it.
        var record = Assert.Single(await OutcomeRecordsAsync(), r => r.OutreachId == id);
        Assert.Equal(("outreach_outcome", customer, "voice", "answered"), (record.Type, record.CustomerId, record.Channel, record.Outcome));
    }

    [Fact]
    public async Task Simultaneous_acknowledgements_of_one_item_have_one_effect()
    {
        // A dialer that retries a timed-out ack races its own first attempt; two conflicting outcomes race too.
        var t = Now();
        string[] customers = ["race-1", "race-2"];
        await ContactableAsync(customers, ZoneAt(t, 14), t.AddMinutes(-1));
        await fixture.ProduceAsync("callcenter", customers.Select(c => (c, AbandonedCall(c, t, waitSeconds: 150))));
        foreach (var customer in customers)
        {
            await WaitForItemAsync(customer, i => i.GetProperty("state").GetString() == "due");
        }

        var items = await LeaseOwnAsync("voice", customers, leaseSeconds: 60, "racer");
        Assert.Equal(2, items.Count);
        var same = Id(items.Single(i => i.GetProperty("customerId").GetString() == "race-1"));
        var conflicting = Id(items.Single(i => i.GetProperty("customerId").GetString() == "race-2"));

        var sameAcks = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => AckAsync(same, "answered"))));
        Assert.All(sameAcks, s => Assert.Equal(HttpStatusCode.NoContent, s));

        string[] outcomes = ["answered", "opted_out", "converted", "failed"];
        var conflictingAcks = await Task.WhenAll(outcomes.Select(o => Task.Run(() => AckAsync(conflicting, o))));
        var winner = outcomes[Array.IndexOf(conflictingAcks, HttpStatusCode.NoContent)];
        Assert.Equal([HttpStatusCode.NoContent, HttpStatusCode.Conflict, HttpStatusCode.Conflict, HttpStatusCode.Conflict], conflictingAcks.Order());
        Assert.Equal(("done", winner), await StateAndOutcomeAsync("race-2", conflicting));

        // Exactly one outcome per item reaches outreach-outcomes, and so the customer: the one the queue recorded.
        var records = await OutcomeRecordsAsync();
        Assert.Equal(["answered"], records.Where(r => r.OutreachId == same).Select(r => r.Outcome));
        Assert.Equal([winner], records.Where(r => r.OutreachId == conflicting).Select(r => r.Outcome));
        await Eventually.WaitAsync(
            async () => (await FiringsAsync("race-2")).Any(f => Id(f) == conflicting && f.GetProperty("outcome").GetString() == winner),
            Patience,
            () => "the recorded outcome on the customer's firing");
    }

    /// <summary>
    /// An item whose expiry passed before any dialer asked (a call abandoned two days ago: <c>service-recovery</c>
    /// items expire a day after they are due) is never leased: the lease marks it <c>expired</c>, stats count it, and
    /// an acknowledgement of it conflicts.
    /// </summary>
    [Fact]
    public async Task An_item_past_its_expiry_is_marked_expired_at_lease_time_and_never_leased()
    {
        var t = Now();
        var called = t.AddDays(-2);
        const string customer = "expired-1";
        await ContactableAsync([customer], ZoneAt(called, 14), called.AddMinutes(-1));
        await fixture.ProduceAsync("callcenter", [(customer, AbandonedCall(customer, called, waitSeconds: 150))]);
        var queued = await WaitForItemAsync(customer, i => i.GetProperty("state").GetString() == "due");
        Assert.Equal(called, queued.GetProperty("dueAt").GetDateTimeOffset());
        Assert.Equal(called.AddDays(1), queued.GetProperty("expiresAt").GetDateTimeOffset());
        var before = await StatsAsync("voice");

        var leased = await LeaseOwnAsync("voice", [customer], leaseSeconds: 60, "late-dialer");
        Assert.Empty(leased);
        var view = await ItemAsync(customer, Id(queued));
        Assert.Equal("expired", view.GetProperty("state").GetString());
        var after = await StatsAsync("voice");
        Assert.Equal(before["expired"] + 1, after["expired"]);
        Assert.Equal(before["due"] - 1, after["due"]);

        // Expired is final: an outcome for it conflicts and nothing reaches outreach-outcomes.
        Assert.Equal(HttpStatusCode.Conflict, await AckAsync(Id(queued), "answered"));
        Assert.Equal(HttpStatusCode.Conflict, await ReleaseAsync(Id(queued)));
        Assert.DoesNotContain(await OutcomeRecordsAsync(), r => r.OutreachId == Id(queued));
        Assert.Equal("expired", (await ItemAsync(customer, Id(queued))).GetProperty("state").GetString());
    }

    /// <summary>
    /// Eight dialers with 5 s leases work one queue at once. Each item's first holder does one of four things: acks at
    /// once, releases at once, lets the lease run out, or lets it run out and acks late (racing whoever holds the item
    /// by then); later holders ack at once. From every grant's <c>leaseUntil</c> (start = leaseUntil − 5 s), no two
    /// holders of an item overlap unless the earlier one released it first; every item ends <c>done</c> with the
    /// outcome of the acknowledgement that got 204, and exactly that outcome reaches <c>outreach-outcomes</c>.
    /// </summary>
    [Fact]
    public async Task Many_dialers_with_short_leases_never_hold_an_item_together_and_every_item_ends_in_one_final_state()
    {
        const int leaseSeconds = 5;
        var lease = TimeSpan.FromSeconds(leaseSeconds);
        var t = Now();
        var customers = Enumerable.Range(1, 24).Select(i => $"lx-{i:00}").ToList();
        await ContactableAsync(customers, ZoneAt(t, 14), t.AddMinutes(-1));
        await fixture.ProduceAsync("callcenter", customers.Select(c => (c, AbandonedCall(c, t, waitSeconds: 150))));
        var ids = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var customer in customers)
        {
            ids[Id(await WaitForItemAsync(customer, i => i.GetProperty("state").GetString() == "due"))] = customer;
        }

        var grants = new ConcurrentBag<(string Dialer, string Id, DateTimeOffset LeaseUntil, DateTimeOffset Received)>();
        var releases = new ConcurrentBag<(string Dialer, string Id, HttpStatusCode Status, DateTimeOffset Sent)>();
        var acks = new ConcurrentBag<(string Dialer, string Id, string Outcome, HttpStatusCode Status)>();
        var firstHolder = new ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        var finished = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
        var deadline = DateTimeOffset.UtcNow.AddSeconds(90);
        var clock = Stopwatch.StartNew();

        async Task AckAsync(string dialer, string id, string outcome)
        {
            var status = await this.AckAsync(id, outcome);
            acks.Add((dialer, id, outcome, status));
            if (status == HttpStatusCode.NoContent)
            {
                finished[id] = true;
            }
        }

        async Task DialAsync(string dialer)
        {
            // Items whose lease this dialer lets run out, and whether it acks them once the lease has ended.
            var lapsing = new List<(string Id, DateTimeOffset LeaseUntil, bool AckLate)>();
            while ((finished.Count < ids.Count || lapsing.Count > 0) && DateTimeOffset.UtcNow < deadline)
            {
                // Just after the lease ended: the item may be with another dialer already, who acks it at once.
                foreach (var late in lapsing.Where(l => DateTimeOffset.UtcNow > l.LeaseUntil).ToList())
                {
                    lapsing.Remove(late);
                    if (late.AckLate)
                    {
                        await AckAsync(dialer, late.Id, "converted");
                    }
                }

                var (status, items) = await LeaseAsync("voice", max: 2, leaseSeconds, dialer);
                Assert.Equal(HttpStatusCode.OK, status);
                var received = DateTimeOffset.UtcNow;
                foreach (var item in items)
                {
                    var id = Id(item);
                    if (!ids.ContainsKey(id))
                    {
                        // Another scenario's item: give it back at once.
                        Assert.Equal(HttpStatusCode.NoContent, await ReleaseAsync(id));
                        continue;
                    }

                    var leaseUntil = item.GetProperty("leaseUntil").GetDateTimeOffset();
                    grants.Add((dialer, id, leaseUntil, received));
                    if (!firstHolder.TryAdd(id, dialer))
                    {
                        await AckAsync(dialer, id, "answered");
                        continue;
                    }

                    var choice = int.Parse(ids[id].AsSpan(3), CultureInfo.InvariantCulture) % 4;
                    switch (choice)
                    {
                        case 0:
                            await AckAsync(dialer, id, "answered");
                            break;
                        case 1:
                            var sent = DateTimeOffset.UtcNow;
                            releases.Add((dialer, id, await ReleaseAsync(id), sent));
                            break;
                        default:
                            lapsing.Add((id, leaseUntil, AckLate: choice == 3));
                            break;
                    }
                }

                if (items.Count == 0)
                {
                    // Nothing free right now: ask again shortly (a dialer's polling interval, not a wait for a result;
                    // shorter while a lease of its own is about to end).
                    await Task.Delay(lapsing.Count > 0 ? 20 : 100);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(1, 8).Select(i => Task.Run(() => DialAsync("lx-dialer-" + i))));
        output.WriteLine($"8 dialers: {grants.Count} grants, {releases.Count} releases, {acks.Count} acks in {clock.ElapsedMilliseconds} ms");
        Assert.True(finished.Count == ids.Count, $"only {finished.Count} of {ids.Count} items acknowledged before the deadline");

        // No two holders at once: each grant starts at or after the previous one's lease end, unless that holder released it first.
        var overlaps = new List<string>();
        foreach (var item in grants.GroupBy(g => g.Id))
        {
            var ordered = item.OrderBy(g => g.LeaseUntil).ToList();
            for (var i = 1; i < ordered.Count; i++)
            {
                var (earlier, later) = (ordered[i - 1], ordered[i]);
                var start = later.LeaseUntil - lease;
                var released = releases.Any(r => r.Id == item.Key && r.Dialer == earlier.Dialer && r.Status == HttpStatusCode.NoContent && r.Sent >= earlier.Received && r.Sent <= later.Received);
                if (start < earlier.LeaseUntil && !released)
                {
                    var tried = string.Join(", ", releases.Where(r => r.Id == item.Key).Select(r => $"{r.Dialer} released at {r.Sent:O}: {(int)r.Status}"));
                    overlaps.Add($"{item.Key}: {earlier.Dialer} until {earlier.LeaseUntil:O} (received {earlier.Received:O}), {later.Dialer} from {start:O} (received {later.Received:O}); {tried}");
                }
            }
        }

        Assert.True(overlaps.Count == 0, $"{overlaps.Count} items held by two dialers at once: " + string.Join("; ", overlaps.Take(5)));
        Assert.True(grants.Select(g => g.Id).Distinct().Count() == ids.Count, "every item was leased");
        Assert.Contains(grants.GroupBy(g => g.Id), g => g.Count() > 1);
        Assert.All(releases, r => Assert.Equal(HttpStatusCode.NoContent, r.Status));

        // One final state per item: done, with the outcome of the acknowledgement that succeeded (a late one that lost
        // the race got 409), and only that outcome on the topic.
        var outcomes = await OutcomeRecordsAsync();
        foreach (var (id, customer) in ids)
        {
            var succeeded = acks.Where(a => a.Id == id && a.Status == HttpStatusCode.NoContent).Select(a => a.Outcome).Distinct().ToList();
            var winner = Assert.Single(succeeded);
            Assert.All(acks.Where(a => a.Id == id && a.Status != HttpStatusCode.NoContent), a => Assert.Equal(HttpStatusCode.Conflict, a.Status));
            Assert.Equal(("done", winner), await StateAndOutcomeAsync(customer, id));
            Assert.Equal([winner], outcomes.Where(r => r.OutreachId == id).Select(r => r.Outcome));
            Assert.Single((await TriggersAsync(customer)).GetProperty("outreach").EnumerateArray());
        }

        output.WriteLine($"acknowledgements refused with 409 (late ones that lost the race): {acks.Count(a => a.Status == HttpStatusCode.Conflict)}");
    }

    [Fact]
    public async Task No_answer_on_a_rule_with_retries_queues_a_second_attempt_after_the_retry_delay()
    {
        var t = Now();
        const string customer = "retry-1";
        await ContactableAsync([customer], ZoneAt(t, 14), t.AddMinutes(-1));
        await fixture.ProduceAsync("callcenter", [(customer, AbandonedCall(customer, t, waitSeconds: 150))]);
        await WaitForItemAsync(customer, i => i.GetProperty("state").GetString() == "due");
        var item = Assert.Single(await LeaseOwnAsync("voice", [customer], leaseSeconds: 60, "retrier"));
        var id = Id(item);

        var before = await StatsAsync("voice");
        var ackedFrom = DateTimeOffset.UtcNow;
        Assert.Equal(HttpStatusCode.NoContent, await AckAsync(id, "no_answer"));
        var ackedTo = DateTimeOffset.UtcNow;
        Assert.Equal(HttpStatusCode.NoContent, await AckAsync(id, "no_answer"));
        var after = await StatsAsync("voice");
        Assert.Equal((before["done"] + 1, before["due"] + 1, before["leased"] - 1), (after["done"], after["due"], after["leased"]));

        // service-recovery: retry {attempts: 1, after: 2h}, expires 1d.
        var items = (await TriggersAsync(customer)).GetProperty("outreach").EnumerateArray().ToList();
        Assert.Equal(2, items.Count);
        var done = Assert.Single(items, i => Id(i) == id);
        Assert.Equal(("done", "no_answer", 1), (done.GetProperty("state").GetString(), done.GetProperty("outcome").GetString(), done.GetProperty("attempt").GetInt32()));
        var retry = Assert.Single(items, i => Id(i) != id);
        Assert.Equal(("due", 2, "service-recovery", "voice"), (retry.GetProperty("state").GetString(), retry.GetProperty("attempt").GetInt32(), retry.GetProperty("rule").GetString(), retry.GetProperty("channel").GetString()));
        var dueAt = retry.GetProperty("dueAt").GetDateTimeOffset();
        Assert.InRange(dueAt, ackedFrom.AddHours(2).AddSeconds(-1), ackedTo.AddHours(2).AddSeconds(1));
        Assert.Equal(dueAt.AddDays(1), retry.GetProperty("expiresAt").GetDateTimeOffset());

        await Eventually.WaitAsync(
            async () => (await FiringsAsync(customer)).Any(f => Id(f) == id && f.GetProperty("outcome").GetString() == "no_answer"),
            Patience,
            () => "the no_answer outcome on the customer's firing");

        // Not due yet: a lease now does not offer the second attempt.
        Assert.Empty(await LeaseOwnAsync("voice", [customer], leaseSeconds: 60, "retrier"));
    }

    [Fact]
    public async Task An_item_whose_reason_went_away_before_the_lease_is_dropped_with_that_reason()
    {
        // cart-abandoned: cartAddsSinceOrder > 0 and 24 h since the last cart add; sms, expires 2d. The cart add is
        // 26 h ago, so the customer's wake-up is due 2 h ago in event time. It fires when time passes it: the
        // partition's watermark (its latest event time minus 5 minutes), or sooner the customer's own next event,
        // since a customer's wake-ups due by an event's time fire before the event is applied. The page view "now"
        // does that, whatever else is on the partition; the firing instant, and so dueAt, is the wake-up's own
        // instant (2 h ago), which the wall clock has passed, so the item is due at once.
        // The order then takes the reason away. Nothing withdraws the queued item; only the lease-time re-check,
        // which evaluates the rule on the customer's live state as of its event time, notices and drops it.
        var t = Now();
        const string customer = "cart-1";
        var zone = ZoneAt(t, 14); // 12:xx local when the trigger fires, 14:xx now: no quiet hours in the way
        await ContactableAsync([customer], zone, t.AddHours(-27));
        await fixture.ProduceAsync("clickstream", [(customer, Event($"{customer}-cart", customer, t.AddHours(-26), "add_to_cart", ""","sessionId":"s1","productId":"p1" """.Trim()))]);
        await fixture.WaitConsumedAsync("clickstream");
        await fixture.ProduceAsync("clickstream", [(customer, Event($"{customer}-view", customer, t, "page_view", ""","sessionId":"s2" """.Trim()))]);

        var queued = await WaitForItemAsync(customer, i => i.GetProperty("rule").GetString() == "cart-abandoned");
        Assert.Equal(("due", "sms"), (queued.GetProperty("state").GetString(), queued.GetProperty("channel").GetString()));
        Assert.Equal(t.AddHours(-2), queued.GetProperty("dueAt").GetDateTimeOffset());
        Assert.Equal(t.AddHours(-2).AddDays(2), queued.GetProperty("expiresAt").GetDateTimeOffset());

        await fixture.ProduceAsync("orders", [(customer, Event($"{customer}-order", customer, t.AddSeconds(1), "order_placed", ""","orderId":"o1","amount":30"""))]);
        await Eventually.WaitAsync(
            async () => (await Http.GetFromJsonAsync<JsonElement>($"/v1/customers/{customer}")).GetProperty("orders").GetProperty("count").GetInt32() == 1,
            Patience,
            () => "the order applied");

        var before = await StatsAsync("sms");
        Assert.Empty(await LeaseOwnAsync("sms", [customer], leaseSeconds: 60, "texter"));
        var dropped = await ItemAsync(customer, Id(queued));
        Assert.Equal(("dropped", "condition-gone"), (dropped.GetProperty("state").GetString(), dropped.GetProperty("reason").GetString()));
        var after = await StatsAsync("sms");
        Assert.Equal((before["dropped"] + 1, before["due"] - 1), (after["dropped"], after["due"]));
    }

    [Fact]
    public async Task Quiet_hours_in_the_customers_zone_defer_an_item_to_the_next_09_00_local()
    {
        var t = Now();

        // Fired inside quiet hours (03:xx local by event time): queued for 09:00 local at once.
        const string night = "quiet-night";
        var nightZone = ZoneAt(t, 3);

        // Fired at 20:xx local, two hours ago, so due then; at the lease it is 22:xx there: deferred at the lease.
        const string evening = "quiet-evening";
        var eveningZone = ZoneAt(t, 22);

        await ContactableAsync([night], nightZone, t.AddMinutes(-1));
        await ContactableAsync([evening], eveningZone, t.AddHours(-2).AddMinutes(-1));
        await fixture.ProduceAsync("callcenter", [(night, AbandonedCall(night, t, waitSeconds: 150)), (evening, AbandonedCall(evening, t.AddHours(-2), waitSeconds: 150))]);

        var nightItem = await WaitForItemAsync(night, _ => true);
        Assert.Equal(NextNine(t, nightZone.Hours), nightItem.GetProperty("dueAt").GetDateTimeOffset());
        Assert.Equal(NextNine(t, nightZone.Hours).AddDays(1), nightItem.GetProperty("expiresAt").GetDateTimeOffset());
        var eveningItem = await WaitForItemAsync(evening, _ => true);
        Assert.Equal(("due", t.AddHours(-2)), (eveningItem.GetProperty("state").GetString(), eveningItem.GetProperty("dueAt").GetDateTimeOffset()));

        Assert.Empty(await LeaseOwnAsync("voice", [night, evening], leaseSeconds: 60, "night-shift"));

        var deferred = await ItemAsync(evening, Id(eveningItem));
        Assert.Equal(("due", "quiet-hours"), (deferred.GetProperty("state").GetString(), deferred.GetProperty("reason").GetString()));
        Assert.Equal(NextNine(DateTimeOffset.UtcNow, eveningZone.Hours), deferred.GetProperty("dueAt").GetDateTimeOffset());
        var stillQueued = await ItemAsync(night, Id(nightItem));
        Assert.Equal(("due", NextNine(t, nightZone.Hours)), (stillQueued.GetProperty("state").GetString(), stillQueued.GetProperty("dueAt").GetDateTimeOffset()));

        // Asked again, neither is offered.
        Assert.Empty(await LeaseOwnAsync("voice", [night, evening], leaseSeconds: 60, "night-shift"));
    }

    [Fact]
    public async Task Outreach_routes_need_a_token_with_the_dialer_scope()
    {
        var body = new { channel = "voice", max = 1, leaseSeconds = 60, dialer = "d" };
        async Task<HttpResponseMessage> Lease(string? token) => await PostAsync("/v1/outreach/lease", body, token);

        using (var none = await Lease(null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
            Assert.Equal("application/problem+json", none.Content.Headers.ContentType?.MediaType);
            Assert.Equal("Bearer", none.Headers.WwwAuthenticate.Single().Scheme);
        }

        using (var unknown = await Lease("not-a-configured-token-000000"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        }

        // A token without the dialer scope (admin implies every scope, CONTRACTS.md §7.1).
        using (var reader = await Lease(ReaderToken))
        {
            Assert.Equal(HttpStatusCode.Forbidden, reader.StatusCode);
            Assert.Equal("application/problem+json", reader.Content.Headers.ContentType?.MediaType);
        }

        using (var ack = await PostAsync("/v1/outreach/no-such-item/ack", new { outcome = "answered" }, null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, ack.StatusCode);
        }

        using (var release = await PostAsync("/v1/outreach/no-such-item/release", new { }, ReaderToken))
        {
            Assert.Equal(HttpStatusCode.Forbidden, release.StatusCode);
        }

        using (var ack = await PostAsync("/v1/outreach/no-such-item/ack", new { outcome = "answered" }, DialerToken))
        {
            Assert.Equal(HttpStatusCode.NotFound, ack.StatusCode);
        }

        using (var invalid = await PostAsync("/v1/outreach/lease", new { channel = "voice", max = 1, leaseSeconds = 4, dialer = "d" }, DialerToken))
        {
            Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        }

        // Read-only routes stay open.
        using var stats = await Http.GetAsync("/v1/outreach/stats");
        Assert.Equal(HttpStatusCode.OK, stats.StatusCode);
    }

    // ---- events ----

    /// <summary>Whole seconds: every instant in these tests compares exactly after a round trip through JSON.</summary>
    private static DateTimeOffset Now() => DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds());

    private static string Event(string id, string customer, DateTimeOffset at, string type, string fields) =>
        $$"""{"eventId":"{{id}}","customerId":"{{customer}}","occurredAt":"{{at:O}}","type":"{{type}}"{{fields}}}""";

    private static string AbandonedCall(string customer, DateTimeOffset at, int waitSeconds) =>
        Event($"{customer}-call-{at.ToUnixTimeSeconds()}", customer, at, "call_abandoned", $$""","callId":"{{customer}}-{{at.ToUnixTimeSeconds()}}","queue":"general","waitSeconds":{{waitSeconds}}""");

    /// <summary>A fixed-offset zone in which the local hour at <paramref name="at"/> is <paramref name="hour"/>.</summary>
    private static (string Id, int Hours) ZoneAt(DateTimeOffset at, int hour)
    {
        var offset = ((hour - at.UtcDateTime.Hour) % 24 + 24) % 24;
        if (offset > 14)
        {
            offset -= 24;
        }

        // POSIX inversion: Etc/GMT-3 is three hours ahead of UTC.
        var id = offset == 0 ? "Etc/GMT" : offset > 0 ? $"Etc/GMT-{offset}" : $"Etc/GMT+{-offset}";
        var zone = TimeZoneInfo.FindSystemTimeZoneById(id);
        Assert.Equal(TimeSpan.FromHours(offset), zone.GetUtcOffset(at));
        Assert.Equal(hour, TimeZoneInfo.ConvertTime(at, zone).Hour);
        return (id, offset);
    }

    /// <summary>The end of the quiet hours (21:00–09:00) that contain <paramref name="at"/> in a fixed-offset zone.</summary>
    private static DateTimeOffset NextNine(DateTimeOffset at, int offsetHours)
    {
        var local = at.ToOffset(TimeSpan.FromHours(offsetHours));
        Assert.True(local.Hour is >= 21 or < 9, $"{local:O} is not in quiet hours");
        var day = local.Hour < 9 ? local.Date : local.Date.AddDays(1);
        return new DateTimeOffset(day.AddHours(9), local.Offset).ToUniversalTime();
    }

    /// <summary>Consent for voice and SMS and a time zone, applied before anything else of theirs is produced.</summary>
    private async Task ContactableAsync(IReadOnlyList<string> customers, (string Id, int Hours) zone, DateTimeOffset at)
    {
        await fixture.ProduceAsync("customer-updates", customers.SelectMany(c => new[]
        {
            (c, Event($"{c}-consent", c, at, "consent", ""","consent":{"voice":true,"sms":true}""")),
            (c, Event($"{c}-attributes", c, at, "attributes", $$""","attributes":{"timeZone":"{{zone.Id}}"}""")),
        }));
        await fixture.WaitConsumedAsync("customer-updates");
    }

    // ---- HTTP ----

    private static string Id(JsonElement item) => (item.TryGetProperty("outreachId", out var id) ? id : item.GetProperty("id")).GetString()!;

    private async Task<HttpResponseMessage> PostAsync(string path, object body, string? token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return await Http.SendAsync(request);
    }

    private async Task<(HttpStatusCode Status, List<JsonElement> Items)> LeaseAsync(string channel, int max, int leaseSeconds, string dialer)
    {
        using var response = await PostAsync("/v1/outreach/lease", new { channel, max, leaseSeconds, dialer }, DialerToken);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return (response.StatusCode, []);
        }

        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (response.StatusCode, body.GetProperty("items").EnumerateArray().ToList());
    }

    /// <summary>Leases what is due on <paramref name="channel"/>, keeps the items of <paramref name="customers"/> and releases the rest.</summary>
    private async Task<List<JsonElement>> LeaseOwnAsync(string channel, IReadOnlyCollection<string> customers, int leaseSeconds, string dialer)
    {
        var (status, items) = await LeaseAsync(channel, max: 100, leaseSeconds, dialer);
        Assert.Equal(HttpStatusCode.OK, status);
        foreach (var other in items.Where(i => !customers.Contains(i.GetProperty("customerId").GetString() ?? "")))
        {
            using var released = await PostAsync($"/v1/outreach/{Id(other)}/release", new { }, DialerToken);
            Assert.Equal(HttpStatusCode.NoContent, released.StatusCode);
        }

        return items.Where(i => customers.Contains(i.GetProperty("customerId").GetString() ?? "")).ToList();
    }

    private async Task<HttpStatusCode> AckAsync(string outreachId, string outcome)
    {
        using var response = await PostAsync($"/v1/outreach/{outreachId}/ack", new { outcome }, DialerToken);
        return response.StatusCode;
    }

    private async Task<HttpStatusCode> ReleaseAsync(string outreachId)
    {
        using var response = await PostAsync($"/v1/outreach/{outreachId}/release", new { }, DialerToken);
        return response.StatusCode;
    }

    private async Task<Dictionary<string, long>> StatsAsync(string channel)
    {
        var stats = await Http.GetFromJsonAsync<JsonElement>("/v1/outreach/stats");
        return stats.GetProperty(channel).EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
    }

    private async Task<JsonElement> TriggersAsync(string customer) => await Http.GetFromJsonAsync<JsonElement>($"/v1/customers/{customer}/triggers");

    private async Task<List<JsonElement>> FiringsAsync(string customer)
    {
        using var response = await Http.GetAsync($"/v1/customers/{customer}/triggers");
        return response.IsSuccessStatusCode ? (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("firings").EnumerateArray().ToList() : [];
    }

    private async Task<(string? State, string? Outcome)> StateAndOutcomeAsync(string customer, string outreachId)
    {
        var item = await ItemAsync(customer, outreachId);
        return (item.GetProperty("state").GetString(), item.GetProperty("outcome").GetString());
    }

    /// <summary>Every record on <c>outreach-outcomes</c>, read with kcat as an external consumer would.</summary>
    private async Task<List<(string? Type, string? CustomerId, string? OutreachId, string? Channel, string? Outcome)>> OutcomeRecordsAsync()
    {
        var (code, records, err) = await Kcat.RunAsync(["-C", "-b", fixture.Broker.BootstrapServers, "-t", "outreach-outcomes", "-o", "beginning", "-e", "-q", "-f", "%s\n"]);
        Assert.True(code == 0, err);
        return records.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(r => JsonDocument.Parse(r).RootElement)
            .Select(r => (r.GetProperty("type").GetString(), r.GetProperty("customerId").GetString(), r.GetProperty("outreachId").GetString(), r.GetProperty("channel").GetString(), r.GetProperty("outcome").GetString()))
            .ToList();
    }

    private async Task<JsonElement> ItemAsync(string customer, string outreachId) =>
        Assert.Single((await TriggersAsync(customer)).GetProperty("outreach").EnumerateArray(), i => Id(i) == outreachId);

    /// <summary>Waits until the customer's outreach view holds an item matching <paramref name="match"/> (items are stored at the next checkpoint).</summary>
    private async Task<JsonElement> WaitForItemAsync(string customer, Func<JsonElement, bool> match)
    {
        JsonElement found = default;
        var last = "";
        await Eventually.WaitAsync(
            async () =>
            {
                using var response = await Http.GetAsync($"/v1/customers/{customer}/triggers");
                if (!response.IsSuccessStatusCode)
                {
                    return false;
                }

                var body = await response.Content.ReadFromJsonAsync<JsonElement>();
                last = body.ToString();
                var items = body.GetProperty("outreach").EnumerateArray().Where(match).ToList();
                found = items.FirstOrDefault();
                return items.Count > 0;
            },
            Patience,
            () => $"an outreach item for {customer}; last seen {last}");
        return found;
    }

    /// <summary>One broker and one engine with a dialer and an admin token, shared by the scenarios.</summary>
    public sealed class SharedEngine : IAsyncLifetime
    {
        private readonly ConcurrentDictionary<string, long> _produced = new(StringComparer.Ordinal);
        private string? _dataDir;

        public BrokerProcess Broker { get; private set; } = null!;

        public EngineProcess Process { get; private set; } = null!;

        public HttpClient Http => Process.Http;

        public async Task InitializeAsync()
        {
            Broker = await BrokerProcess.StartAsync(partitions: 4);
            _dataDir = TestEnvironment.NewTempDir("streaming-outreach");
            Process = await EngineProcess.StartAsync(Broker.BootstrapServers, _dataDir, new Dictionary<string, string>
            {
                ["Streaming__Auth__Tokens__0__Token"] = DialerToken,
                ["Streaming__Auth__Tokens__0__Scopes__0"] = "dialer",
                ["Streaming__Auth__Tokens__1__Token"] = AdminToken,
                ["Streaming__Auth__Tokens__1__Scopes__0"] = "admin",
                ["Streaming__Auth__Tokens__2__Token"] = ReaderToken,
                ["Streaming__Auth__Tokens__2__Scopes__0"] = "read",

                // Dialers here poll without pause to provoke races; the rate limit has its own test.
                ["Streaming__RateLimits__Leases__PermitLimit"] = "1000000",
            });
        }

        /// <summary>Produces records and counts them, so <see cref="WaitConsumedAsync"/> knows when the engine applied them.</summary>
        public async Task ProduceAsync(string topic, IEnumerable<(string Key, string Value)> records)
        {
            var list = records.ToList();
            await Kcat.ProduceAsync(Broker.BootstrapServers, topic, list);
            _produced.AddOrUpdate(topic, list.Count, (_, n) => n + list.Count);
        }

        /// <summary>Waits until the engine processed everything produced to <paramref name="topic"/> so far.</summary>
        public async Task WaitConsumedAsync(string topic) =>
            await Process.WaitProcessedAsync(topic, _produced.GetValueOrDefault(topic), Patience);

        public async Task DisposeAsync()
        {
            if (Process is not null)
            {
                await Process.DisposeAsync();
            }

            if (Broker is not null)
            {
                await Broker.DisposeAsync();
            }

            if (_dataDir is not null)
            {
                Directory.Delete(_dataDir, recursive: true);
            }
        }
    }
}
