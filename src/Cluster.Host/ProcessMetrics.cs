using System.Collections.Concurrent;
using System.Diagnostics;

namespace Cluster.Host;

/// <summary>Memory and CPU of a process; CPU is the share of one core used since the previous sample.</summary>
internal sealed class ProcessMetrics
{
    private readonly ConcurrentDictionary<int, (DateTimeOffset At, TimeSpan Cpu)> _previous = new();
    private readonly TimeProvider _time;

    public ProcessMetrics(TimeProvider time) => _time = time;

    public (long MemoryBytes, double CpuPercent) Sample(int pid)
    {
        try
        {
            using Process process = Process.GetProcessById(pid);
            long memory = process.WorkingSet64;
            TimeSpan cpu = process.TotalProcessorTime;
            DateTimeOffset now = _time.GetUtcNow();
            double percent = 0;
            if (_previous.TryGetValue(pid, out var last) && now > last.At)
            {
                percent = Math.Round(100 * (cpu - last.Cpu).TotalMilliseconds / (now - last.At).TotalMilliseconds, 1);
            }
            else
            {
                DateTimeOffset started = process.StartTime.ToUniversalTime();
                double lifetimeMs = (now - started).TotalMilliseconds;
                percent = lifetimeMs > 0 ? Math.Round(100 * cpu.TotalMilliseconds / lifetimeMs, 1) : 0;
            }

            _previous[pid] = (now, cpu);
            ForgetLongGone(now);
            return (memory, Math.Max(0, percent));
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            _previous.TryRemove(pid, out _);
            return (0, 0);
        }
    }

    /// <summary>Pids of processes that have exited are never sampled again; their entries go after a while.</summary>
    private void ForgetLongGone(DateTimeOffset now)
    {
        if (_previous.Count < 1024)
        {
            return;
        }

        foreach (var (pid, sample) in _previous)
        {
            if (now - sample.At > TimeSpan.FromMinutes(10))
            {
                _previous.TryRemove(pid, out _);
            }
        }
    }

    public static long MemoryOf(int pid)
    {
        try
        {
            using Process process = Process.GetProcessById(pid);
            return process.WorkingSet64;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return 0;
        }
    }
}
