using System.Collections.Concurrent;
using System.Diagnostics;
using Cluster.Host;
using Cluster.Tests.Support;
using Serilog;
using Xunit;

namespace Cluster.Tests;

/// <summary>A real Node primary (module/primary.js on the real node), driven as the host drives it.</summary>
public sealed class NodePrimaryTests : IDisposable
{
    private readonly TempFolder _folder = new();
    private readonly HostPaths _paths;
    private readonly string _server;
    private readonly ConcurrentQueue<PrimaryEvent> _events = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<int> _started = new();

    public NodePrimaryTests()
    {
        _paths = RealProcesses.NewPaths(_folder);
        _server = _folder.WriteFile("server.js", "require('http').createServer((q, s) => s.end('ok')).listen(0, '127.0.0.1');\n");
    }

    public void Dispose()
    {
        foreach (int pid in _started.Where(RealProcesses.IsRunning))
        {
            RealProcesses.Signal(pid, "KILL");
        }

        _folder.Dispose();
    }

    [LinuxFact]
    public async Task A_primary_that_stops_answering_is_reported_exited_and_killed_with_its_workers()
    {
        using NodePrimary primary = Start();
        int worker = await ForkListeningAsync(primary, key: 1);

        // Answered pings keep it: well past the limit of silent ticks, it is still there.
        await Task.Delay(PingWatch.Interval * (PingWatch.SilentTicksLimit + 2));
        Assert.False(_exited.Task.IsCompleted, "a primary that answers its pings was taken for lost");

        RealProcesses.Signal(primary.Pid, "STOP");
        await _exited.Task.WaitAsync(TimeSpan.FromSeconds(30));

        await Wait.UntilAsync(() => !RealProcesses.IsRunning(primary.Pid), $"the stopped primary {primary.Pid} was killed");
        await Wait.UntilAsync(() => !RealProcesses.IsRunning(worker), $"its worker {worker} ended with it");
        // No later host tries to adopt it: its marker goes once its processes are killed.
        await Wait.UntilAsync(() => Directory.GetFiles(_paths.Primaries, "*.primary").Length == 0, "the lost primary's marker was removed");
    }

    [LinuxFact]
    public async Task A_worker_whose_log_file_cannot_be_opened_is_never_started_and_the_primary_goes_on()
    {
        using NodePrimary primary = Start();
        Directory.CreateDirectory(_paths.OutLog("real", 0)); // a folder where the log file should be

        primary.Send(RealProcesses.Fork(_paths, key: 1, _server));
        PrimaryEvent exit = await EventAsync(PrimaryEvent.Exit, key: 1);

        Assert.DoesNotContain(_events, e => e.Key == 1 && e.Event == PrimaryEvent.Forked);
        Assert.Empty(RealProcesses.ChildrenOf(primary.Pid));
        Assert.Null(exit.Code);
        Assert.Contains("cannot open the log file", exit.Error);

        // With its logs in order, the next worker of the instance starts.
        Directory.Delete(_paths.OutLog("real", 0));
        await ForkListeningAsync(primary, key: 2);
    }

    [PidRecyclingFact]
    public async Task Dispose_leaves_alone_the_process_that_got_the_pid_of_a_primary_that_exited()
    {
        NodePrimary primary = Start();
        int pid = primary.Pid;
        RealProcesses.Signal(pid, "KILL");
        await Wait.Bounded(_exited.Task);
        await Wait.UntilAsync(() => !Directory.Exists($"/proc/{pid}"), $"the killed primary {pid} was reaped");

        using Process impostor = RealProcesses.StartWithPid(pid);
        _started.Add(impostor.Id);
        primary.Dispose();

        Assert.False(impostor.HasExited, $"process {pid}, which only has the pid of the primary that exited, was killed");
    }

    private NodePrimary Start()
    {
        NodePrimary primary = NodePrimary.Start(_paths, RealProcesses.Node, Scheduling.RoundRobin, new LoggerConfiguration().CreateLogger());
        _started.Add(primary.Pid);
        primary.EventReceived += _events.Enqueue;
        primary.Exited += () => _exited.TrySetResult();
        return primary;
    }

    private async Task<int> ForkListeningAsync(NodePrimary primary, int key)
    {
        primary.Send(RealProcesses.Fork(_paths, key, _server));
        int pid = (await EventAsync(PrimaryEvent.Forked, key)).Pid!.Value;
        _started.Add(pid);
        await EventAsync(PrimaryEvent.Listening, key);
        return pid;
    }

    private async Task<PrimaryEvent> EventAsync(string name, int key)
    {
        await Wait.UntilAsync(() => _events.Any(e => e.Event == name && e.Key == key) || _exited.Task.IsCompleted, $"'{name}' for key {key}");
        return _events.FirstOrDefault(e => e.Event == name && e.Key == key)
            ?? throw new InvalidOperationException($"The primary exited before '{name}' for key {key}: " + string.Join(", ", _events.Select(e => e.Event + " " + e.Key)));
    }
}
