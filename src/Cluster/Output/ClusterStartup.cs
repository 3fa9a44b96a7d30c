using System.Collections.Generic;
using System.Linq;
using Cluster.Client;

namespace Cluster
{
    /// <summary>What starts the Cluster host at boot or logon, as Register-ClusterStartup wrote it.</summary>
    public sealed class ClusterStartup
    {
        internal ClusterStartup(StartupPlan plan, string home)
        {
            Kind = plan.Kind;
            Scope = plan.Scope;
            Path = plan.Path;
            Home = home;
            Command = plan.Command.ToArray();
        }

        /// <summary>Systemd (a unit), Launchd (a property list) or ScheduledTask (a Task Scheduler task).</summary>
        public StartupKind Kind { get; }

        public StartupScope Scope { get; }

        /// <summary>The file written.</summary>
        public string Path { get; }

        /// <summary>The CLUSTER_HOME whose host it starts.</summary>
        public string Home { get; }

        /// <summary>The host's command line, as the service manager runs it (in the foreground).</summary>
        public IReadOnlyList<string> Command { get; }
    }
}
