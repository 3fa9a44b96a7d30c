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

    /// <summary>What is wrong with the state file, for Get-ClusterHost.</summary>
    public StateHealth StateHealth { get; } = new();

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
        var definition = new AppDefinition { Spec = spec, NodePath = NodeRuntime.Resolve(spec), Created = _time.GetUtcNow() };
        ManagedApp app = Register(definition);
        try
        {
            // Saved before anything runs: an app that cannot be saved is not started, since the next host would not know it.
            Save();
        }
        catch (ClusterException)
        {
            Unregister(app);
            await app.RunAsync(() => { app.Dispose(); return 0; }).ConfigureAwait(false);
            throw;
        }

        return await app.RunAsync(() => app.ExclusiveAsync(Operations.Start, false, CancellationToken.None, async () =>
        {
            int count = InstanceCount.Resolve(spec.Instances, _processorCount);
            _log.Information("Starting {App}: {Script} in {Mode} mode, {Count} instances", app.Name, spec.Script, spec.Mode, count);
            IReadOnlyList<Worker> failed = await app.StartInstancesAsync(Enumerable.Range(0, count), generation: 1, countRestart: false);
            if (failed.Count > 0)
            {
                ClusterException error = InstanceExited(app, failed[0], "so the app was not started");
                await app.RetireSlotsAsync(app.Slots.ToArray(), Retirement.Plain(Timeouts.Kill(spec)));
                Unregister(app);
                app.Dispose();
                TrySave();
                throw error;
            }

            return app.Snapshot(_metrics);
        })).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<AppInfo>> ListAsync(string? name)
    {
        if (name is not null)
        {
            ManagedApp one = Find(name);
            return new[] { await one.RunAsync(() => one.Snapshot(_metrics)).ConfigureAwait(false) };
        }

        ManagedApp[] apps;
        lock (_apps)
        {
            apps = _apps.Values.OrderBy(a => a.Name, StringComparer.OrdinalIgnoreCase).ToArray();
        }

        return await Task.WhenAll(apps.Select(a => a.RunAsync(() => a.Snapshot(_metrics)))).ConfigureAwait(false);
    }

    public Task<AppInfo> StopAsync(string name, StopSpec? how = null) => OnLoopAsync(Find(name), Operations.Stop, async app =>
    {
        ChangeDefinition(app, d => d.Stopped = true, d => d.Stopped = false);
        await app.RetireSlotsAsync(app.Slots.ToArray(), Retirement.For(app.Definition, how));
        app.ReleasePrimaryIfIdle();
        _log.Information("Stopped {App}", app.Name);
        return app.Snapshot(_metrics);
    });

    /// <summary>Stops every instance and starts it again (not zero-downtime: that is reload). Starts a stopped app.</summary>
    public Task<AppInfo> RestartAsync(string name, StopSpec? how = null) => OnLoopAsync(Find(name), Operations.Restart, app => RestartOnLoopAsync(app, Retirement.For(app.Definition, how)));

    private async Task<AppInfo> RestartOnLoopAsync(ManagedApp app, Retirement how)
    {
        bool wasStopped = app.Definition.Stopped;
        string? partial = app.Definition.PartialReload;
        ChangeDefinition(app, d => { d.Stopped = false; d.PartialReload = null; }, d => { d.Stopped = wasStopped; d.PartialReload = partial; });
        await app.RetireSlotsAsync(app.Slots.ToArray(), how);
        app.ReloadError = null;
        int[] instances = app.Slots.Select(s => s.Instance).ToArray();
        RestartFailed(app, await app.StartInstancesAsync(instances, app.NextGeneration(), countRestart: true), "while restarting");
        _log.Information("Restarted {App}", app.Name);
        return app.Snapshot(_metrics);
    }

    public async Task RemoveAsync(string name, StopSpec? how = null)
    {
        ManagedApp app = Find(name);
        await OnLoopAsync(app, Operations.Remove, async _ =>
        {
            Unregister(app);
            try
            {
                Save();
            }
            catch (ClusterException)
            {
                Reregister(app);
                throw;
            }

            app.Definition.Stopped = true;
            await app.RetireSlotsAsync(app.Slots.ToArray(), Retirement.For(app.Definition, how));
            app.Dispose();
            _log.Information("Removed {App}", app.Name);
            return 0;
        }).ConfigureAwait(false);
    }

    public async Task<AppInfo> ReloadAsync(string name, ReloadSpec spec, Func<ProgressInfo, Task> report, Func<string, Task> warn, CancellationToken cancel)
    {
        ManagedApp app = Find(name);
        if (!app.Saved.IsCluster)
        {
            await warn($"'{app.Name}' runs in fork mode, and only cluster mode reloads without downtime, so it was restarted instead. Start it with -Mode Cluster to reload it.").ConfigureAwait(false);
            // A graceful reload stays graceful: each process gets the 'shutdown' message and the graceful timeout.
            return await OnLoopAsync(app, Operations.Restart, a => RestartOnLoopAsync(a, ReloadPlan.For(a.Definition, spec).Retirement)).ConfigureAwait(false);
        }

        return await app.RunAsync(async () =>
        {
            await new ReloadCoordinator(report, Save).ReloadAsync(app, spec, cancel);
            return app.Snapshot(_metrics);
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// Gives an app the settings asked for, keeping it serving: a new instance count alone by a scale; anything
    /// else by a rolling reload whose new instances start with the new settings (a restart in fork mode); a
    /// stopped app's settings are only saved. What does not change is left alone: nothing is replaced. Settings that
    /// its Node primary fixes (the mode, the scheduling policy, the Node executable) are refused.
    /// </summary>
    /// <param name="plan">Only say what would change.</param>
    public async Task<(AppInfo App, IReadOnlyList<SettingChange> Changes)> UpdateAsync(
        string name, StartSpec wanted, ReloadSpec how, bool plan, Func<ProgressInfo, Task> report, Func<string, Task> warn, CancellationToken cancel)
    {
        ManagedApp app = Find(name);
        wanted.Name = app.Name;
        StartSpecValidator.Validate(wanted);
        AppDefinition current = app.Saved;
        IReadOnlyList<SettingChange> changes = SettingChanges.Between(current.Spec, wanted);
        UpdateEffect effect = UpdateEffects.Of(changes);
        if (plan || effect == UpdateEffect.None)
        {
            return (await app.RunAsync(() => app.Snapshot(_metrics)).ConfigureAwait(false), changes);
        }

        RefuseWhatAReloadCannotChange(current, wanted, changes);
        if (effect == UpdateEffect.Scale)
        {
            return (await ScaleAsync(name, wanted.Instances).ConfigureAwait(false), changes);
        }

        if (effect == UpdateEffect.SaveOnly)
        {
            // What the host alone does with them (when to restart, what to watch): no instance needs replacing.
            _log.Information("Updating {App} without replacing an instance: {Settings}", app.Name, string.Join(", ", changes.Select(c => c.Setting)));
            AppInfo kept = await OnLoopAsync(app, Operations.Update, a =>
            {
                StartSpec before = a.Definition.Spec;
                StartSpec staged = CopyOf(wanted);
                ChangeDefinition(a, d => d.Spec = staged, d => d.Spec = before);
                return Task.FromResult(a.Snapshot(_metrics));
            }).ConfigureAwait(false);
            return (kept, changes);
        }

        _log.Information("Updating {App}: {Settings}", app.Name, string.Join(", ", changes.Select(c => c.Setting)));
        StartSpec staged = CopyOf(wanted);
        staged.Instances = current.Spec.Instances;
        if (current.Stopped)
        {
            await OnLoopAsync(app, Operations.Update, a =>
            {
                StartSpec before = a.Definition.Spec;
                ChangeDefinition(a, d => d.Spec = staged, d => d.Spec = before);
                return Task.FromResult(0);
            }).ConfigureAwait(false);
        }
        else if (!current.IsCluster)
        {
            await warn($"'{app.Name}' runs in fork mode, and only cluster mode reloads without downtime, so it was restarted with its new settings.").ConfigureAwait(false);
            await OnLoopAsync(app, Operations.Restart, a =>
            {
                StartSpec before = a.Definition.Spec;
                ChangeDefinition(a, d => d.Spec = staged, d => d.Spec = before);
                return RestartOnLoopAsync(a, ReloadPlan.For(a.Definition, how).Retirement);
            }).ConfigureAwait(false);
        }
        else
        {
            await app.RunAsync(async () =>
            {
                await new ReloadCoordinator(report, Save).ReloadAsync(app, how, cancel, staged);
                return 0;
            }).ConfigureAwait(false);
        }

        AppInfo updated = wanted.Instances != staged.Instances
            ? await ScaleAsync(name, wanted.Instances).ConfigureAwait(false)
            : await app.RunAsync(() => app.Snapshot(_metrics)).ConfigureAwait(false);
        return (updated, changes);
    }

    /// <summary>Each app's settings as it was started or last updated; one app's when a name is given.</summary>
    public IReadOnlyList<StartSpec> Definitions(string? name)
    {
        if (name is not null)
        {
            return new[] { Find(name).Saved.Spec };
        }

        lock (_apps)
        {
            return _apps.Values.OrderBy(a => a.Name, StringComparer.OrdinalIgnoreCase).Select(a => a.Saved.Spec).ToArray();
        }
    }

    private static void RefuseWhatAReloadCannotChange(AppDefinition current, StartSpec wanted, IReadOnlyList<SettingChange> changes)
    {
        if (changes.FirstOrDefault(c => SettingChanges.NeedRestart.Contains(c.Setting)) is { } fixedSetting)
        {
            throw new ClusterException(
                "SettingNeedsRestart",
                ErrorCategories.InvalidOperation,
                $"'{current.Name}' cannot change its {fixedSetting.Setting} from {fixedSetting.From} to {fixedSetting.To} by a reload: "
                    + $"its instances would need a new Node primary. Remove-ClusterApp {current.Name}, then start it with the new settings (it is down in between), or keep its {fixedSetting.Setting}.",
                current.Name);
        }

        if (!current.Stopped && changes.FirstOrDefault(c => SettingChanges.NeedStopped.Contains(c.Setting)) is { } portSetting)
        {
            throw new ClusterException(
                "SettingNeedsRestart",
                ErrorCategories.InvalidOperation,
                $"'{current.Name}' cannot change its {portSetting.Setting} from {portSetting.From} to {portSetting.To} by a reload: "
                    + "its old and new instances would need its port in two ways at once (shared by the cluster, and accepted by the primary for sticky sessions). "
                    + $"Stop-ClusterApp {current.Name}, change it, then Restart-ClusterApp {current.Name} (it is down in between), or keep its {portSetting.Setting}.",
                current.Name);
        }

        string node = NodeRuntime.Resolve(wanted);
        if (!string.Equals(node, current.NodePath, StringComparison.Ordinal))
        {
            throw new ClusterException(
                "SettingNeedsRestart",
                ErrorCategories.InvalidOperation,
                $"With its new environment, '{current.Name}' would run on {node} instead of {current.NodePath}, which a reload cannot change: "
                    + $"its instances would need a new Node primary. Remove-ClusterApp {current.Name}, then start it with the new settings (it is down in between), or keep PATH as it was.",
                current.Name);
        }
    }

    private static StartSpec CopyOf(StartSpec spec) =>
        System.Text.Json.JsonSerializer.Deserialize(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(spec, HostJson.Default.StartSpec), HostJson.Default.StartSpec)!;

    /// <summary>Grows or shrinks a running app. Shrinking retires the highest NODE_APP_INSTANCE numbers gracefully.</summary>
    public Task<AppInfo> ScaleAsync(string name, int requested) => OnLoopAsync(Find(name), Operations.Scale, async app =>
    {
        StartSpecValidator.ValidateInstances(requested);
        int target = InstanceCount.Resolve(requested, _processorCount);
        Slot[] slots = app.Slots.ToArray();
        int before = app.Definition.Spec.Instances;
        ChangeDefinition(app, d => d.Spec.Instances = requested, d => d.Spec.Instances = before);
        if (target > slots.Length)
        {
            int[] added = Enumerable.Range(slots.Length, target - slots.Length).ToArray();
            if (!app.Definition.Stopped)
            {
                int generation = slots.Length == 0 ? 1 : slots.Max(s => s.Generation);
                RestartFailed(app, await app.StartInstancesAsync(added, generation, countRestart: false), "while scaling up");
            }
            else
            {
                Array.ForEach(added, i => app.SlotFor(i));
            }
        }
        else
        {
            var retired = new Retirement(true, Timeouts.Kill(app.Definition.Spec), Timeouts.Graceful(null, null, app.Definition.Spec.Environment));
            Slot[] removed = slots.Where(s => s.Instance >= target).ToArray();
            await app.RetireSlotsAsync(removed, retired);
            foreach (Slot slot in removed)
            {
                app.RemoveSlot(slot);
            }
        }

        _log.Information("Scaled {App} to {Count} instances", app.Name, target);
        return app.Snapshot(_metrics);
    });

    // Signals, messages and counters of the running instances: on the app's loop, beside any operation under way.

    /// <summary>Sends a signal to the app's running instances (the chosen ones, or all), each process alone.</summary>
    public Task<(AppInfo App, IReadOnlyList<int> Reached)> SignalAsync(string name, DeliverySpec spec)
    {
        string signal = Signals.Normalize(spec.Signal) ?? throw new ClusterException(
            "InvalidSignal",
            ErrorCategories.InvalidArgument,
            $"'{AppName.Printable(spec.Signal ?? "")}' is not a signal. Give one of {string.Join(", ", Signals.Names)}.",
            AppName.Printable(spec.Signal ?? ""));
        ManagedApp app = Find(name);
        return app.RunAsync(() =>
        {
            IReadOnlyList<int> reached = app.Deliver(spec.Instances, w => new PrimaryCommand { Cmd = PrimaryCommand.Signal, Key = w.Key, SignalName = signal, Group = false });
            _log.Information("Sent {Signal} to instances {Instances} of {App}", signal, string.Join(", ", reached), app.Name);
            return (app.Snapshot(_metrics), reached);
        });
    }

    /// <summary>Sends a message (JSON) to the app's running instances, which get it with process.on('message').</summary>
    public Task<(AppInfo App, IReadOnlyList<int> Reached)> MessageAsync(string name, DeliverySpec spec)
    {
        string json = spec.MessageJson ?? "null";
        try
        {
            using System.Text.Json.JsonDocument parsed = System.Text.Json.JsonDocument.Parse(json);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new ClusterException("InvalidMessage", ErrorCategories.InvalidArgument, $"The message is not valid JSON ({e.Message}).", null);
        }

        ManagedApp app = Find(name);
        return app.RunAsync(() =>
        {
            if (!app.Definition.IsCluster && !Launch.For(app.Definition.Spec).Node)
            {
                throw new ClusterException(
                    "NoMessageChannel",
                    ErrorCategories.InvalidOperation,
                    $"'{app.Name}' runs {AppName.Printable(app.Definition.Spec.Script)} with {Launch.InterpreterOf(app.Definition.Spec)}, which has no message channel: only Node scripts get messages. Send it a signal instead (Send-ClusterSignal).",
                    app.Name);
            }

            IReadOnlyList<int> reached = app.Deliver(spec.Instances, w => new PrimaryCommand { Cmd = PrimaryCommand.SendMessage, Key = w.Key, Data = json });
            _log.Information("Sent a message to instances {Instances} of {App}", string.Join(", ", reached), app.Name);
            return (app.Snapshot(_metrics), reached);
        });
    }

    /// <summary>A scheduled restart (-CronRestart) or one after a watched change (-Watch), on the app's loop: a zero-downtime reload in cluster mode, a restart in fork mode.</summary>
    private Task ScheduledRestartAsync(ManagedApp app) => app.Definition.IsCluster
        ? new ReloadCoordinator(_ => Task.CompletedTask, Save).ReloadAsync(app, new ReloadSpec(), CancellationToken.None)
        : app.ExclusiveAsync(Operations.Restart, false, CancellationToken.None, () => RestartOnLoopAsync(app, Retirement.For(app.Definition, null)));

    /// <summary>Zeroes the restart counts of every instance of the app.</summary>
    public Task<AppInfo> ResetAsync(string name)
    {
        ManagedApp app = Find(name);
        return app.RunAsync(() =>
        {
            app.ResetRestarts();
            return app.Snapshot(_metrics);
        });
    }

    /// <summary>
    /// The apps whose logs a request reads, with their instances: the apps named (every app when none is), and of
    /// those that are not running, the ones whose log files are still there (a start that failed, an app removed).
    /// Names with neither are the errors returned beside them.
    /// </summary>
    public async Task<(IReadOnlyList<LogSource> Sources, IReadOnlyList<ClusterException> Missing)> LogSourcesAsync(IReadOnlyList<string>? names)
    {
        ManagedApp[] all;
        lock (_apps)
        {
            all = _apps.Values.OrderBy(a => a.Name, StringComparer.OrdinalIgnoreCase).ToArray();
        }

        var sources = new List<LogSource>();
        var missing = new List<ClusterException>();
        foreach (string name in names ?? all.Select(a => a.Name).ToArray())
        {
            AppName.Validate(name);
            if (all.FirstOrDefault(a => string.Equals(a.Name, name, StringComparison.OrdinalIgnoreCase)) is { } app)
            {
                sources.Add(new LogSource(app.Name, await app.RunAsync(() => app.Slots.Select(s => s.Instance).ToArray()).ConfigureAwait(false)));
            }
            else if (_paths.LoggedInstances(name) is { Count: > 0 } logged)
            {
                sources.Add(new LogSource(name, logged));
            }
            else
            {
                missing.Add(NotFound(name));
            }
        }

        return (sources.DistinctBy(s => s.App, StringComparer.OrdinalIgnoreCase).ToList(), missing);
    }

    /// <summary>
    /// Every few seconds, replaces the instances whose memory has grown past their app's limit
    /// (-MaxMemoryRestart): a cluster instance by a reload of that instance alone, so no request is lost.
    /// </summary>
    /// <summary>Samples the CPU time of every app's workers together, once a second (see <see cref="ProcessMetrics"/>).</summary>
    public async Task SampleMetricsAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(ProcessMetrics.SampleInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                ManagedApp[] apps;
                lock (_apps)
                {
                    apps = _apps.Values.ToArray();
                }

                var pids = new HashSet<int>();
                foreach (ManagedApp app in apps)
                {
                    try
                    {
                        pids.UnionWith(await app.RunAsync(() => app.LivePids()).ConfigureAwait(false));
                    }
                    catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
                    {
                        // Removed meanwhile.
                    }
                }

                _metrics.SampleAll(pids);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

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
                    apps = _apps.Values.Where(a => a.Saved.Spec.MaxMemoryBytes is not null && !a.Saved.Stopped).ToArray();
                }

                foreach (ManagedApp app in apps)
                {
                    try
                    {
                        await app.RunAsync(() => ReplaceOverMemoryAsync(app)).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        // One app's trouble must not end the watch for every app.
                        _log.Warning("Could not replace instances of {App} over their memory limit: {Message}", app.Name, e.Message);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>On the app's loop: replaces its instances over the memory limit, unless an operation holds the app.</summary>
    private async Task<int> ReplaceOverMemoryAsync(ManagedApp app)
    {
        int[] over = InstancesOverMemoryLimit(app);
        if (over.Length == 0 || app.Operation is not null || app.Definition.Stopped)
        {
            return 0;
        }

        await ReplaceAsync(app, over);
        return over.Length;
    }

    /// <summary>
    /// On the app's loop: replaces instances that are unwell (over their memory limit, failing their liveness
    /// check): a cluster instance by a reload of it alone, so no request is lost; a fork-mode one by a restart.
    /// </summary>
    private async Task ReplaceAsync(ManagedApp app, IReadOnlyList<int> instances)
    {
        if (app.Definition.IsCluster)
        {
            var spec = new ReloadSpec { Instances = instances.ToList() };
            await new ReloadCoordinator(_ => Task.CompletedTask, Save).ReloadAsync(app, spec, CancellationToken.None);
            return;
        }

        await app.ExclusiveAsync(Operations.Replace, false, CancellationToken.None, async () =>
        {
            foreach (Slot slot in app.Slots.Where(s => instances.Contains(s.Instance)).ToArray())
            {
                await app.RetireSlotsAsync(new[] { slot }, Retirement.Plain(Timeouts.Kill(app.Definition.Spec)));
                await app.StartInstancesAsync(new[] { slot.Instance }, slot.Generation, countRestart: true);
            }

            return 0;
        });
    }

    private int[] InstancesOverMemoryLimit(ManagedApp app)
    {
        long limit = app.Definition.Spec.MaxMemoryBytes ?? long.MaxValue;
        var over = new List<int>();
        foreach (Slot slot in app.Slots)
        {
            if (slot is { State: SlotState.Online, Current.Pid: { } pid } && ProcessMetrics.MemoryOf(pid) is var memory && memory > limit)
            {
                _log.Warning("Instance {Instance} of {App} (pid {Pid}) uses {MemoryBytes} bytes, over its limit of {Limit}; replacing it", slot.Instance, app.Name, pid, memory, limit);
                over.Add(slot.Instance);
            }
        }

        return over.ToArray();
    }

    /// <summary>
    /// Registers the saved apps and brings back the ones that were running when the last host went away:
    /// workers still serving in a primary that outlived that host are taken back as they are; missing
    /// instances are started. Workers of apps the state file does not know (it was lost) are taken back too,
    /// from the definition their primary kept, so that a lost or corrupt state file never stops a running app;
    /// the definitions taken back are saved at once.
    /// </summary>
    public async Task ResurrectAsync()
    {
        StateLoad loaded;
        try
        {
            loaded = _state.Load();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The file was bad and could not even be moved aside: nothing of it is used.
            loaded = new StateLoad(new SavedState(), $"The state file {_paths.StateFile} could not be read or moved aside ({e.Message}).", false);
        }

        if (loaded.Problem is { } problem)
        {
            _log.Error("{Problem}", problem);
            StateHealth.Repaired(problem);
        }

        IReadOnlyList<AdoptedWorker> running = _launcher.AdoptRunning();
        foreach (AdoptedWorker worker in running)
        {
            ManagedApp.ReserveKeysThrough(worker.Key);
        }

        var definitions = new List<AppDefinition>();
        foreach (AppDefinition definition in loaded.State.Apps)
        {
            AdoptedWorker[] its = running.Where(w => string.Equals(w.App, definition.Name, StringComparison.OrdinalIgnoreCase)).ToArray();
            definitions.Add(loaded.Problem is not null && its.Length > 0 ? StillRunning(definition, its) : definition);
        }

        foreach (IGrouping<string, AdoptedWorker> unknown in running.Where(w => !definitions.Any(d => string.Equals(d.Name, w.App, StringComparison.OrdinalIgnoreCase))).GroupBy(w => w.App, StringComparer.OrdinalIgnoreCase))
        {
            if (KeptDefinition(unknown) is { } kept)
            {
                _log.Warning("The state file does not know {App}, which still runs: taking it back from the definition its Node primary kept", kept.Name);
                StateHealth.Repaired($"The state file did not know the app '{kept.Name}', which was running: it was taken back with the definition its Node primary kept.");
                definitions.Add(kept);
            }
        }

        var claimed = new HashSet<AdoptedWorker>();
        var takingBack = new List<(ManagedApp App, Task<Task> Retiring, int Count)>();
        foreach (AppDefinition definition in definitions)
        {
            ManagedApp app = Register(definition);
            int count = InstanceCount.Resolve(definition.Spec.Instances, _processorCount);
            AdoptedWorker[] mine = definition.Stopped ? Array.Empty<AdoptedWorker>() : running.Where(w => string.Equals(w.App, app.Name, StringComparison.OrdinalIgnoreCase)
                && w.NodePath == definition.NodePath && w.Scheduling == Scheduling.Of(definition.Spec) && w.Instance < count).ToArray();
            claimed.UnionWith(mine);
            takingBack.Add((app, app.RunAsync(() => TakeBack(app, mine, count)), count));
        }

        // Every app holds its primary before the primaries that no app took back are stopped.
        var bringing = new List<Task>();
        foreach (var (app, retiring, count) in takingBack)
        {
            Task unwanted = await retiring.ConfigureAwait(false);
            bringing.Add(unwanted);
            bringing.Add(OnLoopAsync(app, Operations.Adopt, a => StartMissingAsync(a)));
        }

        foreach (AdoptedWorker stray in running.Where(w => !claimed.Contains(w)))
        {
            _log.Warning("Stopping worker {Pid} (instance {Instance} of {App}): the app no longer runs it", stray.Pid, stray.Instance, stray.App);
            stray.Primary.Send(new PrimaryCommand { Cmd = PrimaryCommand.Signal, Key = stray.Key, SignalName = "SIGKILL" });
        }

        _launcher.ReleaseIdle();
        TrySave();
        await Task.WhenAll(bringing.Select(async t =>
        {
            try
            {
                await t.ConfigureAwait(false);
            }
            catch (ClusterException e)
            {
                _log.Error("{Message}", e.Message);
            }
        })).ConfigureAwait(false);
    }

    /// <summary>
    /// A definition from a state file that was not the newest (recovered from the backup) for an app whose workers
    /// still run: what the app's primary kept from its latest fork is newer, and the app runs, whatever the backup says.
    /// </summary>
    private AppDefinition StillRunning(AppDefinition saved, AdoptedWorker[] running)
    {
        if (KeptDefinition(running) is { } kept && string.Equals(kept.Name, saved.Name, StringComparison.OrdinalIgnoreCase))
        {
            _log.Warning("{App} still runs: taking it back with the definition its Node primary kept rather than the recovered one", saved.Name);
            return kept;
        }

        if (saved.Stopped)
        {
            _log.Warning("{App} still runs although the recovered state says it was stopped: keeping it running", saved.Name);
            saved.Stopped = false;
        }

        return saved;
    }

    /// <summary>The definition the newest of an app's running workers was forked with, when it is a usable one.</summary>
    private static AppDefinition? KeptDefinition(IEnumerable<AdoptedWorker> workers)
    {
        foreach (AdoptedWorker worker in workers.OrderByDescending(w => w.Key))
        {
            try
            {
                // Its script may have moved since: the workers run all the same, and a restart says what is missing.
                if (worker.Definition is { } json
                    && System.Text.Json.JsonSerializer.Deserialize(json, HostJson.Default.AppDefinition) is { } definition
                    && StateStore.ShapeProblem(definition) is null
                    && string.Equals(definition.Name, worker.App, StringComparison.OrdinalIgnoreCase))
                {
                    definition.Stopped = false;
                    return definition;
                }
            }
            catch (System.Text.Json.JsonException)
            {
            }
        }

        return null;
    }

    /// <summary>On the app's loop: its slots, and the workers that kept running; returns the retirement of those it does not keep.</summary>
    private Task TakeBack(ManagedApp app, AdoptedWorker[] running, int count)
    {
        for (int i = 0; i < count; i++)
        {
            app.SlotFor(i);
        }

        if (running.Length == 0)
        {
            return Task.CompletedTask;
        }

        Task retiring = app.Adopt(running);
        _log.Information("Took back {App}: {Count} workers kept serving while there was no host", app.Name, app.Slots.Count(s => s.Current is { HasExited: false }));
        return retiring;
    }

    /// <summary>On the app's loop: starts the instances of a running app that no worker serves.</summary>
    private async Task<int> StartMissingAsync(ManagedApp app)
    {
        int[] missing = app.Slots.Where(s => s.Current is null or { HasExited: true }).Select(s => s.Instance).ToArray();
        if (app.Definition.Stopped || missing.Length == 0)
        {
            return 0;
        }

        _log.Information("Bringing {App} back: starting {Count} instances", app.Name, missing.Length);
        int generation = Math.Max(1, app.Slots.Max(s => s.Generation));
        RestartFailed(app, await app.StartInstancesAsync(missing, generation, countRestart: false), "while the host brought it back");
        return 0;
    }

    /// <summary>
    /// Stops every app. Called by the shutdown request (Stop-ClusterHost), which also saves every app as stopped so
    /// that the next host, whatever starts it, leaves them stopped; and as the host exits for any other reason
    /// (a signal, the machine going down), which saves nothing, so the next host brings back what was running.
    /// Every call awaits the one stop.
    /// </summary>
    public Task StopAllAsync(bool keepStopped = false)
    {
        lock (_apps)
        {
            return _stopAll ??= StopEveryAppAsync(keepStopped);
        }
    }

    private async Task StopEveryAppAsync(bool keepStopped)
    {
        ManagedApp[] apps;
        lock (_apps)
        {
            apps = _apps.Values.ToArray();
        }

        await Task.WhenAll(apps.Select(app => app.RunAsync(() => app.ExclusiveAsync(Operations.Stop, false, CancellationToken.None, async () =>
        {
            if (keepStopped && !app.Definition.Stopped)
            {
                app.Definition.Stopped = true;
                app.PublishDefinition();
            }

            await app.RetireSlotsAsync(app.Slots.ToArray(), Retirement.Plain(Timeouts.Kill(app.Definition.Spec)));
            app.Dispose();
            return 0;
        })))).ConfigureAwait(false);
        if (keepStopped)
        {
            TrySave();
        }
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

        throw NotFound(name);
    }

    private static ClusterException NotFound(string name) => new(
        "AppNotFound",
        ErrorCategories.ObjectNotFound,
        $"There is no app named '{AppName.Printable(name)}'. Get-ClusterApp lists the apps there are.",
        AppName.Printable(name));

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

    /// <summary>Runs an operation on the app's loop, after any other operation on it.</summary>
    private static Task<T> OnLoopAsync<T>(ManagedApp app, string operation, Func<ManagedApp, Task<T>> work) =>
        app.RunAsync(() => app.ExclusiveAsync(operation, false, CancellationToken.None, () => work(app)));

    /// <summary>
    /// Changes the app's definition and saves it before anything is done about it: when the state file cannot be
    /// written, the change is undone and the operation refused, so the app goes on as it was and says so.
    /// </summary>
    private void ChangeDefinition(ManagedApp app, Action<AppDefinition> change, Action<AppDefinition> undo)
    {
        change(app.Definition);
        app.PublishDefinition();
        try
        {
            Save();
        }
        catch (ClusterException)
        {
            undo(app.Definition);
            app.PublishDefinition();
            throw;
        }
    }

    private static ClusterException InstanceExited(ManagedApp app, Worker worker, string consequence) => new(
        "InstanceExited",
        ErrorCategories.InvalidResult,
        $"Instance {worker.Instance} of '{app.Name}' {ManagedApp.DescribeExit(worker)} before it was ready, {consequence}. "
            + "Check the script and its arguments." + app.ErrorOutputSuffix(worker),
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
            app.ReplaceInstances = instances => ReplaceAsync(app, instances);
            _apps[definition.Name] = app;
            app.ScheduleCron(() => ScheduledRestartAsync(app));
            app.ScheduleWatch(() => ScheduledRestartAsync(app));
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

    private void Reregister(ManagedApp app)
    {
        lock (_apps)
        {
            _apps[app.Name] = app;
        }
    }

    /// <summary>Writes every app's published definition to the state file; a failure to write is the caller's error.</summary>
    private void Save()
    {
        SavedState state;
        lock (_apps)
        {
            state = new SavedState { Apps = _apps.Values.Select(a => a.Saved).ToList() };
        }

        try
        {
            _state.Save(state);
            StateHealth.WriteSucceeded();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Error("Could not write the state file {Path}: {Error}", _paths.StateFile, e.Message);
            StateHealth.WriteFailed($"The last change could not be written to the state file {_paths.StateFile} ({e.Message}).");
            throw new ClusterException(
                "StateNotSaved",
                ErrorCategories.WriteError,
                $"The host could not write its state file {_paths.StateFile} ({e.Message}), so nothing was changed. Free some space or fix its permissions, then try again.",
                _paths.StateFile);
        }
    }

    private void TrySave()
    {
        try
        {
            Save();
        }
        catch (ClusterException)
        {
            // Logged by Save; the apps themselves are as they say.
        }
    }
}
