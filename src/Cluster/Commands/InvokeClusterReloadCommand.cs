using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Reloads an app without downtime: each instance is replaced by a new one that is ready before the old one is retired.</summary>
    [Cmdlet(VerbsLifecycle.Invoke, "ClusterReload", SupportsShouldProcess = true)]
    [OutputType(typeof(App))]
    public sealed class InvokeClusterReloadCommand : ReloadCmdlet
    {
        /// <summary>Milliseconds an old instance gets to finish after SIGINT before it is killed (default 1600).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int KillTimeout { get; set; }

        internal override bool Graceful => false;

        internal override void AddTimeouts(ReloadSpec spec) => spec.KillTimeoutMs = Bound(nameof(KillTimeout));
    }
}
