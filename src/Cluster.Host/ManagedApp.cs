using System.Text.Json;
using Cluster.Protocol;
using Serilog;

namespace Cluster.Host;

/// <summary>
/// One app: its instance slots, the workers behind them, and its Node primary. All of it is owned by the app's
/// <see cref="AppLoop"/>: every method here runs on that loop (callers outside it go through
/// <see cref="RunAsync{T}(Func{Task{T}})"/>), so no lock guards the app's state. Each slot's state changes in
/// <see cref="Enter"/> alone, where it is logged.
/// </summary>
internal sealed class ManagedApp
{
    private static readonly TimeSpan LastWaitForExit = TimeSpan.FromSeconds(5);

    // Worker keys are unique in the host, since apps may share a Node primary.
    private static int s_lastKey;

    private readonly IPrimaryLauncher _launcher;
    private readonly HostPaths _paths;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly AppLoop _loop;
    private readonly List<Slot> _slots = new();
    private readonly Dictionary<int, Worker> _workers = new();
    private readonly Queue<TaskCompletionSource> _waiting = new();
    private IPrimary? _primary;
    private string? _operation;
    private AppDefinition _saved;
    private bool _disposed;

    // The scheduled restart: the expression the timer is armed for, and what wakes it when that changes.
    private static readonly TimeSpan MaxCronWait = TimeSpan.FromHours(1);
    private TaskCompletionSource _cronChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string? _cronArmed;

    // The watch of the app's folder (-Watch): what it is armed for, and the reload it waits to make.
    private FolderWatch? _watch;
    private string? _watchKey;
    private Func<Task>? _restartOnChange;
    private DateTimeOffset _lastChange;
    private bool _watchPending;

    public ManagedApp(AppDefinition definition, IPrimaryLauncher launcher, HostPaths paths, TimeProvider time, ILogger log)
    {
        Definition = definition;
        _launcher = launcher;
        _paths = paths;
        _time = time;
        _log = log.ForContext("App", definition.Name);
        _loop = new AppLoop(_log);
        _saved = Copy(definition);
    }

    /// <summary>The app's definition, changed on its loop only; <see cref="Saved"/> is the copy other threads read.</summary>
    public AppDefinition Definition { get; }

    /// <summary>The definition as last published for the state file, safe to read from any thread.</summary>
    public AppDefinition Saved => Volatile.Read(ref _saved);

    public string Name => Definition.Name;

    /// <summary>The operation under way (start, stop, reload, ...), or null.</summary>
    public string? Operation => _operation;

    /// <summary>Why the last reload failed or stopped early; cleared by the next one that completes.</summary>
    public string? ReloadError { get; set; }

    public TimeProvider Time => _time;

    /// <summary>What makes the app's instances ready and healthy, as its settings say now.</summary>
    public HealthPlan Health => HealthPlan.For(Definition.Spec);

    /// <summary>
    /// Replaces instances of the app without downtime (a reload of those instances alone, in cluster mode); set by
    /// the supervisor, which runs reloads. Called on the app's loop.
    /// </summary>
    public Func<IReadOnlyList<int>, Task>? ReplaceInstances { get; set; }

    public ILogger Log => _log;

    public IReadOnlyList<Slot> Slots => _slots;

    public Task<T> RunAsync<T>(Func<Task<T>> work) => _loop.RunAsync(work);

    public Task<T> RunAsync<T>(Func<T> work) => _loop.RunAsync(work);

    /// <summary>Makes the current definition the one the state file gets.</summary>
    public void PublishDefinition()
    {
        Volatile.Write(ref _saved, Copy(Definition));
        if (!string.Equals(Definition.Spec.CronRestart, _cronArmed, StringComparison.Ordinal))
        {
            CronChanged();
        }

        if (_restartOnChange is not null && !string.Equals(FolderWatch.KeyOf(Definition.Spec), _watchKey, StringComparison.Ordinal))
        {
            ArmWatch();
        }
    }

