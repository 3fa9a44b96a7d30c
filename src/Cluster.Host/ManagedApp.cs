using Cluster.Protocol;
using Serilog;

namespace Cluster.Host;

/// <summary>One NODE_APP_INSTANCE of an app: the worker serving it now, and what it has been through.</summary>
internal sealed class Slot
{
    public Slot(int instance) => Instance = instance;

    public int Instance { get; }

    /// <summary>The worker serving this instance; after a crash, the dead one until its replacement is forked.</summary>
    public Worker? Current { get; set; }

    public int Restarts { get; set; }

    public int UnstableRestarts { get; set; }

    /// <summary>Crashed too often to be restarted again.</summary>
    public bool Errored { get; set; }
}

/// <summary>How an old worker is stopped.</summary>
internal sealed record Retirement(bool Graceful, TimeSpan KillTimeout, TimeSpan GracefulTimeout)
{
    public static Retirement Plain(TimeSpan killTimeout) => new(false, killTimeout, TimeSpan.Zero);
}

/// <summary>
/// One running app: its instances, the workers behind them, and its Node primary. It forks and retires workers,
/// turns the primary's events into worker state, and restarts instances that exit on their own.
/// Operations that replace workers (start, stop, reload, scale) hold <see cref="Operation"/> so they never interleave.
/// </summary>
internal sealed class ManagedApp : IDisposable
{
    private static readonly TimeSpan LastWaitForExit = TimeSpan.FromSeconds(5);

    private readonly object _sync = new();
    private readonly IPrimaryLauncher _launcher;
    private readonly HostPaths _paths;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly List<Slot> _slots = new();
    private readonly Dictionary<int, Worker> _workers = new();
    private IPrimary? _primary;
    // Worker keys are unique in the host, since apps may share a Node primary.
    private static int s_lastKey;
    private bool _disposed;

    public ManagedApp(AppDefinition definition, IPrimaryLauncher launcher, HostPaths paths, TimeProvider time, ILogger log)
    {
        Definition = definition;
        _launcher = launcher;
        _paths = paths;
        _time = time;
        _log = log.ForContext("App", definition.Name);
    }

    public AppDefinition Definition { get; }

    public string Name => Definition.Name;

    /// <summary>Held by whatever replaces or stops workers, so that two such operations never interleave.</summary>
    public SemaphoreSlim Operation { get; } = new(1, 1);

    public bool Reloading { get; set; }

    /// <summary>Why the last reload failed; cleared by the next one that succeeds.</summary>
    public string? ReloadError { get; set; }

    public TimeProvider Time => _time;

    public ILogger Log => _log;

    public IReadOnlyList<Slot> Slots
    {
        get
        {
            lock (_sync)
            {
                return _slots.ToArray();
            }
        }
    }

    public Slot SlotFor(int instance)
    {
        lock (_sync)
        {
            Slot? slot = _slots.Find(s => s.Instance == instance);
            if (slot is null)
            {
                slot = new Slot(instance);
                _slots.Add(slot);
                _slots.Sort((a, b) => a.Instance.CompareTo(b.Instance));
            }

            return slot;
        }
    }

    public void RemoveSlot(Slot slot)
    {
        lock (_sync)
        {
            _slots.Remove(slot);
        }
    }

    /// <summary>Forks a worker for the instance. It is not supervised until <see cref="Supervise"/> is called.</summary>
    public Worker Fork(int instance)
    {
        IPrimary primary;
        Worker worker;
        lock (_sync)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            primary = EnsurePrimary();
            worker = new Worker(Interlocked.Increment(ref s_lastKey), instance, _time.GetUtcNow())
            {
                ErrorLogOffset = LogTail.LengthOf(_paths.ErrorLog(Name, instance)),
            };
            _workers[worker.Key] = worker;
        }

