using System.ComponentModel;
using System.Diagnostics;

namespace Cluster.Host;

/// <summary>
/// One particular process, not just a pid: once a process has exited, the system hands its pid to the next
/// process it starts, so a signal sent by pid alone can hit an unrelated process and, with its tree, everything
/// that process started. A child of this host is known by its <see cref="Process"/> object (the runtime reaps it
/// and knows exactly when it exited); any other process by its pid and start time.
/// </summary>
internal sealed class KnownProcess : IDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    private readonly Process? _child;
    private readonly DateTime _startTime;

    private KnownProcess(int pid, Process? child, DateTime startTime)
    {
        Pid = pid;
        _child = child;
        _startTime = startTime;
    }

    public int Pid { get; }

    /// <summary>A process this host started itself.</summary>
    public static KnownProcess Child(Process started) => new(started.Id, started, default);

    /// <summary>The process that has this pid now (the caller knows it to be the one it means), or null if none has.</summary>
    public static KnownProcess? Find(int pid)
    {
        try
        {
            using Process process = Process.GetProcessById(pid);
            return new KnownProcess(pid, null, process.StartTime);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or Win32Exception)
        {
            return null;
        }
    }

    /// <summary>The process with this pid that started at this time (as <see cref="Process.StartTime"/> reads it).</summary>
    public static KnownProcess Of(int pid, DateTime startTime) => new(pid, null, startTime);

    /// <summary>Whether the process still runs: false once it has exited, even if its pid was given to another.</summary>
    public bool IsRunning
    {
        get
        {
            if (_child is not null)
            {
                return !_child.HasExited;
            }

            using Process? current = Current();
            return current is not null;
        }
    }

    /// <summary>Waits for the process to exit; true if it has.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (_child is not null)
        {
            return _child.WaitForExit(timeout);
        }

        var waited = Stopwatch.StartNew();
        while (IsRunning)
        {
            if (waited.Elapsed >= timeout)
            {
                return false;
            }

            Thread.Sleep(PollInterval);
        }

        return true;
    }

    /// <summary>Kills the process and the processes it started, if it still runs; another process with its pid is left alone.</summary>
    public void KillTree()
    {
        try
        {
            if (_child is not null)
            {
                if (!_child.HasExited)
                {
                    _child.Kill(entireProcessTree: true);
                }

                return;
            }

            using Process? current = Current();
            current?.Kill(entireProcessTree: true);
        }
        catch (Exception e) when (e is InvalidOperationException or Win32Exception)
        {
            // It exited meanwhile.
        }
    }

    public void Dispose() => _child?.Dispose();

    /// <summary>The process with the pid, if it is still the one that started at the known time.</summary>
    private Process? Current()
    {
        Process? process = null;
        try
        {
            process = Process.GetProcessById(Pid);
            if (!process.HasExited && process.StartTime == _startTime)
            {
                return process;
            }
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or Win32Exception)
        {
        }

        process?.Dispose();
        return null;
    }
}
