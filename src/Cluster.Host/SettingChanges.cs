using System.Globalization;
using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>
/// What differs between an app's settings and the ones asked for, setting by setting, named as Start-ClusterApp's
/// parameters are. Environment variables are listed by name only: their values may be secrets.
/// </summary>
internal static class SettingChanges
{
    public const string Mode = "Mode";
    public const string SchedulingSetting = "Scheduling";
    public const string Sticky = "Sticky";

    /// <summary>Settings that a rolling reload cannot change: the app's primary would have to change with them.</summary>
    public static readonly IReadOnlyList<string> NeedRestart = new[] { Mode, SchedulingSetting };

    /// <summary>
    /// Settings that a running app cannot change: its old and new instances would need its port in two ways at once.
    /// A stopped app has no instance holding the port, and any primary serves both, so it takes them for its next start.
    /// </summary>
    public static readonly IReadOnlyList<string> NeedStopped = new[] { Sticky };

    private const string Default = "(default)";

    public static IReadOnlyList<SettingChange> Between(StartSpec current, StartSpec wanted)
    {
        var changes = new List<SettingChange>();
        void Compare(string setting, string? from, string? to)
        {
            if (!string.Equals(from, to, StringComparison.Ordinal))
            {
                changes.Add(new SettingChange { Setting = setting, From = from ?? Default, To = to ?? Default });
            }
        }

        Compare("Path", current.Script, wanted.Script);
        Compare(Mode, current.Mode, wanted.Mode);
        Compare(UpdateEffects.Instances, Text(current.Instances), Text(wanted.Instances));
        Compare("Arguments", List(current.Arguments), List(wanted.Arguments));
        Compare("NodeArguments", List(current.NodeArguments), List(wanted.NodeArguments));
        Compare("WorkingDirectory", current.WorkingDirectory, wanted.WorkingDirectory);
        Compare("ListenTimeout", Text(current.ListenTimeoutMs), Text(wanted.ListenTimeoutMs));
        Compare("KillTimeout", Text(current.KillTimeoutMs), Text(wanted.KillTimeoutMs));
        Compare(SchedulingSetting, SchedulingOf(current), SchedulingOf(wanted));
        Compare("NoDrain", Text(!current.Drain), Text(!wanted.Drain));
        Compare("NoAutoRestart", Text(!current.AutoRestart), Text(!wanted.AutoRestart));
        Compare("MaxRestarts", Text(current.MaxRestarts), Text(wanted.MaxRestarts));
        Compare("MinUptime", Text(current.MinUptimeMs), Text(wanted.MinUptimeMs));
        Compare("RestartDelay", Text(current.RestartDelayMs), Text(wanted.RestartDelayMs));
        Compare("MaxMemoryRestart", Text(current.MaxMemoryBytes), Text(wanted.MaxMemoryBytes));
        Compare("LogMaxSize", Text(current.LogMaxBytes), Text(wanted.LogMaxBytes));
        Compare("LogFileCount", Text(current.LogFileCount), Text(wanted.LogFileCount));
        Compare("WaitReady", Text(current.WaitReady), Text(wanted.WaitReady));
        Compare("HealthCheckPath", Blank(current.HealthCheckPath), Blank(wanted.HealthCheckPath));
        Compare("HealthCheckCommand", Blank(current.HealthCheckCommand), Blank(wanted.HealthCheckCommand));
        Compare("HealthCheckTimeout", Text(current.HealthCheckTimeoutMs), Text(wanted.HealthCheckTimeoutMs));
        Compare("LivenessInterval", Text(current.LivenessIntervalMs), Text(wanted.LivenessIntervalMs));
        Compare("LivenessFailures", Text(current.LivenessFailures), Text(wanted.LivenessFailures));
        Compare("StabilityWindow", Text(current.StabilityWindowMs), Text(wanted.StabilityWindowMs));
        Compare(Sticky, Text(current.Sticky), Text(wanted.Sticky));

        // Restart controls, and how each instance is started
        Compare("StopExitCodes", Codes(current.StopExitCodes), Codes(wanted.StopExitCodes));
        Compare("CleanEnvironment", Text(current.CleanEnvironment), Text(wanted.CleanEnvironment));
        Compare("InstanceVariable", current.InstanceVariable, wanted.InstanceVariable);
        Compare("IncrementVariable", current.IncrementVariable, wanted.IncrementVariable);
        Compare("Interpreter", current.Interpreter, wanted.Interpreter);
        Compare("CronRestart", current.CronRestart, wanted.CronRestart);
        Compare("Watch", Text(current.Watch), Text(wanted.Watch));
        Compare("WatchIgnore", current.WatchIgnore is { Count: > 0 } a ? List(a) : null, wanted.WatchIgnore is { Count: > 0 } b ? List(b) : null);
        Compare("WatchDelay", Text(current.WatchDelayMs), Text(wanted.WatchDelayMs));
        foreach (string name in current.Environment.Keys.Union(wanted.Environment.Keys, StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            bool had = current.Environment.TryGetValue(name, out string? before);
            bool has = wanted.Environment.TryGetValue(name, out string? after);
            if (had != has || !string.Equals(before, after, StringComparison.Ordinal))
            {
                changes.Add(new SettingChange
                {
                    Setting = $"Environment.{name}",
                    From = had ? "(set)" : "(not set)",
                    To = has ? (had ? "(changed)" : "(set)") : "(removed)",
                });
            }
        }

        return changes;
    }

    /// <summary>The policy in effect: leaving it out means the platform's default, which is no change.</summary>
    private static string? SchedulingOf(StartSpec spec) => spec.Mode == AppModes.Cluster ? Scheduling.Of(spec) : null;

    private static string? Text(int? value) => value?.ToString(CultureInfo.InvariantCulture);

    private static string? Text(long? value) => value?.ToString(CultureInfo.InvariantCulture);

    private static string Text(bool value) => value ? "True" : "False";

    private static string? Blank(string? value) => string.IsNullOrEmpty(value) ? null : value;
    private static string? Codes(List<int>? codes) => codes is { Count: > 0 } ? string.Join(" ", codes.Select(c => c.ToString(CultureInfo.InvariantCulture))) : null;

    private static string List(IReadOnlyList<string> values) => values.Count == 0 ? "(none)" : string.Join(" ", values.Select(v => v.Contains(' ', StringComparison.Ordinal) ? $"'{v}'" : v));
}