        primary.Send(ForkCommand(worker));
        return worker;
    }

    /// <summary>Keeps the keys of workers adopted from an earlier host from being handed out again.</summary>
    public static void ReserveKeysThrough(int key)
    {
        int last;
        while ((last = Volatile.Read(ref s_lastKey)) < key && Interlocked.CompareExchange(ref s_lastKey, key, last) != last)
        {
        }
    }

    /// <summary>
    /// Takes back workers that kept running in their primary while there was no host. Where an instance has
    /// two (a reload was under way), the newer is put in place and the older returned, to be retired.
    /// </summary>
    public (IReadOnlyList<Worker> Serving, IReadOnlyList<Worker> Superseded) Adopt(IEnumerable<AdoptedWorker> found)
    {
        var superseded = new List<Worker>();
        lock (_sync)
        {
            EnsurePrimary();
            foreach (AdoptedWorker adopted in found.OrderBy(w => w.Started).Where(w => IsAlive(w.Pid)))
            {
                ReserveKeysThrough(adopted.Key);
                var worker = new Worker(adopted.Key, adopted.Instance, adopted.Started);
                worker.MarkForked(adopted.Pid);
                if (adopted.Ready)
                {
                    worker.MarkReady();
                }

                _workers[worker.Key] = worker;
                Slot slot = SlotFor(adopted.Instance);
                if (slot.Current is { } older)
                {
                    superseded.Add(older);
                }

                slot.Current = worker;
            }

            return (_slots.Where(s => s.Current is not null).Select(s => s.Current!).ToArray(), superseded);
        }
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>
    /// Puts a worker in its instance's place and returns the one it replaces. It is supervised only once
    /// <see cref="Supervise"/> is called: until it is ready, its exit is the caller's to report.
    /// </summary>
    public Worker? Install(Slot slot, Worker worker, bool countRestart)
    {
        Worker? old;
        lock (_sync)
        {
            old = slot.Current;
            slot.Current = worker;
            slot.Errored = false;
            if (countRestart)
            {
                slot.Restarts++;
            }
        }

        return old;
    }

    /// <summary>From now on, the worker is restarted when it exits on its own, even if it already has.</summary>
    public void Supervise(Worker worker)
    {
        lock (_sync)
        {
            if (worker.Retiring)
            {
                return;
            }

            worker.Supervised = true;
            if (!worker.HasExited)
            {
                return;
            }
        }

        OnUnexpectedExit(worker);
    }

    /// <summary>Waits for a new worker to be ready; a worker still running when the listen timeout passes counts as online.</summary>
    public async Task<Readiness> WaitReadyAsync(Worker worker, TimeSpan listenTimeout, CancellationToken cancel)
    {
        Readiness readiness = await worker.WaitReadyAsync(listenTimeout, _time, cancel).ConfigureAwait(false);
        if (readiness == Readiness.TimedOut)
        {
            lock (_sync)
            {
                worker.MarkOnlineAfterTimeout();
            }

            _log.Information("Instance {Instance} (pid {Pid}) neither listened nor said 'online' within {ListenTimeoutMs} ms; counting it as online", worker.Instance, worker.Pid, listenTimeout.TotalMilliseconds);
        }

        return readiness;
    }

    /// <summary>
    /// Stops a worker on purpose. In cluster mode it is disconnected, so no new connection reaches it.
    /// Then, graceful: a kill after the graceful timeout, the 'shutdown' message having gone just before the
    /// disconnect; plain: time to drain, SIGINT (not on Windows, where it would be TerminateProcess), and a kill
    /// after the kill timeout.
    /// </summary>
    public async Task RetireAsync(Worker worker, Retirement how)
    {
        IPrimary? primary;
        lock (_sync)
        {
            if (worker.HasExited)
            {
                return;
            }

            worker.MarkRetiring();
            primary = _primary;
        }

        if (primary is null)
        {
            return;
        }

        _log.Information("Retiring instance {Instance} (pid {Pid}), {How}", worker.Instance, worker.Pid, how.Graceful ? "gracefully" : "plainly");
        if (how.Graceful)
        {
            // Before the disconnect, which the worker answers by closing its IPC channel (at once when it has
            // no server open): sent after it, 'shutdown' could find the channel closed and be lost.
            primary.Send(new PrimaryCommand { Cmd = PrimaryCommand.Send, Key = worker.Key, Message = "shutdown" });
        }

        if (Definition.IsCluster)
        {
            primary.Send(new PrimaryCommand { Cmd = PrimaryCommand.Disconnect, Key = worker.Key });
        }

        if (how.Graceful)
        {
            if (await ExitsWithinAsync(worker, how.GracefulTimeout).ConfigureAwait(false))
            {
                return;
            }
        }
        else
        {
            if (Definition.IsCluster)
            {
                await WithinAsync(worker.Disconnected, how.KillTimeout).ConfigureAwait(false);
            }

            if (!OperatingSystem.IsWindows() && !worker.HasExited)
            {
                primary.Send(new PrimaryCommand { Cmd = PrimaryCommand.Signal, Key = worker.Key, SignalName = "SIGINT" });
            }

            if (await ExitsWithinAsync(worker, how.KillTimeout).ConfigureAwait(false))
            {
                return;
            }
        }

        _log.Warning("Instance {Instance} (pid {Pid}) did not exit in time; killing it", worker.Instance, worker.Pid);
        primary.Send(new PrimaryCommand { Cmd = PrimaryCommand.Signal, Key = worker.Key, SignalName = "SIGKILL" });
        await ExitsWithinAsync(worker, LastWaitForExit).ConfigureAwait(false);
    }

    /// <summary>How a worker ended, for a message: "exited with code 1", "was killed by SIGKILL", ...</summary>
    public string DescribeExit(Worker worker) =>
        worker.SpawnError is { } error ? $"could not start ({error})"
        : worker.ExitSignal is { } signal ? $"was killed by {signal}"
        : $"exited with code {worker.ExitCode}";

    /// <summary>The last lines a worker wrote to stderr since it was forked, as the end of an error message.</summary>
    public string ErrorOutputSuffix(Worker worker, int lines = 20)
    {
        IReadOnlyList<string> stderr = LogTail.Read(_paths.ErrorLog(Name, worker.Instance), lines, worker.ErrorLogOffset);
        return stderr.Count == 0 ? "" : Environment.NewLine + "Its last error output:" + Environment.NewLine + string.Join(Environment.NewLine, stderr);
    }

    public IEnumerable<Worker> LiveWorkers()
    {
        lock (_sync)
        {
            return _workers.Values.Where(w => !w.HasExited).ToArray();
        }
    }

    /// <summary>Stops the Node primary once no worker is left (a stopped app costs no memory).</summary>
    public void ReleasePrimaryIfIdle()
    {
        IPrimary? idle = null;
        lock (_sync)
        {
            if (_primary is not null && _workers.Count == 0)
            {
                idle = _primary;
                _primary = null;
            }
        }

        idle?.Dispose();
    }

    public AppInfo Snapshot(ProcessMetrics metrics)
    {
        lock (_sync)
        {
            var info = new AppInfo
            {
                Name = Name,
                Mode = Definition.Spec.Mode,
                Script = Definition.Spec.Script,
                Arguments = Definition.Spec.Arguments,
                NodeArguments = Definition.Spec.NodeArguments,
                WorkingDirectory = Definition.Spec.WorkingDirectory,
                Scheduling = Definition.IsCluster ? Scheduling.Of(Definition.Spec) : null,
                ReloadError = ReloadError,
                Created = Definition.Created,
            };
            foreach (Slot slot in _slots)
            {
                info.Instances.Add(InstanceSnapshot(slot, metrics));
            }

            info.Status = AppStatus(info.Instances);
            return info;
        }
    }

    private InstanceInfo InstanceSnapshot(Slot slot, ProcessMetrics metrics)
    {
        Worker? worker = slot.Current;
        var info = new InstanceInfo { Instance = slot.Instance, Restarts = slot.Restarts, Status = InstanceStatus(slot) };
        if (worker is null)
        {
            return info;
        }

        info.LastExitCode = worker.HasExited ? worker.ExitCode : null;
        info.LastSignal = worker.HasExited ? worker.ExitSignal : null;
        if (!worker.HasExited && worker.Pid is { } pid)
        {
            info.Pid = pid;
            info.StartTime = worker.ForkedAt;
            (info.MemoryBytes, info.CpuPercent) = metrics.Sample(pid);
        }

        return info;
    }

    private string InstanceStatus(Slot slot)
    {
        Worker? worker = slot.Current;
        if (slot.Errored)
        {
            return "errored";
        }

        return worker?.State switch
        {
            null => "stopped",
            WorkerState.Launching => "launching",
            WorkerState.Online => "online",
            WorkerState.Stopping => "stopping",
            _ => Definition.Stopped || worker.Retiring || !Definition.Spec.AutoRestart ? "stopped" : "launching",
        };
    }

    private string AppStatus(List<InstanceInfo> instances)
    {
        if (Definition.Stopped)
        {
            return instances.Exists(i => i.Status == "stopping") ? "stopping" : "stopped";
        }

        // An instance that crashed for good (too often, or with automatic restart off) makes the app errored.
        bool crashedForGood = _slots.Exists(s => s.Errored || (s.Current is { HasExited: true, Retiring: false } && !Definition.Spec.AutoRestart));
        if (crashedForGood)
        {
            return "errored";
        }

        if (Reloading)
        {
            return "reloading";
        }

        if (ReloadError is not null)
        {
            return "reloadfailed";
        }

        return instances.Exists(i => i.Status != "online") ? "launching" : "online";
    }

    private PrimaryCommand ForkCommand(Worker worker)
    {
        StartSpec spec = Definition.Spec;
        var execArgv = new List<string>();
        if (Definition.IsCluster && spec.Drain)
        {
            execArgv.Add("--require");
            execArgv.Add(_paths.DrainScript);
        }

        execArgv.AddRange(spec.NodeArguments);
        return new PrimaryCommand
        {
            Cmd = PrimaryCommand.Fork,
            Key = worker.Key,
            App = Name,
            Mode = spec.Mode,
            Exec = spec.Script,
            Args = spec.Arguments,
            ExecArgv = execArgv,
            Cwd = spec.WorkingDirectory,
            Env = spec.Environment,
            Instance = worker.Instance,
            Out = _paths.OutLog(Name, worker.Instance),
            Err = _paths.ErrorLog(Name, worker.Instance),
            LogMaxBytes = spec.LogMaxBytes ?? LogRotation.DefaultMaxBytes,
            LogKeep = spec.LogFileCount ?? LogRotation.DefaultFileCount,
        };
    }

    private IPrimary EnsurePrimary()
    {
        if (_primary is not null)
        {
            return _primary;
        }

        IPrimary primary = _launcher.Launch(Definition);
        primary.EventReceived += e => OnPrimaryEvent(primary, e);
        primary.Exited += () => OnPrimaryExited(primary);
        _primary = primary;
        _log.Information("Using Node primary {Pid}", primary.Pid);
        return primary;
    }

    private void OnPrimaryEvent(IPrimary source, PrimaryEvent received)
    {
        Worker? crashed = null;
        lock (_sync)
        {
            if (!ReferenceEquals(source, _primary) || !_workers.TryGetValue(received.Key, out Worker? worker))
            {
                return;
            }

            switch (received.Event)
            {
                case PrimaryEvent.Forked:
                    worker.MarkForked(received.Pid ?? 0);
                    if (!Definition.IsCluster)
                    {
                        worker.MarkReady(); // a fork-mode process is up once it has spawned
                    }

                    break;
                case PrimaryEvent.Listening:
                    worker.MarkReady();
                    break;
                case PrimaryEvent.Message when received.Text is "online" or "ready":
                    worker.MarkReady();
                    break;
                case PrimaryEvent.Disconnected:
                    worker.MarkDisconnected();
                    break;
                case PrimaryEvent.Exit:
                    _workers.Remove(received.Key);
                    worker.MarkExited(received.Code, received.Signal, received.Error, _time.GetUtcNow());
                    crashed = worker.Supervised && !worker.Retiring ? worker : null;
                    break;
            }
        }

        if (crashed is not null)
        {
            OnUnexpectedExit(crashed);
        }
    }

    private void OnPrimaryExited(IPrimary primary)
    {
        Worker[] orphans;
        lock (_sync)
        {
            if (!ReferenceEquals(primary, _primary))
            {
                return;
            }

            _primary = null;
            orphans = _workers.Values.ToArray();
        }

        if (orphans.Length > 0)
        {
            _log.Warning("The Node primary of {App} exited with {Count} workers; they are gone with it", Name, orphans.Length);
        }

        foreach (Worker orphan in orphans)
        {
            OnPrimaryEvent(primary, new PrimaryEvent { Event = PrimaryEvent.Exit, Key = orphan.Key, Error = "the Node primary exited" });
        }
    }

    private void OnUnexpectedExit(Worker worker)
    {
        RestartDecision decision;
        Slot? slot;
        lock (_sync)
        {
            slot = _slots.Find(s => ReferenceEquals(s.Current, worker));
            if (slot is null || Definition.Stopped || _disposed)
            {
                return;
            }

            TimeSpan uptime = (worker.ExitedAt ?? _time.GetUtcNow()) - worker.ForkedAt;
            decision = Definition.RestartPolicy.Decide(uptime, slot.UnstableRestarts);
            slot.UnstableRestarts = decision.UnstableRestarts;
            if (decision.Action == RestartAction.GiveUp)
            {
                slot.Errored = true;
            }
        }

        string exit = worker.ExitSignal ?? worker.ExitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? worker.SpawnError ?? "unknown";
        switch (decision.Action)
        {
            case RestartAction.Restart:
                _log.Warning("Instance {Instance} (pid {Pid}) exited ({Exit}); restarting it in {DelayMs} ms", worker.Instance, worker.Pid, exit, decision.Delay.TotalMilliseconds);
                _ = RestartAfterAsync(slot, worker, decision.Delay);
                break;
            case RestartAction.GiveUp:
                _log.Error("Instance {Instance} (pid {Pid}) exited ({Exit}) after {Unstable} unstable restarts in a row; it is errored and will not be restarted", worker.Instance, worker.Pid, exit, decision.UnstableRestarts);
                break;
            default:
                _log.Warning("Instance {Instance} (pid {Pid}) exited ({Exit}); automatic restart is off", worker.Instance, worker.Pid, exit);
                break;
        }
    }

    private async Task RestartAfterAsync(Slot slot, Worker dead, TimeSpan delay)
    {
        await Task.Delay(delay, _time).ConfigureAwait(false);
        lock (_sync)
        {
            // Something else (a reload, a stop, a restart) has dealt with this instance meanwhile.
            if (!ReferenceEquals(slot.Current, dead) || Definition.Stopped || _disposed || !_slots.Contains(slot))
            {
                return;
            }
        }

        Worker replacement = Fork(slot.Instance);
        Install(slot, replacement, countRestart: true);
        Supervise(replacement);
    }

    private async Task<bool> ExitsWithinAsync(Worker worker, TimeSpan timeout)
    {
        await WithinAsync(worker.Exited, timeout).ConfigureAwait(false);
        return worker.HasExited;
    }

    private async Task WithinAsync(Task task, TimeSpan timeout)
    {
        if (!task.IsCompleted)
        {
            await Task.WhenAny(task, Task.Delay(timeout, _time)).ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        IPrimary? primary;
        lock (_sync)
        {
            _disposed = true;
            primary = _primary;
            _primary = null;
        }

        primary?.Dispose();
    }
}
