using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Xunit;

namespace Cluster.Tests;

/// <summary>
/// Supervision and the reload algorithm, driven through Supervisor with scripted fake primaries and a fake
/// clock: what the host tells the primary, in what order, and what it reports.
/// </summary>
public sealed class SupervisorTests : IDisposable
{
    private readonly SupervisorHarness _h = new(processorCount: 3);

    public void Dispose() => _h.Dispose();

    [Fact]
    public async Task Start_forks_each_instance_and_reports_them_online()
    {
        AppInfo app = await _h.StartAsync("api", 2);

        Assert.Equal("online", app.Status);
        Assert.Equal(new[] { 0, 1 }, app.Instances.Select(i => i.Instance));
        Assert.All(app.Instances, i => Assert.Equal("online", i.Status));
        Assert.All(app.Instances, i => Assert.Equal(0, i.Restarts));
        PrimaryCommand fork = _h.Timeline.Forks(1).Single();
        Assert.Equal(_h.Script, fork.Exec);
        Assert.Equal(AppModes.Cluster, fork.Mode);
        Assert.Equal(_h.Paths.ErrorLog("api", 1), fork.Err);
        Assert.Contains(_h.Paths.DrainScript, fork.ExecArgv!);
        Assert.Single(_h.State.Load().State.Apps, a => a.Name == "api");
    }

    [Fact]
    public async Task Start_with_zero_instances_runs_one_per_CPU()
    {
        AppInfo app = await _h.StartAsync("api", 0);

        Assert.Equal(3, app.Instances.Count);
        Assert.Equal(3, _h.Timeline.ForkCount);
    }

    [Fact]
    public async Task Start_failure_leaves_no_app()
    {
        _h.Launcher.OnFork = c => c.Instance == 1 ? ForkScript.Exits(1, "Error: Cannot find module 'express'") : ForkScript.Ready;

        var error = await Assert.ThrowsAsync<ClusterException>(() => _h.StartAsync("api", 2));

        Assert.Equal("InstanceExited", error.Code);
        Assert.Equal(ErrorCategories.InvalidResult, error.Category);
        Assert.Contains("exited with code 1", error.Message);
        Assert.Contains("Cannot find module 'express'", error.Message);
        Assert.Empty(_h.List(null));
        Assert.Equal("AppNotFound", Assert.Throws<ClusterException>(() => _h.Supervisor.Find("api")).Code);
        Assert.DoesNotContain(_h.State.Load().State.Apps, a => a.Name == "api");

        // The instance that did start was retired, and the app's primary let go.
        int started = _h.KeyOf(0);
        Assert.Equal(PrimaryCommand.Disconnect, _h.Timeline.CommandsFor(started)[0].Cmd);
        _h.Timeline.First(e => e.IsEvent(PrimaryEvent.Exit, started), "exit of instance 0");
        Assert.True(_h.Launcher.Current.Disposed);

        // Nothing is left holding the name.
        _h.Launcher.OnFork = _ => ForkScript.Ready;
        Assert.Equal("online", (await _h.StartAsync("api", 2)).Status);
    }

    [Fact]
    public async Task Start_refuses_a_name_in_use_whatever_its_case()
    {
        await _h.StartAsync("api", 1);

        var error = await Assert.ThrowsAsync<ClusterException>(() => _h.StartAsync("API", 1));

        Assert.Equal("NameInUse", error.Code);
        Assert.Equal(ErrorCategories.ResourceExists, error.Category);
        Assert.Equal(1, _h.Timeline.ForkCount);
        Assert.Single(_h.List(null));
    }

    [Fact]
    public async Task Restart_starts_a_stopped_app_again_and_counts_the_restart()
    {
        await _h.StartAsync("api", 2);
        await _h.Supervisor.StopAsync("api");

        AppInfo app = await Wait.Bounded(_h.Supervisor.RestartAsync("api"));

        Assert.Equal("online", app.Status);
        Assert.All(app.Instances, i => Assert.Equal(1, i.Restarts));
        Assert.Equal(2, _h.Timeline.Forks(0).Count);
        Assert.Equal(2, _h.Timeline.Forks(1).Count);
        Assert.False(_h.State.Load().State.Apps.Single().Stopped);
    }

