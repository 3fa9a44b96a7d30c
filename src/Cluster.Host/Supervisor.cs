using Cluster.Protocol;
using Serilog;

namespace Cluster.Host;

/// <summary>The apps of one host, and the operations on them. Every change of an app's definition is saved.</summary>
internal sealed class Supervisor
{
    private readonly Dictionary<string, ManagedApp> _apps = new(StringComparer.OrdinalIgnoreCase);
    private readonly IPrimaryLauncher _launcher;
    private readonly HostPaths _paths;
    private readonly StateStore _state;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly ProcessMetrics _metrics;
    private readonly int _processorCount;

    public static readonly TimeSpan MemoryCheckInterval = TimeSpan.FromSeconds(2);
    private Task? _stopAll;

    public Supervisor(IPrimaryLauncher launcher, HostPaths paths, StateStore state, TimeProvider time, ILogger log, int processorCount)
    {
        _launcher = launcher;
        _paths = paths;
        _state = state;
        _time = time;
        _log = log;
        _processorCount = processorCount;
        _metrics = new ProcessMetrics(time);
    }

    public int Count
    {
        get
        {
            lock (_apps)
            {
                return _apps.Count;
            }
        }
    }

    public async Task<AppInfo> StartAsync(StartSpec spec)
    {
        StartSpecValidator.Validate(spec);
        var definition = new AppDefinition { Spec = spec, NodePath = NodeRuntime.Resolve(spec.Environment), Created = _time.GetUtcNow() };
        ManagedApp app = Register(definition);
        await app.Operation.WaitAsync().ConfigureAwait(false);
        try
        {
            int count = InstanceCount.Resolve(spec.Instances, _processorCount);
            _log.Information("Starting {App}: {Script} in {Mode} mode, {Count} instances", app.Name, spec.Script, spec.Mode, count);
            IReadOnlyList<Worker> failed = await StartInstancesAsync(app, Enumerable.Range(0, count), countRestart: false).ConfigureAwait(false);
            if (failed.Count > 0)
            {
                ClusterException error = InstanceExited(app, failed[0], "so the app was not started");
                await RetireAllAsync(app).ConfigureAwait(false);
                Unregister(app);
                app.Dispose();
                throw error;
            }

            Save();
            return app.Snapshot(_metrics);
        }
        finally
        {
            app.Operation.Release();
        }
    }

    public IReadOnlyList<AppInfo> List(string? name)
    {
        if (name is not null)
        {
            return new[] { Find(name).Snapshot(_metrics) };
        }

        ManagedApp[] apps;
        lock (_apps)
        {
            apps = _apps.Values.OrderBy(a => a.Name, StringComparer.OrdinalIgnoreCase).ToArray();
        }

        return apps.Select(a => a.Snapshot(_metrics)).ToArray();
    }

    public Task<AppInfo> StopAsync(string name, StopSpec? how = null) => UnderOperationAsync(Find(name), async app =>
    {
        app.Definition.Stopped = true;
        Save();
        await RetireAllAsync(app).ConfigureAwait(false);
        app.ReleasePrimaryIfIdle();
        _log.Information("Stopped {App}", app.Name);
        return app.Snapshot(_metrics);
    });

    /// <summary>Stops every instance and starts it again (not zero-downtime: that is reload). Starts a stopped app.</summary>
    public Task<AppInfo> RestartAsync(string name, StopSpec? how = null) => UnderOperationAsync(Find(name), async app =>
    {
        await RetireAllAsync(app).ConfigureAwait(false);
        app.Definition.Stopped = false;
        app.ReloadError = null;
        Save();
        int[] instances = app.Slots.Select(s => s.Instance).ToArray();
        RestartFailed(app, await StartInstancesAsync(app, instances, countRestart: true).ConfigureAwait(false), "while restarting");

        _log.Information("Restarted {App}", app.Name);
        return app.Snapshot(_metrics);
    });

    public async Task RemoveAsync(string name, StopSpec? how = null)
    {
        ManagedApp app = Find(name);
        await UnderOperationAsync(app, async _ =>
        {
            app.Definition.Stopped = true;
            await RetireAllAsync(app).ConfigureAwait(false);
            Unregister(app);
            Save();
            app.Dispose();
            _log.Information("Removed {App}", app.Name);
            return 0;
        }).ConfigureAwait(false);
    }

