using System.Diagnostics;
using Streaming.Host.Cli;

namespace Streaming.Host.Tests;

/// <summary>
/// How the Kafka bench times an engine run from the engine's count of applied events, which moves in steps (an
/// engine refreshes it about twice a second). The counts here are scripted by the number of reads, so no test waits on
/// a clock; each result is checked against the wall time measured around the call.
/// </summary>
public sealed class BenchTimingTests
{
    [Fact]
    public async Task A_count_that_goes_from_none_to_all_in_one_step_times_the_run_from_the_last_read_of_none()
    {
        var reads = 0;
        var watch = Stopwatch.StartNew();
        var seconds = await BenchCommand.SecondsToApplyAsync(() => ++reads <= 5 ? 0 : 4000, Task.Delay(Timeout.Infinite), 4000, CancellationToken.None);
        var wall = watch.Elapsed.TotalSeconds;

        // A wait of at least 2 ms follows each of the five reads of none; the run is timed from the fifth.
        Assert.Equal(6, reads);
        Assert.InRange(seconds, double.Epsilon, wall);
    }

    [Fact]
    public async Task A_count_that_moves_in_steps_times_the_run_from_the_first_read_of_some()
    {
        var reads = 0;
        long[] script = [0, 0, 10, 10, 2000, 2000, 3999, 4000];
        var watch = Stopwatch.StartNew();
        var secondsAfterFirstStep = 0.0;
        var seconds = await BenchCommand.SecondsToApplyAsync(
            () =>
            {
                var value = script[Math.Min(reads, script.Length - 1)];
                if (reads++ == 2)
                {
                    // The first read of some events: what follows is at most what the timed run may be.
                    secondsAfterFirstStep = watch.Elapsed.TotalSeconds;
                }

                return value;
            },
            Task.Delay(Timeout.Infinite),
            4000,
            CancellationToken.None);
        var wall = watch.Elapsed.TotalSeconds;

        Assert.Equal(script.Length, reads);
        Assert.InRange(seconds, double.Epsilon, wall - secondsAfterFirstStep);
    }

    [Fact]
    public async Task An_engine_that_fails_before_the_count_is_reached_fails_the_timing()
    {
        var failed = Task.FromException(new InvalidOperationException("the store is gone"));
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => BenchCommand.SecondsToApplyAsync(() => 10, failed, 4000, CancellationToken.None));
        Assert.Equal("the store is gone", ex.Message);
    }

    [Fact]
    public async Task An_engine_that_stops_cleanly_before_the_count_is_reached_is_an_error_not_a_wait()
    {
        // A deadline, so that a timing that waited on would fail here (cancelled) instead of hanging the suite.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => BenchCommand.SecondsToApplyAsync(() => 1234, Task.CompletedTask, 4000, deadline.Token));
        Assert.Contains("1,234 of 4,000", ex.Message, StringComparison.Ordinal);
    }
}
