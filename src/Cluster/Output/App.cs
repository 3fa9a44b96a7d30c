using System;
using System.Linq;
using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster
{
    /// <summary>An app the Cluster host runs, as it was when the cmdlet asked.</summary>
    public sealed class App
    {
        internal App(AppInfo info)
        {
            Name = info.Name;
            Mode = Enums.Parse(info.Mode, AppMode.Cluster);
            Script = info.Script;
            Arguments = info.Arguments.ToArray();
            NodeArguments = info.NodeArguments.ToArray();
            WorkingDirectory = info.WorkingDirectory;
            Status = Enums.Parse(info.Status, AppStatus.Unknown);
            Scheduling = info.Scheduling is null ? (SchedulingPolicy?)null : Enums.Parse(info.Scheduling, SchedulingPolicy.RoundRobin);
            ReloadError = info.ReloadError;
            Created = info.Created.LocalDateTime;
            Instances = info.Instances.Select(i => Instance.Wrap(new AppInstance(info.Name, i))).ToArray();
            AppDetails details = info.Details ?? new AppDetails();
            NodePath = details.NodePath;
            AutoRestart = details.AutoRestart;
            MaxRestarts = details.MaxRestarts;
            MinUptime = TimeSpan.FromMilliseconds(details.MinUptimeMs);
            RestartDelay = TimeSpan.FromMilliseconds(details.RestartDelayMs);
            ListenTimeout = TimeSpan.FromMilliseconds(details.ListenTimeoutMs);
            KillTimeout = TimeSpan.FromMilliseconds(details.KillTimeoutMs);
            GracefulTimeout = TimeSpan.FromMilliseconds(details.GracefulTimeoutMs);
            MaxMemoryBytes = details.MaxMemoryBytes;
            LogMaxSize = details.LogMaxBytes;
            LogFileCount = details.LogFileCount;
            Drain = details.Drain;
            Sticky = details.Sticky;
            EnvironmentNames = details.EnvironmentNames.ToArray();
            OutLogs = details.OutLogs.ToArray();
            ErrorLogs = details.ErrorLogs.ToArray();
            InstanceInfo? lastRestart = info.Instances.Where(i => i.LastRestartTime is not null).OrderBy(i => i.LastRestartTime).LastOrDefault();
            LastRestartReason = lastRestart is null ? null : $"instance {lastRestart.Instance}: {lastRestart.LastRestartReason}";
            LastRestartTime = lastRestart?.LastRestartTime?.LocalDateTime;
            Generation = info.Instances.Count == 0 ? 0 : info.Instances.Max(i => i.Generation);
            Started = info.Instances.Where(i => i.StartTime is not null && i.Pid is not null).Select(i => (DateTime?)i.StartTime!.Value.LocalDateTime).Min();
        }

        public string Name { get; }

        public AppMode Mode { get; }

        public string Script { get; }

        public string[] Arguments { get; }

        public string[] NodeArguments { get; }

        public string WorkingDirectory { get; }

        public AppStatus Status { get; }

        /// <summary>The scheduling policy of a cluster-mode app; none for fork mode.</summary>
        public SchedulingPolicy? Scheduling { get; }

        /// <summary>Why the last reload failed; empty once a reload succeeds.</summary>
        public string? ReloadError { get; }

        public DateTime Created { get; }

        /// <summary>When the longest-running instance's process started; null when none runs.</summary>
        public DateTime? Started { get; }

        /// <summary>Which start of the app runs: each reload or restart moves the instances to the next one.</summary>
        public int Generation { get; }

        /// <summary>The Node.js executable that runs the app.</summary>
        public string NodePath { get; }

        /// <summary>Whether an instance that exits on its own is started again.</summary>
        public bool AutoRestart { get; }

        /// <summary>How many unstable restarts in a row an instance gets before it is left errored.</summary>
        public int MaxRestarts { get; }

        /// <summary>A run shorter than this is an unstable one.</summary>
        public TimeSpan MinUptime { get; }

        /// <summary>How long after an exit an instance is started again (growing with unstable restarts).</summary>
        public TimeSpan RestartDelay { get; }

        /// <summary>How long a new instance gets to become ready.</summary>
        public TimeSpan ListenTimeout { get; }

        /// <summary>How long an instance gets after SIGINT before it is killed.</summary>
        public TimeSpan KillTimeout { get; }

        /// <summary>How long an instance gets after the 'shutdown' message before it is killed.</summary>
        public TimeSpan GracefulTimeout { get; }

        /// <summary>The memory past which an instance is replaced; null for no limit.</summary>
        public long? MaxMemoryBytes { get; }

        /// <summary>The size in bytes past which a log file is rotated (0: never).</summary>
        public long LogMaxSize { get; }

        /// <summary>How many rotated files of each log are kept.</summary>
        public int LogFileCount { get; }

        /// <summary>Whether the instances run with the drain preload (Connection: close while they retire).</summary>
        public bool Drain { get; }

        /// <summary>Whether each client reaches the same instance (sticky sessions, by the client's address).</summary>
        public bool Sticky { get; }

        /// <summary>The names of the app's environment variables; their values are never shown.</summary>
        public string[] EnvironmentNames { get; }

        /// <summary>Each instance's stdout log file.</summary>
        public string[] OutLogs { get; }

        /// <summary>Each instance's stderr log file.</summary>
        public string[] ErrorLogs { get; }

        /// <summary>Why a process of the app was last replaced, and which instance's: a crash, a reload, a restart asked for.</summary>
        public string? LastRestartReason { get; }

        /// <summary>When a process of the app was last replaced.</summary>
        public DateTime? LastRestartTime { get; }

        /// <summary>The instances (type name Cluster.Instance), by NODE_APP_INSTANCE.</summary>
        public PSObject[] Instances { get; }

        public int InstanceCount => Instances.Length;

        public int OnlineCount => Instances.Count(i => ((AppInstance)i.BaseObject).Status == InstanceStatus.Online);

        public int Restarts => Instances.Sum(i => ((AppInstance)i.BaseObject).Restarts);

        public long MemoryBytes => Instances.Sum(i => ((AppInstance)i.BaseObject).MemoryBytes);

        public double CpuPercent => Math.Round(Instances.Sum(i => ((AppInstance)i.BaseObject).CpuPercent), 1);

        /// <summary>How long the longest-running instance has been up.</summary>
        public TimeSpan? Uptime => Instances.Select(i => ((AppInstance)i.BaseObject).Uptime).Max();

        public override string ToString() => Name;
    }

    /// <summary>Gives instance objects their PowerShell type name, Cluster.Instance.</summary>
    internal static class Instance
    {
        public const string TypeName = "Cluster.Instance";

        public static PSObject Wrap(AppInstance instance)
        {
            var wrapped = new PSObject(instance);
            wrapped.TypeNames.Insert(0, TypeName);
            return wrapped;
        }
    }

    internal static class Enums
    {
        /// <summary>Reads a status the host sent; one this module does not know is never taken for another.</summary>
        public static T Parse<T>(string value, T unknown)
            where T : struct => Enum.TryParse(value, ignoreCase: true, out T parsed) && Enum.IsDefined(typeof(T), parsed) ? parsed : unknown;
    }
}