    /// <summary>
    /// Runs an operation that replaces or stops workers, after the one under way: two never interleave. A
    /// reload that finds another reload running is refused instead, unless it was asked to wait.
    /// </summary>
    public async Task<T> ExclusiveAsync<T>(string operation, bool refuseWhileReloading, CancellationToken cancel, Func<Task<T>> work)
    {
        while (_operation is not null)
        {
            if (refuseWhileReloading && _operation == Operations.Reload)
            {
                throw new ClusterException(
                    "ReloadInProgress",
                    ErrorCategories.ResourceBusy,
                    $"'{Name}' is already being reloaded. Wait for that reload to finish, or pass -Wait to queue this one behind it.",
                    Name);
            }

            var turn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiting.Enqueue(turn);
            _log.Information("{Operation} of {App} waits for the {Running} under way", Capitalized(operation), Name, _operation);
            using (cancel.Register(() => turn.TrySetCanceled(cancel)))
            {
                try
                {
                    await turn.Task;
                }
                catch (OperationCanceledException)
                {
                    // Its caller went away (Ctrl+C, a closed session) while it waited: nothing was done, nothing failed.
                    _log.Information("The queued {Operation} of {App} was dropped before it began: its caller went away", operation, Name);
                    throw new ClusterException(
                        "QueuedOperationDropped",
                        ErrorCategories.OperationStopped,
                        $"The {operation} of '{Name}' was waiting for the {_operation ?? "operation"} under way and was dropped when its caller went away. Nothing was changed.",
                        Name);
                }
            }
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        _operation = operation;
        try
        {
            return await work();
        }
        finally
        {
            _operation = null;
            // A waiter that gave up (its caller went away) has its turn cancelled already: pass it on.
            while (_waiting.TryDequeue(out TaskCompletionSource? next) && !next.TrySetResult())
            {
            }
        }
    }

    private static string Capitalized(string operation) => char.ToUpperInvariant(operation[0]) + operation[1..];

    public Slot SlotFor(int instance)
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

    public void RemoveSlot(Slot slot) => _slots.Remove(slot);

    /// <summary>The generation a reload or restart moves the app to.</summary>
    public int NextGeneration() => (_slots.Count == 0 ? 0 : _slots.Max(s => s.Generation)) + 1;

    /// <summary>The one place a slot changes state.</summary>
    public void Enter(Slot slot, SlotState state, string? reason = null)
    {
        System.Diagnostics.Debug.Assert(_loop.IsCurrent, "A slot's state changes on its app's loop only.");
        if (slot.State == state && slot.Reason == reason)
        {
            return;
        }

        _log.Debug("Instance {Instance} of {App}: {From} -> {To} {Reason}", slot.Instance, Name, slot.State, state, reason ?? "");
        slot.State = state;
        slot.Reason = reason;
        if (state == SlotState.Online && slot.Current is { Watched: false } worker && Health.LivenessInterval is not null)
        {
            worker.Watched = true;
            _ = WatchLivenessAsync(slot, worker);
        }
    }

    /// <summary>
    /// Checks an online worker again every liveness interval, on the app's loop; after the set number of failures
    /// in a row (a hung event loop answers nothing), it is replaced, and its slot and the host log say why.
    /// </summary>
    private async Task WatchLivenessAsync(Slot slot, Worker worker)
    {
        int failures = 0;
        while (!_disposed)
        {
            HealthPlan health = Health;
            if (health.LivenessInterval is not { } interval || !health.HasCheck)
            {
                return;
            }

            await Task.Delay(interval, _time);
            if (_disposed || worker.HasExited || worker.Retiring || !ReferenceEquals(slot.Current, worker))
            {
                return;
            }

            if (slot.State != SlotState.Online || _operation is not null)
            {
                continue; // checked again once nothing else is replacing or stopping it
            }

            CheckResult result = await HealthCheck.OnceAsync(health, worker, Definition.Spec, health.CheckTimeout, _time);
            if (result.Passed)
            {
                failures = 0;
                continue;
            }

            failures++;
            _log.Warning("Instance {Instance} of {App} (pid {Pid}) failed its liveness check ({Failures} of {Allowed} in a row): {Check}", worker.Instance, Name, worker.Pid, failures, health.LivenessFailures, result.Description);
            if (failures < health.LivenessFailures || worker.HasExited || !ReferenceEquals(slot.Current, worker) || _operation is not null)
            {
                continue;
            }

            string reason = $"pid {worker.Pid} failed its liveness check {failures} times in a row ({result.Description}); replaced";
            _log.Error("Replacing instance {Instance} of {App} (pid {Pid}): it failed its liveness check {Failures} times in a row ({Check})", worker.Instance, Name, worker.Pid, failures, result.Description);
            Enter(slot, SlotState.Online, reason);
            if (ReplaceInstances is { } replace)
            {
                try
                {
                    await replace(new[] { slot.Instance });
                }
                catch (ClusterException e)
                {
                    _log.Error("Could not replace instance {Instance} of {App} after its liveness failures: {Message}", slot.Instance, Name, e.Message);
                }
            }

            if (ReferenceEquals(slot.Current, worker))
            {
                continue; // the replacement failed (the host log says why): tried again after the next failure
            }

            Enter(slot, slot.State, reason);
            return;
        }
    }

    /// <summary>
    /// Forks a worker for the instance. Its exit goes to the restart policy only once <see cref="Supervise"/>
    /// is called: until it is ready, its exit is the caller's to report.
    /// </summary>
    public Worker Fork(int instance, int generation, int restarts)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        IPrimary primary = EnsurePrimary();
        var worker = new Worker(Interlocked.Increment(ref s_lastKey), instance, generation, _time.GetUtcNow())
        {
            ErrorLogOffset = LogTail.LengthOf(_paths.ErrorLog(Name, instance)),
            OutLogOffset = LogTail.LengthOf(_paths.OutLog(Name, instance)),
        };
        _workers[worker.Key] = worker;
        primary.Send(ForkCommand(worker, restarts));
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

    /// <summary>Puts a worker in its instance's place; it is online once ready. Returns the worker it replaces.</summary>
    public Worker? Install(Slot slot, Worker worker, TimeSpan listenTimeout)
    {
        Worker? old = slot.Current;
        slot.Current = worker;
        slot.Generation = worker.Generation;
        if (worker.IsReady)
        {
            Enter(slot, SlotState.Online);
        }
        else
        {
            Enter(slot, SlotState.Launching);
            _ = PromoteWhenReadyAsync(slot, worker, listenTimeout);
        }

        return old;
    }

    /// <summary>From now on, the worker's exit goes to the restart policy, even if it has exited already.</summary>
    public void Supervise(Worker worker)
    {
        if (worker.Retiring)
        {
            return;
        }

        worker.Supervised = true;
        if (worker.HasExited)
        {
            OnUnexpectedExit(worker);
        }
    }

    /// <summary>Waits for a new worker to be ready; one still running when the listen timeout passes counts as online.</summary>
    public async Task<Readiness> WaitReadyAsync(Worker worker, TimeSpan listenTimeout, CancellationToken cancel)
    {
        Readiness readiness = await worker.WaitReadyAsync(listenTimeout, _time, cancel);
        if (readiness == Readiness.TimedOut)
        {
            worker.MarkOnlineAfterTimeout();
            _log.Information("Instance {Instance} (pid {Pid}) neither listened nor said 'online' within {ListenTimeoutMs} ms; counting it as online", worker.Instance, worker.Pid, listenTimeout.TotalMilliseconds);
        }

        return readiness;
    }

    /// <summary>
    /// Stops a worker on purpose, one step after the other until it has exited:
    ///   1. graceful: the 'shutdown' message (just before the disconnect, see below);
    ///   2. cluster mode: the disconnect, so no new connection reaches it (the drain preload then winds down
    ///      its open connections);
    ///   3. graceful: the graceful timeout to exit; plain: up to the kill timeout for the disconnect to finish;
    ///   4. SIGINT (not on Windows, where a signal is TerminateProcess: the IPC steps are all it gets there),
    ///      and the kill timeout to exit;
    ///   5. SIGKILL (Windows: terminate the process tree).
    /// </summary>
    public async Task RetireAsync(Worker worker, Retirement how)
    {
        if (worker.HasExited)
        {
            return;
        }

        worker.MarkRetiring();
        IPrimary? primary = _primary;
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
            if (await ExitsWithinAsync(worker, how.GracefulTimeout))
            {
                return;
            }
        }
        else if (Definition.IsCluster)
        {
            await WithinAsync(worker.Disconnected, how.KillTimeout);
        }

        if (!OperatingSystem.IsWindows() || !how.Graceful)
        {
            if (await InterruptAsync(primary, worker, how))
            {
                return;
            }
        }

        _log.Warning("Instance {Instance} (pid {Pid}) did not exit in time; killing it", worker.Instance, worker.Pid);
        primary.Send(new PrimaryCommand { Cmd = PrimaryCommand.Signal, Key = worker.Key, SignalName = "SIGKILL" });
        await ExitsWithinAsync(worker, LastWaitForExit);
    }

