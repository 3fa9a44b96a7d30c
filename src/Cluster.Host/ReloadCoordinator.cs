using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>What a reload waits for and how it retires old workers, resolved once per reload.</summary>
internal sealed record ReloadPlan(bool Graceful, TimeSpan ListenTimeout, Retirement Retirement, int Parallel, HealthPlan Health)
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
        return new ReloadPlan(spec.Graceful, listen, retirement, Math.Max(1, spec.Parallel), HealthPlan.For(app.Spec, spec.StabilityWindowMs));
    }
}

/// <summary>
/// The rolling reload, on the app's loop. For each instance, a few at a time (one by default):
///   1. fork a new worker with the same NODE_APP_INSTANCE, in the reload's new generation;
///   2. wait until it is ready: it listens, or says 'online' / 'ready', or the listen timeout passes
///      (a timeout is not a failure: an app that never listens is normal); with -WaitReady only its
///      'ready' message counts, not a listen;
///      if it exits first, stop here: the old worker keeps serving and no other instance is touched;
///   3. if the app has a readiness check (HTTP on the new worker's own loopback port, or a command), it must
///      pass before the new worker takes shared traffic (the health preload holds its listen until then);
///      if it fails, the new worker is killed and the reload stops as in 2;
///   4. it must stay up for the stability window; if it exits within it, the reload stops as in 2;
///   5. put it in place and retire the old worker (ManagedApp.RetireAsync): disconnect it (no new
///      connections reach it; graceful: the 'shutdown' message first, and the graceful timeout), then SIGINT
///      and a kill after the kill timeout.
/// A caller that goes away (Ctrl+C, a closed session) stops the reload between instances, never halfway
/// through one: the app then says it is partly reloaded, and the next reload completes the job.
/// Only one reload of an app runs at a time.
/// </summary>
internal sealed class ReloadCoordinator
{
    private readonly Func<ProgressInfo, Task> _report;
    private readonly Action _save;

    public ReloadCoordinator(Func<ProgressInfo, Task> report, Action save)
    {
        _report = report;
        _save = save;
    }

    /// <summary>Runs on the app's loop.</summary>
    /// <param name="settings">New settings for the app, which its new instances start with; saved before the first is forked.</param>
    public Task ReloadAsync(ManagedApp app, ReloadSpec spec, CancellationToken cancel, StartSpec? settings = null) =>
        app.ExclusiveAsync(Operations.Reload, refuseWhileReloading: !spec.Wait, cancel, async () =>
        {
            EnsureRunning(app);
            StartSpec previous = app.Definition.Spec;
            if (settings is not null)
            {
                ChangeSettings(app, settings, previous);
            }

            ReloadPlan plan = ReloadPlan.For(app.Definition, spec);
            IReadOnlyList<Slot> slots = Chosen(app, spec.Instances);
            int generation = app.NextGeneration();
            string activity = $"{(plan.Graceful ? "Gracefully reloading" : "Reloading")} {app.Name}";
            app.Log.Information("{Kind} reload of {App} to generation {Generation} begins: listen timeout {ListenTimeoutMs} ms, stability window {StabilityWindowMs} ms, {Parallel} at a time", plan.Graceful ? "Graceful" : "Plain", app.Name, generation, plan.ListenTimeout.TotalMilliseconds, plan.Health.StabilityWindow.TotalMilliseconds, plan.Parallel);
            // Kept in the state file while the reload runs, so that a host killed meanwhile leaves an app that says so.
            Record(app, "A reload was under way when the host stopped. Reload again to finish it.");

            int replaced = 0;
            // Said when it happens (from the thread that cancels: it only logs), not when the instance in flight is done.
            using CancellationTokenRegistration callerGone = cancel.Register(() =>
                app.Log.Information("The caller of the reload of {App} went away: the reload stops once the instance in flight is replaced", app.Name));
            try
            {
                foreach (Slot[] batch in slots.Chunk(plan.Parallel))
                {
                    if (cancel.IsCancellationRequested)
                    {
                        throw Interrupted(app, slots, replaced);
                    }

                    await Task.WhenAll(batch.Select(slot => ReplaceAsync(app, slot, plan, generation, activity, replaced, slots.Count)));
                    replaced += batch.Length;
                }
            }
            catch (ClusterException e) when (e.Code is NewInstanceExitedCode or HealthCheckFailedCode)
            {
                if (settings is not null && replaced == 0)
                {
                    // Nothing runs the new settings: the app keeps the ones it serves with.
                    app.Definition.Spec = previous;
                    app.ReloadError = e.Message + " The app keeps its previous settings.";
                    Record(app, null);
                    throw new ClusterException(e.Code, e.Category, app.ReloadError, e.Target);
                }

                Record(app, null);
                throw;
            }

            app.ReloadError = null;
            Record(app, null);
            await _report(new ProgressInfo { Activity = activity, Status = $"{slots.Count} of {slots.Count} instances reloaded", Percent = 100, Completed = true });
            app.Log.Information("Reload of {App} is complete: {Count} instances replaced", app.Name, slots.Count);
            return 0;
        });

