using System;
using System.IO;
using System.Management.Automation;
using Cluster.Client;

namespace Cluster.Commands
{
    /// <summary>Removes what Register-ClusterStartup wrote. The host and the apps running now are left as they are.</summary>
    [Cmdlet(VerbsLifecycle.Unregister, "ClusterStartup", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    public sealed class UnregisterClusterStartupCommand : StartupCmdlet
    {
        protected override void ProcessRecord()
        {
            StartupKind kind = Kind;
            string path = StartupFiles.PathFor(kind, Scope, HostLauncher.Home);
            string? link = StartupFiles.EnableLinkFor(kind, Scope, path);
            if (!File.Exists(path) && (link is null || !File.Exists(link)))
            {
                WriteVerbose($"Nothing to remove: there is no {path}.");
                return;
            }

            if (!ShouldProcess(path, $"Remove the {Describe(kind)} that starts the Cluster host"))
            {
                return;
            }

            try
            {
                StartupInstaller.Uninstall(kind, path, link);
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                ThrowTerminatingError(FileError(e, path, "remove"));
            }
        }
    }
}
