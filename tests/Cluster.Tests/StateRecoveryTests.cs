using System.Text.Json;
using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Xunit;

namespace Cluster.Tests;

/// <summary>
/// A new host over a damaged state file, with fake primaries: it starts, reports the problem, recovers the apps
/// from the backup or from what their running workers' primaries kept, saves them back, and kills no running app.
/// </summary>
public sealed class StateRecoveryTests : IDisposable
{
    private readonly SupervisorHarness _h = new();

    /// <summary>Stands in for a worker that went on serving while there was no host: a live process, not the test's own.</summary>
    private readonly SleepingProcess _worker = SleepingProcess.Start();

    public void Dispose()
    {
        _h.Dispose();
        _worker.Dispose();
    }

    [Theory]
    [InlineData("{\"apps\":null}")]
    [InlineData("{\"apps\":[null]}")]
    [InlineData("{\"apps\":[{\"spec\":{\"name\":\"api\",\"scr")]
    [InlineData("not json")]
    public async Task A_host_over_a_bad_state_file_starts_with_the_backups_apps_and_reports_it(string content)
    {
        await _h.StartAsync("api", 1);
        await _h.StartAsync("web", 1); // its save keeps the version with 'api' alone as the backup
        await _h.Supervisor.StopAllAsync();
        File.WriteAllText(_h.Paths.StateFile, content);

        var launcher = new FakePrimaryLauncher(_h.Time);
        Supervisor next = _h.NextHost(launcher);
        try
        {
            await Wait.Bounded(next.ResurrectAsync());

            Assert.Equal(new[] { "api" }, (await next.ListAsync(null)).Select(a => a.Name));
            Assert.Equal("online", (await next.ListAsync("api")).Single().Status);
            Assert.Contains("recovered from its backup", next.StateHealth.Problem);
            Assert.Single(Directory.GetFiles(_h.Paths.Home, "state.json.corrupt-*"));
            StateLoad saved = new StateStore(_h.Paths.StateFile).Load();
            Assert.Null(saved.Problem);
            Assert.Equal(new[] { "api" }, saved.State.Apps.Select(a => a.Name));
        }
        finally
        {
            await StopAsync(next);
        }
    }

    [Fact]
    public async Task A_healthy_state_file_reports_no_problem()
    {
        await _h.StartAsync("api", 1);
        await _h.Supervisor.StopAllAsync();

        Supervisor next = _h.NextHost(new FakePrimaryLauncher(_h.Time));
        try
        {
            await Wait.Bounded(next.ResurrectAsync());

            Assert.Null(next.StateHealth.Problem);
            Assert.Empty(Directory.GetFiles(_h.Paths.Home, "state.json.corrupt-*"));
        }
        finally
        {
            await StopAsync(next);
        }
    }

    [Fact]
    public async Task A_running_app_that_the_recovered_backup_says_is_stopped_keeps_running()
    {
        await _h.StartAsync("api", 1);
        await _h.Supervisor.StopAsync("api");
        await _h.Supervisor.RestartAsync("api"); // the backup now says 'stopped'
        AppDefinition saved = new StateStore(_h.Paths.StateFile).Load().State.Apps.Single();
        File.WriteAllText(_h.Paths.StateFile, "{\"apps\":");
        var launcher = new FakePrimaryLauncher(_h.Time);
        FakePrimary left = launcher.Start();
        launcher.Adoptable.Add(Running(left, key: 900_001, "api", saved, definition: null));

        Supervisor next = _h.NextHost(launcher);
        try
        {
            await Wait.Bounded(next.ResurrectAsync());

            AppInfo api = (await next.ListAsync("api")).Single();
            Assert.Equal(_worker.Pid, api.Instances.Single().Pid);
            Assert.Equal("online", api.Status);
            Assert.DoesNotContain(launcher.Timeline.CommandsFor(900_001), c => c.Cmd == PrimaryCommand.Signal);
            Assert.Equal(0, launcher.Timeline.ForkCount);
            Assert.False(new StateStore(_h.Paths.StateFile).Load().State.Apps.Single().Stopped);
        }
        finally
        {
            await StopAsync(next);
        }
    }

    [Fact]
    public async Task With_the_state_file_and_its_backup_gone_running_apps_are_taken_back_from_their_primary_and_saved()
    {
        await _h.StartAsync("api", 1);
        await _h.StartAsync("web", 1);
        AppDefinition api = new StateStore(_h.Paths.StateFile).Load().State.Apps.Single(a => a.Name == "api");
        api.Spec.Instances = 1;
        File.Delete(_h.Paths.StateFile);
        File.Delete(_h.Paths.StateFile + ".bak");
        var launcher = new FakePrimaryLauncher(_h.Time);
        FakePrimary left = launcher.Start();
        launcher.Adoptable.Add(Running(left, key: 900_002, "api", api, definition: JsonSerializer.Serialize(api, HostJson.Default.AppDefinition)));

        Supervisor next = _h.NextHost(launcher);
        try
        {
            await Wait.Bounded(next.ResurrectAsync());

            Assert.Equal(new[] { "api" }, (await next.ListAsync(null)).Select(a => a.Name));
            Assert.Equal(_worker.Pid, (await next.ListAsync("api")).Single().Instances.Single().Pid);
            Assert.Contains("did not know the app 'api'", next.StateHealth.Problem);
            Assert.Equal(new[] { "api" }, new StateStore(_h.Paths.StateFile).Load().State.Apps.Select(a => a.Name));
        }
        finally
        {
            await StopAsync(next);
        }
    }

    [Fact]
    public async Task A_definition_a_primary_kept_that_is_not_well_formed_is_not_taken_back()
    {
        await _h.StartAsync("api", 1);
        AppDefinition api = new StateStore(_h.Paths.StateFile).Load().State.Apps.Single();
        api.Spec.Environment = new Dictionary<string, string> { ["BAD=NAME"] = "x" };
        File.Delete(_h.Paths.StateFile);
        var launcher = new FakePrimaryLauncher(_h.Time);
        FakePrimary left = launcher.Start();
        launcher.Adoptable.Add(Running(left, key: 900_003, "api", api, definition: JsonSerializer.Serialize(api, HostJson.Default.AppDefinition)));

        Supervisor next = _h.NextHost(launcher);
        try
        {
            await Wait.Bounded(next.ResurrectAsync());

            Assert.Empty(await next.ListAsync(null));
        }
        finally
        {
            await StopAsync(next);
        }
    }

    /// <summary>Stops a host, moving the fake clock on: a worker taken back is retired by its kill timeout.</summary>
    private async Task StopAsync(Supervisor host)
    {
        Task stopping = host.StopAllAsync();
        await Wait.AdvanceUntilAsync(_h.Time, TimeSpan.FromMilliseconds(200), () => stopping.IsCompleted, "the next host to stop");
        await stopping;
    }

    private AdoptedWorker Running(FakePrimary primary, int key, string app, AppDefinition like, string? definition) =>
        new(key, app, 0, _worker.Pid, Ready: true, DateTimeOffset.UtcNow, like.NodePath, Scheduling.Of(like.Spec), primary)
        {
            Generation = 1,
            Definition = definition,
        };
}
