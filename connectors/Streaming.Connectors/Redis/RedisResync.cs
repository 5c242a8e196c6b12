using System.Diagnostics;
using StackExchange.Redis;
using Streaming.Engine.Model;
using Streaming.Engine.Runtime;

namespace Streaming.Connectors.Redis;

/// <summary>What <see cref="RedisResync"/> did.</summary>
public sealed record ResyncResult(long Seq, long KeysDeleted, long Customers, long Written, long NewerKept, long MembersPruned, TimeSpan Elapsed);

/// <summary>
/// Rebuilds a prefix's mirror from the state store, in four steps: delete the prefix's keys (SCAN and DEL in batches,
/// never KEYS); take a consistent snapshot of the store; write every stored customer with the snapshot's checkpoint
/// seq (the mirror's own script, replacing an equal seq so any stray difference is repaired, leaving a greater one);
/// prune set members whose hash no longer claims them. Safe while an engine runs: its writes carry greater seqs and
/// win, and the prune step mends memberships that raced with the delete step; readers only see keys missing meanwhile.
/// </summary>
public sealed class RedisResync(ConnectionMultiplexer connection, RedisKeySchema schema, Action<string> progress)
{
    public const int BatchSize = 500;

    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(2);

    private readonly RedisScript _write = new(RedisKeySchema.WriteScript);
    private readonly RedisScript _prune = new(RedisKeySchema.PruneScript);

    /// <summary>
    /// What the rebuilt keys' <c>seq</c> is (<see cref="RedisMirrorOptions.SeqSource"/>): the snapshot's checkpoint number
    /// for a single node (the default), each customer's durable version (its journal sequence number) for a cluster. The
    /// marker hash is set to match.
    /// </summary>
    public MirrorSeqSource SeqSource { get; init; } = MirrorSeqSource.Checkpoint;

    /// <summary>Rebuilds from the SQLite journal in <paramref name="dataDir"/>.</summary>
    public Task<ResyncResult> RunAsync(string dataDir, CancellationToken ct) =>
        RunAsync(new Persistence.ActorStoreOptions { Provider = Persistence.StoreProvider.Sqlite, DataDir = dataDir }, ct);

    /// <summary>
    /// Rebuilds from the journal in <paramref name="store"/> (the checkpoint number from <c>state.db</c> in its
    /// <see cref="Persistence.ActorStoreOptions.DataDir"/>).
    /// </summary>
    /// <remarks>A store without a journal yet (no customer saved) leaves the prefix empty.</remarks>
    public async Task<ResyncResult> RunAsync(Persistence.ActorStoreOptions store, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(store);
        var dataDir = store.DataDir ?? throw new ArgumentException("the store options need the data directory (state.db)", nameof(store));
        var started = Stopwatch.StartNew();
        var db = connection.GetDatabase();

        long deleted = 0;
        foreach (var pattern in schema.Patterns)
        {
            deleted += await ScanAsync(db, "SCAN", null, pattern, keys => DeleteAsync(db, keys), ct).ConfigureAwait(false);
        }

        progress($"deleted {deleted} keys under '{schema.Prefix}'");

        if (!Persistence.JournalSnapshot.Exists(store))
        {
            // No engine has saved a customer there yet: the prefix stays empty.
            var number = Sql.EngineStore.ReadReserved(store);
            progress($"no journal yet: no customers, checkpoint {number}");
            await MarkAsync(db, number).ConfigureAwait(false);
            return new ResyncResult(number, deleted, 0, 0, 0, 0, started.Elapsed);
        }

        using var snapshot = Persistence.JournalSnapshot.Open(store, dataDir);
        progress($"store snapshot: {snapshot.Customers} customers at checkpoint {snapshot.Seq}");
        long customers = 0, written = 0, newer = 0;
        var batch = new List<CustomerProjection>(BatchSize);
        var lastProgress = Stopwatch.StartNew();
        foreach (var (id, saved, version) in snapshot.ReadVersioned())
        {
            ct.ThrowIfCancellationRequested();
            batch.Add(CustomerProjection.From(CustomerStateCodec.Decode(id, saved.State), saved.Partition) with { Version = version });
            if (batch.Count == BatchSize)
            {
                (var w, var n) = await WriteAsync(db, batch, snapshot.Seq).ConfigureAwait(false);
                customers += batch.Count;
                written += w;
                newer += n;
                batch.Clear();
                if (lastProgress.Elapsed >= ProgressInterval)
                {
                    progress($"written {customers}/{snapshot.Customers} customers");
                    lastProgress.Restart();
                }
            }
        }

        if (batch.Count > 0)
        {
            (var w, var n) = await WriteAsync(db, batch, snapshot.Seq).ConfigureAwait(false);
            customers += batch.Count;
            written += w;
            newer += n;
        }

        progress($"written {customers}/{snapshot.Customers} customers ({newer} kept a newer seq written meanwhile)");

        long pruned = 0;
        foreach (var (pattern, kind) in new[] { (schema.Prefix + "tag:*", "tag"), (schema.Prefix + "stage:*", "stage") })
        {
            await ScanAsync(db, "SCAN", null, pattern, async sets =>
            {
                foreach (var set in sets)
                {
                    var setKey = (string)set!;
                    var name = setKey[(pattern.Length - 1)..];
                    pruned += await ScanAsync(db, "SSCAN", setKey, null, members => PruneAsync(db, setKey, kind, name, members), ct).ConfigureAwait(false);
                }

                return 0;
            }, ct).ConfigureAwait(false);
        }

        if (pruned > 0)
        {
            progress($"pruned {pruned} set members whose customer no longer qualifies");
        }

        // Every customer of the snapshot is in Redis now: a later engine start has nothing to catch up before it.
        await MarkAsync(db, snapshot.Seq).ConfigureAwait(false);
        return new ResyncResult(snapshot.Seq, deleted, customers, written, newer, pruned, started.Elapsed);
    }

