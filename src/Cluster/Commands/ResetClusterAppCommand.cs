using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Sets the restart counts of an app's instances back to zero; nothing is stopped or started.</summary>
    [Cmdlet(VerbsCommon.Reset, "ClusterApp", SupportsShouldProcess = true)]
    [OutputType(typeof(App))]
    public sealed class ResetClusterAppCommand : AppOperationCmdlet
    {
        protected override string Action => "Set the restart count of every instance to 0";

        internal override Request RequestFor(string name) => new Request { Command = CommandNames.Reset, Name = name };
    }
}
