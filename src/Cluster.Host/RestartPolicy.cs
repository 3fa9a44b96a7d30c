namespace Cluster.Host;

/// <summary>
/// What to do when an instance exits on its own. A run shorter than MinUptime is unstable; after MaxRestarts
/// unstable runs in a row the instance is errored and left alone. Each unstable restart waits longer than
/// the one before (RestartDelay, growing by half each time, capped); a stable run resets the count.
/// </summary>
internal sealed record RestartPolicy(bool AutoRestart, int MaxRestarts, TimeSpan MinUptime, TimeSpan RestartDelay)
{
    public const int DefaultMaxRestarts = 16;
    public static readonly TimeSpan DefaultMinUptime = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan DefaultRestartDelay = TimeSpan.FromMilliseconds(100);
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(2);

    public static RestartPolicy Default { get; } = new(true, DefaultMaxRestarts, DefaultMinUptime, DefaultRestartDelay);

    /// <param name="uptime">How long the instance ran before it exited.</param>
    /// <param name="unstableRestarts">Unstable restarts in a row before this exit.</param>
    public RestartDecision Decide(TimeSpan uptime, int unstableRestarts)
    {
        if (!AutoRestart)
        {
            return RestartDecision.Stop(unstableRestarts);
        }

        int unstable = uptime < MinUptime ? unstableRestarts + 1 : 0;
        if (unstable >= MaxRestarts && MaxRestarts > 0)
        {
            return RestartDecision.GiveUp(unstable);
        }

        double delayMs = RestartDelay.TotalMilliseconds * Math.Pow(1.5, Math.Max(0, unstable - 1));
        TimeSpan delay = TimeSpan.FromMilliseconds(Math.Min(delayMs, Math.Max(MaxDelay.TotalMilliseconds, RestartDelay.TotalMilliseconds)));
        return RestartDecision.RestartAfter(delay, unstable);
    }
}

internal enum RestartAction
{
    Restart,
    Stop,
    GiveUp,
}

internal readonly record struct RestartDecision(RestartAction Action, TimeSpan Delay, int UnstableRestarts)
{
    public static RestartDecision RestartAfter(TimeSpan delay, int unstable) => new(RestartAction.Restart, delay, unstable);
    public static RestartDecision Stop(int unstable) => new(RestartAction.Stop, TimeSpan.Zero, unstable);
    public static RestartDecision GiveUp(int unstable) => new(RestartAction.GiveUp, TimeSpan.Zero, unstable);
}
