using System.Net;
using System.Net.Sockets;
using System.Text;
using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Xunit;

namespace Cluster.Tests;

/// <summary>
/// Timelines of what gates a reload's cutover: the stability window, the 'ready' message (-WaitReady) and the
/// readiness check. Each asserts that the old worker is retired only after its successor passed, and is left
/// alone when the successor fails.
/// </summary>
public sealed class HealthTests : IDisposable
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(50);

    private readonly SupervisorHarness _h = new(processorCount: 2);

    public void Dispose() => _h.Dispose();

    [Fact]
    public async Task A_worker_that_listened_and_exited_before_the_wait_resumed_was_ready()
    {
        var worker = new Worker(1, 0, 1, DateTimeOffset.UnixEpoch);
        worker.MarkForked(42);
        worker.MarkReady();
        worker.MarkExited(1, null, null, DateTimeOffset.UnixEpoch);

        Readiness readiness = await worker.WaitReadyAsync(TimeSpan.FromSeconds(3), TimeProvider.System, CancellationToken.None);

        Assert.Equal(Readiness.Ready, readiness);
        Assert.True(worker.HasExited);
    }

    [Fact]
    public async Task A_new_worker_that_exits_within_its_stability_window_is_not_cut_over()
    {
        await StartAsync(new StartSpec { StabilityWindowMs = 1000 });
        var (reload, oldKey, newKey) = await ReloadHeldAsync();
        await EnterStabilityWindowAsync(newKey);
        _h.Time.Advance(TimeSpan.FromMilliseconds(300));
        _h.Launcher.Current.Exit(newKey, code: 3);

        var error = await Assert.ThrowsAsync<ClusterException>(() => Wait.Bounded(reload));
        Assert.Equal("NewInstanceExited", error.Code);
        Assert.Contains("exited with code 3 within 1000 ms of being ready", error.Message);
        Assert.Empty(_h.Timeline.CommandsFor(oldKey));
        AppInfo app = _h.App("api");
        Assert.Equal("reloadfailed", app.Status);
        Assert.Equal(_h.Launcher.Current.PidOf(oldKey), app.Instances[0].Pid);
    }

    [Fact]
    public async Task The_old_worker_is_retired_only_once_the_stability_window_has_passed()
    {
        await StartAsync(new StartSpec { StabilityWindowMs = 5000 });
        var (reload, oldKey, newKey) = await ReloadHeldAsync();
        await EnterStabilityWindowAsync(newKey);
        _h.Time.Advance(TimeSpan.FromMilliseconds(4900));
        await Task.Delay(50);
        Assert.Empty(_h.Timeline.CommandsFor(oldKey));

        await Wait.AdvanceUntilAsync(_h.Time, Step, () => reload.IsCompleted, "the reload finished");
        await Wait.Bounded(reload);
        Assert.Contains(_h.Timeline.CommandsFor(oldKey), c => c.Cmd == PrimaryCommand.Disconnect);
    }

    [Fact]
    public async Task Only_the_first_instance_of_a_reload_waits_out_the_stability_window()
    {
        StartSpec spec = _h.Spec("api", 2);
        spec.StabilityWindowMs = 5000;
        await Wait.Bounded(_h.Supervisor.StartAsync(spec));
        int secondOld = _h.KeyOf(1);

        var (reload, _, firstNew) = await ReloadHeldAsync();
        await EnterStabilityWindowAsync(firstNew);
        await Wait.AdvanceUntilAsync(_h.Time, Step, () => _h.Timeline.Forks(1).Count == 2, "the second instance's new worker was forked");

        // The release has stayed up once: the second new worker is cut over as soon as it is ready.
        await Wait.UntilAsync(() => _h.Timeline.Entries.Any(e => e.IsEvent(PrimaryEvent.Forked, _h.KeyOf(1))), "the second new worker was forked");
        _h.Launcher.Current.Listen(_h.KeyOf(1));
        await Wait.UntilAsync(() => _h.Timeline.CommandsFor(secondOld).Any(c => c.Cmd == PrimaryCommand.Disconnect), "the second old worker was disconnected without a second window");
        Assert.Equal(1, _h.Progress.Count(p => p.Operation == "watching the new worker stay up"));
        await Wait.AdvanceUntilAsync(_h.Time, Step, () => reload.IsCompleted, "the reload finished");
        Assert.Equal("online", (await Wait.Bounded(reload)).Status);
    }

    [Fact]
    public async Task A_reload_can_set_its_own_stability_window()
    {
        await StartAsync(new StartSpec { StabilityWindowMs = 60000 });
        int oldKey = _h.KeyOf(0);

        AppInfo app = await Wait.Bounded(_h.ReloadAsync("api", new ReloadSpec { StabilityWindowMs = 0 }));

        Assert.Contains(_h.Timeline.CommandsFor(oldKey), c => c.Cmd == PrimaryCommand.Disconnect);
        Assert.Equal("online", app.Status);
    }

    [Fact]
    public async Task With_WaitReady_a_worker_that_listens_is_not_cut_over_before_it_says_ready()
    {
        _h.Launcher.OnFork = _ => ForkScript.Hold;
        Task<AppInfo> start = _h.Supervisor.StartAsync(Spec(new StartSpec { WaitReady = true }));
        int firstKey = await ForkedAsync(count: 1);
        _h.Launcher.Current.Listen(firstKey);
        _h.Launcher.Current.Say(firstKey, "ready");
        await Wait.Bounded(start);

        var (reload, _, newKey) = await ReloadHeldAsync();
        _h.Launcher.Current.Listen(newKey);
        _h.Time.Advance(TimeSpan.FromMilliseconds(1000));
        await Task.Delay(100);
        Assert.Empty(_h.Timeline.CommandsFor(firstKey));
        Assert.False(reload.IsCompleted);

        _h.Launcher.Current.Say(newKey, "ready");
        await Wait.Bounded(reload);
        Entry ready = _h.Timeline.First(e => e.Event is { Event: PrimaryEvent.Message, Text: "ready" } m && m.Key == newKey, "the new worker's 'ready'");
        Entry disconnect = _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Disconnect, firstKey), "the old worker's disconnect");
        Assert.True(ready.Sequence < disconnect.Sequence, _h.Timeline.ToString());
    }

    [Fact]
    public async Task A_new_worker_that_fails_its_HTTP_check_is_killed_and_the_old_one_keeps_serving()
    {
        await StartAsync(new StartSpec { HealthCheckPath = "/health", HealthCheckTimeoutMs = 1000 }, checkStatus: 200);
        using var failing = new StatusServer(500);

        var (reload, oldKey, newKey) = await ReloadHeldAsync();
        _h.Launcher.Current.Say(newKey, HealthPlan.PortMessagePrefix + failing.Port);
        await Wait.AdvanceUntilAsync(_h.Time, Step, () => reload.IsCompleted, "the reload gave up on the check");

        var error = await Assert.ThrowsAsync<ClusterException>(() => Wait.Bounded(reload));
        Assert.Equal("HealthCheckFailed", error.Code);
        Assert.Contains("GET /health", error.Message);
        Assert.Contains("500", error.Message);
        Assert.Contains(_h.Timeline.CommandsFor(newKey), c => c is { Cmd: PrimaryCommand.Signal, SignalName: "SIGKILL" });
        Assert.DoesNotContain(_h.Timeline.CommandsFor(newKey), c => c.Message == HealthPlan.ServeMessage);
        // The old worker was told to serve when it started, and nothing since.
        Assert.Equal(new[] { HealthPlan.ServeMessage }, _h.Timeline.CommandsFor(oldKey).Select(c => c.Message));
        Assert.True(failing.Requests > 0);
        Assert.Equal(_h.Launcher.Current.PidOf(oldKey), _h.App("api").Instances[0].Pid);
    }

    [Fact]
    public async Task A_new_worker_takes_shared_traffic_only_after_its_HTTP_check_passed()
    {
        await StartAsync(new StartSpec { HealthCheckPath = "/health" }, checkStatus: 200);
        using var passing = new StatusServer(204);

        var (reload, oldKey, newKey) = await ReloadHeldAsync();
        _h.Launcher.Current.Say(newKey, HealthPlan.PortMessagePrefix + passing.Port);
        await Wait.Bounded(reload);

        Entry serve = _h.Timeline.First(e => e.Command is { Cmd: PrimaryCommand.Send, Message: HealthPlan.ServeMessage } c && c.Key == newKey, "the new worker told to serve");
        Entry disconnect = _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Disconnect, oldKey), "the old worker's disconnect");
        Assert.True(serve.Sequence < disconnect.Sequence, _h.Timeline.ToString());
        Assert.Equal(1, passing.Requests);
    }

    [Fact]
    public async Task A_worker_that_fails_its_liveness_check_in_a_row_is_replaced_and_its_instance_says_why()
    {
        var first = new StatusServer(200);
        _h.Launcher.OnFork = _ => ForkScript.Hold;
        StartSpec spec = Spec(new StartSpec { HealthCheckPath = "/health", HealthCheckTimeoutMs = 500 });
        (spec.LivenessIntervalMs, spec.LivenessFailures) = (1000, 2);
        Task<AppInfo> start = _h.Supervisor.StartAsync(spec);
        int hungKey = await ForkedAsync(count: 1);
        _h.Launcher.Current.Say(hungKey, HealthPlan.PortMessagePrefix + first.Port);
        await Wait.Bounded(start);
        int hungPid = _h.Launcher.Current.PidOf(hungKey);

        // It stops answering (its port is gone): two failed checks in a row, then a replacement.
        first.Dispose();
        using var replacement = new StatusServer(200);
        await Wait.AdvanceUntilAsync(_h.Time, Step, () => _h.Timeline.Forks(0).Count == 2, "the failing worker's replacement was forked");
        int newKey = await ForkedAsync();
        _h.Launcher.Current.Say(newKey, HealthPlan.PortMessagePrefix + replacement.Port);
        await Wait.AdvanceUntilAsync(_h.Time, Step, () => _h.Timeline.Entries.Any(e => e.IsEvent(PrimaryEvent.Exit, hungKey)), "the failing worker was retired");

        Entry serve = _h.Timeline.First(e => e.Command is { Cmd: PrimaryCommand.Send, Message: HealthPlan.ServeMessage } c && c.Key == newKey, "the replacement told to serve");
        Entry disconnect = _h.Timeline.First(e => e.IsCommand(PrimaryCommand.Disconnect, hungKey), "the failing worker's disconnect");
        Assert.True(serve.Sequence < disconnect.Sequence, _h.Timeline.ToString());
        await Wait.UntilAsync(() => _h.Instance("api", 0).Reason is not null, "the instance said why it was replaced");
        InstanceInfo instance = _h.Instance("api", 0);
        Assert.Equal(_h.Launcher.Current.PidOf(newKey), instance.Pid);
        Assert.StartsWith($"pid {hungPid} failed its liveness check 2 times in a row", instance.Reason);
    }

    private StartSpec Spec(StartSpec health)
    {
        StartSpec spec = _h.Spec("api", 1);
        spec.WaitReady = health.WaitReady;
        spec.HealthCheckPath = health.HealthCheckPath;
        spec.HealthCheckTimeoutMs = health.HealthCheckTimeoutMs;
        spec.StabilityWindowMs = health.StabilityWindowMs ?? 0;
        return spec;
    }

    /// <summary>Starts 'api' with one instance; with an HTTP check, its worker reports a port that answers <paramref name="checkStatus"/>.</summary>
    private async Task StartAsync(StartSpec health, int checkStatus = 200)
    {
        if (health.HealthCheckPath is null)
        {
            await Wait.Bounded(_h.Supervisor.StartAsync(Spec(health)));
            return;
        }

        using var server = new StatusServer(checkStatus);
        _h.Launcher.OnFork = _ => ForkScript.Hold;
        Task<AppInfo> start = _h.Supervisor.StartAsync(Spec(health));
        int key = await ForkedAsync(count: 1);
        _h.Launcher.Current.Say(key, HealthPlan.PortMessagePrefix + server.Port);
        await Wait.Bounded(start);
        _h.Launcher.OnFork = _ => ForkScript.Ready;
    }

    /// <summary>
    /// Starts a reload of 'api' whose new workers are held: neither ready nor failed until the test says so. Returns
    /// the reload, instance 0's old worker and the new worker forked for it.
    /// </summary>
    private async Task<(Task<AppInfo> Reload, int OldKey, int NewKey)> ReloadHeldAsync()
    {
        int oldKey = _h.KeyOf(0);
        _h.Launcher.OnFork = _ => ForkScript.Hold;
        Task<AppInfo> reload = _h.ReloadAsync("api");
        return (reload, oldKey, await ForkedAsync());
    }

    /// <summary>The new worker listens, and the reload starts its stability window: it watches the worker stay up.</summary>
    private async Task EnterStabilityWindowAsync(int newKey)
    {
        _h.Launcher.Current.Listen(newKey);
        await Wait.UntilAsync(() => _h.Progress.Any(p => p.Operation == "watching the new worker stay up"), "the reload watched the new worker");
    }

    private async Task<int> ForkedAsync(int count = 2)
    {
        await Wait.UntilAsync(() => _h.Timeline.Forks(0).Count == count, $"fork {count} of instance 0");
        int key = _h.KeyOf(0);
        await Wait.UntilAsync(() => _h.Timeline.Entries.Any(e => e.IsEvent(PrimaryEvent.Forked, key)), "the worker was forked");
        return key;
    }

    /// <summary>A loopback HTTP server that answers every request with one status: an instance's health check port.</summary>
    private sealed class StatusServer : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly int _status;
        private int _requests;

        public StatusServer(int status)
        {
            _status = status;
            _listener.Start();
            _ = ServeAsync();
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public int Requests => Volatile.Read(ref _requests);

        public void Dispose() => _listener.Stop();

        private async Task ServeAsync()
        {
            try
            {
                while (true)
                {
                    using TcpClient client = await _listener.AcceptTcpClientAsync();
                    NetworkStream stream = client.GetStream();
                    var buffer = new byte[4096];
                    var request = new StringBuilder();
                    while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
                    {
                        int read = await stream.ReadAsync(buffer);
                        if (read == 0)
                        {
                            break;
                        }

                        request.Append(Encoding.ASCII.GetString(buffer, 0, read));
                    }

                    Interlocked.Increment(ref _requests);
                    await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {_status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
            {
                // Stopped.
            }
        }
    }
}