    /// <summary>SIGINT where there is one, then the kill timeout to exit. Whether it exited.</summary>
    private async Task<bool> InterruptAsync(IPrimary primary, Worker worker, Retirement how)
    {
        if (!OperatingSystem.IsWindows() && !worker.HasExited)
        {
            if (how.Graceful)
            {
                _log.Information("Instance {Instance} (pid {Pid}) did not exit within the graceful timeout of {GracefulTimeoutMs} ms; sending SIGINT", worker.Instance, worker.Pid, how.GracefulTimeout.TotalMilliseconds);
            }

            primary.Send(new PrimaryCommand { Cmd = PrimaryCommand.Signal, Key = worker.Key, SignalName = "SIGINT" });
        }

        return await ExitsWithinAsync(worker, how.KillTimeout);
    }

    /// <summary>Stops the worker of each slot; a slot whose worker is gone is stopped, one whose worker lingers says so.</summary>
    public async Task RetireSlotsAsync(IEnumerable<Slot> slots, Retirement how)
    {
        Slot[] chosen = slots.ToArray();
        foreach (Slot slot in chosen.Where(s => s.Current is { HasExited: false }))
        {
            Enter(slot, SlotState.Retiring);
        }

        // Workers of this app that serve no slot (a reload's new worker, one superseded at adoption) go too.
        Worker[] others = _workers.Values.Where(w => !w.HasExited && !_slots.Any(s => ReferenceEquals(s.Current, w))).ToArray();
        IEnumerable<Worker> retiring = chosen.Where(s => s.Current is { HasExited: false }).Select(s => s.Current!)
            .Concat(chosen.Length == _slots.Count ? others : Array.Empty<Worker>());
        await Task.WhenAll(retiring.Select(w => RetireAsync(w, how)));
        foreach (Slot slot in chosen)
        {
            if (slot.Current is { HasExited: false } lingering)
            {
                Enter(slot, SlotState.Retiring, $"pid {lingering.Pid} did not exit, even after SIGKILL");
            }
            else
            {
                Enter(slot, SlotState.Stopped);
            }
        }
    }

    /// <summary>
    /// Forks the instances and waits until each is ready; those that are, are supervised from then on.
    /// Returns the ones that exited (or never started) first, for the caller to report (and to supervise, or not).
    /// </summary>
    public async Task<IReadOnlyList<Worker>> StartInstancesAsync(IEnumerable<int> instances, int generation, bool countRestart)
    {
        TimeSpan listenTimeout = ListenTimeout;
        var started = new List<Worker>();
        foreach (int instance in instances)
        {
            Slot slot = SlotFor(instance);
            if (countRestart)
            {
                slot.CountRestart("restarted on request", _time.GetUtcNow());
            }

            Worker worker = Fork(instance, generation, slot.Restarts);
            Install(slot, worker, listenTimeout);
            started.Add(worker);
        }

        Readiness[] results = await Task.WhenAll(started.Select(w => WaitReadyAsync(w, listenTimeout, CancellationToken.None)));
        HealthPlan health = Health;
        bool[] passed = await Task.WhenAll(started.Select((w, i) =>
            results[i] is Readiness.Exited or Readiness.NotStarted ? Task.FromResult(false) : PassCheckOrEndAsync(w, health)));
        var failed = new List<Worker>();
        for (int i = 0; i < started.Count; i++)
        {
            if (!passed[i])
            {
                failed.Add(started[i]);
            }
            else
            {
                Supervise(started[i]);
            }
        }

        return failed;
    }

    public TimeSpan ListenTimeout => Timeouts.Listen(Definition.Spec.ListenTimeoutMs, null, Definition.Spec.Environment);

    /// <summary>
    /// Runs the app's readiness check on a ready worker, if it has one, and lets the worker take shared traffic
    /// once it passed (the health preload held its listen back until then). A worker that fails is killed, and
    /// its <see cref="Worker.FailureReason"/> says why; one started here and not yet supervised then counts as not started.
    /// </summary>
    public async Task<bool> PassCheckOrEndAsync(Worker worker, HealthPlan health)
    {
        CheckResult? check = await CheckAsync(worker, health);
        if (check is { Passed: false })
        {
            await EndFailedAsync(worker, $"failed its readiness check: {check.Description}");
            return false;
        }

        // Ready is ready: one that exited since goes to the restart policy once it is supervised.
        LetServe(worker);
        Slot? slot = SlotOf(worker);
        if (slot is { State: SlotState.Launching } && !worker.HasExited)
        {
            worker.MarkOnlineAfterTimeout();
            Enter(slot, SlotState.Online);
        }

        return true;
    }

    /// <summary>The app's readiness check on the worker (null when the app has none), on the worker's own port.</summary>
    public async Task<CheckResult?> CheckAsync(Worker worker, HealthPlan health)
    {
        if (!health.HasCheck)
        {
            return null;
        }

        CheckResult result = await HealthCheck.UntilPassedAsync(health, worker, Definition.Spec, _time);
        if (worker.HasExited && !result.Passed)
        {
            return result with { Description = $"{result.Description}; the instance {DescribeExit(worker)}" };
        }

        _log.Information("Instance {Instance} (pid {Pid}) {Outcome} its readiness check: {Check}", worker.Instance, worker.Pid, result.Passed ? "passed" : "failed", result.Description);
        return result;
    }

