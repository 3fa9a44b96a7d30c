using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Stops every instance of an app; the app stays defined and Restart-ClusterApp starts it again.</summary>
    [Cmdlet(VerbsLifecycle.Stop, "ClusterApp", SupportsShouldProcess = true)]
    [OutputType(typeof(App))]
    public sealed class StopClusterAppCommand : AppOperationCmdlet
    {
        protected override string Action => "Stop every instance";

        internal override Request RequestFor(string name) => new Request { Command = CommandNames.Stop, Name = name };
    }
}