    public async Task<AppInfo> ReloadAsync(string name, ReloadSpec spec, Func<ProgressInfo, Task> report, Func<string, Task> warn, CancellationToken cancel)
    {
        ManagedApp app = Find(name);
        if (!app.Definition.IsCluster)
        {
            await warn($"'{app.Name}' runs in fork mode, and only cluster mode reloads without downtime, so it was restarted instead. Start it with -Mode Cluster to reload it.").ConfigureAwait(false);
            return await RestartAsync(name).ConfigureAwait(false);
        }

        await new ReloadCoordinator(report).ReloadAsync(app, spec, cancel).ConfigureAwait(false);
        return app.Snapshot(_metrics);
    }

    /// <summary>Grows or shrinks a running app. Shrinking retires the highest NODE_APP_INSTANCE numbers gracefully.</summary>
    public Task<AppInfo> ScaleAsync(string name, int requested) => UnderOperationAsync(Find(name), async app =>
    {
        StartSpecValidator.ValidateInstances(requested);
        int target = InstanceCount.Resolve(requested, _processorCount);
        IReadOnlyList<Slot> slots = app.Slots;
        app.Definition.Spec.Instances = requested;
        Save();
        if (target > slots.Count)
        {
            int[] added = Enumerable.Range(slots.Count, target - slots.Count).ToArray();
            if (!app.Definition.Stopped)
            {
                RestartFailed(app, await StartInstancesAsync(app, added, countRestart: false).ConfigureAwait(false), "while scaling up");
            }
            else
            {
                Array.ForEach(added, i => app.SlotFor(i));
            }
        }
        else
        {
            var retired = new Retirement(true, Timeouts.Kill(null, app.Definition.Spec.KillTimeoutMs), Timeouts.Graceful(null, null, app.Definition.Spec.Environment));
            Slot[] removed = slots.Where(s => s.Instance >= target).ToArray();
            foreach (Slot slot in removed)
            {
                app.RemoveSlot(slot);
            }

            await Task.WhenAll(removed.Where(s => s.Current is not null).Select(s => app.RetireAsync(s.Current!, retired))).ConfigureAwait(false);
        }

        _log.Information("Scaled {App} to {Count} instances", app.Name, target);
        return app.Snapshot(_metrics);
    });

    /// <summary>The log files of an app's instances, from now on (see <see cref="AppLogs"/>).</summary>
    public AppLogs LogsOf(string name, int? instance) => new(_paths, Find(name), instance);

