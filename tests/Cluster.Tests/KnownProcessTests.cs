using System.Diagnostics;
using Cluster.Host;
using Cluster.Tests.Support;
using Xunit;

namespace Cluster.Tests;

/// <summary>A process is signalled only while it is the one that was meant, never another that has its pid.</summary>
public sealed class KnownProcessTests
{
    [Fact]
    public void A_process_with_the_pid_but_another_start_time_is_not_the_known_one_and_is_not_killed()
    {
        using Process sleeper = StartSleeper();
        try
        {
            // What a recycled pid looks like: the pid is there, the process that started at the known time is not.
            KnownProcess earlier = KnownProcess.Of(sleeper.Id, sleeper.StartTime.AddSeconds(-5));

            Assert.False(earlier.IsRunning);
            earlier.KillTree();
            Assert.True(earlier.WaitForExit(TimeSpan.Zero));

            Assert.False(sleeper.WaitForExit(500), "the process that only has the pid was killed");
        }
        finally
        {
            sleeper.Kill();
        }
    }

    [Fact]
    public void The_process_found_by_its_pid_is_killed_while_it_runs()
    {
        using Process sleeper = StartSleeper();
        KnownProcess? found = KnownProcess.Find(sleeper.Id);

        Assert.NotNull(found);
        Assert.True(found.IsRunning);
        found.KillTree();

        Assert.True(sleeper.WaitForExit(10_000), "the known process was not killed");
        Assert.True(found.WaitForExit(TimeSpan.FromSeconds(10)));
        Assert.False(found.IsRunning);
    }

    [Fact]
    public void A_child_that_exited_is_not_running_and_killing_it_does_nothing()
    {
        Process sleeper = StartSleeper();
        using var child = KnownProcess.Child(sleeper);
        sleeper.Kill();
        Assert.True(child.WaitForExit(TimeSpan.FromSeconds(10)));

        Assert.False(child.IsRunning);
        child.KillTree();
    }

    [Fact]
    public void No_process_is_found_for_a_pid_nothing_has()
    {
        Process sleeper = StartSleeper();
        int pid = sleeper.Id;
        sleeper.Kill();
        sleeper.WaitForExit();
        sleeper.Dispose();

        Assert.Null(KnownProcess.Find(pid));
    }

    private static Process StartSleeper() => OperatingSystem.IsWindows()
        ? Process.Start(new ProcessStartInfo("powershell", "-NoProfile -Command Start-Sleep 60") { CreateNoWindow = true })!
        : Process.Start("sleep", "60")!;
}
