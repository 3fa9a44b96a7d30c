using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>Checks a start request before anything is started, so a bad one leaves nothing behind.</summary>
internal static class StartSpecValidator
{
    public static void Validate(StartSpec spec)
    {
        AppName.Validate(spec.Name);
        if (spec.Mode is not (AppModes.Cluster or AppModes.Fork))
        {
            throw Invalid("InvalidMode", $"'{spec.Mode}' is not a mode. Use Cluster or Fork.", spec.Mode);
        }

        if (string.IsNullOrEmpty(spec.Script) || !Path.IsPathFullyQualified(spec.Script) || !File.Exists(spec.Script))
        {
            throw new ClusterException(
                "ScriptNotFound",
                ErrorCategories.ObjectNotFound,
                $"The script '{spec.Script}' does not exist. Give the path of the app's entry file (for example ./app.js).",
                spec.Script);
        }

        if (string.IsNullOrEmpty(spec.WorkingDirectory) || !Directory.Exists(spec.WorkingDirectory))
        {
            throw new ClusterException(
                "WorkingDirectoryNotFound",
                ErrorCategories.ObjectNotFound,
                $"The working directory '{spec.WorkingDirectory}' does not exist. Pass an existing folder as -WorkingDirectory.",
                spec.WorkingDirectory);
        }

        ValidateInstances(spec.Instances);
        if (spec.Scheduling is not (null or Scheduling.RoundRobin or Scheduling.Shared))
        {
            throw Invalid("InvalidScheduling", $"'{spec.Scheduling}' is not a scheduling policy. Use RoundRobin or Shared.", spec.Scheduling);
        }

        if (spec.Mode == AppModes.Fork && spec.Scheduling is not null)
        {
            throw Invalid("SchedulingNeedsCluster", "A scheduling policy applies to cluster mode only; leave out -Scheduling for a fork-mode app.", spec.Scheduling);
        }

        foreach (var (name, value) in new (string, int?)[]
        {
            ("ListenTimeout", spec.ListenTimeoutMs), ("KillTimeout", spec.KillTimeoutMs),
            ("MinUptime", spec.MinUptimeMs), ("RestartDelay", spec.RestartDelayMs), ("MaxRestarts", spec.MaxRestarts),
        })
        {
            if (value is < 0 or > Timeouts.MaxMilliseconds)
            {
                throw Invalid("ValueOutOfRange", $"-{name} must be between 0 and {Timeouts.MaxMilliseconds}; it was {value}.", name);
            }
        }
    }

    public static void ValidateInstances(int requested)
    {
        if (requested > InstanceCount.Max || requested < -InstanceCount.Max)
        {
            throw new ClusterException(
                "TooManyInstances",
                ErrorCategories.LimitsExceeded,
                $"{requested} instances is more than Cluster runs for one app (at most {InstanceCount.Max}). Use 0 for one per CPU, or a smaller number.",
                requested.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    private static ClusterException Invalid(string code, string message, string? target) =>
        new(code, ErrorCategories.InvalidArgument, message, target);
}
