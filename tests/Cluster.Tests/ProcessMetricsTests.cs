using System.Diagnostics;
using Cluster.Host;
using Microsoft.Extensions.Time.Testing;
using Xunit;

namespace Cluster.Tests;

/// <summary>CPU measured over one window for every worker: reading it does not change it, and a process not yet sampled twice shows 0.</summary>
public sealed class ProcessMetricsTests
{
    [Fact]
    public void CPU_is_the_share_of_a_core_between_the_last_two_samples_and_reading_it_changes_nothing()
    {
        var time = new FakeTimeProvider();
        var metrics = new ProcessMetrics(time);
        int self = Environment.ProcessId;

        metrics.SampleAll(new[] { self });
        Assert.Equal(0, metrics.Sample(self).CpuPercent);

        Burn(TimeSpan.FromMilliseconds(200));
        time.Advance(TimeSpan.FromSeconds(1));
        metrics.SampleAll(new[] { self });
        double measured = metrics.Sample(self).CpuPercent;

        Assert.True(measured >= 15, $"200 ms of CPU in a 1 s window is about 20 % or more (other threads count too); measured {measured} %");
        Burn(TimeSpan.FromMilliseconds(100));
        Assert.Equal(measured, metrics.Sample(self).CpuPercent);
        Assert.Equal(measured, metrics.Sample(self).CpuPercent);
        Assert.True(metrics.Sample(self).MemoryBytes > 0);
    }

    [Fact]
    public void A_process_no_longer_sampled_is_forgotten()
    {
        var time = new FakeTimeProvider();
        var metrics = new ProcessMetrics(time);
        int self = Environment.ProcessId;
        metrics.SampleAll(new[] { self });
        Burn(TimeSpan.FromMilliseconds(50));
        time.Advance(TimeSpan.FromSeconds(1));
        metrics.SampleAll(new[] { self });
        Assert.True(metrics.Sample(self).CpuPercent > 0);

        metrics.SampleAll(Array.Empty<int>());

        Assert.Equal(0, metrics.Sample(self).CpuPercent);
    }

    private static void Burn(TimeSpan cpu)
    {
        TimeSpan start = Process.GetCurrentProcess().TotalProcessorTime;
        double sink = 0;
        while (Process.GetCurrentProcess().TotalProcessorTime - start < cpu)
        {
            for (int i = 0; i < 100_000; i++)
            {
                sink += Math.Sqrt(i);
            }
        }

        GC.KeepAlive(sink);
    }
}
