namespace Cluster
{
    /// <summary>Whose start-up a registration is: the user's (at logon, or at boot with lingering) or the machine's (at boot).</summary>
    public enum StartupScope
    {
        User,
        System,
    }

    /// <summary>What starts the host: a systemd unit (Linux), a launchd job (macOS), a Task Scheduler task (Windows).</summary>
    public enum StartupKind
    {
        Systemd,
        Launchd,
        ScheduledTask,
    }

    /// <summary>How an app's instances run.</summary>
    public enum AppMode
    {
        /// <summary>Node cluster workers sharing the app's port; reloads without downtime.</summary>
        Cluster,

        /// <summary>Separate processes (any executable); reload restarts them.</summary>
        Fork,
    }

    /// <summary>How a cluster shares incoming connections among its instances.</summary>
    public enum SchedulingPolicy
    {
        /// <summary>The primary accepts connections and hands them to instances in turn.</summary>
        RoundRobin,

        /// <summary>Instances accept from a shared socket; the operating system spreads connections.</summary>
        Shared,
    }

    public enum AppStatus
    {
        Online,
        Launching,
        Reloading,
        ReloadFailed,
        Stopping,
        Stopped,
        Errored,

        /// <summary>A reload stopped early (its caller went away, or the host stopped): instances run different generations.</summary>
        PartlyReloaded,

        /// <summary>The host reported a status this module does not know (a newer host).</summary>
        Unknown,
    }

    public enum InstanceStatus
    {
        Online,
        Launching,
        Stopping,
        Stopped,
        Errored,

        /// <summary>Its process exited; it is started again once the restart delay has passed.</summary>
        Backoff,

        /// <summary>The host reported a status this module does not know (a newer host).</summary>
        Unknown,
    }

    public enum LogStream
    {
        Out,
        Err,
    }
}
