using System;

namespace Cluster
{
    /// <summary>The background host that runs the apps of one user and CLUSTER_HOME.</summary>
    public sealed class ClusterHost
    {
        internal ClusterHost(Protocol.HostInfo info)
        {
            Pid = info.Pid;
            Version = info.Version;
            StartTime = info.StartTime.LocalDateTime;
            Uptime = DateTimeOffset.Now - info.StartTime;
            Home = info.Home;
            Endpoint = info.Endpoint;
            AppCount = info.AppCount;
            MemoryBytes = info.MemoryBytes;
            StateProblem = info.StateProblem;
            Runtime = info.Runtime;
        }

        public int Pid { get; }

        public string Version { get; }

        public DateTime StartTime { get; }

        public TimeSpan Uptime { get; }

        /// <summary>CLUSTER_HOME: where the host keeps its state, logs and endpoint.</summary>
        public string Home { get; }

        public string Endpoint { get; }

        public int AppCount { get; }

        public long MemoryBytes { get; }

        /// <summary>
        /// What is wrong with the state file, or was when the host started (moved aside as corrupt, recovered from its
        /// backup, apps taken back from their running workers), and what the host did about it; null when nothing is.
        /// </summary>
        public string? StateProblem { get; }
        /// <summary>The folder the host runs from: its runtime copy, CLUSTER_HOME/runtime/&lt;version&gt;.</summary>
        public string Runtime { get; }
    }
}
