using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Stops an app and forgets it. Its log files stay under CLUSTER_HOME.</summary>
    [Cmdlet(VerbsCommon.Remove, "ClusterApp", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = StopSpecs.Plain)]
    public sealed class RemoveClusterAppCommand : AppNameCmdlet
    {
        /// <summary>Send each instance the 'shutdown' message first (as Invoke-ClusterGracefulReload does), and kill it only if it has not exited within the graceful timeout.</summary>
        [Parameter(Mandatory = true, ParameterSetName = StopSpecs.WithMessage)]
        public SwitchParameter ShutdownWithMessage { get; set; }

        /// <summary>Milliseconds an instance gets after 'shutdown' before it is killed (default: PM2_GRACEFUL_TIMEOUT, else 4000).</summary>
        [Parameter(ParameterSetName = StopSpecs.WithMessage)]
        [ValidateRange(0, 86400000)]
        public int GracefulTimeout { get; set; }

        /// <summary>Milliseconds an instance gets after SIGINT before it is killed (default: the app's -KillTimeout, else 1600).</summary>
        [Parameter(ParameterSetName = StopSpecs.Plain)]
        [ValidateRange(0, 86400000)]
        public int KillTimeout { get; set; }

        protected override void ProcessRecord()
        {
            foreach (string name in Names)
            {
                if (ShouldProcess(name, StopSpecs.Describe(ShutdownWithMessage, "Stop and remove the app")))
                {
                    Send(new Request
                    {
                        Command = CommandNames.Remove,
                        Name = name,
                        Stop = StopSpecs.From(this, ShutdownWithMessage, nameof(GracefulTimeout), nameof(KillTimeout)),
                    });
                }
            }
        }
    }
}
