using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Changes a running app: scales it to a number of instances. Shrinking retires the highest NODE_APP_INSTANCE numbers gracefully.</summary>
    [Cmdlet(VerbsCommon.Set, "ClusterApp", SupportsShouldProcess = true)]
    [OutputType(typeof(App))]
    public sealed class SetClusterAppCommand : AppOperationCmdlet
    {
        /// <summary>The new number of instances: 0 = one per CPU, -1 = CPUs minus one, N = N.</summary>
        [Parameter(Mandatory = true)]
        [Alias("i")]
        public int Instances { get; set; }

        protected override string Action => $"Scale to {Instances} instances";

        internal override Request RequestFor(string name) => new Request { Command = CommandNames.Scale, Name = name, Instances = Instances };
    }
}
