using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Xunit;

namespace Cluster.Tests;

/// <summary>
/// Timelines of the races that several threads changing one app used to lose: crash restarts against
/// reloads and stops, operations that hold an app, a lost primary, a caller that goes away mid-reload, and a
/// new host taking workers back. Each asserts what ran on the primary and what the app reported.
/// </summary>
public sealed class SupervisionTests : IDisposable
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(50);

    private readonly SupervisorHarness _h = new(processorCount: 2);

    public void Dispose() => _h.Dispose();

    [Fact]
    public async Task A_crash_during_a_reload_leaves_no_worker_that_no_instance_owns()
    {
        await _h.StartAsync("api", 2);
        _h.Time.Advance(TimeSpan.FromMinutes(1)); // the first run was stable, so the crash restarts at once
        int oldOne = _h.KeyOf(1);
        _h.Launcher.OnFork = c => c.Generation == 2 && c.Instance == 0 ? ForkScript.Hold : ForkScript.Ready;

        Task<AppInfo> reload = _h.ReloadAsync("api");
        await Wait.UntilAsync(() => _h.Timeline.Forks(0).Count == 2, "the reload forked instance 0");
        _h.Launcher.Current.Exit(oldOne, code: 1);
        await Wait.AdvanceUntilAsync(_h.Time, Step, () => _h.Timeline.Forks(1).Count == 2, "the crashed instance 1 was restarted");
        _h.Launcher.Current.Listen(_h.KeyOf(0));
        await Wait.AdvanceUntilAsync(_h.Time, Step, () => reload.IsCompleted, "the reload finished");
        AppInfo app = await reload;

        Assert.Equal("online", app.Status);
        Assert.All(app.Instances, i => Assert.Equal(2, i.Generation));
        await Wait.AdvanceUntilAsync(_h.Time, Step, () => _h.Launcher.Current.LiveKeys.Count == 2, "only the two serving workers run");
        int[] serving = app.Instances.Select(i => _h.Timeline.Forks(i.Instance).Single(f => _h.Launcher.Current.PidOf(f.Key) == i.Pid).Key).Order().ToArray();
        Assert.Equal(serving, _h.Launcher.Current.LiveKeys);
    }

    [Fact]
    public async Task A_restart_that_waits_out_its_delay_does_not_revive_an_app_stopped_meanwhile()
    {
        StartSpec spec = _h.Spec("api", 1);
        spec.MinUptimeMs = 24 * 60 * 60 * 1000; // every run is unstable, so the restart waits its back-off delay
        await _h.Supervisor.StartAsync(spec);
        _h.Launcher.Current.Exit(_h.KeyOf(0), code: 1);
        await Wait.UntilAsync(() => _h.Instance("api", 0).Status == "backoff", "instance 0 waited to restart");

        AppInfo stopped = await Wait.Bounded(_h.Supervisor.StopAsync("api"));
        _h.Time.Advance(RestartPolicy.MaxDelay);
        await Task.Delay(50);

        Assert.Equal("stopped", stopped.Status);
        Assert.Single(_h.Timeline.Forks(0));
        Assert.Equal("stopped", _h.App("api").Status);
        Assert.Empty(_h.Launcher.Current.LiveKeys);
    }

    [Fact]
    public async Task A_stop_during_a_scale_waits_its_turn_instead_of_being_refused()
    {
        await _h.StartAsync("api", 1);
        _h.Launcher.OnFork = _ => ForkScript.Hold;
        Task<AppInfo> scale = _h.Supervisor.ScaleAsync("api", 2);
        await Wait.UntilAsync(() => _h.Timeline.Forks(1).Count == 1, "the scale forked instance 1");

        Task<AppInfo> stop = _h.Supervisor.StopAsync("api");
        await Task.Delay(50);
        Assert.False(stop.IsCompleted, "The stop ran while the scale still held the app.");
        _h.Launcher.Current.Listen(_h.KeyOf(1));

        AppInfo scaled = await Wait.Bounded(scale);
        AppInfo stopped = await Wait.Bounded(stop);
        Assert.Equal(2, scaled.Instances.Count);
        Assert.Equal("stopped", stopped.Status);
        Assert.Empty(_h.Launcher.Current.LiveKeys);
    }

    [Fact]
    public async Task A_reload_behind_a_stop_is_told_the_app_is_stopped_not_that_a_reload_runs()
    {
        await _h.StartAsync("api", 1);
        _h.Launcher.ExitOnInterrupt = false;
        Task<AppInfo> stop = _h.Supervisor.StopAsync("api", new StopSpec { KillTimeoutMs = 1000 });
        await Wait.UntilAsync(() => _h.Timeline.CommandsFor(_h.KeyOf(0)).Any(c => c.Cmd == PrimaryCommand.Signal), "the stop signalled the worker");

        Task<AppInfo> reload = _h.ReloadAsync("api");
        await Wait.AdvanceUntilAsync(_h.Time, Step, () => stop.IsCompleted && reload.IsCompleted, "the stop and the reload finished");

        Assert.Equal("stopped", (await stop).Status);
        var error = await Assert.ThrowsAsync<ClusterException>(() => reload);
        Assert.Equal("AppStopped", error.Code);
    }

    [Fact]
    public async Task Reload_progress_names_both_pids()
    {
        await _h.StartAsync("api", 2);
        _h.Launcher.OnFork = _ => ForkScript.Hold;
        Task<AppInfo> reload = _h.ReloadAsync("api");
        for (int instance = 0; instance < 2; instance++)
        {
            int i = instance;
            await Wait.UntilAsync(() => _h.Timeline.Forks(i).Count == 2, $"the reload forked instance {i}");
            // The fork command is in the timeline a moment before the fake says 'forked': listening comes after that.
            await Wait.UntilAsync(() => _h.Timeline.Entries.Any(e => e.IsEvent(PrimaryEvent.Forked, _h.KeyOf(i))), $"the new worker for instance {i} was forked");
            _h.Launcher.Current.Listen(_h.KeyOf(i));
        }

        await Wait.Bounded(reload);
        string[] retiring;
        lock (_h.Progress)
        {
            retiring = _h.Progress.Select(p => p.Operation ?? "").Where(o => o.StartsWith("retiring", StringComparison.Ordinal)).ToArray();
        }

        Assert.Equal(2, retiring.Length);
        Assert.All(retiring, o => Assert.Matches(@"^retiring the old worker \(pid \d+\) for pid \d+$", o));
    }

    [Fact]
    public async Task A_lost_primary_is_never_reported_online_and_its_instances_come_back_as_themselves()
    {
        await _h.StartAsync("api", 2);
        FakePrimary lost = _h.Launcher.Current;
        int[] deadPids = { lost.PidOf(_h.KeyOf(0)), lost.PidOf(_h.KeyOf(1)) };
        _h.Launcher.OnFork = _ => ForkScript.Hold;

        lost.Kill();
        await Wait.UntilAsync(() => _h.Launcher.Launched.Count == 2 && _h.Timeline.ForkCount == 4, "both instances were forked on a new primary");
        AppInfo outage = _h.App("api");

        Assert.NotEqual("online", outage.Status);
        Assert.All(outage.Instances, i => Assert.NotEqual("online", i.Status));
        Assert.All(outage.Instances, i => Assert.DoesNotContain(i.Pid ?? 0, deadPids));

        FakePrimary next = _h.Launcher.Current;
        next.Listen(_h.KeyOf(0));
        next.Listen(_h.KeyOf(1));
        await Wait.UntilAsync(() => _h.App("api").Status == "online", "the app was online again");
        AppInfo back = _h.App("api");
        Assert.Equal(new[] { 0, 1 }, back.Instances.Select(i => i.Instance));
        Assert.All(back.Instances, i => Assert.Equal(1, i.Restarts));
        Assert.Equal(new[] { 0, 1 }, new[] { _h.Timeline.Forks(0)[^1].Instance!.Value, _h.Timeline.Forks(1)[^1].Instance!.Value });
        Assert.Equal(back.Instances.Select(i => i.Pid!.Value).Order(), next.LiveKeys.Select(next.PidOf).Order());
    }

    [Fact]
    public async Task A_primary_lost_mid_reload_stops_the_reload_as_partly_done_not_as_a_broken_new_version()
    {
        await _h.StartAsync("api", 2);
        _h.Launcher.OnFork = c => c.Generation == 2 ? ForkScript.Hold : ForkScript.Ready;
        Task<AppInfo> reload = _h.ReloadAsync("api");
        await Wait.UntilAsync(() => _h.Timeline.Forks(0).Count == 2, "the reload forked instance 0");

        _h.Launcher.Current.Kill();
        var error = await Assert.ThrowsAsync<ClusterException>(() => Wait.Bounded(reload));
        await Wait.UntilAsync(() => _h.App("api").Instances.All(i => i.Status == "online"), "both instances were online again");

        Assert.Equal("PrimaryLost", error.Code);
        Assert.Equal(ErrorCategories.OperationStopped, error.Category);
        AppInfo back = _h.App("api");
        Assert.Equal("partlyreloaded", back.Status);
        Assert.All(back.Instances, i => Assert.Equal(1, i.Generation));
        Assert.All(back.Instances, i => Assert.Equal(1, i.Restarts));
        Assert.NotNull(_h.State.Load().State.Apps.Single().PartialReload);
    }

    [Fact]
    public async Task Two_apps_that_share_a_primary_both_come_back_when_it_dies()
    {
        using var pooled = new SupervisorHarness(processorCount: 2, pooled: true);
        await pooled.StartAsync("api", 2);
        await pooled.StartAsync("web", 1);
        Assert.Single(pooled.Launcher.Launched);

        pooled.Launcher.Current.Kill();
        await Wait.UntilAsync(() => pooled.List(null).All(a => a.Status == "online" && a.Instances.All(i => i.Restarts == 1)), "both apps were online again");

        Assert.Equal(2, pooled.Launcher.Launched.Count);
        Assert.Equal(3, pooled.Launcher.Current.LiveKeys.Count);
        Assert.Equal(new[] { 0, 1 }, pooled.App("api").Instances.Select(i => i.Instance));
    }

    [Fact]
    public async Task A_caller_that_goes_away_mid_reload_leaves_the_instance_in_flight_replaced_and_the_app_partly_reloaded()
    {
        await _h.StartAsync("api", 2);
        int[] oldKeys = { _h.KeyOf(0), _h.KeyOf(1) };
        _h.Launcher.OnFork = _ => ForkScript.Hold;
        using var caller = new CancellationTokenSource();
        Task<AppInfo> reload = _h.Supervisor.ReloadAsync("api", new ReloadSpec(), _ => Task.CompletedTask, _ => Task.CompletedTask, caller.Token);
        await Wait.UntilAsync(() => _h.Timeline.Forks(0).Count == 2, "the reload forked instance 0");

        caller.Cancel();
        _h.Launcher.Current.Listen(_h.KeyOf(0));
        var error = await Assert.ThrowsAsync<ClusterException>(() => Wait.Bounded(reload));

        Assert.Equal("ReloadInterrupted", error.Code);
        Assert.Equal(ErrorCategories.OperationStopped, error.Category);
        AppInfo partly = _h.App("api");
        Assert.Equal("partlyreloaded", partly.Status);
        Assert.Equal(new[] { 2, 1 }, partly.Instances.Select(i => i.Generation));
        Assert.All(partly.Instances, i => Assert.Equal("online", i.Status));
        Assert.Contains(PrimaryCommand.Disconnect, _h.Timeline.CommandsFor(oldKeys[0]).Select(c => c.Cmd));
        Assert.Empty(_h.Timeline.CommandsFor(oldKeys[1]));
        Assert.Single(_h.Timeline.Forks(1));
        Assert.NotNull(_h.State.Load().State.Apps.Single().PartialReload);

        _h.Launcher.OnFork = _ => ForkScript.Ready;
        AppInfo finished = await Wait.Bounded(_h.ReloadAsync("api"));

        Assert.Equal("online", finished.Status);
        Assert.Null(finished.ReloadError);
        Assert.Single(finished.Instances.Select(i => i.Generation).Distinct());
        Assert.Null(_h.State.Load().State.Apps.Single().PartialReload);
    }

    [Fact]
    public async Task A_queued_reload_whose_caller_goes_away_is_dropped_as_stopped_not_failed_and_never_runs()
    {
        await _h.StartAsync("api", 1);
        _h.Launcher.OnFork = _ => ForkScript.Hold;
        Task<AppInfo> first = _h.ReloadAsync("api");
        await Wait.UntilAsync(() => _h.Timeline.Forks(0).Count == 2, "the first reload forked instance 0");
        using var caller = new CancellationTokenSource();
        Task<AppInfo> queued = _h.Supervisor.ReloadAsync("api", new ReloadSpec { Wait = true }, _ => Task.CompletedTask, _ => Task.CompletedTask, caller.Token);
        await Task.Delay(50);
        Assert.False(queued.IsCompleted, "The queued reload did not wait for the first one.");

        caller.Cancel();
        var error = await Assert.ThrowsAsync<ClusterException>(() => Wait.Bounded(queued));
        _h.Launcher.OnFork = _ => ForkScript.Ready;
        _h.Launcher.Current.Listen(_h.KeyOf(0));
        AppInfo reloaded = await Wait.Bounded(first);
        await Task.Delay(50);

        Assert.Equal("QueuedOperationDropped", error.Code);
        Assert.Equal(ErrorCategories.OperationStopped, error.Category);
        Assert.Equal("online", reloaded.Status);
        Assert.Equal(2, _h.Timeline.Forks(0).Count);
        Assert.Equal("online", _h.App("api").Status);
    }

    [Fact]
    public async Task A_worker_its_primary_never_reported_does_not_count_as_online()
    {
        StartSpec spec = _h.Spec("api", 1);
        spec.ListenTimeoutMs = 500;
        _h.Launcher.OnFork = _ => ForkScript.Silent;

        Task<AppInfo> start = _h.Supervisor.StartAsync(spec);
        await Wait.AdvanceUntilAsync(_h.Time, Step, () => start.IsCompleted, "the start gave up");

        var error = await Assert.ThrowsAsync<ClusterException>(() => start);
        Assert.Contains("never reported the process", error.Message);
        Assert.Empty(_h.List(null));
    }

    [Fact]
    public async Task A_fork_mode_graceful_reload_sends_shutdown_and_waits_the_graceful_timeout_before_SIGINT()
    {
        await _h.Supervisor.StartAsync(_h.Spec("worker", 1, AppModes.Fork));
        int oldKey = _h.KeyOf(0);
        _h.Launcher.ExitOnShutdownMessage = false;
        var gracefulTimeout = TimeSpan.FromSeconds(2);

        Task<AppInfo> reload = _h.ReloadAsync("worker", new ReloadSpec { Graceful = true, GracefulTimeoutMs = (int)gracefulTimeout.TotalMilliseconds });
        await Wait.AdvanceUntilAsync(_h.Time, Step, () => reload.IsCompleted, "the graceful restart finished");
        await reload;

        // It exits on SIGINT, which follows the graceful timeout (Windows has none: the kill does).
        string[] expected = OperatingSystem.IsWindows() ? new[] { "send shutdown", "signal SIGKILL" } : new[] { "send shutdown", "signal SIGINT" };
        Assert.Equal(expected, _h.Timeline.CommandsFor(oldKey).Select(c => c.Cmd + " " + (c.Message ?? c.SignalName)));
        TimeSpan waited = _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Signal, oldKey), "the signal").At
            - _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Send, oldKey), "the shutdown message").At;
        Assert.True(waited >= gracefulTimeout, $"Signalled {waited.TotalMilliseconds} ms (fake clock) after 'shutdown', before the graceful timeout.");
    }

    [Fact]
    public async Task A_new_host_keeps_the_serving_worker_when_the_reloads_new_one_was_not_ready()
    {
        using var serving = SleepingProcess.Start();
        using var unready = SleepingProcess.Start();
        await _h.StartAsync("api", 1);
        await _h.Supervisor.StopAllAsync();
        var next = new FakePrimaryLauncher(_h.Time);
        FakePrimary survivor = next.Start();
        survivor.Running(901, serving.Pid);
        survivor.Running(902, unready.Pid);
        DateTimeOffset started = _h.Time.GetUtcNow();
        next.Adoptable.Add(Adopted(survivor, 901, serving.Pid, ready: true, generation: 1, restarts: 3, started));
        next.Adoptable.Add(Adopted(survivor, 902, unready.Pid, ready: false, generation: 2, restarts: 4, started.AddSeconds(1)));

        Supervisor host = _h.NextHost(next);
        try
        {
            await Wait.Bounded(host.ResurrectAsync());
            InstanceInfo instance = (await host.ListAsync("api")).Single().Instances.Single();

            Assert.Equal(serving.Pid, instance.Pid);
            Assert.Equal(1, instance.Generation);
            Assert.Equal(3, instance.Restarts);
            Assert.Contains(PrimaryCommand.Disconnect, next.Timeline.CommandsFor(902).Select(c => c.Cmd));
            Assert.Empty(next.Timeline.CommandsFor(901));
            Assert.Equal(0, next.Timeline.ForkCount);
        }
        finally
        {
            await Wait.Bounded(host.StopAllAsync());
        }
    }

    [Fact]
    public async Task Restart_counts_and_generations_survive_a_new_host()
    {
        using var process = SleepingProcess.Start();
        await _h.StartAsync("api", 1);
        await _h.Supervisor.StopAllAsync();
        var next = new FakePrimaryLauncher(_h.Time);
        FakePrimary survivor = next.Start();
        survivor.Running(903, process.Pid);
        next.Adoptable.Add(Adopted(survivor, 903, process.Pid, ready: true, generation: 5, restarts: 7, _h.Time.GetUtcNow()));

        Supervisor host = _h.NextHost(next);
        try
        {
            await Wait.Bounded(host.ResurrectAsync());
            InstanceInfo instance = (await host.ListAsync("api")).Single().Instances.Single();

            Assert.Equal((process.Pid, 5, 7, "online"), (instance.Pid!.Value, instance.Generation, instance.Restarts, instance.Status));
        }
        finally
        {
            await Wait.Bounded(host.StopAllAsync());
        }
    }

    [Fact]
    public async Task A_stop_whose_state_cannot_be_saved_leaves_the_app_running_and_says_so()
    {
        await _h.StartAsync("api", 1);
        int pid = _h.Instance("api", 0).Pid!.Value;
        File.Delete(_h.Paths.StateFile);
        Directory.CreateDirectory(Path.Combine(_h.Paths.StateFile, "blocked")); // no file can be written in its place

        var error = await Assert.ThrowsAsync<ClusterException>(() => Wait.Bounded(_h.Supervisor.StopAsync("api")));

        Assert.Equal("StateNotSaved", error.Code);
        AppInfo app = _h.App("api");
        Assert.Equal("online", app.Status);
        Assert.Equal(pid, app.Instances.Single().Pid);
        Assert.Empty(_h.Timeline.CommandsFor(_h.KeyOf(0)));
        Directory.Delete(_h.Paths.StateFile, recursive: true);
    }

    /// <summary>A worker of "api" instance 0 that the last host left running, as its primary describes it.</summary>
    private AdoptedWorker Adopted(FakePrimary primary, int key, int pid, bool ready, int generation, int restarts, DateTimeOffset started) =>
        new(key, "api", 0, pid, ready, started, _h.State.Load().State.Apps.Single().NodePath, Scheduling.Default, primary)
        {
            Generation = generation,
            Restarts = restarts,
        };
}
