using Microsoft.Extensions.Time.Testing;

namespace Cluster.Tests.Support;

/// <summary>Waits on conditions, bounded: a bound that is reached fails the test, it is never what a test asserts.</summary>
internal static class Wait
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    public static async Task UntilAsync(Func<bool> condition, string what)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (waited.Elapsed > Bound)
            {
                throw new TimeoutException($"Gave up waiting until {what}.");
            }

            await Task.Delay(5);
        }
    }

    /// <summary>
    /// Moves a fake clock forward a step at a time until the condition holds, letting the work each step
    /// releases run in between. For timers that are set up on other threads, so that one big step could
    /// come before the timer exists.
    /// </summary>
    public static async Task AdvanceUntilAsync(FakeTimeProvider time, TimeSpan step, Func<bool> condition, string what, int maxSteps = 400)
    {
        for (int i = 0; i < maxSteps; i++)
        {
            if (condition())
            {
                return;
            }

            time.Advance(step);
            await Task.Delay(2);
        }

        if (!condition())
        {
            throw new TimeoutException($"Gave up advancing the clock until {what} ({maxSteps} steps of {step.TotalMilliseconds} ms).");
        }
    }

    /// <summary>Awaits a task with a bound, so that a hang fails the test instead of stalling the run.</summary>
    public static Task<T> Bounded<T>(Task<T> task) => task.WaitAsync(Bound);

    public static Task Bounded(Task task) => task.WaitAsync(Bound);
}