    [Fact]
    public async Task A_new_host_brings_back_running_apps_and_leaves_stopped_ones_stopped()
    {
        await _h.StartAsync("api", 2);
        await _h.StartAsync("web", 1);
        await _h.Supervisor.StopAsync("web");
        var nextLauncher = new FakePrimaryLauncher(_h.Time);
        Supervisor next = _h.NextHost(nextLauncher);
        try
        {
            await Wait.Bounded(next.ResurrectAsync());

            AppInfo api = (await next.ListAsync("api")).Single();
            AppInfo web = (await next.ListAsync("web")).Single();
            Assert.Equal("online", api.Status);
            Assert.Equal(new[] { 0, 1 }, api.Instances.Select(i => i.Instance));
            Assert.Equal(2, nextLauncher.Timeline.ForkCount);
            Assert.Equal(new[] { _h.Paths.OutLog("api", 0), _h.Paths.OutLog("api", 1) }, nextLauncher.Timeline.Commands.Select(c => c.Out));
            Assert.Equal("stopped", web.Status);
            Assert.Single(web.Instances);
        }
        finally
        {
            await next.StopAllAsync();
        }
    }

    [Fact]
    public async Task Reload_replaces_each_instance_keeping_NODE_APP_INSTANCE()
    {
        await _h.StartAsync("api", 2);
        int[] oldKeys = { _h.KeyOf(0), _h.KeyOf(1) };
        int[] oldPids = { _h.Instance("api", 0).Pid!.Value, _h.Instance("api", 1).Pid!.Value };
        _h.Launcher.OnFork = _ => ForkScript.Hold;

        Task<AppInfo> reload = _h.ReloadAsync("api");
        for (int instance = 0; instance < 2; instance++)
        {
            await Wait.UntilAsync(() => _h.Timeline.Forks(instance).Count == 2, $"instance {instance} was forked again");

            // Until its replacement is ready, the old worker is left alone, and the next instance is not touched.
            Assert.Empty(_h.Timeline.CommandsFor(oldKeys[instance]));
            Assert.Equal(instance + 3, _h.Timeline.ForkCount);
            Assert.Equal("reloading", _h.App("api").Status);
            _h.Launcher.Current.Listen(_h.KeyOf(instance));
        }

        AppInfo app = await Wait.Bounded(reload);

        Assert.Equal("online", app.Status);
        for (int instance = 0; instance < 2; instance++)
        {
            IReadOnlyList<PrimaryCommand> forks = _h.Timeline.Forks(instance);
            Assert.Equal(2, forks.Count);
            Assert.All(forks, f => Assert.Equal(instance, f.Instance));
            int newKey = forks[1].Key;
            int oldKey = oldKeys[instance];

            InstanceInfo info = app.Instances.Single(i => i.Instance == instance);
            Assert.Equal(1, info.Restarts);
            Assert.Equal("online", info.Status);
            Assert.Equal(_h.Launcher.Current.PidOf(newKey), info.Pid);
            Assert.NotEqual(oldPids[instance], info.Pid);

            // The old worker is disconnected first, then interrupted, and only once its replacement listens.
            Assert.Equal(new[] { "disconnect", "signal SIGINT" }, _h.Timeline.CommandsFor(oldKey).Select(c => c.Cmd + (c.SignalName is { } s ? " " + s : "")));
            Entry listening = _h.Timeline.First(e => e.IsEvent(PrimaryEvent.Listening, newKey), $"listening of key {newKey}");
            Entry disconnect = _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Disconnect, oldKey), $"disconnect of key {oldKey}");
            Assert.True(listening.Sequence < disconnect.Sequence, $"Key {oldKey} was disconnected before key {newKey} listened:{Environment.NewLine}{_h.Timeline}");
        }

        // One instance at a time: instance 1 is forked only after instance 0's old worker has exited.
        Entry oldZeroExit = _h.Timeline.First(e => e.IsEvent(PrimaryEvent.Exit, oldKeys[0]), "exit of the old instance 0");
        Entry newOneFork = _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Fork, _h.KeyOf(1)), "fork of the new instance 1");
        Assert.True(oldZeroExit.Sequence < newOneFork.Sequence, _h.Timeline.ToString());
        Assert.Contains(_h.Progress, p => p.Completed && p.Percent == 100);
    }

    [Fact]
    public async Task Reload_keeps_old_instance_when_new_one_exits_before_ready()
    {
        await _h.StartAsync("api", 2);
        int[] oldKeys = { _h.KeyOf(0), _h.KeyOf(1) };
        _h.Launcher.OnFork = _ => ForkScript.Exits(1, "SyntaxError: Unexpected token '}'");

        var error = await Assert.ThrowsAsync<ClusterException>(() => Wait.Bounded(_h.ReloadAsync("api")));

        Assert.Equal("NewInstanceExited", error.Code);
        Assert.Equal(ErrorCategories.InvalidResult, error.Category);
        Assert.Contains("exited with code 1", error.Message);
        Assert.Contains("SyntaxError: Unexpected token '}'", error.Message);
        Assert.Empty(_h.Timeline.CommandsFor(oldKeys[0]));
        Assert.Empty(_h.Timeline.CommandsFor(oldKeys[1]));
        Assert.Single(_h.Timeline.Forks(1));

        AppInfo failed = _h.App("api");
        Assert.Equal("reloadfailed", failed.Status);
        Assert.Equal(error.Message, failed.ReloadError);
        Assert.All(failed.Instances, i => Assert.Equal("online", i.Status));
        Assert.All(failed.Instances, i => Assert.Equal(0, i.Restarts));
        Assert.Equal(_h.Launcher.Current.PidOf(oldKeys[0]), failed.Instances[0].Pid);

        _h.Launcher.OnFork = _ => ForkScript.Ready;
        AppInfo fixedApp = await Wait.Bounded(_h.ReloadAsync("api"));

        Assert.Null(fixedApp.ReloadError);
        Assert.Equal("online", fixedApp.Status);
        Assert.All(fixedApp.Instances, i => Assert.Equal(1, i.Restarts));
    }

    [Fact]
    public async Task Graceful_reload_sends_shutdown_then_SIGINT_after_the_graceful_timeout_then_kills_after_the_kill_timeout()
    {
        await _h.StartAsync("api", 2);
        int[] oldKeys = { _h.KeyOf(0), _h.KeyOf(1) };
        _h.Launcher.ExitOnShutdownMessage = false;
        _h.Launcher.ExitOnInterrupt = false;
        var gracefulTimeout = TimeSpan.FromMilliseconds(2500);

        Task<AppInfo> reload = _h.ReloadAsync("api", new ReloadSpec { Graceful = true, GracefulTimeoutMs = (int)gracefulTimeout.TotalMilliseconds });
        await Wait.AdvanceUntilAsync(_h.Time, TimeSpan.FromMilliseconds(100), () => reload.IsCompleted, "the graceful reload finished");
        AppInfo app = await reload;

        Assert.Equal("online", app.Status);
        foreach (int oldKey in oldKeys)
        {
            IReadOnlyList<PrimaryCommand> toOld = _h.Timeline.CommandsFor(oldKey);
            // Windows has no SIGINT: the IPC steps, then the kill.
            string[] expected = OperatingSystem.IsWindows()
                ? new[] { "send shutdown", "disconnect", "signal SIGKILL" }
                : new[] { "send shutdown", "disconnect", "signal SIGINT", "signal SIGKILL" };
            Assert.Equal(expected, toOld.Select(c => c.Cmd + (c.Message is { } m ? " " + m : "") + (c.SignalName is { } s ? " " + s : "")));

            Entry shutdown = _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Send, oldKey), "the shutdown message");
            Entry firstSignal = _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Signal, oldKey), "the first signal");
            TimeSpan waited = firstSignal.At - shutdown.At;
            Assert.True(waited >= gracefulTimeout, $"Key {oldKey} was signalled {waited.TotalMilliseconds} ms (fake clock) after 'shutdown', before the graceful timeout.");
            Assert.True(waited < Timeouts.DefaultGracefulTimeout, $"Key {oldKey} was signalled {waited.TotalMilliseconds} ms (fake clock) after 'shutdown': the -GracefulTimeout given was not used.");
            if (!OperatingSystem.IsWindows())
            {
                Entry kill = _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Signal, oldKey) && e.Command!.SignalName == "SIGKILL", "the kill");
                TimeSpan afterInterrupt = kill.At - firstSignal.At;
                Assert.True(afterInterrupt >= Timeouts.DefaultKillTimeout, $"Key {oldKey} was killed {afterInterrupt.TotalMilliseconds} ms (fake clock) after SIGINT, before the kill timeout.");
            }
        }
    }

    [Fact]
    public async Task Reload_kills_an_old_worker_that_ignores_SIGINT_after_the_kill_timeout()
    {
        await _h.StartAsync("api", 1);
        int oldKey = _h.KeyOf(0);
        _h.Launcher.ExitOnInterrupt = false;
        var killTimeout = TimeSpan.FromMilliseconds(900);

        Task<AppInfo> reload = _h.ReloadAsync("api", new ReloadSpec { KillTimeoutMs = (int)killTimeout.TotalMilliseconds });
        await Wait.AdvanceUntilAsync(_h.Time, TimeSpan.FromMilliseconds(50), () => reload.IsCompleted, "the reload finished");
        await reload;

        Assert.Equal(new[] { "SIGINT", "SIGKILL" }, _h.Timeline.CommandsFor(oldKey).Where(c => c.Cmd == PrimaryCommand.Signal).Select(c => c.SignalName));
        TimeSpan waited = _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Signal, oldKey) && e.Command!.SignalName == "SIGKILL", "the kill").At
            - _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Signal, oldKey), "the interrupt").At;
        Assert.True(waited >= killTimeout, $"Killed {waited.TotalMilliseconds} ms (fake clock) after SIGINT, before the kill timeout.");
        Assert.True(waited < Timeouts.DefaultKillTimeout, $"Killed {waited.TotalMilliseconds} ms (fake clock) after SIGINT: the -KillTimeout given was not used.");
    }

    [Fact]
    public async Task Reload_goes_on_when_a_new_worker_never_listens_within_the_listen_timeout()
    {
        await _h.StartAsync("api", 2);
        int[] oldKeys = { _h.KeyOf(0), _h.KeyOf(1) };
        _h.Launcher.OnFork = _ => ForkScript.Hold;
        var listenTimeout = TimeSpan.FromMilliseconds(1000);

        Task<AppInfo> reload = _h.ReloadAsync("api", new ReloadSpec { ListenTimeoutMs = (int)listenTimeout.TotalMilliseconds });
        await Wait.AdvanceUntilAsync(_h.Time, TimeSpan.FromMilliseconds(50), () => reload.IsCompleted, "the reload finished");
        AppInfo app = await reload;

        Assert.Null(app.ReloadError);
        Assert.Equal("online", app.Status);
        Assert.All(app.Instances, i => Assert.Equal("online", i.Status));
        Assert.All(app.Instances, i => Assert.Equal(1, i.Restarts));
        for (int instance = 0; instance < 2; instance++)
        {
            int newKey = _h.KeyOf(instance);
            Assert.Equal(PrimaryCommand.Disconnect, _h.Timeline.CommandsFor(oldKeys[instance])[0].Cmd);
            TimeSpan waited = _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Disconnect, oldKeys[instance]), "the disconnect").At
                - _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Fork, newKey), "the fork").At;
            Assert.True(waited >= listenTimeout, $"Instance {instance}'s old worker was retired {waited.TotalMilliseconds} ms (fake clock) after its replacement was forked, before the listen timeout.");
        }
    }

    [Fact]
    public async Task Graceful_reload_waits_no_longer_than_the_old_worker_takes_to_exit()
    {
        await _h.StartAsync("api", 1);
        int oldKey = _h.KeyOf(0);

        AppInfo app = await Wait.Bounded(_h.ReloadAsync("api", new ReloadSpec { Graceful = true }));

        Assert.Equal(1, app.Instances.Single().Restarts);
        Assert.DoesNotContain(_h.Timeline.CommandsFor(oldKey), c => c.Cmd == PrimaryCommand.Signal);
        _h.Timeline.First(e => e.IsEvent(PrimaryEvent.Exit, oldKey), "exit of the old worker");
    }

    [Fact]
    public async Task Second_reload_is_refused_while_one_runs()
    {
        await _h.StartAsync("api", 2);
        _h.Launcher.OnFork = _ => ForkScript.Hold;
        Task<AppInfo> first = _h.ReloadAsync("api");
        await Wait.UntilAsync(() => _h.Timeline.Forks(0).Count == 2, "the first reload forked instance 0");
        int held = _h.KeyOf(0);

        var refused = await Assert.ThrowsAsync<ClusterException>(() => Wait.Bounded(_h.ReloadAsync("api")));

        Assert.Equal("ReloadInProgress", refused.Code);
        Assert.Equal(ErrorCategories.ResourceBusy, refused.Category);
        Assert.Equal(3, _h.Timeline.ForkCount);
        Assert.Equal("reloading", _h.App("api").Status);

        _h.Launcher.OnFork = _ => ForkScript.Ready;
        _h.Launcher.Current.Listen(held);
        await Wait.Bounded(first);
        Assert.Equal(4, _h.Timeline.ForkCount);
    }

    [Fact]
    public async Task Second_reload_with_Wait_runs_after_the_first()
    {
        await _h.StartAsync("api", 2);
        _h.Launcher.OnFork = _ => ForkScript.Hold;
        Task<AppInfo> first = _h.ReloadAsync("api");
        await Wait.UntilAsync(() => _h.Timeline.Forks(0).Count == 2, "the first reload forked instance 0");
        int held = _h.KeyOf(0);

        Task<AppInfo> second = _h.ReloadAsync("api", new ReloadSpec { Wait = true });
        Assert.False(second.IsCompleted);
        Assert.Equal(3, _h.Timeline.ForkCount);

        _h.Launcher.OnFork = _ => ForkScript.Ready;
        _h.Launcher.Current.Listen(held);
        await Wait.Bounded(first);
        AppInfo after = await Wait.Bounded(second);

        Assert.Equal(6, _h.Timeline.ForkCount);
        Assert.All(after.Instances, i => Assert.Equal(2, i.Restarts));
        // The second reload forked nothing until the first had retired its last old worker.
        int originalOne = _h.Timeline.Forks(1)[0].Key;
        Entry lastRetired = _h.Timeline.First(e => e.IsEvent(PrimaryEvent.Exit, originalOne), "exit of the original instance 1");
        Entry secondStarts = _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Fork, _h.Timeline.Forks(0)[2].Key), "the second reload's fork");
        Assert.True(lastRetired.Sequence < secondStarts.Sequence, _h.Timeline.ToString());
    }

    [Fact]
    public async Task Crashed_worker_is_restarted_with_same_instance()
    {
        await _h.StartAsync("api", 2);
        int crashed = _h.KeyOf(1);
        int untouched = _h.KeyOf(0);
        _h.Time.Advance(TimeSpan.FromMinutes(1));

        _h.Launcher.Current.Exit(crashed, code: 1);
        await Wait.AdvanceUntilAsync(_h.Time, TimeSpan.FromMilliseconds(50), () => _h.Timeline.Forks(1).Count == 2, "instance 1 was forked again");

        PrimaryCommand again = _h.Timeline.Forks(1)[1];
        Assert.Equal(1, again.Instance);
        await Wait.UntilAsync(() => _h.Instance("api", 1).Status == "online", "instance 1 was online again");
        InstanceInfo info = _h.Instance("api", 1);
        Assert.Equal(1, info.Restarts);
        Assert.Equal(_h.Launcher.Current.PidOf(again.Key), info.Pid);
        Assert.Equal(0, _h.Instance("api", 0).Restarts);
        Assert.Empty(_h.Timeline.CommandsFor(untouched));
        Assert.Single(_h.Timeline.Forks(0));
    }

    [Fact]
    public async Task Crash_loop_ends_errored_after_MaxRestarts()
    {
        StartSpec spec = _h.Spec("api", 1);
        spec.MinUptimeMs = 24 * 60 * 60 * 1000; // every run counts as unstable, however the fake clock moves
        await _h.Supervisor.StartAsync(spec);
        _h.Launcher.OnFork = _ => ForkScript.Exits(1, "Error: listen EADDRINUSE");

        _h.Launcher.Current.Exit(_h.KeyOf(0), code: 1);
        await Wait.AdvanceUntilAsync(_h.Time, RestartPolicy.MaxDelay, () => _h.Instance("api", 0).Status == "errored", "instance 0 was errored");

        Assert.Equal(RestartPolicy.DefaultMaxRestarts, _h.Timeline.Forks(0).Count);
        InstanceInfo info = _h.Instance("api", 0);
        Assert.Equal(RestartPolicy.DefaultMaxRestarts - 1, info.Restarts);
        Assert.Equal(1, info.LastExitCode);
        Assert.Null(info.Pid);
        Assert.Equal("errored", _h.App("api").Status);

        _h.Time.Advance(TimeSpan.FromMinutes(5));
        await Task.Delay(20);
        Assert.Equal(RestartPolicy.DefaultMaxRestarts, _h.Timeline.Forks(0).Count);
    }

    [Fact]
    public async Task Worker_that_exits_with_AutoRestart_off_stays_stopped()
    {
        StartSpec spec = _h.Spec("api", 1);
        spec.AutoRestart = false;
        await _h.Supervisor.StartAsync(spec);

        _h.Launcher.Current.Exit(_h.KeyOf(0), code: 0);
        _h.Time.Advance(TimeSpan.FromMinutes(5));
        await Task.Delay(20);

        Assert.Single(_h.Timeline.Forks(0));
        Assert.Equal("stopped", _h.Instance("api", 0).Status);
        Assert.Equal(0, _h.Instance("api", 0).LastExitCode);
    }

    [Fact]
    public async Task Stop_retires_every_worker()
    {
        await _h.StartAsync("api", 3);
        int[] keys = { _h.KeyOf(0), _h.KeyOf(1), _h.KeyOf(2) };

        AppInfo app = await Wait.Bounded(_h.Supervisor.StopAsync("api"));

        Assert.Equal("stopped", app.Status);
        Assert.All(app.Instances, i => Assert.Equal("stopped", i.Status));
        Assert.All(app.Instances, i => Assert.Null(i.Pid));
        foreach (int key in keys)
        {
            Assert.Equal(new[] { "disconnect", "signal" }, _h.Timeline.CommandsFor(key).Select(c => c.Cmd));
            _h.Timeline.First(e => e.IsEvent(PrimaryEvent.Exit, key), $"exit of key {key}");
        }

        Assert.True(_h.Launcher.Current.Disposed);
        Assert.True(_h.State.Load().State.Apps.Single().Stopped);

        // Stopped workers are not restarted, however long it stays stopped.
        _h.Time.Advance(TimeSpan.FromMinutes(5));
        await Task.Delay(20);
        Assert.Equal(3, _h.Timeline.ForkCount);
    }

    [Fact]
    public async Task Reload_of_a_stopped_app_is_refused()
    {
        await _h.StartAsync("api", 1);
        await _h.Supervisor.StopAsync("api");

        var error = await Assert.ThrowsAsync<ClusterException>(() => Wait.Bounded(_h.ReloadAsync("api")));

        Assert.Equal("AppStopped", error.Code);
        Assert.Equal(1, _h.Timeline.ForkCount);
    }

    [Fact]
    public async Task Fork_mode_reload_restarts_with_a_warning()
    {
        await _h.Supervisor.StartAsync(_h.Spec("worker", 1, AppModes.Fork));
        int oldKey = _h.KeyOf(0);

        AppInfo app = await Wait.Bounded(_h.ReloadAsync("worker"));

        Assert.Contains(_h.Warnings, w => w.Contains("fork mode", StringComparison.Ordinal));
        Assert.Equal(2, _h.Timeline.Forks(0).Count);
        Assert.DoesNotContain(_h.Timeline.CommandsFor(oldKey), c => c.Cmd == PrimaryCommand.Disconnect);
        Assert.Equal(1, app.Instances.Single().Restarts);
    }

    [Fact]
    public async Task Scale_up_and_down()
    {
        await _h.StartAsync("api", 2);

        AppInfo grown = await Wait.Bounded(_h.Supervisor.ScaleAsync("api", 4));

        Assert.Equal(new[] { 0, 1, 2, 3 }, grown.Instances.Select(i => i.Instance));
        Assert.All(grown.Instances, i => Assert.Equal("online", i.Status));
        Assert.Equal(new[] { 2, 3 }, _h.Timeline.Commands.Where(c => c.Cmd == PrimaryCommand.Fork).Skip(2).Select(c => c.Instance!.Value));
        int[] keys = Enumerable.Range(0, 4).Select(_h.KeyOf).ToArray();

        AppInfo shrunk = await Wait.Bounded(_h.Supervisor.ScaleAsync("api", 1));

        Assert.Equal(new[] { 0 }, shrunk.Instances.Select(i => i.Instance));
        Assert.Equal("online", shrunk.Status);
        Assert.Empty(_h.Timeline.CommandsFor(keys[0]));
        foreach (int key in keys.Skip(1))
        {
            Assert.Equal(new[] { "send", "disconnect" }, _h.Timeline.CommandsFor(key).Select(c => c.Cmd));
            Assert.Equal("shutdown", _h.Timeline.CommandsFor(key)[0].Message);
        }

        AppInfo perCpu = await Wait.Bounded(_h.Supervisor.ScaleAsync("api", 0));

        Assert.Equal(3, perCpu.Instances.Count);
        Assert.Equal(0, _h.State.Load().State.Apps.Single().Spec.Instances);
    }
}