    /// <summary>Tells the health preload of a worker that passed its check to let the app's held listen go ahead.</summary>
    public void LetServe(Worker worker)
    {
        if (HealthPlan.HoldsListen(Definition.Spec) && !worker.HasExited)
        {
            _primary?.Send(new PrimaryCommand { Cmd = PrimaryCommand.Send, Key = worker.Key, Message = HealthPlan.ServeMessage });
        }
    }

    /// <summary>Kills a worker the host found broken (a failed check), saying why; it never took shared traffic if it was new.</summary>
    public async Task EndFailedAsync(Worker worker, string reason)
    {
        worker.FailureReason = reason;
        _log.Warning("Instance {Instance} (pid {Pid}) {Reason}; killing it", worker.Instance, worker.Pid, reason);
        if (!worker.HasExited)
        {
            // Not marked retiring: a supervised worker's exit goes to the restart policy, as a crash would.
            _primary?.Send(new PrimaryCommand { Cmd = PrimaryCommand.Signal, Key = worker.Key, SignalName = "SIGKILL" });
            await ExitsWithinAsync(worker, LastWaitForExit);
        }
    }

    /// <summary>Whether a new worker stays up for the window after it was ready.</summary>
    public async Task<bool> StaysUpAsync(Worker worker, TimeSpan window)
    {
        if (window > TimeSpan.Zero)
        {
            await WithinAsync(worker.Exited, window);
        }

        return !worker.HasExited;
    }

    /// <summary>How a worker ended, for a message: "exited with code 1", "was killed by SIGKILL", ...</summary>
    public static string DescribeExit(Worker worker) =>
        worker.FailureReason is { } reason ? reason
        : !worker.HasExited ? "did not start within the listen timeout (its Node primary never reported the process)"
        : worker.SpawnError is { } error ? $"could not start ({error})"
        : worker.ExitSignal is { } signal ? $"was killed by {signal}"
        : $"exited with code {worker.ExitCode}";

