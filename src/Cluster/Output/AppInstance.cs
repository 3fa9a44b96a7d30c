using System;
using Cluster.Protocol;

namespace Cluster
{
    /// <summary>One instance of an app (PowerShell type name Cluster.Instance): one NODE_APP_INSTANCE and the process serving it.</summary>
    public sealed class AppInstance
    {
        internal AppInstance(string appName, InstanceInfo info)
        {
            AppName = appName;
            Instance = info.Instance;
            Pid = info.Pid;
            Status = Enums.Parse(info.Status, InstanceStatus.Unknown);
            Restarts = info.Restarts;
            StartTime = info.StartTime?.LocalDateTime;
            MemoryBytes = info.MemoryBytes;
            CpuPercent = info.CpuPercent;
            LastExitCode = info.LastExitCode;
            LastSignal = info.LastSignal;
            Generation = info.Generation;
            Reason = info.Reason;
            LastRestartReason = info.LastRestartReason;
            LastRestartTime = info.LastRestartTime?.LocalDateTime;
            Uptime = info.StartTime is { } started && info.Pid is not null ? DateTimeOffset.Now - started : (TimeSpan?)null;
        }

        public string AppName { get; }

        /// <summary>Its NODE_APP_INSTANCE, kept across restarts and reloads.</summary>
        public int Instance { get; }

        public int? Pid { get; }

        public InstanceStatus Status { get; }

        public int Restarts { get; }

        public DateTime? StartTime { get; }

        public TimeSpan? Uptime { get; }

        public long MemoryBytes { get; }

        /// <summary>Share of one CPU core, in percent, over the last second (every instance sampled at the same moment).</summary>
        public double CpuPercent { get; }

        /// <summary>The exit code of its last process, once it has exited.</summary>
        public int? LastExitCode { get; }

        /// <summary>The signal that ended its last process, if one did.</summary>
        public string? LastSignal { get; }

        /// <summary>Which start of the app it runs: a reload or restart moves every instance to the next generation.</summary>
        public int Generation { get; }

        /// <summary>Why it is not online, when there is more to say than its status (a crash, a lost primary).</summary>
        public string? Reason { get; }

        /// <summary>Why its process was last replaced: a crash ("its process exited with code 1"), a reload, a restart asked for.</summary>
        public string? LastRestartReason { get; }

        /// <summary>When its process was last replaced.</summary>
        public DateTime? LastRestartTime { get; }

        public override string ToString() => $"{AppName}[{Instance}]";
    }
}
