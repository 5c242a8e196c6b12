using System.Diagnostics;
using System.Globalization;
using FsCheck;
using FsCheck.Fluent;
using Microsoft.FSharp.Core;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Streaming.Engine.Tests.Properties;

/// <summary>
/// Runs an FsCheck property from an xunit test with a seed chosen here, logged before the run and repeated in the
/// failure message. Set <see cref="SeedVariable"/> to "seed,gamma" to replay a whole run, or to "seed,gamma,size" (the
/// "last step" FsCheck reports) to replay just the failing case; set <see cref="CasesVariable"/> to run more cases (a soak).
/// </summary>
internal static class PropertyCheck
{
    public const string SeedVariable = "STREAMING_PROPERTY_SEED";
    public const string CasesVariable = "STREAMING_PROPERTY_CASES";

    public static void Run<T>(ITestOutputHelper output, string name, int cases, Arbitrary<T> arbitrary, Action<T> body)
    {
        var (rnd, size) = ChooseSeed();
        if (int.TryParse(Environment.GetEnvironmentVariable(CasesVariable), CultureInfo.InvariantCulture, out var more) && more > 0)
        {
            cases = more;
        }

        var replay = size is null
            ? string.Create(CultureInfo.InvariantCulture, $"{rnd.Seed},{rnd.Gamma}")
            : string.Create(CultureInfo.InvariantCulture, $"{rnd.Seed},{rnd.Gamma},{size}");
        output.WriteLine($"{name}: {cases} cases; replay with {SeedVariable}={replay}");
        var config = Config.QuickThrowOnFailure
            .WithName(name)
            .WithMaxTest(size is null ? cases : 1)
            .WithQuietOnSuccess(true)
            .WithReplay(FSharpOption<Replay>.Some(new Replay(rnd, size is null ? FSharpOption<int>.None : FSharpOption<int>.Some(size.Value))));
        var clock = Stopwatch.StartNew();
        try
        {
            Check.One(config, Prop.ForAll(arbitrary, body));
        }
        catch (Exception e)
        {
            output.WriteLine($"{name}: FAILED; replay with {SeedVariable}={replay}");
            throw new XunitException($"{name} failed; replay with {SeedVariable}={replay}{Environment.NewLine}{e.Message}");
        }

        output.WriteLine($"{name}: {cases} cases passed in {clock.ElapsedMilliseconds} ms");
    }

    private static (Rnd Rnd, int? Size) ChooseSeed()
    {
        var text = Environment.GetEnvironmentVariable(SeedVariable);
        if (string.IsNullOrWhiteSpace(text))
        {
            return (new Rnd((ulong)System.Random.Shared.NextInt64()), null);
        }

        var parts = text.Trim('(', ')', ' ').Split(',', StringSplitOptions.TrimEntries);
        var seed = ulong.Parse(parts[0], CultureInfo.InvariantCulture);
        var gamma = ulong.Parse(parts[1], CultureInfo.InvariantCulture);
        int? size = parts.Length > 2 ? int.Parse(parts[2], CultureInfo.InvariantCulture) : null;
        return (new Rnd(seed, gamma), size);
    }
}
