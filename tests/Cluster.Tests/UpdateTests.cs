extern alias client;

using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Xunit;
using AppStatus = client::Cluster.AppStatus;
using ReportedChange = client::Cluster.Protocol.SettingChange;
using SyncAction = client::Cluster.SyncAction;
using SyncClusterAppCommand = client::Cluster.Commands.SyncClusterAppCommand;

namespace Cluster.Tests;

/// <summary>
/// Changing a running app's settings: by a rolling reload, a scale, only saving what the host alone acts on, or not at
/// all when nothing differs; and what Sync-ClusterApp says it did.
/// </summary>
public sealed class UpdateTests : IDisposable
{
    private readonly SupervisorHarness _h = new(processorCount: 2);

    public void Dispose() => _h.Dispose();

    private Task<(AppInfo App, IReadOnlyList<SettingChange> Changes)> UpdateAsync(StartSpec wanted, bool plan = false) =>
        Wait.Bounded(_h.Supervisor.UpdateAsync(wanted.Name, wanted, new ReloadSpec(), plan, _ => Task.CompletedTask, _ => Task.CompletedTask, CancellationToken.None));

    [Fact]
    public async Task The_same_settings_change_nothing()
    {
        await _h.StartAsync("api", 2);

        var (app, changes) = await UpdateAsync(_h.Spec("api", 2));

        Assert.Empty(changes);
        Assert.Equal(2, _h.Timeline.ForkCount);
        Assert.Equal("online", app.Status);
    }

    [Fact]
    public async Task A_new_environment_is_rolled_out_by_a_reload_and_saved_and_its_values_are_never_shown()
    {
        await _h.StartAsync("api", 2);
        StartSpec wanted = _h.Spec("api", 2);
        wanted.Environment["API_TOKEN"] = "s3cret-value";

        var (app, changes) = await UpdateAsync(wanted);

        SettingChange change = Assert.Single(changes);
        Assert.Equal(("Environment.API_TOKEN", "(not set)", "(set)"), (change.Setting, change.From, change.To));
        Assert.All(changes, c => Assert.DoesNotContain("s3cret", c.From + c.To, StringComparison.Ordinal));
        Assert.Equal("online", app.Status);
        Assert.All(app.Instances, i => Assert.Equal(2, i.Generation));
        Assert.Equal("s3cret-value", _h.Timeline.Forks(0)[^1].Env!["API_TOKEN"]);
        Assert.Equal("s3cret-value", _h.Timeline.Forks(1)[^1].Env!["API_TOKEN"]);
        Assert.Equal("s3cret-value", _h.State.Load().State.Apps.Single().Spec.Environment["API_TOKEN"]);
    }

    [Fact]
    public async Task A_new_instance_count_alone_scales_without_replacing_anything()
    {
        await _h.StartAsync("api", 1);
        int first = _h.KeyOf(0);

        var (app, changes) = await UpdateAsync(_h.Spec("api", 3));

        Assert.Equal("Instances", Assert.Single(changes).Setting);
        Assert.Equal(3, app.Instances.Count);
        Assert.Empty(_h.Timeline.CommandsFor(first));
        Assert.Single(_h.Timeline.Forks(0));
    }

    [Fact]
    public async Task New_arguments_and_more_instances_reload_then_scale()
    {
        await _h.StartAsync("api", 1);
        StartSpec wanted = _h.Spec("api", 2);
        wanted.Arguments = new List<string> { "--port", "3001" };

        var (app, changes) = await UpdateAsync(wanted);

        Assert.Equal(new[] { "Instances", "Arguments" }, changes.Select(c => c.Setting));
        Assert.Equal(2, app.Instances.Count);
        Assert.All(new[] { _h.Timeline.Forks(0)[^1], _h.Timeline.Forks(1)[^1] }, f => Assert.Equal(new[] { "--port", "3001" }, f.Args!));
        Assert.Equal(2, _h.Timeline.Forks(0).Count);
    }

