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
            string when = Scope == StartupScope.User && kind != StartupKind.Systemd ? "logon" : "boot";

            // -WhatIf shows the whole file, as it would be written, from a plan that copies nothing yet.
            StartupPlan? planned = PlanFor(home, kind, create: false);
            if (planned is null)
            {
                return;
            }

            string action = $"Write the {Describe(kind)} that starts the Cluster host of {home} at {when}";
            if (!ShouldProcess(
                $"{action}: {planned.Path}{Environment.NewLine}{planned.Content}",
                $"{action}: {planned.Path}?",
                "Register-ClusterStartup"))
            {
                return;
            }

            StartupPlan? plan = PlanFor(home, kind, create: true);
            if (plan is null)
            {
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

        /// <summary>The file for this platform, running the host's runtime copy (made first unless <paramref name="create"/> is false); null after a terminating error.</summary>
        private StartupPlan? PlanFor(string home, StartupKind kind, bool create)
        {
            try
            {
                IReadOnlyList<string> command = HostLauncher.HostCommand(home, foreground: true, create);
                return StartupFiles.Plan(kind, Scope, home, command, UserName, HostLauncher.ModuleVersion);
            }
            catch (HostUnavailableException e)
            {
                ErrorCategory category = e.Code == "HostRuntimeCopyFailed" ? ErrorCategory.WriteError : ErrorCategory.NotInstalled;
                ThrowTerminatingError(new ErrorRecord(new InvalidOperationException(e.Message, e), ErrorIdPrefix + e.Code, category, e.Target ?? home));
                return null;
            }
        }
    }
}
