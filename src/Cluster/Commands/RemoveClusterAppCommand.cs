using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Stops an app and forgets it. Its log files stay under CLUSTER_HOME.</summary>
    [Cmdlet(VerbsCommon.Remove, "ClusterApp", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    public sealed class RemoveClusterAppCommand : AppNameCmdlet
    {
        protected override void ProcessRecord()
        {
            foreach (string name in Names)
            {
                if (ShouldProcess(name, "Stop and remove the app"))
                {
                    Send(new Request { Command = CommandNames.Remove, Name = name });
                }
            }
        }
    }
}
