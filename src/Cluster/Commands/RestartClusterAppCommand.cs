using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Stops every instance of an app and starts it again (with downtime; Invoke-ClusterReload has none). Starts a stopped app.</summary>
    [Cmdlet(VerbsLifecycle.Restart, "ClusterApp", SupportsShouldProcess = true)]
    [OutputType(typeof(App))]
    public sealed class RestartClusterAppCommand : AppOperationCmdlet
    {
        protected override string Action => "Stop and start every instance";

        internal override Request RequestFor(string name) => new Request { Command = CommandNames.Restart, Name = name };
    }
}
