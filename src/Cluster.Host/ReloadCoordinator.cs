using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>What a reload waits for and how it retires old workers, resolved once per reload.</summary>
internal sealed record ReloadPlan(bool Graceful, TimeSpan ListenTimeout, Retirement Retirement, int Parallel)
{
    public static ReloadPlan For(AppDefinition app, ReloadSpec spec)
    {
        IReadOnlyDictionary<string, string> appEnvironment = app.Spec.Environment;
        TimeSpan listen = spec.ListenTimeoutMs is null && app.Spec.ListenTimeoutMs is { } startedWith
            ? Timeouts.Listen(startedWith, null, appEnvironment)
            : Timeouts.Listen(spec.ListenTimeoutMs, spec.SessionEnvironment, appEnvironment);
        var retirement = new Retirement(
            spec.Graceful,
            Timeouts.Kill(spec.KillTimeoutMs, app.Spec.KillTimeoutMs),
            Timeouts.Graceful(spec.GracefulTimeoutMs, spec.SessionEnvironment, appEnvironment));
        return new ReloadPlan(spec.Graceful, listen, retirement, Math.Max(1, spec.Parallel));
    }
}

/// <summary>
/// The rolling reload. For each instance, a few at a time (one by default):
///   1. fork a new worker with the same NODE_APP_INSTANCE;
///   2. wait until it is ready: it listens, or says 'online' / 'ready', or the listen timeout passes
///      (a timeout is not a failure: an app that never listens is normal);
///      if it exits first, stop here: the old worker keeps serving and no other instance is touched;
///   3. put it in place and retire the old worker: disconnect it (no new connections reach it), then
///      SIGINT / the 'shutdown' message, and a kill after the kill / graceful timeout.
/// Only one reload of an app runs at a time.
/// </summary>
internal sealed class ReloadCoordinator
{
    private readonly Func<ProgressInfo, Task> _report;

    public ReloadCoordinator(Func<ProgressInfo, Task> report) => _report = report;

    public async Task ReloadAsync(ManagedApp app, ReloadSpec spec, CancellationToken cancel)
    {
        if (!await EnterAsync(app, spec.Wait, cancel).ConfigureAwait(false))
        {
            throw new ClusterException(
                "ReloadInProgress",
                ErrorCategories.ResourceBusy,
                $"'{app.Name}' is already being reloaded. Wait for that reload to finish, or pass -Wait to queue this one behind it.",
                app.Name);
        }

        try
        {
            EnsureRunning(app);
            ReloadPlan plan = ReloadPlan.For(app.Definition, spec);
            string activity = $"{(plan.Graceful ? "Gracefully reloading" : "Reloading")} {app.Name}";
            app.Reloading = true;
            app.Log.Information("{Kind} reload of {App} begins: listen timeout {ListenTimeoutMs} ms, {Parallel} at a time", plan.Graceful ? "Graceful" : "Plain", app.Name, plan.ListenTimeout.TotalMilliseconds, plan.Parallel);

            IReadOnlyList<Slot> slots = Chosen(app, spec.Instances);
            int replaced = 0;
            // A caller that goes away stops the reload between instances, never halfway through one.
            foreach (Slot[] batch in slots.Chunk(plan.Parallel))
            {
                cancel.ThrowIfCancellationRequested();
                await Task.WhenAll(batch.Select(slot => ReplaceAsync(app, slot, plan, activity, replaced, slots.Count))).ConfigureAwait(false);
                replaced += batch.Length;
            }

            app.ReloadError = null;
            await _report(new ProgressInfo { Activity = activity, Status = $"{slots.Count} of {slots.Count} instances reloaded", Percent = 100, Completed = true }).ConfigureAwait(false);
            app.Log.Information("Reload of {App} is complete: {Count} instances replaced", app.Name, slots.Count);
        }
        finally
        {
            app.Reloading = false;
            app.Operation.Release();
        }
    }

    private async Task ReplaceAsync(ManagedApp app, Slot slot, ReloadPlan plan, string activity, int done, int total)
    {
        Task Step(string what) => _report(new ProgressInfo
        {
            Activity = activity,
            Status = $"Instance {slot.Instance} ({done + 1} of {total})",
            Operation = what,
            Percent = 100 * done / total,
        });

        // 1. Fork the new worker with the same NODE_APP_INSTANCE.
        await Step("starting a new worker").ConfigureAwait(false);
        Worker candidate = app.Fork(slot.Instance);

        // 2. Wait until it is ready. If it exits first, the reload stops and the old worker keeps serving.
        await Step($"waiting for the new worker (pid {candidate.Pid}) to be ready").ConfigureAwait(false);
        Readiness readiness = await app.WaitReadyAsync(candidate, plan.ListenTimeout, CancellationToken.None).ConfigureAwait(false);
        if (readiness == Readiness.Exited)
        {
            throw NewWorkerExited(app, candidate);
        }

        // 3. Put it in place, then retire the old worker.
        Worker? old = app.Install(slot, candidate, countRestart: true);
        app.Supervise(candidate);
        if (old is not null && !old.HasExited)
        {
            await Step($"retiring the old worker (pid {old.Pid})").ConfigureAwait(false);
            await app.RetireAsync(old, plan.Retirement).ConfigureAwait(false);
        }

        app.Log.Information("Reloaded instance {Instance} of {App}: pid {OldPid} -> {NewPid}", slot.Instance, app.Name, old?.Pid, candidate.Pid);
    }

    private static IReadOnlyList<Slot> Chosen(ManagedApp app, List<int>? instances)
    {
        IReadOnlyList<Slot> all = app.Slots;
        if (instances is null)
        {
            return all;
        }

        foreach (int instance in instances.Where(i => !all.Any(s => s.Instance == i)))
        {
            throw new ClusterException(
                "InstanceNotFound",
                ErrorCategories.ObjectNotFound,
                $"'{app.Name}' has no instance {instance}. Its instances are 0 to {all.Count - 1}.",
                instance.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        return all.Where(s => instances.Contains(s.Instance)).ToArray();
    }

    private static async Task<bool> EnterAsync(ManagedApp app, bool wait, CancellationToken cancel)
    {
        if (wait)
        {
            await app.Operation.WaitAsync(cancel).ConfigureAwait(false);
            return true;
        }

        return await app.Operation.WaitAsync(0, cancel).ConfigureAwait(false);
    }

    private static void EnsureRunning(ManagedApp app)
    {
        if (app.Definition.Stopped)
        {
            throw new ClusterException(
                "AppStopped",
                ErrorCategories.InvalidOperation,
                $"'{app.Name}' is stopped, so there is nothing to reload. Start it with Restart-ClusterApp -Name {app.Name}.",
                app.Name);
        }
    }

    private static ClusterException NewWorkerExited(ManagedApp app, Worker candidate)
    {
        string how = app.DescribeExit(candidate);
        string message = $"The new worker for instance {candidate.Instance} of '{app.Name}' {how} before it was ready. "
            + "The reload stopped there: the old worker keeps serving and no other instance was touched. "
            + "Fix the app and reload again; Get-ClusterLog shows its output." + app.ErrorOutputSuffix(candidate);
        app.ReloadError = message;
        app.Log.Error("Reload of {App} stopped: the new worker for instance {Instance} {How}", app.Name, candidate.Instance, how);
        return new ClusterException("NewInstanceExited", ErrorCategories.InvalidResult, message, app.Name);
    }
}
