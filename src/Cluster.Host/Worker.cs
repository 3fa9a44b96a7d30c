namespace Cluster.Host;

internal enum WorkerState
{
    Launching,
    Online,
    Stopping,
    Exited,
}

/// <summary>How a wait for a new worker ended.</summary>
internal enum Readiness
{
    /// <summary>It listened, or said 'online' or 'ready' (even if it has exited since: its stability window says so).</summary>
    Ready,

    /// <summary>The listen timeout passed with the worker still running: not a failure.</summary>
    TimedOut,

    /// <summary>It exited first.</summary>
    Exited,

    /// <summary>The listen timeout passed and the primary never said it had started the process.</summary>
    NotStarted,
}

/// <summary>One process running one instance of an app: the current one, or a replacement being brought up.</summary>
internal sealed class Worker
{
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _disconnected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Worker(int key, int instance, int generation, DateTimeOffset forkedAt)
    {
        Key = key;
        Instance = instance;
        Generation = generation;
        ForkedAt = forkedAt;
    }

    /// <summary>Which start of the app it runs.</summary>
    public int Generation { get; }

    /// <summary>Ended with its Node primary, not on its own.</summary>
    public bool LostWithPrimary { get; private set; }

    public bool IsReady => State == WorkerState.Online;

    /// <summary>It listened or said 'ready' while it ran; stays true after it exits.</summary>
    public bool BecameReady { get; private set; }

    /// <summary>It asked to listen (its first 'listening', or the health preload's held listen), even when that is not readiness.</summary>
    public bool Listened { get; private set; }

    /// <summary>The loopback port of its own on which the health preload answers its HTTP check; null without one.</summary>
    public int? HealthPort { get; private set; }

    /// <summary>Why the host ended it on purpose (a failed check): said in place of its bare exit.</summary>
    public string? FailureReason { get; set; }

    public int Key { get; }

    /// <summary>Its NODE_APP_INSTANCE.</summary>
    public int Instance { get; }

    public DateTimeOffset ForkedAt { get; }

    public int? Pid { get; private set; }

    public WorkerState State { get; private set; } = WorkerState.Launching;

    /// <summary>
    /// Whether its exit goes to the restart policy. A worker being started or a reload's new worker is not
    /// supervised until it is ready: until then, its exit is its operation's to report.
    /// </summary>
    public bool Supervised { get; set; }

    /// <summary>Being stopped on purpose: its exit is expected.</summary>
    public bool Retiring { get; private set; }

    public int? ExitCode { get; private set; }

    public string? ExitSignal { get; private set; }

    public string? SpawnError { get; private set; }

    public DateTimeOffset? ExitedAt { get; private set; }

    public Task Exited => _exited.Task;

    public Task Disconnected => _disconnected.Task;

    public bool HasExited => State == WorkerState.Exited;

    /// <summary>How long its error log was when it was forked: what it wrote itself starts there.</summary>
    public long ErrorLogOffset { get; set; }

    /// <summary>Its liveness watch runs.</summary>
    public bool Watched { get; set; }

    /// <summary>How long its output log was when it was forked.</summary>
    public long OutLogOffset { get; set; }

    public void MarkForked(int pid) => Pid = pid;

    public void MarkReady()
    {
        if (State == WorkerState.Exited)
        {
            return;
        }

        BecameReady = true;
        if (State == WorkerState.Launching)
        {
            State = WorkerState.Online;
        }

        _ready.TrySetResult();
    }

    public void MarkListened(int? healthPort = null)
    {
        Listened = true;
        HealthPort ??= healthPort;
    }

    /// <summary>Counts a worker still launching when its listen timeout passed as online.</summary>
    public void MarkOnlineAfterTimeout()
    {
        if (State == WorkerState.Launching)
        {
            State = WorkerState.Online;
        }
    }

    public void MarkRetiring()
    {
        Retiring = true;
        if (State != WorkerState.Exited)
        {
            State = WorkerState.Stopping;
        }
    }

    public void MarkDisconnected() => _disconnected.TrySetResult();

    public void MarkExited(int? code, string? signal, string? error, DateTimeOffset at, bool lostWithPrimary = false)
    {
        LostWithPrimary = lostWithPrimary;
        ExitCode = code;
        ExitSignal = signal;
        SpawnError = error;
        ExitedAt = at;
        State = WorkerState.Exited;
        _disconnected.TrySetResult();
        _ready.TrySetResult();
        _exited.TrySetResult();
    }

    /// <summary>Waits until the worker is ready, exits, or the listen timeout passes.</summary>
    public async Task<Readiness> WaitReadyAsync(TimeSpan listenTimeout, TimeProvider time, CancellationToken cancel)
    {
        // No ConfigureAwait(false): on an app's loop, the rest runs on that loop again.
        Task timeout = Task.Delay(listenTimeout, time, cancel);
        await Task.WhenAny(_ready.Task, timeout);
        cancel.ThrowIfCancellationRequested();
        // Ready is ready: an exit seen after it (even before this resumed) is the stability window's to report.
        if (BecameReady)
        {
            return Readiness.Ready;
        }

        if (HasExited)
        {
            return Readiness.Exited;
        }

        return Pid is null ? Readiness.NotStarted : Readiness.TimedOut;
    }
}
