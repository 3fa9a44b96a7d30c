using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Cluster.Host;

/// <summary>Finds the Node executable an app runs with and checks that it can run a cluster.</summary>
internal static partial class NodeRuntime
{
    /// <summary>The oldest Node that runs Cluster's primary and drain preload (cluster.setupPrimary, closeIdleConnections).</summary>
    public const int MinimumMajorVersion = 18;

    /// <summary>The Node executable of an app, found on the PATH it runs with (see <see cref="SearchEnvironment"/>).</summary>
    public static string Resolve(Cluster.Protocol.StartSpec spec) => Resolve(SearchEnvironment(spec));

    /// <summary>
    /// The environment whose PATH finds an app's programs (Node, an interpreter): its own, or, for an app with a clean
    /// environment that gives no PATH, the host's.
    /// </summary>
    public static IReadOnlyDictionary<string, string> SearchEnvironment(Cluster.Protocol.StartSpec spec) =>
        spec.CleanEnvironment && Lookup(spec.Environment, "PATH") is null && Environment.GetEnvironmentVariable("PATH") is { } hostPath
            ? new Dictionary<string, string> { ["PATH"] = hostPath }
            : spec.Environment;

    public static string Resolve(IReadOnlyDictionary<string, string> environment)
    {
        string? path = FindProgram("node", environment);
        if (path is null)
        {
            throw new ClusterException(
                "NodeNotFound",
                ErrorCategories.NotInstalled,
                $"Node.js was not found on the PATH the app runs with. Install Node.js {MinimumMajorVersion} or later and make sure 'node' is on PATH (or pass -Environment @{{ PATH = '...' }}).",
                "node");
        }

        string version = ReadVersion(path);
        Match match = VersionPattern().Match(version);
        if (!match.Success || int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) < MinimumMajorVersion)
        {
            throw new ClusterException(
                "NodeTooOld",
                ErrorCategories.NotInstalled,
                $"Node.js {(version.Length > 0 ? version : "of unknown version")} at '{path}' cannot run a Cluster app: cluster mode needs Node.js {MinimumMajorVersion} or later (Node 0.10 and other old versions lack it). Install a current Node.js LTS and put it first on PATH.",
                path);
        }

        return path;
    }

    /// <summary>A program by name, on the PATH of the environment; null when it is not there.</summary>
    public static string? FindProgram(string program, IReadOnlyDictionary<string, string> environment)
    {
        string? pathVariable = Lookup(environment, "PATH");
        if (string.IsNullOrEmpty(pathVariable))
        {
            return null;
        }

        string[] names = OperatingSystem.IsWindows() && !Path.HasExtension(program) ? new[] { program + ".exe", program + ".cmd" } : new[] { program };
        foreach (string folder in pathVariable.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (string name in names)
            {
                string candidate;
                try
                {
                    candidate = Path.Combine(folder.Trim('"'), name);
                }
                catch (ArgumentException)
                {
                    continue;
                }

                if (File.Exists(candidate) && IsExecutable(candidate))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    private static bool IsExecutable(string path) =>
        OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

    private static string? Lookup(IReadOnlyDictionary<string, string> environment, string name)
    {
        foreach (var (key, value) in environment)
        {
            if (string.Equals(key, name, OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal))
            {
                return value;
            }
        }

        return null;
    }

    private static string ReadVersion(string nodePath)
    {
        var start = new ProcessStartInfo(nodePath, "--version")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            CreateNoWindow = true,
        };
        try
        {
            using Process process = Process.Start(start)!;
            process.StandardInput.Close();
            string output = process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(10_000))
            {
                process.Kill();
                return "";
            }

            return output.Trim();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "";
        }
    }

    [GeneratedRegex(@"^v?(\d+)\.\d+")]
    private static partial Regex VersionPattern();
}