    /// <summary>
    /// Every few seconds, replaces the instances whose memory has grown past their app's limit
    /// (-MaxMemoryRestart): a cluster instance by a reload of that instance alone, so no request is lost.
    /// </summary>
    public async Task WatchMemoryAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(MemoryCheckInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                ManagedApp[] apps;
                lock (_apps)
                {
                    apps = _apps.Values.Where(a => a.Definition.Spec.MaxMemoryBytes is not null && !a.Definition.Stopped).ToArray();
                }

                foreach (ManagedApp app in apps)
                {
                    int[] over = InstancesOverMemoryLimit(app);
                    if (over.Length > 0)
                    {
                        await ReplaceInstancesAsync(app, over).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private int[] InstancesOverMemoryLimit(ManagedApp app)
    {
        long limit = app.Definition.Spec.MaxMemoryBytes ?? long.MaxValue;
        var over = new List<int>();
        foreach (Slot slot in app.Slots)
        {
            if (slot.Current is { State: WorkerState.Online, Pid: { } pid } && ProcessMetrics.MemoryOf(pid) is var memory && memory > limit)
            {
                _log.Warning("Instance {Instance} of {App} (pid {Pid}) uses {MemoryBytes} bytes, over its limit of {Limit}; replacing it", slot.Instance, app.Name, pid, memory, limit);
                over.Add(slot.Instance);
            }
        }

        return over.ToArray();
    }

    private async Task ReplaceInstancesAsync(ManagedApp app, int[] instances)
    {
        try
        {
            if (app.Definition.IsCluster)
            {
                var spec = new ReloadSpec { Instances = instances.ToList() };
                await new ReloadCoordinator(_ => Task.CompletedTask).ReloadAsync(app, spec, CancellationToken.None).ConfigureAwait(false);
                return;
            }

            await UnderOperationAsync(app, async a =>
            {
                foreach (Slot slot in a.Slots.Where(s => instances.Contains(s.Instance) && s.Current is not null))
                {
                    await a.RetireAsync(slot.Current!, Retirement.Plain(Timeouts.Kill(null, a.Definition.Spec.KillTimeoutMs))).ConfigureAwait(false);
                    Worker replacement = a.Fork(slot.Instance);
                    a.Install(slot, replacement, countRestart: true);
                    a.Supervise(replacement);
                }

                return 0;
            }).ConfigureAwait(false);
        }
        catch (ClusterException e)
        {
            _log.Warning("Could not replace instances of {App} over their memory limit: {Message}", app.Name, e.Message);
        }
    }

    /// <summary>
    /// Registers the saved apps and brings back the ones that were running when the last host went away:
    /// workers still serving in a primary that outlived that host are taken back as they are; missing
    /// instances are started.
    /// </summary>
    public async Task ResurrectAsync()
    {
        SavedState saved;
        try
        {
            saved = _state.Load();
        }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException)
        {
            _log.Error(e, "Could not read the state file {Path}; starting with no apps", _paths.StateFile);
            return;
        }

        IReadOnlyList<AdoptedWorker> running = _launcher.AdoptRunning();
        var claimed = new HashSet<AdoptedWorker>();
        var starting = new List<Task>();
        foreach (AdoptedWorker worker in running)
        {
            ManagedApp.ReserveKeysThrough(worker.Key);
        }

        foreach (AppDefinition definition in saved.Apps)
        {
            ManagedApp app = Register(definition);
            int count = InstanceCount.Resolve(definition.Spec.Instances, _processorCount);
            if (definition.Stopped)
            {
                for (int i = 0; i < count; i++)
                {
                    app.SlotFor(i);
                }

                continue;
            }

            AdoptedWorker[] mine = running.Where(w => w.App == app.Name && w.NodePath == definition.NodePath
                && w.Scheduling == Scheduling.Of(definition.Spec) && w.Instance < count).ToArray();
            claimed.UnionWith(mine);
            if (mine.Length > 0)
            {
                TakeBack(app, mine);
            }

            int[] missing = Enumerable.Range(0, count).Where(i => !app.Slots.Any(s => s.Instance == i && s.Current is { HasExited: false })).ToArray();
            if (missing.Length == 0)
            {
                continue;
            }

            _log.Information("Bringing {App} back: starting {Count} instances", app.Name, missing.Length);
            starting.Add(UnderOperationAsync(app, async a =>
            {
                try
                {
                    RestartFailed(a, await StartInstancesAsync(a, missing, countRestart: false).ConfigureAwait(false), "while the host brought it back");
                }
                catch (ClusterException e)
                {
                    _log.Error("{Message}", e.Message);
                }

                return 0;
            }));
        }

        foreach (AdoptedWorker stray in running.Where(w => !claimed.Contains(w)))
        {
            _log.Warning("Stopping worker {Pid} (instance {Instance} of {App}): the app no longer runs it", stray.Pid, stray.Instance, stray.App);
            stray.Primary.Send(new PrimaryCommand { Cmd = PrimaryCommand.Signal, Key = stray.Key, SignalName = "SIGKILL" });
        }

        _launcher.ReleaseIdle();
        await Task.WhenAll(starting).ConfigureAwait(false);
    }

    /// <summary>Takes back an app's workers that kept serving while there was no host.</summary>
    private void TakeBack(ManagedApp app, AdoptedWorker[] workers)
    {
        var (serving, superseded) = app.Adopt(workers);
        TimeSpan listenTimeout = Timeouts.Listen(app.Definition.Spec.ListenTimeoutMs, null, app.Definition.Spec.Environment);
        foreach (Worker worker in serving)
        {
            _ = app.WaitReadyAsync(worker, listenTimeout, CancellationToken.None);
            app.Supervise(worker);
        }

        var retirement = Retirement.Plain(Timeouts.Kill(null, app.Definition.Spec.KillTimeoutMs));
        foreach (Worker older in superseded)
        {
            _ = app.RetireAsync(older, retirement);
        }

        _log.Information("Took back {App}: {Count} workers kept serving while there was no host", app.Name, serving.Count);
    }

    /// <summary>
    /// Stops every app (their definitions stay saved, so the next host brings them back). Called by the
    /// shutdown request and again as the host exits: every call awaits the one stop, since a stopped app's
    /// operation lock is never released.
    /// </summary>
    public Task StopAllAsync()
    {
        lock (_apps)
        {
            return _stopAll ??= StopEveryAppAsync();
        }
    }

    private async Task StopEveryAppAsync()
    {
        ManagedApp[] apps;
        lock (_apps)
        {
            apps = _apps.Values.ToArray();
        }

        await Task.WhenAll(apps.Select(async app =>
        {
            await app.Operation.WaitAsync().ConfigureAwait(false);
            await RetireAllAsync(app).ConfigureAwait(false);
            app.Dispose();
        })).ConfigureAwait(false);
    }

    public ManagedApp Find(string name)
    {
        lock (_apps)
        {
            if (_apps.TryGetValue(name, out ManagedApp? app))
            {
                return app;
            }
        }

        throw new ClusterException(
            "AppNotFound",
            ErrorCategories.ObjectNotFound,
            $"There is no app named '{AppName.Printable(name)}'. Get-ClusterApp lists the apps there are.",
            AppName.Printable(name));
    }

    /// <summary>
    /// Forks the instances and waits until each is ready; those that are, are supervised from then on.
    /// Returns the ones that exited first, for the caller to report (and to supervise, or not).
    /// </summary>
    private static async Task<IReadOnlyList<Worker>> StartInstancesAsync(ManagedApp app, IEnumerable<int> instances, bool countRestart)
    {
        TimeSpan listenTimeout = Timeouts.Listen(app.Definition.Spec.ListenTimeoutMs, null, app.Definition.Spec.Environment);
        var started = new List<Worker>();
        foreach (int instance in instances)
        {
            Slot slot = app.SlotFor(instance);
            Worker worker = app.Fork(instance);
            app.Install(slot, worker, countRestart);
            started.Add(worker);
        }

        Readiness[] results = await Task.WhenAll(started.Select(w => app.WaitReadyAsync(w, listenTimeout, CancellationToken.None))).ConfigureAwait(false);
        var failed = new List<Worker>();
        for (int i = 0; i < started.Count; i++)
        {
            if (results[i] == Readiness.Exited)
            {
                failed.Add(started[i]);
            }
            else
            {
                app.Supervise(started[i]);
            }
        }

        return failed;
    }

    /// <summary>Hands instances that failed to start to the restart policy, and reports the first.</summary>
    private static void RestartFailed(ManagedApp app, IReadOnlyList<Worker> failed, string during)
    {
        foreach (Worker worker in failed)
        {
            app.Supervise(worker);
        }

        if (failed.Count > 0)
        {
            throw InstanceExited(app, failed[0], $"{during}; it will be restarted as its restart policy says");
        }
    }

    private static async Task RetireAllAsync(ManagedApp app)
    {
        var retirement = Retirement.Plain(Timeouts.Kill(null, app.Definition.Spec.KillTimeoutMs));
        await Task.WhenAll(app.LiveWorkers().Select(w => app.RetireAsync(w, retirement))).ConfigureAwait(false);
    }

    private static async Task<T> UnderOperationAsync<T>(ManagedApp app, Func<ManagedApp, Task<T>> operation)
    {
        await app.Operation.WaitAsync().ConfigureAwait(false);
        try
        {
            return await operation(app).ConfigureAwait(false);
        }
        finally
        {
            app.Operation.Release();
        }
    }

    private static ClusterException InstanceExited(ManagedApp app, Worker worker, string consequence) => new(
        "InstanceExited",
        ErrorCategories.InvalidResult,
        $"Instance {worker.Instance} of '{app.Name}' {app.DescribeExit(worker)} before it was ready, {consequence}. "
            + "Check the script and its arguments; Get-ClusterLog shows its output." + app.ErrorOutputSuffix(worker),
        app.Name);

    private ManagedApp Register(AppDefinition definition)
    {
        lock (_apps)
        {
            if (_apps.ContainsKey(definition.Name))
            {
                throw new ClusterException(
                    "NameInUse",
                    ErrorCategories.ResourceExists,
                    $"An app named '{definition.Name}' already exists. Choose another -Name, or Remove-ClusterApp {definition.Name} first.",
                    definition.Name);
            }

            var app = new ManagedApp(definition, _launcher, _paths, _time, _log);
            _apps[definition.Name] = app;
            return app;
        }
    }

    private void Unregister(ManagedApp app)
    {
        lock (_apps)
        {
            _apps.Remove(app.Name);
        }
    }

    private void Save()
    {
        SavedState state;
        lock (_apps)
        {
            state = new SavedState { Apps = _apps.Values.Select(a => a.Definition).ToList() };
        }

        _state.Save(state);
    }

}
