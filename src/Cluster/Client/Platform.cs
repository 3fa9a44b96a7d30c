using System.Runtime.InteropServices;

namespace Cluster.Client
{
    /// <summary>The operating systems the module tells apart: each has hosts of its own and a service manager of its own.</summary>
    internal enum OperatingSystemFamily
    {
        Windows,
        MacOS,
        Linux,

        /// <summary>FreeBSD and the rest, which the package carries no host for.</summary>
        Other,
    }

    internal static class Platform
    {
        /// <summary>The operating system this process runs on.</summary>
        public static OperatingSystemFamily Current { get; } =
            RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? OperatingSystemFamily.Windows
            : RuntimeInformation.IsOSPlatform(OSPlatform.OSX) ? OperatingSystemFamily.MacOS
            : RuntimeInformation.IsOSPlatform(OSPlatform.Linux) ? OperatingSystemFamily.Linux
            : OperatingSystemFamily.Other;
    }
}
