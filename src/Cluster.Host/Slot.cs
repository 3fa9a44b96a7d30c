namespace Cluster.Host;

/// <summary>Where one instance of an app stands. It changes only on the app's loop, in <see cref="ManagedApp"/>.Enter.</summary>
internal enum SlotState
{
    /// <summary>Its worker is forked and not yet ready.</summary>
    Launching,

    /// <summary>Its worker is ready (it listened, said 'online', or outlived the listen timeout).</summary>
    Online,

    /// <summary>Its worker is being stopped on purpose.</summary>
    Retiring,

    /// <summary>Its worker exited; a replacement is started when the restart delay has passed.</summary>
    Backoff,

    /// <summary>Its worker exited and is not restarted (too many unstable restarts, or automatic restart is off).</summary>
    Errored,

    /// <summary>No worker, by request.</summary>
    Stopped,
}

/// <summary>One NODE_APP_INSTANCE of an app: its state, the worker serving it, and what it has been through.</summary>
internal sealed class Slot
{
    public Slot(int instance) => Instance = instance;

    public int Instance { get; }

    public SlotState State { get; set; } = SlotState.Stopped;

    /// <summary>Why it is in its state, when that is not plain (a crash, a lost primary, a stop that failed).</summary>
    public string? Reason { get; set; }

    /// <summary>The worker serving this instance; after a crash, the dead one until its replacement is forked.</summary>
    public Worker? Current { get; set; }

    /// <summary>Which start of the app the instance runs: a reload or a restart moves it to a new one.</summary>
    public int Generation { get; set; }

    public int Restarts { get; set; }

    /// <summary>Why its worker was last replaced, and when (Format-List of an app shows it).</summary>
    public string? LastRestartReason { get; private set; }

    public DateTimeOffset? LastRestartTime { get; private set; }

    /// <summary>Counts a replacement of its worker, and says why it happened.</summary>
    public void CountRestart(string reason, DateTimeOffset now)
    {
        Restarts++;
        LastRestartReason = reason;
        LastRestartTime = now;
    }

    public int UnstableRestarts { get; set; }
}

/// <summary>How an old worker is stopped.</summary>
internal sealed record Retirement(bool Graceful, TimeSpan KillTimeout, TimeSpan GracefulTimeout)
{
    public static Retirement Plain(TimeSpan killTimeout) => new(false, killTimeout, TimeSpan.Zero);

    /// <summary>How a stop, restart or remove retires an app's workers: plainly, or with the 'shutdown' message when asked.</summary>
    public static Retirement For(AppDefinition app, Protocol.StopSpec? how) => new(
        how?.ShutdownWithMessage ?? false,
        Timeouts.Kill(how?.KillTimeoutMs, app.Spec.KillTimeoutMs),
        Timeouts.Graceful(how?.GracefulTimeoutMs, how?.SessionEnvironment, app.Spec.Environment));
}
