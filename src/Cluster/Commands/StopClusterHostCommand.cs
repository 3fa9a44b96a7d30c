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
        private static readonly TimeSpan KillTimeout = TimeSpan.FromSeconds(10);

        /// <summary>Kill a host that does not answer, or does not exit once it has stopped its apps; a new host then takes the apps back and stops them.</summary>
        [Parameter]
        public SwitchParameter Force { get; set; }

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

            var shutdown = new Request { Command = CommandNames.Shutdown };
            Frame? reply;
            if (!Force)
            {
                reply = Send(shutdown);
            }
            else if (!TrySend(shutdown, out reply))
            {
                // The host that did not answer is killed; its primaries and workers go on, so a new host (started
                // by this request) takes them back and stops them.
                KillUnansweringHost();
                reply = Send(shutdown);
            }

            if (reply?.Host is { } host)
            {
                WaitForExit(host.Pid);
            }
        }

        private void KillUnansweringHost()
        {
            int? pid = HostLauncher.RecordedHostPid();
            if (pid is null || !HostLauncher.HostHoldsLock())
            {
                WriteVerbose("The Cluster host that did not answer has exited meanwhile.");
                return;
            }

            WriteWarning($"The Cluster host (pid {pid}) did not answer within {HostTimeout.FromEnvironment().TotalSeconds:0.###} seconds: killing it. A new host takes its apps back and stops them.");
            Kill(pid.Value);
        }

        private void WaitForExit(int pid)
        {
            try
            {
                using Process process = Process.GetProcessById(pid);
                if (process.WaitForExit((int)ExitTimeout.TotalMilliseconds))
                {
                    return;
                }

                if (!Force)
                {
                    WriteWarning($"The Cluster host (pid {pid}) has not exited {ExitTimeout.TotalSeconds} seconds after it stopped its apps. Stop-ClusterHost -Force kills it.");
                    return;
                }

                WriteWarning($"The Cluster host (pid {pid}) has not exited {ExitTimeout.TotalSeconds} seconds after it stopped its apps: killing it.");
                Kill(pid);
            }
            catch (ArgumentException)
            {
                // It has already exited.
            }
        }

        private void Kill(int pid)
        {
            try
            {
                using Process process = Process.GetProcessById(pid);
                process.Kill();
                if (!process.WaitForExit((int)KillTimeout.TotalMilliseconds))
                {
                    ThrowTerminatingError(NewError(
                        "HostKillFailed",
                        ErrorCategory.OperationTimeout,
                        $"The Cluster host (pid {pid}) was killed but has not exited within {KillTimeout.TotalSeconds} seconds. Check the process (ps -p {pid}, or Get-Process -Id {pid}).",
                        pid));
                }
            }
            catch (ArgumentException)
            {
                // Exited meanwhile.
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception || e is InvalidOperationException)
            {
                ThrowTerminatingError(NewError("HostKillFailed", ErrorCategory.PermissionDenied, $"Could not kill the Cluster host (pid {pid}): {e.Message}", pid, e));
            }
        }
    }
}
