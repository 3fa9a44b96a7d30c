using System;
using System.IO;
using System.Management.Automation;
using System.Runtime.InteropServices;
using Cluster.Client;

namespace Cluster.Commands
{
    /// <summary>What Register-ClusterStartup and Unregister-ClusterStartup share: the scope, the file, the errors.</summary>
    public abstract class StartupCmdlet : PSCmdlet
    {
        /// <summary>User: the current user's start-up (systemd --user unit, LaunchAgent, task at logon). System: the machine's (system unit, LaunchDaemon, task at boot); needs administrator rights.</summary>
        [Parameter]
        public StartupScope Scope { get; set; } = StartupScope.User;

        protected string ErrorIdPrefix => MyInvocation.MyCommand.Name.Replace("-", "");

        internal static StartupKind Kind => StartupFiles.KindForThisPlatform();

        internal static string UserName =>
            RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? Environment.UserDomainName + "\\" + Environment.UserName : Environment.UserName;

        internal static string Describe(StartupKind kind) => kind switch
        {
            StartupKind.Systemd => "systemd unit",
            StartupKind.Launchd => "launchd property list",
            _ => "scheduled task",
        };

        internal ErrorRecord FileError(Exception e, string path, string doing)
        {
            if (e is UnauthorizedAccessException)
            {
                return new ErrorRecord(
                    new UnauthorizedAccessException($"Could not {doing} {path}: permission denied. -Scope System needs administrator rights (run PowerShell as root or as Administrator); -Scope User does not.", e),
                    ErrorIdPrefix + "AccessDenied",
                    ErrorCategory.PermissionDenied,
                    path);
            }

            return new ErrorRecord(new IOException($"Could not {doing} {path}: {e.Message}", e), ErrorIdPrefix + "WriteFailed", ErrorCategory.WriteError, path);
        }
    }
}
