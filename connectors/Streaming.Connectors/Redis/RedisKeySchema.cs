using System.Globalization;
using StackExchange.Redis;
using Streaming.Engine.Runtime;

namespace Streaming.Connectors.Redis;

/// <summary>
/// The Redis key schema of the state mirror, a public contract (README, "Redis mirror"): a hash per customer and exact
/// sets per tag and per lifecycle stage, all under one prefix. Changing a name or a format here breaks readers.
/// </summary>
public sealed class RedisKeySchema
{
    public const string DefaultPrefix = "streaming:";

    /// <summary>Longest prefix accepted.</summary>
    public const int MaxPrefixLength = 64;

    public const string OrdersCount = "ordersCount";
    public const string NetAmount = "netAmount";
    public const string LifecycleStage = "lifecycleStage";
    public const string Tier = "tier";
    public const string RfmSegment = "rfmSegment";
    public const string ChurnRisk = "churnRisk";
    public const string Tags = "tags";
    public const string RuleVersion = "ruleVersion";
    public const string UpdatedAt = "updatedAt";
    public const string Seq = "seq";

    /// <summary>Every field of a customer hash, in the order the write script sets them.</summary>
    public static readonly IReadOnlyList<string> Fields = [OrdersCount, NetAmount, LifecycleStage, Tier, RfmSegment, ChurnRisk, Tags, RuleVersion, UpdatedAt, Seq];

    public RedisKeySchema(string prefix)
    {
        if (Validate(prefix) is { } error)
        {
            throw new ArgumentException(error, nameof(prefix));
        }

        Prefix = prefix;
    }

    public string Prefix { get; }

    public string CustomerKey(string customerId) => Prefix + "customer:" + customerId;

    public string TagKey(string tag) => Prefix + "tag:" + tag;

    public string StageKey(string stage) => Prefix + "stage:" + stage;

    /// <summary>
    /// <c>{prefix}mirror</c>: a hash whose field <c>seq</c> says every checkpoint up to it is in Redis (the mirror's
    /// progress, so an engine that crashed before writing a checkpoint's customers finds them at its next start).
    /// </summary>
    public string MarkerKey => Prefix + "mirror";

    /// <summary>Raises the marker (KEYS[1]) to ARGV[1] unless it already holds as much: the marker never moves back.</summary>
    internal const string RaiseMarkerScript =
        "local c = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1') " +
        "if tonumber(ARGV[1]) > c then redis.call('HSET', KEYS[1], 'seq', ARGV[1]) end return 0";

    /// <summary>The marker hash's field naming what the customers' <c>seq</c> is (<see cref="SeqSourceName"/>).</summary>
    public const string SeqSourceField = "seqSource";

    /// <summary>How <see cref="SeqSourceField"/> spells a <see cref="MirrorSeqSource"/>: <c>checkpoint</c>, <c>customerVersion</c>.</summary>
    public static string SeqSourceName(MirrorSeqSource source) => source switch
    {
        MirrorSeqSource.Checkpoint => "checkpoint",
        MirrorSeqSource.CustomerVersion => "customerVersion",
        _ => throw new ArgumentOutOfRangeException(nameof(source), source, "unknown seq source"),
    };

    /// <summary>Why a mirror writing <paramref name="mine"/> seqs refuses a prefix whose keys carry <paramref name="found"/> ones.</summary>
    internal static string SeqSourceRefusal(string prefix, string found, string mine) =>
        $"the Redis prefix '{prefix}' holds customers whose seq is a {(found == "checkpoint" ? "single node's checkpoint number" : "customer version (written by a cluster)")}, " +
        $"and this engine writes {(mine == "checkpoint" ? "checkpoint numbers (a single node)" : "customer versions (a cluster)")}: the two do not compare. " +
        "Rebuild the prefix for this engine with 'streaming mirror resync' (with the same configuration), or use another prefix (Streaming:Redis:Prefix)";

    /// <summary>
    /// Claims the marker hash (KEYS[1]) for ARGV[1], the <see cref="SeqSourceName"/> a mirror writes, and returns the kind
    /// the prefix holds: ARGV[1] when it is free or already that kind. A marker with a checkpoint <c>seq</c> field and no
    /// <see cref="SeqSourceField"/> was written by a single node (before the field existed).
    /// </summary>
    internal const string ClaimScript =
        """
        local found = redis.call('HGET', KEYS[1], 'seqSource')
        if not found and redis.call('HEXISTS', KEYS[1], 'seq') == 1 then found = 'checkpoint' end
        if found and found ~= ARGV[1] then return found end
        if not found then redis.call('HSET', KEYS[1], 'seqSource', ARGV[1]) end
        return ARGV[1]
        """;

    /// <summary>SCAN patterns of the three key families (the prefix holds no glob characters, see <see cref="Validate"/>).</summary>
    public IReadOnlyList<string> Patterns => [Prefix + "customer:*", Prefix + "tag:*", Prefix + "stage:*"];

