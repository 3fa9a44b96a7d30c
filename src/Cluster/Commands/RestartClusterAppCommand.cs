using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Stops every instance of an app and starts it again (with downtime; Invoke-ClusterReload has none). Starts a stopped app.</summary>
    [Cmdlet(VerbsLifecycle.Restart, "ClusterApp", SupportsShouldProcess = true, DefaultParameterSetName = StopSpecs.Plain)]
    [OutputType(typeof(App))]
    public sealed class RestartClusterAppCommand : AppOperationCmdlet
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

        protected override string Action => StopSpecs.Describe(ShutdownWithMessage, "Stop and start every instance");

        internal override Request RequestFor(string name) => new Request
        {
            Command = CommandNames.Restart,
            Name = name,
            Stop = StopSpecs.From(this, ShutdownWithMessage, nameof(GracefulTimeout), nameof(KillTimeout)),
        };
    }
}
