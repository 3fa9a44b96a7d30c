using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Cluster.Host;

/// <summary>
/// Which file a path or an open handle is (device and inode on Unix, volume and file index on Windows), so that a
/// reader can tell that a log path has moved on to a new file while it still holds the old one open.
/// </summary>
internal readonly partial record struct FileIdentity(ulong Device, ulong Inode)
{
    /// <summary>The file the path names now, the link itself for a symbolic link; null when there is none.</summary>
    public static FileIdentity? OfPath(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            try
            {
                using SafeFileHandle handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                return OfHandle(handle);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }

        Span<byte> buffer = stackalloc byte[256];
        if (OperatingSystem.IsLinux())
        {
            const int AtFdCwd = -100;
            const int AtSymlinkNoFollow = 0x100;
            return statx(AtFdCwd, path, AtSymlinkNoFollow, StatxBasicStats, ref MemoryMarshal.GetReference(buffer)) == 0 ? FromStatx(buffer) : null;
        }

        if (OperatingSystem.IsMacOS())
        {
            int result = RuntimeInformation.ProcessArchitecture == Architecture.X64
                ? lstat_x64(path, ref MemoryMarshal.GetReference(buffer))
                : lstat_arm64(path, ref MemoryMarshal.GetReference(buffer));
            return result == 0 ? FromMacStat(buffer) : null;
        }

        throw new PlatformNotSupportedException("File identities are implemented for Linux, macOS and Windows.");
    }

    /// <summary>The file an open handle refers to, wherever it has been renamed since.</summary>
    public static FileIdentity OfHandle(SafeFileHandle handle)
    {
        if (OperatingSystem.IsWindows())
        {
            if (!GetFileInformationByHandle(handle, out ByHandleFileInformation information))
            {
                throw new IOException($"Cannot identify an open file (error {Marshal.GetLastPInvokeError()}).");
            }

            return new FileIdentity(information.VolumeSerialNumber, ((ulong)information.FileIndexHigh << 32) | information.FileIndexLow);
        }

        Span<byte> buffer = stackalloc byte[256];
        int fd = (int)handle.DangerousGetHandle();
        if (OperatingSystem.IsLinux())
        {
            const int AtEmptyPath = 0x1000;
            return statx(fd, "", AtEmptyPath, StatxBasicStats, ref MemoryMarshal.GetReference(buffer)) == 0
                ? FromStatx(buffer)
                : throw new IOException($"Cannot identify an open file (errno {Marshal.GetLastPInvokeError()}).");
        }

        if (OperatingSystem.IsMacOS())
        {
            int result = RuntimeInformation.ProcessArchitecture == Architecture.X64
                ? fstat_x64(fd, ref MemoryMarshal.GetReference(buffer))
                : fstat_arm64(fd, ref MemoryMarshal.GetReference(buffer));
            return result == 0 ? FromMacStat(buffer) : throw new IOException($"Cannot identify an open file (errno {Marshal.GetLastPInvokeError()}).");
        }

        throw new PlatformNotSupportedException("File identities are implemented for Linux, macOS and Windows.");
    }

    private const uint StatxBasicStats = 0x7FF;

    // struct statx: stx_ino (u64) at 32, stx_dev_major and stx_dev_minor (u32) at 136 and 140.
    private static FileIdentity FromStatx(ReadOnlySpan<byte> buffer) => new(
        ((ulong)BitConverter.ToUInt32(buffer[136..]) << 32) | BitConverter.ToUInt32(buffer[140..]),
        BitConverter.ToUInt64(buffer[32..]));

    // struct stat with 64-bit inodes: st_dev (i32) at 0, st_ino (u64) at 8.
    private static FileIdentity FromMacStat(ReadOnlySpan<byte> buffer) => new(BitConverter.ToUInt32(buffer), BitConverter.ToUInt64(buffer[8..]));

    [StructLayout(LayoutKind.Sequential)]
    private struct ByHandleFileInformation
    {
        public uint FileAttributes;
        public long CreationTime;
        public long LastAccessTime;
        public long LastWriteTime;
        public uint VolumeSerialNumber;
        public uint FileSizeHigh;
        public uint FileSizeLow;
        public uint NumberOfLinks;
        public uint FileIndexHigh;
        public uint FileIndexLow;
    }

    [LibraryImport("kernel32.dll", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool GetFileInformationByHandle(SafeFileHandle file, out ByHandleFileInformation information);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, ref byte buffer);

    [LibraryImport("libc", EntryPoint = "lstat$INODE64", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lstat_x64(string path, ref byte buffer);

    [LibraryImport("libc", EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lstat_arm64(string path, ref byte buffer);

    [LibraryImport("libc", EntryPoint = "fstat$INODE64", SetLastError = true)]
    private static partial int fstat_x64(int fd, ref byte buffer);

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static partial int fstat_arm64(int fd, ref byte buffer);
}
