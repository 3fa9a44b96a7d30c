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
        /// The control endpoint as a pipe name: on Windows a named pipe, elsewhere an absolute Unix socket path
        /// (.NET's NamedPipe streams use a rooted name as the socket path).
        /// </summary>
        public static string EndpointFor(string home)
        {
            string id = StableHash(home);
            if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
            {
                return "cluster-" + Environment.UserName + "-" + id;
            }

            string socket = Path.Combine(home, "host.sock");
            return socket.Length <= MaxSocketPathLength ? socket : Path.Combine("/tmp", "cluster-" + id + ".sock");
        }

        /// <summary>
        /// The endpoint a Node primary listens on: as .NET names it (a pipe name, or a socket path) and as Node
        /// listens on it (on Windows, \\.\pipe\name).
        /// </summary>
        public static (string PipeName, string NodeAddress) PrimaryEndpointFor(string home, string id)
        {
            if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
            {
                string pipe = "cluster-" + Environment.UserName + "-" + StableHash(home) + "-" + id;
                return (pipe, @"\\.\pipe\" + pipe);
            }

            string socket = Path.Combine(home, "primaries", id + ".sock");
            if (socket.Length > MaxSocketPathLength)
            {
                socket = Path.Combine("/tmp", "cluster-" + StableHash(home) + "-" + id + ".sock");
            }

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