    private async Task ReplaceAsync(ManagedApp app, Slot slot, ReloadPlan plan, int generation, string activity, int done, int total)
    {
        Task Step(string what) => _report(new ProgressInfo
        {
            Activity = activity,
            Status = $"Instance {slot.Instance} ({done + 1} of {total})",
            Operation = what,
            Percent = 100 * done / total,
        });

        // 1. Fork the new worker with the same NODE_APP_INSTANCE.
        await Step("starting a new worker");
        Worker candidate = app.Fork(slot.Instance, generation, slot.Restarts + 1);

        // 2. Wait until it is ready. If it exits first, the reload stops and the old worker keeps serving.
        await Step("waiting for the new worker to be ready");
        Readiness readiness = await app.WaitReadyAsync(candidate, plan.ListenTimeout, CancellationToken.None);
        if (candidate.LostWithPrimary)
        {
            // Not the new version's fault: the old workers went with the primary too, and are being started again.
            throw PrimaryLost(app, candidate);
        }

        if (readiness is Readiness.Exited or Readiness.NotStarted)
        {
            throw NewWorkerExited(app, candidate, "before it was ready");
        }

        // 3. Its readiness check, on its own port: only once it passed does it take shared traffic.
        if (plan.Health.HasCheck)
        {
            await Step("checking the new worker");
            CheckResult? check = await app.CheckAsync(candidate, plan.Health);
            if (check is { Passed: false })
            {
                await app.EndFailedAsync(candidate, $"failed its readiness check: {check.Description}");
                throw CheckFailed(app, candidate, check);
            }
        }

        app.LetServe(candidate);

        // 4. It must stay up for the stability window, the old worker serving meanwhile.
        if (plan.Health.StabilityWindow > TimeSpan.Zero)
        {
            await Step("watching the new worker stay up");
        }

        if (!await app.StaysUpAsync(candidate, plan.Health.StabilityWindow))
        {
            throw candidate.LostWithPrimary ? PrimaryLost(app, candidate) : NewWorkerExited(app, candidate, $"within {plan.Health.StabilityWindow.TotalMilliseconds} ms of being ready (its stability window)");
        }

        // 5. Put it in place, then retire the old worker.
        slot.CountRestart(plan.Retirement.Graceful ? "gracefully reloaded" : "reloaded", app.Time.GetUtcNow());
        Worker? old = app.Install(slot, candidate, plan.ListenTimeout);
        app.Supervise(candidate);
        if (old is not null && !old.HasExited)
        {
            await Step($"retiring the old worker (pid {old.Pid}) for pid {candidate.Pid}");
            await app.RetireAsync(old, plan.Retirement);
        }

        app.Log.Information("Reloaded instance {Instance} of {App}: pid {OldPid} -> {NewPid}", slot.Instance, app.Name, old?.Pid, candidate.Pid);
    }