    /// <summary>
    /// The line of what a worker wrote to stderr since it was forked that says why it failed (the error, not the
    /// end of its stack trace), and where to read the rest, as the end of an error message.
    /// </summary>
    public string ErrorOutputSuffix(Worker worker, int lines = 200)
    {
        IReadOnlyList<string> stderr = LogTail.Read(_paths.ErrorLog(Name, worker.Instance), lines, worker.ErrorLogOffset);
        string rest = $" Get-ClusterAppLog {Name} -Instance {worker.Instance} -Stream Err shows the rest of its output.";
        IReadOnlyList<string> said = ErrorOutput.MeaningfulLines(stderr.Select(LogStamp.TextOf));
        return said.Count == 0 ? rest : $" Its error output says: {string.Join(", then ", said.Select(l => $"\"{Quoted(l)}\""))}." + rest;
    }

    /// <summary>A line of an app's output as a message quotes it: control characters escaped, at most 400 characters.</summary>
    private static string Quoted(string line)
    {
        string shown = line.Length > 400 ? line[..400] + "..." : line;
        return string.Concat(shown.Select(c => c < 0x20 || c == 0x7f ? $"\\x{(int)c:x2}" : c.ToString()));
    }

    /// <summary>The last lines a worker wrote to stderr and stdout since it was forked, as the end of an error message.</summary>
    public string OutputSuffix(Worker worker, int lines = 20)
    {
        IReadOnlyList<string> stdout = LogTail.Read(_paths.OutLog(Name, worker.Instance), lines, worker.OutLogOffset);
        return ErrorOutputSuffix(worker, lines)
            + (stdout.Count == 0 ? "" : Environment.NewLine + "Its last output:" + Environment.NewLine + string.Join(Environment.NewLine, stdout.Select(LogStamp.TextOf)));
    }

    /// <summary>
    /// Takes back workers that kept running in their primary while there was no host. Where an instance has two
    /// (a reload was under way), the newer is put in place only if it was ready; otherwise the older keeps
    /// serving and the newer is stopped, as the interrupted reload would have done.
    /// </summary>
    /// <returns>The retirement of the workers not taken back.</returns>
    public Task Adopt(IReadOnlyList<AdoptedWorker> found)
    {
        EnsurePrimary();
        TimeSpan listenTimeout = ListenTimeout;
        var unwanted = new List<Worker>();
        foreach (IGrouping<int, AdoptedWorker> instance in found.Where(w => IsAlive(w.Pid)).GroupBy(w => w.Instance))
        {
            AdoptedWorker[] byAge = instance.OrderBy(w => w.Generation).ThenBy(w => w.Started).ToArray();
            AdoptedWorker serving = byAge.LastOrDefault(w => w.Ready) ?? byAge[0];
            Slot slot = SlotFor(instance.Key);
            foreach (AdoptedWorker adopted in byAge)
            {
                var worker = new Worker(adopted.Key, adopted.Instance, adopted.Generation, adopted.Started);
                worker.MarkForked(adopted.Pid);
                if (adopted.HealthPort is { } port)
                {
                    worker.MarkListened(port);
                }

                if (adopted.Ready)
                {
                    worker.MarkReady();
                }

                _workers[worker.Key] = worker;
                if (ReferenceEquals(adopted, serving))
                {
                    slot.Restarts = adopted.Restarts;
                    Install(slot, worker, listenTimeout);
                    worker.Supervised = true;
                }
                else
                {
                    unwanted.Add(worker);
                    _log.Information("Stopping pid {Pid} (instance {Instance}, generation {Generation}): pid {Serving} serves that instance", adopted.Pid, adopted.Instance, adopted.Generation, serving.Pid);
                }
            }
        }

        if (Definition.PartialReload is { } partial)
        {
            ReloadError = partial;
        }

        var retirement = Retirement.Plain(Timeouts.Kill(Definition.Spec));
        return Task.WhenAll(unwanted.Select(w => RetireAsync(w, retirement)));
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

    /// <summary>Stops the Node primary once no worker is left (a stopped app costs no memory).</summary>
    public void ReleasePrimaryIfIdle()
    {
        if (_primary is not null && _workers.Count == 0)
        {
            IPrimary idle = _primary;
            _primary = null;
            idle.Dispose();
        }
    }

    public AppInfo Snapshot(ProcessMetrics metrics)
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
            Details = Details(),
        };
        foreach (Slot slot in _slots)
        {
            info.Instances.Add(InstanceSnapshot(slot, metrics));
        }

        info.Status = AppStatus();
        return info;
    }

    private AppDetails Details()
    {
        StartSpec spec = Definition.Spec;
        RestartPolicy policy = Definition.RestartPolicy;
        static int Ms(TimeSpan span) => (int)span.TotalMilliseconds;
        return new AppDetails
        {
            NodePath = Definition.NodePath,
            AutoRestart = policy.AutoRestart,
            MaxRestarts = policy.MaxRestarts,
            MinUptimeMs = Ms(policy.MinUptime),
            RestartDelayMs = Ms(policy.RestartDelay),
            ListenTimeoutMs = Ms(ListenTimeout),
            KillTimeoutMs = Ms(Timeouts.Kill(null, spec.KillTimeoutMs)),
            GracefulTimeoutMs = Ms(Timeouts.Graceful(null, null, spec.Environment)),
            MaxMemoryBytes = spec.MaxMemoryBytes,
            LogMaxBytes = spec.LogMaxBytes ?? LogRotation.DefaultMaxBytes,
            LogFileCount = spec.LogFileCount ?? LogRotation.DefaultFileCount,
            Drain = Definition.IsCluster && spec.Drain,
            Sticky = Definition.IsCluster && spec.Sticky,
            EnvironmentNames = spec.Environment.Keys.Order(StringComparer.OrdinalIgnoreCase).ToList(),
            OutLogs = _slots.Select(s => _paths.OutLog(Name, s.Instance)).ToList(),
            ErrorLogs = _slots.Select(s => _paths.ErrorLog(Name, s.Instance)).ToList(),
        };
    }

    /// <summary>The pids of the workers that serve the instances now.</summary>
    public int[] LivePids() =>
        _slots.Select(s => s.Current).Where(w => w is { HasExited: false, Pid: not null }).Select(w => w!.Pid!.Value).ToArray();

    private static InstanceInfo InstanceSnapshot(Slot slot, ProcessMetrics metrics)
    {
        Worker? worker = slot.Current;
        var info = new InstanceInfo
        {
            Instance = slot.Instance,
            Restarts = slot.Restarts,
            Status = InstanceStatus(slot.State),
            Generation = slot.Generation,
            Reason = slot.Reason,
            LastRestartReason = slot.LastRestartReason,
            LastRestartTime = slot.LastRestartTime,
        };
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

    private static string InstanceStatus(SlotState state) => state switch
    {
        SlotState.Online => "online",
        SlotState.Launching => "launching",
        SlotState.Retiring => "stopping",
        SlotState.Backoff => "backoff",
        SlotState.Errored => "errored",
        _ => "stopped",
    };

    /// <summary>The app's status, from what its instances do: never online unless every one of them is.</summary>
    private string AppStatus()
    {
        // An instance that crashed for good (too often, or with automatic restart off) makes the app errored.
        if (_slots.Exists(s => s.State == SlotState.Errored || (s.State == SlotState.Stopped && !Definition.Stopped && s.Current is { HasExited: true, Retiring: false } && !EndedWithStopCode(s.Current))))
        {
            return "errored";
        }

        if (_operation == Operations.Reload)
        {
            return "reloading";
        }

        if (_slots.Exists(s => s.State == SlotState.Retiring))
        {
            return "stopping";
        }

        if (_slots.Count == 0 || _slots.TrueForAll(s => s.State == SlotState.Stopped))
        {
            return "stopped";
        }

        if (Definition.PartialReload is not null)
        {
            return "partlyreloaded";
        }

        if (ReloadError is not null)
        {
            return "reloadfailed";
        }

        return _slots.TrueForAll(s => s.State == SlotState.Online) ? "online" : "launching";
    }

    private PrimaryCommand ForkCommand(Worker worker, int restarts)
    {
        StartSpec spec = Definition.Spec;
        var execArgv = new List<string>();
        if (Definition.IsCluster && spec.Drain)
        {
            execArgv.Add("--require");
            execArgv.Add(_paths.DrainScript);
        }

        // Before the health preload, whose held listens then go through it.
        if (Definition.IsCluster && spec.Sticky)
        {
            execArgv.Add("--require");
            execArgv.Add(_paths.StickyScript);
        }

        if (HealthPlan.HoldsListen(spec))
        {
            execArgv.Add("--require");
            execArgv.Add(_paths.HealthScript);
        }

        execArgv.AddRange(spec.NodeArguments);
        Launch? launch = Definition.IsCluster ? null : Launch.For(spec);
        return new PrimaryCommand
        {
            Cmd = PrimaryCommand.Fork,
            Key = worker.Key,
            App = Name,
            Mode = spec.Mode,
            Exec = launch?.Exec ?? spec.Script,
            Args = launch?.Args ?? spec.Arguments,
            ExecArgv = execArgv,
            Node = launch?.Node,
            Cwd = spec.WorkingDirectory,
            Env = EnvironmentOf(spec, worker.Instance),
            InstanceVariable = spec.InstanceVariable,
            Instance = worker.Instance,
            Out = _paths.OutLog(Name, worker.Instance),
            Err = _paths.ErrorLog(Name, worker.Instance),
            LogMaxBytes = spec.LogMaxBytes ?? LogRotation.DefaultMaxBytes,
            LogKeep = spec.LogFileCount ?? LogRotation.DefaultFileCount,
            Generation = worker.Generation,
            Restarts = restarts,
            Definition = JsonSerializer.Serialize(Saved, HostJson.Default.AppDefinition),
        };
    }

    /// <summary>The environment of one instance: the app's, with -IncrementVariable's number moved on by the instance's.</summary>
    private static Dictionary<string, string> EnvironmentOf(StartSpec spec, int instance)
    {
        if (spec.IncrementVariable is not { } name || !spec.Environment.TryGetValue(name, out string? start)
            || !long.TryParse(start, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out long first))
        {
            return spec.Environment;
        }

        return new Dictionary<string, string>(spec.Environment, spec.Environment.Comparer)
        {
            [name] = (first + instance).ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
    }

    // Signals, messages and counters of the running instances

    /// <summary>
    /// Sends each chosen running instance a command of the primary (a signal, a message); returns the instances it
    /// went to. An instance the app does not have is an error; one with no running process is left out.
    /// </summary>
    public IReadOnlyList<int> Deliver(List<int>? instances, Func<Worker, PrimaryCommand> command)
    {
        foreach (int missing in (instances ?? new List<int>()).Where(i => !_slots.Exists(s => s.Instance == i)))
        {
            throw new ClusterException(
                "InstanceNotFound",
                ErrorCategories.ObjectNotFound,
                $"'{Name}' has no instance {missing}. Its instances are {string.Join(", ", _slots.Select(s => s.Instance))}.",
                missing.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        IPrimary? primary = _primary;
        var reached = new List<int>();
        foreach (Slot slot in _slots.Where(s => instances is null || instances.Contains(s.Instance)))
        {
            if (primary is not null && slot.Current is { HasExited: false, Pid: not null } worker)
            {
                primary.Send(command(worker));
                reached.Add(slot.Instance);
            }
        }

        if (reached.Count == 0)
        {
            throw new ClusterException(
                "NoRunningInstance",
                ErrorCategories.InvalidOperation,
                $"No {(instances is null ? "instance" : "chosen instance")} of '{Name}' has a running process to send it to. Restart-ClusterApp {Name} starts a stopped app.",
                Name);
        }

        return reached;
    }

    /// <summary>Zeroes every instance's restart counts (Reset-ClusterApp), and tells the primary, which keeps them for a later host.</summary>
    public void ResetRestarts()
    {
        foreach (Slot slot in _slots)
        {
            slot.Restarts = 0;
            slot.UnstableRestarts = 0;
            if (_primary is { } primary && slot.Current is { HasExited: false } worker)
            {
                primary.Send(new PrimaryCommand { Cmd = PrimaryCommand.SetRestarts, Key = worker.Key, Restarts = 0 });
            }
        }

        _log.Information("Reset the restart counts of {App}", Name);
    }

    /// <summary>
    /// Starts the app's scheduled restart (-CronRestart), a timer on the app's loop: each time the expression matches,
    /// <paramref name="fire"/> runs there, unless the app is stopped or an operation holds it. A new expression re-arms it.
    /// </summary>
    public void ScheduleCron(Func<Task> fire) => _loop.Post(() => _ = CronAsync(fire));

    private async Task CronAsync(Func<Task> fire)
    {
        while (!_disposed)
        {
            TaskCompletionSource changed = _cronChanged;
            _cronArmed = Definition.Spec.CronRestart;
            DateTimeOffset now = _time.GetUtcNow();
            DateTimeOffset? next = _cronArmed is { } expression ? CronExpression.Parse(expression).Next(now, TimeZoneInfo.Local) : null;
            if (next is null)
            {
                await changed.Task;
                continue;
            }

            TimeSpan wait = next.Value - now;
            await Task.WhenAny(changed.Task, Task.Delay(wait < MaxCronWait ? wait : MaxCronWait, _time));
            if (changed.Task.IsCompleted || _disposed || _time.GetUtcNow() < next.Value)
            {
                continue;
            }

            if (Definition.Stopped || _operation is not null)
            {
                _log.Information("The scheduled restart of {App} ({Cron}) is skipped: the app is {State}", Name, _cronArmed, Definition.Stopped ? "stopped" : _operation);
                continue;
            }

            try
            {
                _log.Information("Scheduled restart of {App} ({Cron})", Name, _cronArmed);
                await fire();
            }
            catch (Exception e) when (e is ClusterException or ObjectDisposedException)
            {
                _log.Warning("The scheduled restart of {App} failed: {Message}", Name, e.Message);
            }
        }
    }

    /// <summary>
    /// Starts watching the app's folder when -Watch asks (and again whenever the watch settings change): a change
    /// reloads the app once no further change has come for the watch delay. <paramref name="restart"/> runs on the loop.
    /// </summary>
    public void ScheduleWatch(Func<Task> restart) => _loop.Post(() =>
    {
        _restartOnChange = restart;
        ArmWatch();
    });

    private void ArmWatch()
    {
        _watch?.Dispose();
        _watch = null;
        _watchKey = FolderWatch.KeyOf(Definition.Spec);
        if (_watchKey is null || _disposed)
        {
            return;
        }

        try
        {
            _watch = new FolderWatch(FolderWatch.FolderOf(Definition.Spec), Definition.Spec.WatchIgnore ?? new List<string>(), path => _loop.Post(() => OnWatchedChange(path)));
            _log.Information("Watching {Folder} for changes to {App}", _watch.Folder, Name);
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            _log.Error("Cannot watch the folder of {App}: {Message}", Name, e.Message);
        }
    }

    /// <summary>A change under the watched folder: the reload waits until the changes stop for the watch delay.</summary>
    private void OnWatchedChange(string path)
    {
        if (_watch is null || _disposed || IsHostFile(path))
        {
            return;
        }

        _lastChange = _time.GetUtcNow();
        _log.Debug("{Path} changed under the watched folder of {App}", path, Name);
        if (!_watchPending)
        {
            _watchPending = true;
            _ = RestartAfterChangesAsync();
        }
    }

    /// <summary>
    /// Whether a path is one of the host's own files (its state, its log, the instances' logs, its runtime), which may
    /// be under the app's folder: writing them must not reload the app.
    /// </summary>
    private bool IsHostFile(string path)
    {
        StringComparison comparison = OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        bool Under(string? folder) => folder is not null && path.StartsWith(Path.TrimEndingDirectorySeparator(folder) + Path.DirectorySeparatorChar, comparison);
        return string.Equals(Path.GetDirectoryName(path), Path.TrimEndingDirectorySeparator(_paths.Home), comparison)
            || Under(_paths.Logs) || Under(_paths.Runtime) || Under(_paths.Primaries) || Under(_paths.SocketFolder);
    }

    private async Task RestartAfterChangesAsync()
    {
        TimeSpan delay = Definition.Spec.WatchDelayMs is { } ms ? TimeSpan.FromMilliseconds(ms) : FolderWatch.DefaultDelay;
        try
        {
            // Debounced: a save that touches many files, or a build, reloads once.
            while (_time.GetUtcNow() - _lastChange < delay || _operation is not null)
            {
                TimeSpan quiet = delay - (_time.GetUtcNow() - _lastChange);
                await Task.Delay(quiet > TimeSpan.Zero ? quiet : delay, _time);
                if (_watch is null || _disposed)
                {
                    return;
                }
            }
        }
        finally
        {
            _watchPending = false;
        }

        if (Definition.Stopped || _restartOnChange is null)
        {
            return;
        }

        try
        {
            _log.Information("Files of {App} changed; reloading it", Name);
            await _restartOnChange();
        }
        catch (Exception e) when (e is ClusterException or ObjectDisposedException)
        {
            _log.Warning("The reload of {App} after its files changed failed: {Message}", Name, e.Message);
        }
    }

    /// <summary>Wakes the cron timer, which arms itself for the expression the definition has now.</summary>
    private void CronChanged()
    {
        TaskCompletionSource changed = _cronChanged;
        _cronChanged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    /// <summary>Whether the worker ended with one of the app's -StopExitCodes: it is stopped, not restarted.</summary>
    private bool EndedWithStopCode(Worker worker) =>
        worker is { HasExited: true, ExitSignal: null, ExitCode: { } code } && Definition.Spec.StopExitCodes?.Contains(code) == true;

    private IPrimary EnsurePrimary()
    {
        if (_primary is not null)
        {
            return _primary;
        }

        IPrimary primary = _launcher.Launch(Definition);
        // Raised on the primary's reader thread: each is posted to this app's loop, in order.
        primary.EventReceived += e => _loop.Post(() => OnPrimaryEvent(primary, e));
        primary.Exited += () => _loop.Post(() => OnPrimaryExited(primary));
        _primary = primary;
        _log.Information("Using Node primary {Pid}", primary.Pid);
        return primary;
    }

    private void OnPrimaryEvent(IPrimary source, PrimaryEvent received)
    {
        if (!ReferenceEquals(source, _primary) || !_workers.TryGetValue(received.Key, out Worker? worker))
        {
            return;
        }

        switch (received.Event)
        {
            case PrimaryEvent.Forked:
                worker.MarkForked(received.Pid ?? 0);
                if (!Definition.IsCluster && !Definition.Spec.WaitReady)
                {
                    MarkReady(worker); // a fork-mode process is up once it has spawned
                }

                break;
            case PrimaryEvent.Listening:
                worker.MarkListened();
                if (!Definition.Spec.WaitReady)
                {
                    MarkReady(worker);
                }

                break;
            case PrimaryEvent.Message when received.Text is "online" or "ready":
                MarkReady(worker);
                break;
            case PrimaryEvent.Message when HealthPortIn(received.Text) is { } port:
                // The app asked to listen; the health preload holds that listen until its check passed.
                worker.MarkListened(port);
                if (!Definition.Spec.WaitReady)
                {
                    MarkReady(worker);
                }

                break;
            case PrimaryEvent.Disconnected:
                worker.MarkDisconnected();
                break;
            case PrimaryEvent.Exit:
                OnWorkerExited(worker, received.Code, received.Signal, received.Error, lostWithPrimary: false);
                break;
        }
    }

    private void MarkReady(Worker worker)
    {
        worker.MarkReady();
        Slot? slot = SlotOf(worker);
        // With a readiness check, the worker is online once it passed (PassCheckOrEndAsync), not when it listens.
        if (slot is { State: SlotState.Launching } && !Health.HasCheck)
        {
            Enter(slot, SlotState.Online);
        }
    }

    private static int? HealthPortIn(string? text) =>
        text is not null && text.StartsWith(HealthPlan.PortMessagePrefix, StringComparison.Ordinal)
        && int.TryParse(text.AsSpan(HealthPlan.PortMessagePrefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int port)
        && port is > 0 and < 65536
            ? port
            : null;

    private void OnWorkerExited(Worker worker, int? code, string? signal, string? error, bool lostWithPrimary)
    {
        _workers.Remove(worker.Key);
        worker.MarkExited(code, signal, error, _time.GetUtcNow(), lostWithPrimary);
        if (worker.Supervised && !worker.Retiring)
        {
            OnUnexpectedExit(worker);
        }
    }

    /// <summary>
    /// The primary died (killed, crashed, or stopped answering), and its workers with it. Every instance says
    /// so at once, and is started again on a new primary, keeping its NODE_APP_INSTANCE.
    /// </summary>
    private void OnPrimaryExited(IPrimary primary)
    {
        if (!ReferenceEquals(primary, _primary))
        {
            return;
        }

        _primary = null;
        primary.Dispose();
        Worker[] orphans = _workers.Values.ToArray();
        if (orphans.Length > 0)
        {
            _log.Warning("The Node primary {Pid} of {App} is gone, and {Count} workers with it; starting them again", primary.Pid, Name, orphans.Length);
        }

        foreach (Worker orphan in orphans)
        {
            OnWorkerExited(orphan, null, null, "its Node primary exited", lostWithPrimary: true);
        }
    }

    private void OnUnexpectedExit(Worker worker)
    {
        Slot? slot = SlotOf(worker);
        if (slot is null || _disposed)
        {
            return;
        }

        if (Definition.Stopped)
        {
            Enter(slot, SlotState.Stopped);
            return;
        }

        string exit = worker.FailureReason ?? worker.ExitSignal ?? worker.ExitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? worker.SpawnError ?? "unknown";
        if (worker.LostWithPrimary)
        {
            Enter(slot, SlotState.Backoff, "its Node primary exited; starting it again");
            _ = RestartAfterAsync(slot, worker, TimeSpan.Zero);
            return;
        }

        if (EndedWithStopCode(worker))
        {
            _log.Information("Instance {Instance} (pid {Pid}) exited with code {Code}, one of its stop exit codes; it is not restarted", worker.Instance, worker.Pid, worker.ExitCode);
            Enter(slot, SlotState.Stopped, $"exited with code {worker.ExitCode}, one of its stop exit codes (-StopExitCodes); not restarted");
            return;
        }

        TimeSpan uptime = (worker.ExitedAt ?? _time.GetUtcNow()) - worker.ForkedAt;
        RestartDecision decision = Definition.RestartPolicy.Decide(uptime, slot.UnstableRestarts);
        slot.UnstableRestarts = decision.UnstableRestarts;
        switch (decision.Action)
        {
            case RestartAction.Restart:
                _log.Warning("Instance {Instance} (pid {Pid}) exited ({Exit}); restarting it in {DelayMs} ms", worker.Instance, worker.Pid, exit, decision.Delay.TotalMilliseconds);
                Enter(slot, SlotState.Backoff, $"exited ({exit}); restarting in {decision.Delay.TotalMilliseconds} ms");
                _ = RestartAfterAsync(slot, worker, decision.Delay);
                break;
            case RestartAction.GiveUp:
                _log.Error("Instance {Instance} (pid {Pid}) exited ({Exit}) after {Unstable} unstable restarts in a row; it is errored and will not be restarted", worker.Instance, worker.Pid, exit, decision.UnstableRestarts);
                Enter(slot, SlotState.Errored, $"exited ({exit}) after {decision.UnstableRestarts} unstable restarts in a row");
                break;
            default:
                _log.Warning("Instance {Instance} (pid {Pid}) exited ({Exit}); automatic restart is off", worker.Instance, worker.Pid, exit);
                Enter(slot, SlotState.Stopped, $"exited ({exit}); automatic restart is off");
                break;
        }
    }

    private async Task RestartAfterAsync(Slot slot, Worker dead, TimeSpan delay)
    {
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, _time);
        }
        else
        {
            await Task.Yield(); // the other instances of a lost primary say so first
        }

        // Something else (a reload, a stop, a restart, a scale-down) has dealt with this instance meanwhile.
        if (slot.State != SlotState.Backoff || !ReferenceEquals(slot.Current, dead) || !_slots.Contains(slot) || Definition.Stopped || _disposed)
        {
            return;
        }

        try
        {
            slot.CountRestart($"its process {DescribeExit(dead)}", _time.GetUtcNow());
            Worker replacement = Fork(slot.Instance, slot.Generation, slot.Restarts);
            Install(slot, replacement, ListenTimeout);
            Supervise(replacement);
        }
        catch (ClusterException e)
        {
            // No primary could be started: say so, and try again as the restart policy says.
            _log.Error("Could not restart instance {Instance} of {App}: {Message}", slot.Instance, Name, e.Message);
            var failed = new Worker(0, slot.Instance, slot.Generation, _time.GetUtcNow());
            failed.MarkExited(null, null, e.Message, _time.GetUtcNow());
            failed.Supervised = true;
            slot.Current = failed;
            Enter(slot, SlotState.Backoff, e.Message);
            OnUnexpectedExit(failed);
        }
    }

    /// <summary>A worker put in place before it was ready becomes online when it is, or when the listen timeout passes.</summary>
    private async Task PromoteWhenReadyAsync(Slot slot, Worker worker, TimeSpan listenTimeout)
    {
        Readiness readiness = await worker.WaitReadyAsync(listenTimeout, _time, CancellationToken.None);
        if (readiness is Readiness.Ready or Readiness.TimedOut && Health.HasCheck)
        {
            // A restarted worker is checked here; one an operation started, by that operation.
            if (worker.Supervised && ReferenceEquals(slot.Current, worker) && slot.State == SlotState.Launching)
            {
                await PassCheckOrEndAsync(worker, Health);
            }

            return;
        }

        if (ReferenceEquals(slot.Current, worker) && slot.State == SlotState.Launching)
        {
            if (readiness is Readiness.Ready or Readiness.TimedOut)
            {
                worker.MarkOnlineAfterTimeout();
                Enter(slot, SlotState.Online);
            }
            else if (readiness == Readiness.NotStarted)
            {
                Enter(slot, SlotState.Launching, "its Node primary has not reported the process yet");
            }
        }
    }

    private Slot? SlotOf(Worker worker) => _slots.Find(s => ReferenceEquals(s.Current, worker));

    private async Task<bool> ExitsWithinAsync(Worker worker, TimeSpan timeout)
    {
        await WithinAsync(worker.Exited, timeout);
        return worker.HasExited;
    }

    private Task WithinAsync(Task task, TimeSpan timeout) => Waits.WithinAsync(task, timeout, _time);

    /// <summary>Ends the app's loop; its primary lease is let go. Runs on the loop, as the app's last work.</summary>
    public void Dispose()
    {
        _disposed = true;
        CronChanged();
        _watch?.Dispose();
        _watch = null;
        IPrimary? primary = _primary;
        _primary = null;
        primary?.Dispose();
        _ = _loop.CompleteAsync();
    }

    private static AppDefinition Copy(AppDefinition definition) =>
        JsonSerializer.Deserialize(JsonSerializer.SerializeToUtf8Bytes(definition, HostJson.Default.AppDefinition), HostJson.Default.AppDefinition)!;
}

/// <summary>The names of the operations that hold an app, as <see cref="ManagedApp.Operation"/> reports them.</summary>
internal static class Operations
{
    public const string Start = "start";
    public const string Stop = "stop";
    public const string Restart = "restart";
    public const string Remove = "remove";
    public const string Reload = "reload";
    public const string Scale = "scale";
    public const string Update = "update";
    public const string Replace = "replace";
    public const string Adopt = "adopt";
}
