using System.Runtime.InteropServices;

namespace Cluster.Client
{
    /// <summary>The few libc calls the cmdlets need off Windows: file modes that .NET Standard 2.0 cannot set.</summary>
    internal static class Posix
    {
        public const uint OwnerOnlyFolder = 0x1C0; // 0700
        public const uint OwnerExecutable = 0x1C0; // 0700
        public const uint OwnerReadWrite = 0x180; // 0600
        public const uint ReadableByAll = 0x1A4; // 0644

        [DllImport("libc", SetLastError = true)]
        public static extern int mkdir([MarshalAs(UnmanagedType.LPStr)] string path, uint mode);

        [DllImport("libc", SetLastError = true)]
        public static extern int chmod([MarshalAs(UnmanagedType.LPStr)] string path, uint mode);

        [DllImport("libc", SetLastError = true)]
        public static extern int symlink([MarshalAs(UnmanagedType.LPStr)] string target, [MarshalAs(UnmanagedType.LPStr)] string link);
    }
}
