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
