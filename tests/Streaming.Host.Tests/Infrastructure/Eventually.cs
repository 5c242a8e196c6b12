namespace Streaming.Host.Tests.Infrastructure;

/// <summary>Waits for a condition with a deadline (never a fixed sleep).</summary>
public static class Eventually
{
    public static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> describe)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await condition())
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"condition not met within {timeout.TotalSeconds:0}s: {describe()}");
            }

            await Task.Delay(100);
        }
    }
}
