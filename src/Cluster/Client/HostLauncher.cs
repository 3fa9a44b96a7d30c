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

        /// <summary>The host's exit code when CLUSTER_HOME or a file in it is not safe; its stderr says which and why.</summary>
        private const int ExitUnsafeHome = 4;

        private static readonly TimeSpan FirstTry = TimeSpan.FromMilliseconds(250);
        private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

        public static string ModuleDirectory => Path.GetDirectoryName(typeof(HostLauncher).Assembly.Location) ?? ".";

        public static string Home => ClusterHome.Resolve(Environment.GetEnvironmentVariable(ClusterHome.HomeVariable));

        public static string HostLog => ClusterHome.HostLogOf(Home);

        /// <summary>The pid the running host wrote to CLUSTER_HOME/host.pid, or null when there is none to read.</summary>
        public static int? RecordedHostPid()
        {
            try
            {
                string text = File.ReadAllText(Path.Combine(Home, ClusterHome.HostPidRecord)).Trim();
                return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int pid) && pid > 0 ? pid : (int?)null;
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                return null;
            }
        }

        /// <summary>
        /// Whether a host holds the lock of this CLUSTER_HOME, so that the pid it recorded is its own (a host
        /// that was killed leaves its host.pid behind, and the pid may be another process's by now).
        /// </summary>
        public static bool HostHoldsLock()
        {
            try
            {
                using (new FileStream(Path.Combine(Home, ClusterHome.HostLockFile), FileMode.Open, FileAccess.Read, FileShare.None))
                {
                    return false;
                }
            }
            catch (Exception e) when (e is FileNotFoundException || e is DirectoryNotFoundException || e is UnauthorizedAccessException)
            {
                return false;
            }
            catch (IOException)
            {
                return true;
            }
        }

        /// <summary>Whether a Node primary of this CLUSTER_HOME may be running without a host (the host died).</summary>
        public static bool HasRunningPrimaries()
        {
            string folder = Path.Combine(Home, "primaries");
            return Directory.Exists(folder) && Directory.GetFiles(folder, "*.primary").Length > 0;
        }

        public static HostConnection? TryConnect() => TryConnect(Home);

        public static HostConnection Connect(CancellationToken cancel)
        {
            string home = Home;
            HostConnection? connection = TryConnect(home);
            if (connection is not null)
            {
                return connection;
            }

            using Process host = Start(home);
            var waited = Stopwatch.StartNew();
            while (waited.Elapsed < StartTimeout)
            {
                cancel.ThrowIfCancellationRequested();
                // Read again each time: a host that starts records its private socket folder, when it needs one.
                connection = TryConnect(home);
                if (connection is not null)
                {
                    return connection;
                }

                if (host.HasExited && host.ExitCode == ExitUnsafeHome)
                {
                    string[] said = host.StandardError.ReadToEnd().Split(new[] { '\n' }, 2);
                    string path = said[0].Trim();
                    string reason = said.Length > 1 ? said[1].Trim() : "CLUSTER_HOME is not safe to use.";
                    throw new HostUnavailableException("The Cluster host refused to start: " + reason, "HostUnsafePath", path);
                }

                if (host.HasExited && host.ExitCode != ExitAlreadyRunning)
                {
                    throw new HostUnavailableException(
                        $"The Cluster host exited with code {host.ExitCode} as it started. Its log is {ClusterHome.HostLogOf(home)}.");
                }
            }

            throw new HostUnavailableException(
                $"The Cluster host did not answer within {StartTimeout.TotalSeconds} seconds of starting. Its log is {ClusterHome.HostLogOf(home)}.");
        }

        private static HostConnection? TryConnect(string home)
        {
            string? endpoint = ClusterHome.FindEndpoint(home);
            if (endpoint is null)
            {
                Thread.Sleep(FirstTry); // no host has recorded its socket folder yet
                return null;
            }

            return HostConnection.TryConnect(endpoint, FirstTry);
        }

        /// <summary>Creates CLUSTER_HOME owner only (the host refuses one that others may write to).</summary>
        private static void CreateHome(string home)
        {
            if (Directory.Exists(home))
            {
                return;
            }

            string? parent = Path.GetDirectoryName(home);
            if (parent is not null)
            {
                Directory.CreateDirectory(parent);
            }

            if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
            {
                Directory.CreateDirectory(home);
            }
            else if (mkdir(home, Convert.ToUInt32("700", 8)) != 0 && !Directory.Exists(home))
            {
                throw new HostUnavailableException($"Could not create CLUSTER_HOME {home} (error {Marshal.GetLastWin32Error()}).");
            }
        }

        [DllImport("libc", SetLastError = true)]
        private static extern int mkdir([MarshalAs(UnmanagedType.LPStr)] string path, uint mode);

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

            CreateHome(home);
            // The host must not hold on to this session's console or pipes: it outlives the session.
            start.UseShellExecute = false;
            start.CreateNoWindow = true;
            start.RedirectStandardInput = true;
            start.RedirectStandardOutput = true;
            start.RedirectStandardError = true;
            start.WorkingDirectory = home;
            // A small gen0 budget (the default is sized by the CPU cache, 20 MB and more here): memory a burst of
            // connections or requests used goes back to where it was instead of staying at the budget.
            start.Environment["DOTNET_GCgen0size"] = "200000"; // hexadecimal: 2 MB
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
        public HostUnavailableException(string message, string code = "HostUnavailable", string? target = null)
            : base(message)
        {
            Code = code;
            Target = target;
        }

        /// <summary>The error id's code: HostUnavailable, or HostUnsafePath when CLUSTER_HOME is not safe.</summary>
        public string Code { get; }

        /// <summary>The path the error is about, when there is one.</summary>
        public string? Target { get; }
    }
}
