using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Gets the background host that runs the apps (starting it if it is not running).</summary>
    [Cmdlet(VerbsCommon.Get, "ClusterHost")]
    [OutputType(typeof(ClusterHost))]
    public sealed class GetClusterHostCommand : ClusterCmdlet
    {
        protected override void ProcessRecord()
        {
            if (Send(new Request { Command = CommandNames.HostInfo })?.Host is { } host)
            {
                WriteObject(new ClusterHost(host));
            }
        }
    }
}
