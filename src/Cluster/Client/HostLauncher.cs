using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
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

        /// <summary>How often a host that was just started is looked for while it has not made its endpoint yet.</summary>
        private static readonly TimeSpan StartingPoll = TimeSpan.FromMilliseconds(10);
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

        /// <summary>
        /// A connection to the host of CLUSTER_HOME, started if none runs. Versions are exchanged first: a host older
        /// than this module is asked to hand over (it exits, leaving its apps running, and the host started here takes
        /// them back), unless <paramref name="handOver"/> is false; a newer host is used as it is, with a warning.
        /// </summary>
        public static HostConnection Connect(CancellationToken cancel, TimeSpan readTimeout, Action<string>? warn = null, bool handOver = true)
        {
            string home = Home;
            HostConnection? connection = TryConnect(home);
            if (connection is not null)
            {
                connection = Handshake(home, connection, readTimeout, warn, handOver);
                if (connection is not null)
                {
                    return connection;
                }
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

                Thread.Sleep(StartingPoll);
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

        /// <summary>
        /// Asks the host its version (on the connection given, which it disposes). Returns a new connection to use, or
        /// null when there is no host any more: an older one handed over and exited, or the host went away. A host
        /// that does not answer in time throws <see cref="HostNotRespondingException"/>, one that answers with
        /// something else than a frame <see cref="HostProtocolException"/>, as the request itself would.
        /// </summary>
        private static HostConnection? Handshake(string home, HostConnection probe, TimeSpan readTimeout, Action<string>? warn, bool handOver)
        {
            HostInfo? running;
            using (probe)
            {
                running = Ask(probe, new Request { Command = CommandNames.HostInfo }, readTimeout)?.Host;
            }

            string mine = ModuleVersion;
            int order = CompareVersions(running?.Version, mine);
            if (running is not null && order > 0)
            {
                warn?.Invoke(
                    $"The Cluster host of {home} is version {running.Version}, newer than this module ({mine}). This session goes on with it, "
                    + $"but a newer host may refuse what this module asks or answer with less; import Cluster {running.Version} (Import-Module Cluster -RequiredVersion {running.Version}) to match it.");
            }

            if (running is null || order >= 0 || !handOver)
            {
                return TryConnect(home);
            }

            HostConnection? asking = TryConnect(home);
            if (asking is null)
            {
                return null;
            }

            Frame? reply;
            using (asking)
            {
                reply = Ask(asking, new Request { Command = CommandNames.Handover }, readTimeout);
            }

            if (reply?.Host is null)
            {
                string why = reply?.Error?.Message ?? "it did not answer";
                warn?.Invoke(
                    $"The Cluster host of {home} is version {running.Version}, older than this module ({mine}), and cannot hand its apps over ({why}). "
                    + $"This session goes on with the older host; to move the apps to the host of {mine}, run Stop-ClusterHost and then Restart-ClusterApp for each app.");
                return TryConnect(home);
            }

            WaitForExit(reply.Host.Pid, home);
            return null;
        }

        /// <summary>Sends one request and reads its frames to the last; null if the host closed the connection first.</summary>
        private static Frame? Ask(HostConnection connection, Request request, TimeSpan readTimeout)
        {
            try
            {
                connection.ReadTimeout = readTimeout;
                connection.Send(request);
                while (connection.Read() is { } frame)
                {
                    if (frame.Done)
                    {
                        return frame;
                    }
                }
            }
            catch (Exception e) when (e is IOException || e is ObjectDisposedException)
            {
            }

            return null;
        }

        private static void WaitForExit(int pid, string home)
        {
            try
            {
                using Process old = Process.GetProcessById(pid);
                if (!old.WaitForExit((int)StartTimeout.TotalMilliseconds))
                {
                    throw new HostUnavailableException(
                        $"The Cluster host (pid {pid}) agreed to hand over to this module's host but had not exited {StartTimeout.TotalSeconds} seconds later. Its log is {Path.Combine(home, "logs", "host.log")}.");
                }
            }
            catch (ArgumentException)
            {
                // It has exited already.
            }
        }

        /// <summary>Negative when <paramref name="host"/> is older than <paramref name="module"/>; 0 when either is not a version.</summary>
        internal static int CompareVersions(string? host, string module) =>
            Version.TryParse(host ?? "", out Version? left) && Version.TryParse(module, out Version? right) ? left.CompareTo(right) : 0;

        /// <summary>
        /// A connection to the host, or null at once when no host has made its endpoint (a socket is a file on Unix):
        /// waiting for a connection to a socket nobody made would only delay the start of a host.
        /// </summary>
        private static HostConnection? TryConnect(string home)
        {
            string? endpoint = ClusterHome.FindEndpoint(home);
            if (endpoint is null || (!RuntimeInformation.IsOSPlatform(OSPlatform.Windows) && !File.Exists(endpoint)))
            {
                return null;
            }

            return HostConnection.TryConnect(endpoint, FirstTry);
        }

        /// <summary>Creates CLUSTER_HOME owner only (the host refuses one that others may write to).</summary>
        internal static void CreateHome(string home)
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
            else if (Posix.mkdir(home, Posix.OwnerOnlyFolder) != 0 && !Directory.Exists(home))
            {
                throw new HostUnavailableException($"Could not create CLUSTER_HOME {home} (error {Marshal.GetLastWin32Error()}).");
            }
        }

        /// <summary>The module's version (the host's runtime copy is named for it).</summary>
        public static string ModuleVersion =>
            (typeof(HostLauncher).Assembly.GetCustomAttributes(typeof(AssemblyInformationalVersionAttribute), false).FirstOrDefault() as AssemblyInformationalVersionAttribute)
                ?.InformationalVersion.Split('+')[0] ?? "0.0.0";

        /// <summary>
        /// The host's command line: its runtime copy in CLUSTER_HOME (made on first use unless only planned), told to
        /// take the Node primary and the drain preload from that copy too. A framework-dependent host runs under dotnet.
        /// </summary>
        internal static IReadOnlyList<string> HostCommand(string home, bool foreground, bool create = true)
        {
            string moduleDirectory = ModuleDirectory;
            HostBinary binary = HostBinary.Locate(moduleDirectory);
            string runtime;
            if (create)
            {
                CreateHome(home);
                runtime = HostRuntime.Ensure(home, ModuleVersion, binary, moduleDirectory);
            }
            else
            {
                runtime = HostRuntime.Plan(home, ModuleVersion, binary, moduleDirectory);
            }

            var command = new List<string>();
            if (!binary.IsNative)
            {
                command.Add("dotnet");
            }

            command.AddRange(new[] { Path.Combine(runtime, binary.Entry), "--module", runtime, "--home", home });
            if (foreground)
            {
                command.Add("--foreground");
            }

            return command;
        }

        private static Process Start(string home)
        {
            IReadOnlyList<string> command = HostCommand(home, foreground: false);
            var start = new ProcessStartInfo(command[0], string.Join(" ", command.Skip(1).Select(Quote)));
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
            try
            {
                return Process.Start(start) ?? throw new HostUnavailableException("The Cluster host could not be started.");
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new HostUnavailableException($"The Cluster host {command[0]} could not be started: {e.Message}", "HostStartFailed", command[0]);
            }
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
