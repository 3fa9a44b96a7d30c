using System;
using System.Diagnostics;
using System.Management.Automation;
using Cluster.Client;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>
    /// Stops every app and the background host. The apps stay defined: the next Cluster cmdlet starts a new
    /// host, which brings back the apps that were running.
    /// </summary>
    [Cmdlet(VerbsLifecycle.Stop, "ClusterHost", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    public sealed class StopClusterHostCommand : ClusterCmdlet
    {
        private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(30);

        protected override void ProcessRecord()
        {
            using (HostConnection? probe = HostLauncher.TryConnect())
            {
                // With no host running, apps may still be: their primaries outlive a host that died. A new host
                // takes them back, and then stops them with everything else.
                if (probe is null && !HostLauncher.HasRunningPrimaries())
                {
                    WriteVerbose($"No Cluster host is running for {HostLauncher.Home}.");
                    return;
                }
            }

            if (!ShouldProcess(HostLauncher.Home, "Stop every app and the Cluster host"))
            {
                return;
            }

            if (Send(new Request { Command = CommandNames.Shutdown })?.Host is { } host)
            {
                WaitForExit(host.Pid);
            }
        }

        private void WaitForExit(int pid)
        {
            try
            {
                using Process process = Process.GetProcessById(pid);
                if (!process.WaitForExit((int)ExitTimeout.TotalMilliseconds))
                {
                    WriteWarning($"The Cluster host (pid {pid}) has not exited {ExitTimeout.TotalSeconds} seconds after it stopped its apps.");
                }
            }
            catch (ArgumentException)
            {
                // It has already exited.
            }
        }
    }
}
