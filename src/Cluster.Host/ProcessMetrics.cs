using System.Collections.Concurrent;
using System.Diagnostics;

namespace Cluster.Host;

/// <summary>
/// Memory and CPU of the workers. CPU is measured over one window for every worker: the host samples all of them
/// together once per <see cref="SampleInterval"/>, and a worker's CPU is its share of one core between the last
/// two samples. So an app's CPU (the sum of its instances') and each instance's are of the same second, and
/// reading them does not change them. A worker not yet sampled twice shows 0.
/// </summary>
internal sealed class ProcessMetrics
{
    public static readonly TimeSpan SampleInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<int, Measure> _measures = new();
    private readonly TimeProvider _time;

    public ProcessMetrics(TimeProvider time) => _time = time;

    /// <summary>Samples the CPU time of these processes at one moment, and forgets the processes not among them.</summary>
    public void SampleAll(IReadOnlyCollection<int> pids)
    {
        DateTimeOffset now = _time.GetUtcNow();
        foreach (int pid in pids)
        {
            if (CpuTimeOf(pid) is not { } cpu)
            {
                _measures.TryRemove(pid, out _);
                continue;
            }

            double? percent = _measures.TryGetValue(pid, out Measure? last) && now > last.At
                ? Math.Max(0, Math.Round(100 * (cpu - last.Cpu).TotalMilliseconds / (now - last.At).TotalMilliseconds, 1))
                : null;
            _measures[pid] = new Measure(now, cpu, percent ?? last?.Percent);
        }

        foreach (int gone in _measures.Keys.Except(pids).ToArray())
        {
            _measures.TryRemove(gone, out _);
        }
    }

    /// <summary>The process's memory now, and its CPU over the last sampled window.</summary>
    public (long MemoryBytes, double CpuPercent) Sample(int pid) =>
        (MemoryOf(pid), _measures.TryGetValue(pid, out Measure? measure) ? measure.Percent ?? 0 : 0);

    public static long MemoryOf(int pid)
    {
        try
        {
            using Process process = Process.GetProcessById(pid);
            return process.WorkingSet64;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return 0;
        }
    }

    private static TimeSpan? CpuTimeOf(int pid)
    {
        try
        {
            using Process process = Process.GetProcessById(pid);
            return process.TotalProcessorTime;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    private sealed record Measure(DateTimeOffset At, TimeSpan Cpu, double? Percent);
}