    /// <summary>
    /// Null when <paramref name="prefix"/> is usable, else why not. Letters, digits and <c>: _ . -</c> only: no glob
    /// characters (resync scans by pattern), no braces (no cluster hash tags; the mirror needs a single Redis).
    /// </summary>
    public static string? Validate(string? prefix)
    {
        if (prefix is null)
        {
            return "the prefix is missing";
        }

        if (prefix.Length > MaxPrefixLength)
        {
            return $"the prefix '{prefix}' is longer than {MaxPrefixLength} characters";
        }

        foreach (var c in prefix)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is ':' or '_' or '.' or '-'))
            {
                return $"the prefix '{prefix}' may hold only ASCII letters, digits and ':', '_', '.', '-' (found '{c}')";
            }
        }

        return null;
    }

    /// <summary>Tags as the hash stores them: sorted ordinally, comma-separated, empty for none.</summary>
    public static string FormatTags(IReadOnlyList<string> tags)
    {
        if (tags.Count == 0)
        {
            return "";
        }

        var sorted = tags.ToArray();
        Array.Sort(sorted, StringComparer.Ordinal);
        return string.Join(',', sorted);
    }

    /// <summary>RFC 3339 in UTC with up to 7 fractional digits (trailing zeros dropped); empty when unknown.</summary>
    public static string FormatInstant(long utcTicks) =>
        utcTicks <= 0 ? "" : new DateTime(utcTicks, DateTimeKind.Utc).ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);

    /// <summary>The customer's hash key, and the arguments of <see cref="WriteScript"/> (see there).</summary>
    internal (RedisKey[] Keys, RedisValue[] Args) WriteArguments(CustomerProjection p, long seq, bool replaceEqual) =>
    (
        [CustomerKey(p.CustomerId)],
        [
            seq,
            Prefix,
            p.CustomerId,
            replaceEqual ? "1" : "0",
            p.OrdersCount,
            p.NetAmount.ToString(CultureInfo.InvariantCulture),
            p.LifecycleStage ?? "",
            p.Tier ?? "",
            p.RfmSegment ?? "",
            p.ChurnRisk,
            FormatTags(p.Tags),
            p.RuleVersion ?? "",
            FormatInstant(p.UpdatedAtTicks),
        ]
    );

    /// <summary>Results of <see cref="WriteScript"/>.</summary>
    internal const long Written = 1, SameSeq = 0, NewerPresent = -1;

    /// <summary>
    /// Writes one customer atomically, only forward: KEYS[1] the hash; ARGV seq, prefix, id, replaceEqual, then the
    /// field values in <see cref="Fields"/> order (without seq). A hash with a greater seq is left alone (-1); an equal
    /// seq is left alone (0) unless replaceEqual is "1" (resync repairs it); otherwise the customer leaves the tag and
    /// stage sets it no longer qualifies for, joins its current ones (SADD always, so a missing membership is repaired
    /// too), and every field is set (1).
    /// </summary>
    internal const string WriteScript =
        """
        local key = KEYS[1]
        local seq = tonumber(ARGV[1])
        local current = redis.call('HGET', key, 'seq')
        if current then
          current = tonumber(current)
          if current > seq then return -1 end
          if current == seq and ARGV[4] ~= '1' then return 0 end
        end
        local prefix, id = ARGV[2], ARGV[3]
        local old = redis.call('HMGET', key, 'tags', 'lifecycleStage')
        local function set_of(text)
          local s = {}
          if text and text ~= '' then
            for v in string.gmatch(text, '[^,]+') do s[v] = true end
          end
          return s
        end
        local oldTags, newTags = set_of(old[1]), set_of(ARGV[11])
        for tag in pairs(oldTags) do
          if not newTags[tag] then redis.call('SREM', prefix .. 'tag:' .. tag, id) end
        end
        for tag in pairs(newTags) do redis.call('SADD', prefix .. 'tag:' .. tag, id) end
        local oldStage, newStage = old[2], ARGV[7]
        if oldStage and oldStage ~= '' and oldStage ~= newStage then
          redis.call('SREM', prefix .. 'stage:' .. oldStage, id)
        end
        if newStage ~= '' then redis.call('SADD', prefix .. 'stage:' .. newStage, id) end
        redis.call('HSET', key,
          'ordersCount', ARGV[5], 'netAmount', ARGV[6], 'lifecycleStage', ARGV[7], 'tier', ARGV[8],
          'rfmSegment', ARGV[9], 'churnRisk', ARGV[10], 'tags', ARGV[11], 'ruleVersion', ARGV[12],
          'updatedAt', ARGV[13], 'seq', ARGV[1])
        return 1
        """;

    /// <summary>
    /// Removes from one set (KEYS[1]) the members whose hash no longer claims it: ARGV prefix, kind (<c>tag</c> or
    /// <c>stage</c>), the set's name, then member ids. Returns how many were removed. Used by resync after a rebuild,
    /// atomically per call so a concurrent mirror write is never undone.
    /// </summary>
    internal const string PruneScript =
        """
        local prefix, kind, name = ARGV[1], ARGV[2], ARGV[3]
        local removed = 0
        for i = 4, #ARGV do
          local id = ARGV[i]
          local keep = false
          if kind == 'tag' then
            local tags = redis.call('HGET', prefix .. 'customer:' .. id, 'tags')
            if tags then
              for v in string.gmatch(tags, '[^,]+') do
                if v == name then keep = true end
              end
            end
          else
            keep = redis.call('HGET', prefix .. 'customer:' .. id, 'lifecycleStage') == name
          end
          if not keep then
            removed = removed + redis.call('SREM', KEYS[1], id)
          end
        end
        return removed
        """;
}
