using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Reloads an app without downtime, sending each old instance the 'shutdown' message so it can close its connections before it exits.</summary>
    [Cmdlet(VerbsLifecycle.Invoke, "ClusterGracefulReload", SupportsShouldProcess = true)]
    [OutputType(typeof(App))]
    public sealed class InvokeClusterGracefulReloadCommand : ReloadCmdlet
    {
        /// <summary>Milliseconds an old instance gets after 'shutdown' before it is killed (default: PM2_GRACEFUL_TIMEOUT, else 4000).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int GracefulTimeout { get; set; }

        internal override bool Graceful => true;

        internal override void AddTimeouts(ReloadSpec spec) => spec.GracefulTimeoutMs = Bound(nameof(GracefulTimeout));
    }
}