    [Fact]
    public async Task Settings_only_the_host_acts_on_are_saved_without_replacing_an_instance_and_a_sync_calls_that_an_update()
    {
        await _h.StartAsync("api", 2);
        StartSpec wanted = _h.Spec("api", 2);
        (wanted.CronRestart, wanted.StopExitCodes) = ("0 3 * * *", new List<int> { 3 });

        var (app, changes) = await UpdateAsync(wanted);

        Assert.Equal(new[] { "StopExitCodes", "CronRestart" }, changes.Select(c => c.Setting));
        Assert.Equal(2, _h.Timeline.ForkCount);
        Assert.All(app.Instances, i => Assert.Equal(1, i.Generation));
        Assert.Equal("0 3 * * *", _h.State.Load().State.Apps.Single().Spec.CronRestart);
        SyncAction action = SyncClusterAppCommand.ActionFor(AppStatus.Online, Reported(changes));
        Assert.Equal(SyncAction.Updated, action);
        Assert.DoesNotContain("Reload", SyncClusterAppCommand.Verb(action), StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData(AppStatus.Online, new string[0], SyncAction.Unchanged)]
    [InlineData(AppStatus.Online, new[] { "Instances" }, SyncAction.Scaled)]
    [InlineData(AppStatus.Online, new[] { "CronRestart", "Watch", "WatchIgnore", "WatchDelay", "StopExitCodes" }, SyncAction.Updated)]
    [InlineData(AppStatus.ReloadFailed, new[] { "CronRestart" }, SyncAction.Updated)]
    [InlineData(AppStatus.Online, new[] { "CronRestart", "Environment.PORT" }, SyncAction.Reloaded)]
    [InlineData(AppStatus.Online, new[] { "Instances", "CronRestart" }, SyncAction.Reloaded)]
    [InlineData(AppStatus.Online, new[] { "Interpreter" }, SyncAction.Reloaded)]
    [InlineData(AppStatus.Stopped, new[] { "CronRestart" }, SyncAction.Restarted)]
    [InlineData(AppStatus.Errored, new string[0], SyncAction.Restarted)]
    public void A_sync_names_what_the_host_does_with_the_settings_that_differ(AppStatus status, string[] settings, SyncAction expected)
    {
        ReportedChange[] changes = settings.Select(s => new ReportedChange { Setting = s, From = "a", To = "b" }).ToArray();

        Assert.Equal(expected, SyncClusterAppCommand.ActionFor(status, changes));
    }

    [Theory]
    [InlineData(SyncAction.Scaled)]
    [InlineData(SyncAction.Updated)]
    [InlineData(SyncAction.Restarted)]
    public void Only_a_reload_is_planned_as_a_reload(SyncAction action) =>
        Assert.DoesNotContain("Reload", SyncClusterAppCommand.Verb(action), StringComparison.OrdinalIgnoreCase);

    [Fact]
    public async Task A_plan_says_what_would_change_and_changes_nothing()
    {
        await _h.StartAsync("api", 1);
        StartSpec wanted = _h.Spec("api", 1);
        wanted.KillTimeoutMs = 5000;

        var (_, changes) = await UpdateAsync(wanted, plan: true);

        Assert.Equal(("KillTimeout", "(default)", "5000"), (changes.Single().Setting, changes.Single().From, changes.Single().To));
        Assert.Equal(1, _h.Timeline.ForkCount);
        Assert.Null(_h.State.Load().State.Apps.Single().Spec.KillTimeoutMs);
    }

    [Fact]
    public async Task Health_settings_are_planned_by_their_parameter_names()
    {
        await _h.StartAsync("api", 1);
        StartSpec wanted = _h.Spec("api", 1);
        (wanted.WaitReady, wanted.HealthCheckPath, wanted.LivenessIntervalMs, wanted.StabilityWindowMs) = (true, "/health", 2000, 500);

        var (_, changes) = await UpdateAsync(wanted, plan: true);

        Assert.Equal(
            new[] { ("WaitReady", "False", "True"), ("HealthCheckPath", "(default)", "/health"), ("LivenessInterval", "(default)", "2000"), ("StabilityWindow", "0", "500") },
            changes.Select(c => (c.Setting, c.From!, c.To!)));
        Assert.Equal(1, _h.Timeline.ForkCount);
    }

    [Fact]
    public async Task A_mode_change_is_refused_and_nothing_runs()
    {
        await _h.StartAsync("api", 1);

        var error = await Assert.ThrowsAsync<ClusterException>(() => UpdateAsync(_h.Spec("api", 1, AppModes.Fork)));

        Assert.Equal("SettingNeedsRestart", error.Code);
        Assert.Contains("Mode", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, _h.Timeline.ForkCount);
        Assert.Equal(AppModes.Cluster, _h.State.Load().State.Apps.Single().Spec.Mode);
    }

    [Fact]
    public async Task Turning_sticky_sessions_on_for_a_running_app_is_refused_with_the_reason_and_nothing_runs()
    {
        await _h.StartAsync("api", 2);
        StartSpec wanted = _h.Spec("api", 2);
        wanted.Sticky = true;

        var error = await Assert.ThrowsAsync<ClusterException>(() => UpdateAsync(wanted));

        Assert.Equal("SettingNeedsRestart", error.Code);
        Assert.Contains("Sticky from False to True", error.Message, StringComparison.Ordinal);
        Assert.Contains("its port in two ways at once", error.Message, StringComparison.Ordinal);
        Assert.Equal(2, _h.Timeline.ForkCount);
        Assert.False(_h.State.Load().State.Apps.Single().Spec.Sticky);
    }

    [Fact]
    public async Task A_stopped_app_becomes_sticky_and_its_instances_then_load_the_sticky_preload_before_the_health_one()
    {
        await _h.StartAsync("api", 1);
        await Wait.Bounded(_h.Supervisor.StopAsync("api"));
        StartSpec wanted = _h.Spec("api", 1);
        (wanted.Sticky, wanted.HealthCheckPath) = (true, "/health");

        var (_, changes) = await UpdateAsync(wanted);
        // The restart then waits for a health check no fake instance answers: only its fork is looked at.
        _ = _h.Supervisor.RestartAsync("api");
        await Wait.UntilAsync(() => _h.Timeline.Forks(0).Count == 2, "the stopped app was forked again");

        Assert.Equal(new[] { ("HealthCheckPath", "(default)", "/health"), ("Sticky", "False", "True") }, changes.Select(c => (c.Setting, c.From!, c.To!)));
        string[] preloads = _h.Timeline.Forks(0)[^1].ExecArgv!.Where(a => a.EndsWith(".js", StringComparison.Ordinal)).Select(Path.GetFileName).ToArray()!;
        Assert.Equal(new[] { "drain.js", "sticky.js", "health.js" }, preloads);
    }

    [Fact]
    public async Task Settings_whose_first_new_instance_fails_are_given_up_and_the_old_ones_keep_serving()
    {
        await _h.StartAsync("api", 2);
        int[] old = { _h.KeyOf(0), _h.KeyOf(1) };
        StartSpec wanted = _h.Spec("api", 2);
        wanted.NodeArguments = new List<string> { "--no-such-flag" };
        _h.Launcher.OnFork = _ => ForkScript.Exits(9, "node: bad option: --no-such-flag");

        var error = await Assert.ThrowsAsync<ClusterException>(() => UpdateAsync(wanted));

        Assert.Equal("NewInstanceExited", error.Code);
        Assert.Contains("keeps its previous settings", error.Message, StringComparison.Ordinal);
        Assert.Empty(_h.State.Load().State.Apps.Single().Spec.NodeArguments);
        Assert.Empty(_h.Timeline.CommandsFor(old[0]));
        Assert.Empty(_h.Timeline.CommandsFor(old[1]));

        // The next crash restart runs the settings the app serves with.
        _h.Launcher.OnFork = _ => ForkScript.Ready;
        _h.Time.Advance(TimeSpan.FromMinutes(1));
        _h.Launcher.Current.Exit(old[1], code: 1);
        await Wait.AdvanceUntilAsync(_h.Time, TimeSpan.FromMilliseconds(50), () => _h.Timeline.Forks(1).Count == 2, "instance 1 was restarted");
        Assert.DoesNotContain("--no-such-flag", _h.Timeline.Forks(1)[^1].ExecArgv!);
    }

    [Fact]
    public async Task A_stopped_app_only_has_its_settings_saved()
    {
        await _h.StartAsync("api", 1);
        await Wait.Bounded(_h.Supervisor.StopAsync("api"));
        StartSpec wanted = _h.Spec("api", 1);
        wanted.Environment["FEATURE"] = "on";

        var (app, _) = await UpdateAsync(wanted);

        Assert.Equal("stopped", app.Status);
        Assert.Equal(1, _h.Timeline.ForkCount);
        Assert.Equal("on", _h.State.Load().State.Apps.Single().Spec.Environment["FEATURE"]);
        await Wait.Bounded(_h.Supervisor.RestartAsync("api"));
        Assert.Equal("on", _h.Timeline.Forks(0)[^1].Env!["FEATURE"]);
    }

    /// <summary>The changes as the cmdlets receive them.</summary>
    private static ReportedChange[] Reported(IEnumerable<SettingChange> changes) =>
        changes.Select(c => new ReportedChange { Setting = c.Setting, From = c.From, To = c.To }).ToArray();
}
