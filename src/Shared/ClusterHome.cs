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
