namespace Cluster.Host;

internal static class Waits
{
    /// <summary>
    /// Waits for the task, at most the timeout (or until cancelled). The timer ends as soon as the wait does,
    /// instead of living on to its due time holding what it refers to: a reload waits on a timeout for every step
    /// and every request beats on one, and most of those waits end early.
    /// </summary>
    /// <remarks>No ConfigureAwait(false): on an app's loop, the caller's rest runs on that loop again.</remarks>
    public static async Task WithinAsync(Task task, TimeSpan timeout, TimeProvider time, CancellationToken cancel = default)
    {
        if (task.IsCompleted)
        {
            return;
        }

        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        await Task.WhenAny(task, Task.Delay(timeout, time, timer.Token));
        await timer.CancelAsync();
    }
}