    /// <summary>
    /// Runs a cursor scan (<c>SCAN</c> over keys matching <paramref name="pattern"/>, or <c>SSCAN</c> over the members of
    /// <paramref name="key"/>) to its end, handing each page to <paramref name="page"/>; returns the sum of its answers.
    /// </summary>
    private static async Task<long> ScanAsync(IDatabase db, string command, RedisKey? key, string? pattern, Func<RedisValue[], Task<long>> page, CancellationToken ct)
    {
        long total = 0;
        var cursor = "0";
        do
        {
            ct.ThrowIfCancellationRequested();
            var args = new List<object>();
            if (key is { } k)
            {
                args.Add(k);
            }

            args.Add(cursor);
            if (pattern is not null)
            {
                args.Add("MATCH");
                args.Add(pattern);
            }

            args.Add("COUNT");
            args.Add(BatchSize);
            var reply = (RedisResult[])(await db.ExecuteAsync(command, args.ToArray()).ConfigureAwait(false))!;
            cursor = (string)reply[0]!;
            var items = (RedisValue[])reply[1]!;
            if (items.Length > 0)
            {
                total += await page(items).ConfigureAwait(false);
            }
        }
        while (cursor != "0");

        return total;
    }

    private static async Task<long> DeleteAsync(IDatabase db, RedisValue[] keys)
    {
        var redisKeys = new RedisKey[keys.Length];
        for (var i = 0; i < keys.Length; i++)
        {
            redisKeys[i] = (string)keys[i]!;
        }

        return await db.KeyDeleteAsync(redisKeys).ConfigureAwait(false);
    }

    /// <summary>
    /// Sets the marker hash for <see cref="SeqSource"/>: its kind, and for checkpoint numbers the number the store is at
    /// (never moved back); customer versions have no marker number (each key carries its own).
    /// </summary>
    private async Task MarkAsync(IDatabase db, long checkpoint)
    {
        await db.HashSetAsync(schema.MarkerKey, RedisKeySchema.SeqSourceField, RedisKeySchema.SeqSourceName(SeqSource)).ConfigureAwait(false);
        if (SeqSource == MirrorSeqSource.Checkpoint)
        {
            await db.ScriptEvaluateAsync(RedisKeySchema.RaiseMarkerScript, [schema.MarkerKey], [checkpoint]).ConfigureAwait(false);
        }
        else
        {
            await db.HashDeleteAsync(schema.MarkerKey, "seq").ConfigureAwait(false);
        }
    }

    private async Task<(long Written, long Newer)> WriteAsync(IDatabase db, List<CustomerProjection> customers, long seq)
    {
        var sha = await _write.ShaAsync(connection).ConfigureAwait(false);
        for (var attempt = 0; ; attempt++)
        {
            var batch = db.CreateBatch();
            var tasks = new Task<RedisResult>[customers.Count];
            for (var i = 0; i < customers.Count; i++)
            {
                var (keys, args) = schema.WriteArguments(customers[i], SeqSource == MirrorSeqSource.CustomerVersion ? customers[i].Version : seq, replaceEqual: true);
                tasks[i] = batch.ScriptEvaluateAsync(sha, keys, args);
            }

            batch.Execute();
            var all = Task.WhenAll(tasks);
            try
            {
                await all.ConfigureAwait(false);
            }
            catch (RedisServerException) when (attempt == 0 && RedisScript.FailedWithNoScript(all))
            {
                sha = await _write.ShaAsync(connection, reload: true).ConfigureAwait(false);
                continue;
            }

            long written = 0, newer = 0;
            foreach (var task in tasks)
            {
                var result = (long)task.Result;
                if (result == RedisKeySchema.Written)
                {
                    written++;
                }
                else if (result == RedisKeySchema.NewerPresent)
                {
                    newer++;
                }
            }

            return (written, newer);
        }
    }

    private async Task<long> PruneAsync(IDatabase db, RedisKey set, string kind, string name, RedisValue[] members)
    {
        var args = new RedisValue[members.Length + 3];
        args[0] = schema.Prefix;
        args[1] = kind;
        args[2] = name;
        members.CopyTo(args, 3);
        var sha = await _prune.ShaAsync(connection).ConfigureAwait(false);
        try
        {
            return (long)await db.ScriptEvaluateAsync(sha, [set], args).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (RedisScript.IsNoScript(ex))
        {
            sha = await _prune.ShaAsync(connection, reload: true).ConfigureAwait(false);
            return (long)await db.ScriptEvaluateAsync(sha, [set], args).ConfigureAwait(false);
        }
    }
}
