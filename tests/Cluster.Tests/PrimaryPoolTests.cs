using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Xunit;

namespace Cluster.Tests;

/// <summary>Apps that run on the same Node with the same scheduling policy share one primary.</summary>
public sealed class PrimaryPoolTests : IDisposable
{
    private readonly SupervisorHarness _h = new(pooled: true);

    public void Dispose() => _h.Dispose();

    [Fact]
    public async Task Apps_on_the_same_node_share_one_primary_that_stops_with_the_last_app()
    {
        await _h.StartAsync("api", 1);
        await _h.StartAsync("web", 1);

        FakePrimary shared = Assert.Single(_h.Launcher.Launched);
        await _h.Supervisor.StopAsync("api");
        Assert.False(shared.Disposed);
        Assert.Equal("online", _h.App("web").Status);

        await _h.Supervisor.StopAsync("web");
        Assert.True(shared.Disposed);
    }

    [Fact]
    public async Task Apps_with_different_scheduling_get_their_own_primary()
    {
        await _h.StartAsync("api", 1);
        StartSpec shared = _h.Spec("web", 1);
        shared.Scheduling = Scheduling.Shared;
        await _h.Supervisor.StartAsync(shared);

        Assert.Equal(2, _h.Launcher.Launched.Count);
    }

    [Fact]
    public async Task A_crash_in_one_app_restarts_only_its_own_instance()
    {
        await _h.StartAsync("api", 1);
        await _h.StartAsync("web", 1);
        int apiKey = _h.Timeline.Commands.Single(c => c.Cmd == PrimaryCommand.Fork && c.Exec == _h.Script && c.Out == _h.Paths.OutLog("api", 0)).Key;
        int webKey = _h.Timeline.Commands.Single(c => c.Cmd == PrimaryCommand.Fork && c.Out == _h.Paths.OutLog("web", 0)).Key;
        Assert.NotEqual(apiKey, webKey);
        _h.Time.Advance(TimeSpan.FromMinutes(1));

        _h.Launcher.Current.Exit(webKey, code: 1);
        await Wait.AdvanceUntilAsync(_h.Time, TimeSpan.FromMilliseconds(50), () => _h.Timeline.ForkCount == 3, "web was forked again");
        await Wait.UntilAsync(() => _h.Instance("web", 0).Status == "online", "web was online again");

        PrimaryCommand again = _h.Timeline.Commands.Last(c => c.Cmd == PrimaryCommand.Fork);
        Assert.Equal(_h.Paths.OutLog("web", 0), again.Out);
        Assert.Equal(1, _h.Instance("web", 0).Restarts);
        Assert.Equal(0, _h.Instance("api", 0).Restarts);
        Assert.Equal("online", _h.App("api").Status);
        Assert.Empty(_h.Timeline.CommandsFor(apiKey));
    }
}
