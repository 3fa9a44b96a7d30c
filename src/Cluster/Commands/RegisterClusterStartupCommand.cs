using System;
using System.Collections.Generic;
using System.IO;
using System.Management.Automation;
using Cluster.Client;

namespace Cluster.Commands
{
    /// <summary>
    /// Writes what starts the Cluster host at boot (or logon) and brings its apps back: a systemd unit, a launchd
    /// job or a scheduled task that runs the host's runtime copy in the foreground.
    /// </summary>
    [Cmdlet(VerbsLifecycle.Register, "ClusterStartup", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(ClusterStartup))]
    public sealed class RegisterClusterStartupCommand : StartupCmdlet
    {
        protected override void ProcessRecord()
        {
            string home = HostLauncher.Home;
            StartupKind kind = Kind;
            string path = StartupFiles.PathFor(kind, Scope, home);
            string when = Scope == StartupScope.User && kind != StartupKind.Systemd ? "logon" : "boot";
            if (!ShouldProcess(path, $"Write the {Describe(kind)} that starts the Cluster host of {home} at {when}"))
            {
                return;
            }

            StartupPlan plan;
            try
            {
                IReadOnlyList<string> command = HostLauncher.HostCommand(home, foreground: true);
                plan = StartupFiles.Plan(kind, Scope, home, command, UserName, HostLauncher.ModuleVersion);
            }
            catch (HostUnavailableException e)
            {
                ErrorCategory category = e.Code == "HostRuntimeCopyFailed" ? ErrorCategory.WriteError : ErrorCategory.NotInstalled;
                ThrowTerminatingError(new ErrorRecord(new InvalidOperationException(e.Message, e), ErrorIdPrefix + e.Code, category, e.Target ?? home));
                return;
            }

            try
            {
                StartupInstaller.Install(plan);
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                ThrowTerminatingError(FileError(e, plan.Path, "write"));
                return;
            }

            WriteVerbose($"Wrote {plan.Path}; it runs {string.Join(" ", plan.Command)}.");
            WriteObject(new ClusterStartup(plan, home));
        }
    }
}
