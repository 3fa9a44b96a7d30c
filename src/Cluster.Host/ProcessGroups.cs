using System.Runtime.InteropServices;

namespace Cluster.Host;

/// <summary>
/// On Unix each worker leads its own process group (primary.js forks it detached), and what it spawns is in that
/// group. Windows has no process groups: there the primary ends a worker's tree itself.
/// </summary>
internal static partial class ProcessGroups
{
    private const int SigKill = 9;

    /// <summary>
    /// Kills every process of the group that the process <paramref name="leader"/> leads or led. A group id stays
    /// reserved while any member lives, so it cannot name an unrelated group then; call it only while the group
    /// may still have members (at once, when the primary that owned the worker is seen gone).
    /// </summary>
    public static void Kill(int leader)
    {
        if (!OperatingSystem.IsWindows() && leader > 1)
        {
            _ = KillGroup(-leader, SigKill); // ESRCH: nothing is left of the group
        }
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int KillGroup(int pid, int signal);
}
