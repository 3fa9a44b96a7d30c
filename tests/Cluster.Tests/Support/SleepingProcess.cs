using System.Diagnostics;

namespace Cluster.Tests.Support;

/// <summary>A real process that only sleeps, so that a worker taken back from an earlier host has a live pid.</summary>
internal sealed class SleepingProcess : IDisposable
{
    private readonly Process _process;

    private SleepingProcess(Process process) => _process = process;

    public int Pid => _process.Id;

    public static SleepingProcess Start()
    {
        var info = OperatingSystem.IsWindows()
            ? new ProcessStartInfo("powershell", "-NoProfile -Command Start-Sleep 120")
            : new ProcessStartInfo("sleep", "120");
        info.UseShellExecute = false;
        return new SleepingProcess(Process.Start(info) ?? throw new InvalidOperationException("Could not start a sleeping process."));
    }

    public void Dispose()
    {
        try
        {
            _process.Kill();
            _process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }
}
