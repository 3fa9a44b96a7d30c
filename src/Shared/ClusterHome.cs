using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;

namespace Cluster.Protocol
{
    /// <summary>Where a host keeps its state, logs and control endpoint, and how clients find it.</summary>
    internal static class ClusterHome
    {
        public const string HomeVariable = "CLUSTER_HOME";

        /// <summary>
        /// The file in CLUSTER_HOME where the running host writes its pid: plain text, since the lock file, which
        /// holds the pid too, cannot be read while the host holds it. Removed when the host exits cleanly.
        /// </summary>
        public const string HostPidRecord = "host.pid";

        /// <summary>The file in CLUSTER_HOME the host holds locked while it runs.</summary>
        public const string HostLockFile = "host.lock";

        public static string HostLogOf(string home) => Path.Combine(home, "logs", "host.log");

        // A Unix socket path must fit in sockaddr_un (108 bytes on Linux, 104 on macOS).
        private const int MaxSocketPathLength = 100;

        public static string Resolve(string? configured)
        {
            if (!string.IsNullOrWhiteSpace(configured))
            {
                return Path.GetFullPath(configured);
            }

            string profile = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            return Path.Combine(profile, ".cluster");
        }

        /// <summary>
        /// The file in CLUSTER_HOME that names the private folder holding the sockets, when CLUSTER_HOME is too long
        /// for a socket path. Its folder is made by the host (owner only, random name or under $XDG_RUNTIME_DIR).
        /// </summary>
        public const string SocketFolderRecord = "socket-folder";

        /// <summary>
        /// Whether the sockets of this CLUSTER_HOME cannot live in it (their paths would not fit in sockaddr_un) and
        /// go to a private socket folder instead. Never a shared folder under a predictable name: another user could
        /// create the name first, or connect to it.
        /// </summary>
        public static bool UsesSocketFolder(string home) =>
            !RuntimeInformation.IsOSPlatform(OSPlatform.Windows) && Path.Combine(home, "primaries", "0123456789ab.sock").Length > MaxSocketPathLength;

        /// <summary>
        /// The control endpoint as a pipe name: on Windows a named pipe, elsewhere an absolute Unix socket path
        /// (.NET's NamedPipe streams use a rooted name as the socket path), in the socket folder when there is one.
        /// </summary>
        public static string EndpointFor(string home, string? socketFolder)
        {
            if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
            {
                return "cluster-" + Environment.UserName + "-" + StableHash(home);
            }

            return Path.Combine(socketFolder ?? home, "host.sock");
        }

        /// <summary>
        /// The control endpoint as a client finds it: null while the socket folder is not recorded yet (no host
        /// has run with this CLUSTER_HOME, or it has not got that far).
        /// </summary>
        public static string? FindEndpoint(string home)
        {
            if (!UsesSocketFolder(home))
            {
                return EndpointFor(home, null);
            }

            string? folder = ReadSocketFolder(home);
            return folder is null ? null : EndpointFor(home, folder);
        }

        /// <summary>The socket folder recorded in CLUSTER_HOME, or null.</summary>
        public static string? ReadSocketFolder(string home)
        {
            try
            {
                string folder = File.ReadAllText(Path.Combine(home, SocketFolderRecord)).Trim();
                return Path.IsPathRooted(folder) ? folder : null;
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                return null;
            }
        }

        /// <summary>
        /// The endpoint a Node primary listens on: as .NET names it (a pipe name, or a socket path) and as Node
        /// listens on it (on Windows, \\.\pipe\name).
        /// </summary>
        public static (string PipeName, string NodeAddress) PrimaryEndpointFor(string home, string? socketFolder, string id)
        {
            if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
            {
                string pipe = "cluster-" + Environment.UserName + "-" + StableHash(home) + "-" + id;
                return (pipe, @"\\.\pipe\" + pipe);
            }

            string socket = socketFolder is null ? Path.Combine(home, "primaries", id + ".sock") : Path.Combine(socketFolder, id + ".sock");
            return (socket, socket);
        }

        private static string StableHash(string text)
        {
            // FNV-1a, 64 bit: short, stable across processes and runtimes.
            ulong hash = 14695981039346656037UL;
            foreach (byte b in Encoding.UTF8.GetBytes(text))
            {
                hash ^= b;
                hash *= 1099511628211UL;
            }

            return hash.ToString("x16");
        }
    }
}
