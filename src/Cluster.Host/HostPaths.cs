using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>The files of one host: everything lives under CLUSTER_HOME, its runtime copy included.</summary>
internal sealed class HostPaths
{
    public HostPaths(string home, string moduleDirectory)
    {
        Home = home;
        ModuleDirectory = moduleDirectory;
    }

    public string Home { get; }

    /// <summary>
    /// The folder holding primary.js and drain.js: the host's runtime copy (CLUSTER_HOME/runtime/&lt;version&gt;/),
    /// never the module folder, which may be upgraded or removed under running apps.
    /// </summary>
    public string ModuleDirectory { get; }

    public string Logs => Path.Combine(Home, "logs");

    public string HostLog => ClusterHome.HostLogOf(Home);

    public string StateFile => Path.Combine(Home, "state.json");

    public string LockFile => Path.Combine(Home, ClusterHome.HostLockFile);

    /// <summary>The running host's pid, for clients that must name or stop a host that does not answer.</summary>
    public string PidFile => Path.Combine(Home, ClusterHome.HostPidRecord);

    /// <summary>The runtime copies of the host, one folder per version.</summary>
    public string Runtime => Path.Combine(Home, "runtime");

    /// <summary>The private folder of the sockets when CLUSTER_HOME is too long to hold them (null: they are in it).</summary>
    public string? SocketFolder { get; set; }

    public string Endpoint => ClusterHome.EndpointFor(Home, SocketFolder);

    /// <summary>A file per running Node primary, naming its endpoint, so that a new host can find it.</summary>
    public string Primaries => Path.Combine(Home, "primaries");

    public string PrimaryScript => Path.Combine(ModuleDirectory, "primary.js");

    public string DrainScript => Path.Combine(ModuleDirectory, "drain.js");

    /// <summary>The preload that has a sticky app's listens accepted by the primary, and serves the connections it hands over.</summary>
    public string StickyScript => Path.Combine(ModuleDirectory, "sticky.js");

    /// <summary>The preload that holds an app's listen back until its HTTP check passed on a loopback port of its own.</summary>
    public string HealthScript => Path.Combine(ModuleDirectory, "health.js");

    public string OutLog(string app, int instance) => Path.Combine(Logs, $"{app}-{instance}.out.log");

    public string ErrorLog(string app, int instance) => Path.Combine(Logs, $"{app}-{instance}.err.log");

    /// <summary>The instances that have a log file of either stream (current or rotated) in the logs folder, in order.</summary>
    public IReadOnlyList<int> LoggedInstances(string app)
    {
        if (!Directory.Exists(Logs))
        {
            return Array.Empty<int>();
        }

        var instances = new SortedSet<int>();
        string prefix = app + "-";
        foreach (string file in Directory.EnumerateFiles(Logs, prefix + "*"))
        {
            string name = Path.GetFileName(file);
            int dot = name.IndexOf(".", prefix.Length, StringComparison.Ordinal);
            if (dot > prefix.Length
                && int.TryParse(name.AsSpan(prefix.Length, dot - prefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int instance)
                && (name.AsSpan(dot).StartsWith(".out.log", StringComparison.Ordinal) || name.AsSpan(dot).StartsWith(".err.log", StringComparison.Ordinal)))
            {
                instances.Add(instance);
            }
        }

        return instances.ToArray();
    }

    /// <summary>The files of one instance log: the current one and the rotated ones (path.1, path.2, ...) that are there.</summary>
    public static IEnumerable<string> RotatedFiles(string log)
    {
        string? folder = Path.GetDirectoryName(log);
        if (folder is null || !Directory.Exists(folder))
        {
            return Array.Empty<string>();
        }

        string prefix = Path.GetFileName(log) + ".";
        return Directory.EnumerateFiles(folder, prefix + "*")
            .Where(f => Path.GetFileName(f).Length > prefix.Length && Path.GetFileName(f).AsSpan(prefix.Length).IndexOfAnyExceptInRange('0', '9') < 0);
    }

    /// <summary>Creates the folders (owner only) that are missing, and checks those that are there (StrictModes).</summary>
    public IReadOnlyList<string> EnsureFolders() => StrictModes.Secure(this);
}
