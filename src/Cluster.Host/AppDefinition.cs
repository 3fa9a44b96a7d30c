using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>Everything needed to run an app again, as saved in the state file.</summary>
internal sealed class AppDefinition
{
    public StartSpec Spec { get; set; } = new();

    /// <summary>The Node executable that runs the app's primary (and so its workers).</summary>
    public string NodePath { get; set; } = "";

    public DateTimeOffset Created { get; set; }

    /// <summary>The state the user asked for: a stopped app stays stopped across host restarts.</summary>
    public bool Stopped { get; set; }

    /// <summary>
    /// Set while a reload runs and kept when one stops early, so that the app (also under a later host) says it
    /// is partly reloaded until a reload completes.
    /// </summary>
    public string? PartialReload { get; set; }

    public string Name => Spec.Name;

    public bool IsCluster => Spec.Mode == AppModes.Cluster;

    public RestartPolicy RestartPolicy => new(
        Spec.AutoRestart,
        Spec.MaxRestarts ?? RestartPolicy.DefaultMaxRestarts,
        Spec.MinUptimeMs is { } minUptime ? TimeSpan.FromMilliseconds(minUptime) : RestartPolicy.DefaultMinUptime,
        Spec.RestartDelayMs is { } delay ? TimeSpan.FromMilliseconds(delay) : RestartPolicy.DefaultRestartDelay);
}

internal sealed class SavedState
{
    public List<AppDefinition> Apps { get; set; } = new();
}