    /// <summary>Saves the new settings before anything runs with them; if they cannot be saved, nothing is changed.</summary>
    private void ChangeSettings(ManagedApp app, StartSpec settings, StartSpec previous)
    {
        app.Definition.Spec = settings;
        app.PublishDefinition();
        try
        {
            _save();
        }
        catch (ClusterException)
        {
            app.Definition.Spec = previous;
            app.PublishDefinition();
            throw;
        }
    }

    private void Record(ManagedApp app, string? partialReload)
    {
        app.Definition.PartialReload = partialReload;
        app.PublishDefinition();
        try
        {
            _save();
        }
        catch (ClusterException e)
        {
            // The reload itself goes on: only a later host would not know it was under way.
            app.Log.Warning("{Message}", e.Message);
        }
    }

    private ClusterException Interrupted(ManagedApp app, IReadOnlyList<Slot> slots, int replaced)
    {
        string generations = string.Join(", ", app.Slots.Select(s => $"{s.Instance}: {s.Generation}"));
        string message = $"The reload of '{app.Name}' stopped after {replaced} of {slots.Count} instances, because its caller went away. "
            + $"The app is partly reloaded (generation of each instance: {generations}). Reload it again to finish.";
        app.ReloadError = message;
        Record(app, message);
        app.Log.Information("Reload of {App} stopped after {Replaced} of {Count} instances: its caller went away", app.Name, replaced, slots.Count);
        return new ClusterException("ReloadInterrupted", ErrorCategories.OperationStopped, message, app.Name);
    }

    private ClusterException PrimaryLost(ManagedApp app, Worker candidate)
    {
        string message = $"The Node primary of '{app.Name}' exited during the reload, and every worker on it with it, the new one for instance {candidate.Instance} included. "
            + "The reload stopped there; the instances are started again on a new primary, each in the generation it ran. Reload again to finish.";
        app.ReloadError = message;
        Record(app, message);
        app.Log.Warning("Reload of {App} stopped: its Node primary exited while the new worker for instance {Instance} was starting", app.Name, candidate.Instance);
        return new ClusterException("PrimaryLost", ErrorCategories.OperationStopped, message, app.Name);
    }

    private static IReadOnlyList<Slot> Chosen(ManagedApp app, List<int>? instances)
    {
        IReadOnlyList<Slot> all = app.Slots.ToArray();
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

    private const string NewInstanceExitedCode = "NewInstanceExited";
    private const string HealthCheckFailedCode = "HealthCheckFailed";

    private static ClusterException NewWorkerExited(ManagedApp app, Worker candidate, string when)
    {
        string how = ManagedApp.DescribeExit(candidate);
        string message = $"The new worker for instance {candidate.Instance} of '{app.Name}' {how} {when}. "
            + "The reload stopped there: the old worker keeps serving and no other instance was touched. "
            + "Fix the app and reload again." + app.ErrorOutputSuffix(candidate);
        app.ReloadError = message;
        app.Log.Error("Reload of {App} stopped: the new worker for instance {Instance} {How} {When}", app.Name, candidate.Instance, how, when);
        return new ClusterException(NewInstanceExitedCode, ErrorCategories.InvalidResult, message, app.Name);
    }

    private static ClusterException CheckFailed(ManagedApp app, Worker candidate, CheckResult check)
    {
        string message = $"The new worker for instance {candidate.Instance} of '{app.Name}' (pid {candidate.Pid}) failed its readiness check: {check.Description}. "
            + "It never took shared traffic and was stopped. The reload stopped there: the old worker keeps serving and no other instance was touched. "
            + "Fix the app (or its -HealthCheckPath / -HealthCheckCommand) and reload again." + app.OutputSuffix(candidate);
        app.ReloadError = message;
        app.Log.Error("Reload of {App} stopped: the new worker for instance {Instance} failed its readiness check: {Check}", app.Name, candidate.Instance, check.Description);
        return new ClusterException(HealthCheckFailedCode, ErrorCategories.InvalidResult, message, app.Name);
    }
}
