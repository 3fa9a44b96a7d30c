using System.Diagnostics;
using Cluster.Host;
using Cluster.Protocol;
using Xunit;

namespace Cluster.Tests.Support;

/// <summary>A fact that needs Unix signals (SIGSTOP, SIGKILL by number) and /proc; reported as skipped elsewhere.</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = "Needs Linux: it sends SIGSTOP/SIGKILL and reads /proc.";
        }
    }
}

/// <summary>
/// A fact that needs a given pid for a new process: on Linux, writing the last pid handed out to
/// /proc/sys/kernel/ns_last_pid (root in the pid namespace). Reported as skipped where that cannot be done.
/// </summary>
public sealed class PidRecyclingFactAttribute : FactAttribute
{
    public PidRecyclingFactAttribute()
    {
        if (!RealProcesses.CanChoosePids)
        {
            Skip = "Needs to choose a new process's pid (Linux, /proc/sys/kernel/ns_last_pid writable: root).";
        }
    }
}

/// <summary>Real Node primaries and processes for the tests of what only real processes show.</summary>
internal static class RealProcesses
{
    private const string LastPidFile = "/proc/sys/kernel/ns_last_pid";

    public static bool CanChoosePids
    {
        get
        {
            if (!OperatingSystem.IsLinux() || !File.Exists(LastPidFile))
            {
                return false;
            }

            try
            {
                // Writing back what is there changes nothing but proves the right to write.
                File.WriteAllText(LastPidFile, File.ReadAllText(LastPidFile).Trim());
                return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }
    }

    /// <summary>The repository's module folder (primary.js, drain.js), found upwards from the test assembly.</summary>
    public static string ModuleFolder
    {
        get
        {
            for (DirectoryInfo? folder = new(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            {
                if (File.Exists(Path.Combine(folder.FullName, "module", "primary.js")))
                {
                    return Path.Combine(folder.FullName, "module");
                }
            }

            throw new InvalidOperationException("module/primary.js was not found above " + AppContext.BaseDirectory);
        }
    }

    public static string Node => NodeRuntime.Resolve(new Dictionary<string, string> { ["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "" });

    public static HostPaths NewPaths(TempFolder folder)
    {
        var paths = new HostPaths(folder.Combine("home"), ModuleFolder);
        paths.EnsureFolders();
        return paths;
    }

    /// <summary>A fork command for a cluster worker running the script, with the instance's usual log files.</summary>
    public static PrimaryCommand Fork(HostPaths paths, int key, string script, string app = "real") => new()
    {
        Cmd = PrimaryCommand.Fork,
        Key = key,
        App = app,
        Mode = AppModes.Cluster,
        Exec = script,
        Args = new List<string>(),
        ExecArgv = new List<string>(),
        Cwd = Path.GetDirectoryName(script),
        Env = new Dictionary<string, string> { ["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "" },
        Instance = 0,
        Out = paths.OutLog(app, 0),
        Err = paths.ErrorLog(app, 0),
    };

    public static void Signal(int pid, string signal)
    {
        using Process kill = Process.Start("kill", new[] { "-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture) })!;
        kill.WaitForExit();
    }

    /// <summary>Whether the pid runs: not when it has gone, nor when it has exited and waits to be reaped.</summary>
    public static bool IsRunning(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }

        // pid (comm) state ...: the state follows the last ')'.
        return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0] != "Z";
    }

    public static int[] ChildrenOf(int pid)
    {
        var children = new List<int>();
        foreach (string folder in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(folder), out int candidate))
            {
                continue;
            }

            try
            {
                string stat = File.ReadAllText(Path.Combine(folder, "stat"));
                string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (fields[1] == pid.ToString(System.Globalization.CultureInfo.InvariantCulture) && fields[0] != "Z")
                {
                    children.Add(candidate);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }

        return children.ToArray();
    }

    /// <summary>
    /// Starts a long sleep that gets the given pid, which must be free: the system is told the pid before it was
    /// the last one handed out, and the start is tried again while something else on the machine takes it first.
    /// </summary>
    public static Process StartWithPid(int pid)
    {
        for (int attempt = 0; attempt < 200; attempt++)
        {
            File.WriteAllText(LastPidFile, (pid - 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
            Process sleeper = Process.Start("sleep", "60")!;
            if (sleeper.Id == pid)
            {
                return sleeper;
            }

            sleeper.Kill();
            sleeper.WaitForExit();
            sleeper.Dispose();
        }

        throw new InvalidOperationException($"Could not start a process with pid {pid}: other processes kept taking it.");
    }
}
