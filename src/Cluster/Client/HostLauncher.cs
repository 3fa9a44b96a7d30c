using System;
using System.Diagnostics;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using Cluster.Protocol;

namespace Cluster.Client
{
    /// <summary>Finds the running host of a CLUSTER_HOME, or starts one, detached, and waits until it answers.</summary>
    internal static class HostLauncher
    {
        /// <summary>The host's exit code when another host already serves the same CLUSTER_HOME.</summary>
        private const int ExitAlreadyRunning = 3;

        private static readonly TimeSpan FirstTry = TimeSpan.FromMilliseconds(250);
        private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

        public static string ModuleDirectory => Path.GetDirectoryName(typeof(HostLauncher).Assembly.Location) ?? ".";

        public static string Home => ClusterHome.Resolve(Environment.GetEnvironmentVariable(ClusterHome.HomeVariable));

        /// <summary>Whether a Node primary of this CLUSTER_HOME may be running without a host (the host died).</summary>
        public static bool HasRunningPrimaries()
        {
            string folder = Path.Combine(Home, "primaries");
            return Directory.Exists(folder) && Directory.GetFiles(folder, "*.primary").Length > 0;
        }

        public static HostConnection? TryConnect() => HostConnection.TryConnect(ClusterHome.EndpointFor(Home), FirstTry);

        public static HostConnection Connect(CancellationToken cancel)
        {
            string home = Home;
            string endpoint = ClusterHome.EndpointFor(home);
            HostConnection? connection = HostConnection.TryConnect(endpoint, FirstTry);
            if (connection is not null)
            {
                return connection;
            }

            using Process host = Start(home);
            var waited = Stopwatch.StartNew();
            while (waited.Elapsed < StartTimeout)
            {
                cancel.ThrowIfCancellationRequested();
                connection = HostConnection.TryConnect(endpoint, FirstTry);
                if (connection is not null)
                {
                    return connection;
                }

                if (host.HasExited && host.ExitCode != ExitAlreadyRunning)
                {
                    throw new HostUnavailableException(
                        $"The Cluster host exited with code {host.ExitCode} as it started. Its log is {Path.Combine(home, "logs", "host.log")}.");
                }
            }

            throw new HostUnavailableException(
                $"The Cluster host did not answer within {StartTimeout.TotalSeconds} seconds of starting. Its log is {Path.Combine(home, "logs", "host.log")}.");
        }

        private static Process Start(string home)
        {
            string moduleDirectory = ModuleDirectory;
            string hostDirectory = Path.Combine(moduleDirectory, "host");
            string native = Path.Combine(hostDirectory, RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "cluster-host.exe" : "cluster-host");
            string managed = Path.Combine(hostDirectory, "cluster-host.dll");
            string arguments = Quote("--module") + " " + Quote(moduleDirectory) + " " + Quote("--home") + " " + Quote(home);
            ProcessStartInfo start;
            if (File.Exists(native))
            {
                start = new ProcessStartInfo(native, arguments);
            }
            else if (File.Exists(managed))
            {
                start = new ProcessStartInfo("dotnet", Quote(managed) + " " + arguments);
            }
            else
            {
                throw new HostUnavailableException($"The Cluster host is missing from the module folder ({hostDirectory}). Reinstall or rebuild the module.");
            }

            Directory.CreateDirectory(home);
            // The host must not hold on to this session's console or pipes: it outlives the session.
            start.UseShellExecute = false;
            start.CreateNoWindow = true;
            start.RedirectStandardInput = true;
            start.RedirectStandardOutput = true;
            start.RedirectStandardError = true;
            start.WorkingDirectory = home;
            return Process.Start(start) ?? throw new HostUnavailableException("The Cluster host could not be started.");
        }

        /// <summary>Quotes one argument for a command line (the rules of CommandLineToArgvW, which .NET also parses by).</summary>
        internal static string Quote(string argument)
        {
            if (argument.Length > 0 && argument.IndexOfAny(new[] { ' ', '\t', '\n', '"', '\\' }) < 0)
            {
                return argument;
            }

            var quoted = new StringBuilder("\"");
            int backslashes = 0;
            foreach (char c in argument)
            {
                if (c == '\\')
                {
                    backslashes++;
                    continue;
                }

                quoted.Append('\\', c == '"' ? (backslashes * 2) + 1 : backslashes);
                backslashes = 0;
                quoted.Append(c);
            }

            quoted.Append('\\', backslashes * 2);
            return quoted.Append('"').ToString();
        }
    }

    internal sealed class HostUnavailableException : Exception
    {
        public HostUnavailableException(string message)
            : base(message)
        {
        }
    }
}
