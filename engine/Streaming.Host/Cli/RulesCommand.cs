using System.CommandLine;
using Streaming.Engine.Rules;

namespace Streaming.Host.Cli;

/// <summary><c>streaming rules</c>: offline work on rule files.</summary>
public static class RulesCommand
{
    public static Command Create()
    {
        var paths = new Argument<string[]>("path") { Description = "Rule files, or one directory of them (*.yaml), forming one rule set", Arity = ArgumentArity.OneOrMore };
        var check = new Command("check", "Validate a rule set without an engine; prints its version, or each error as file:line:column: message") { paths };
        check.SetAction(async (parse, ct) =>
        {
            var given = parse.GetValue(paths)!;
            try
            {
                var rules = given.Length == 1 && Directory.Exists(given[0])
                    ? RuleSetLoader.LoadDirectory(given[0])
                    : RuleSetLoader.Load(given.Select(p => new RuleSource(p, File.ReadAllText(p))).ToList());
                await Console.Out.WriteLineAsync(
                    $"ok: {rules.Version} ({rules.Ladders.Count} ladders, {rules.Rfm.Segments.Count} RFM segments, {rules.Tiers.Levels.Count} tiers, {rules.Tags.Count} tags)").ConfigureAwait(false);
                return 0;
            }
            catch (RuleSetException ex)
            {
                foreach (var error in ex.Errors)
                {
                    await Console.Error.WriteLineAsync(error.ToString()).ConfigureAwait(false);
                }

                await Console.Error.WriteLineAsync($"{ex.Errors.Count} error(s)").ConfigureAwait(false);
                return 1;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync("streaming rules check: " + ex.Message).ConfigureAwait(false);
                return 2;
            }
        });

        var show = new Command("default", "Print the built-in default rule pack (a starting point for your own)");
        show.SetAction(async (_, ct) =>
        {
            await Console.Out.WriteAsync(RuleSetLoader.DefaultText()).ConfigureAwait(false);
            return 0;
        });

        return new Command("rules", "Work with rule files: validate them, print the default pack") { check, show };
    }
}
