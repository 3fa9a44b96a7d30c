using System.Runtime.InteropServices;
using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>A path under CLUSTER_HOME that the host will not trust, and why: the host refuses to start.</summary>
internal sealed class UnsafePathException : Exception
{
    public UnsafePathException(string path, string message)
        : base(message) => Path = path;

    public string Path { get; }
}

/// <summary>
/// The host's StrictModes (as sshd's): CLUSTER_HOME, its folders and every file the host reads or writes there must
/// be the user's own, not writable by group or others, and not symbolic links, or the host does not start. Another
/// user who owns or can write any of them could plant a symlink that the host then appends to, or a state file
/// whose script the host runs as its owner. The host sets modes only on what it creates itself.
/// </summary>
internal static partial class StrictModes
{
    private const uint TypeMask = 0xF000;
    private const uint SymbolicLink = 0xA000;
    private const uint Directory = 0x4000;
    private const uint Socket = 0xC000;
    private const uint GroupOrOtherWrite = 0x12; // 020 | 002
    private const uint GroupOrOtherAccess = 0x3F; // 077

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// Checks (and creates, owner only, where missing) CLUSTER_HOME and what the host keeps in it. Returns warnings
    /// the host logs once it has a log: a CLUSTER_HOME that others may read (not write) is allowed, since the files
    /// in it are the owner's own and its sockets refuse other users, but said.
    /// </summary>
    public static IReadOnlyList<string> Secure(HostPaths paths)
    {
        var warnings = new List<string>();
        if (OperatingSystem.IsWindows())
        {
            System.IO.Directory.CreateDirectory(paths.Home);
            System.IO.Directory.CreateDirectory(paths.Logs);
            System.IO.Directory.CreateDirectory(paths.Primaries);
            return warnings;
        }

        // CLUSTER_HOME itself may be a symbolic link the user made (to another disk, say): its target is checked.
        uint homeMode = EnsureFolder(paths.Home, followLink: true);
        if ((homeMode & GroupOrOtherAccess) != 0)
        {
            warnings.Add($"CLUSTER_HOME {paths.Home} can be read by other users (mode {Octal(homeMode)}); chmod 700 it to keep app names and log file names private.");
        }

        EnsureFolder(paths.Logs, followLink: false);
        EnsureFolder(paths.Primaries, followLink: false);
        foreach (string file in new[] { paths.LockFile, paths.PidFile, Path.Combine(paths.Home, ClusterHome.SocketFolderRecord), paths.Endpoint })
        {
            CheckFile(file);
        }

        foreach (string folder in new[] { paths.Home, paths.Logs, paths.Primaries })
        {
            string pattern = folder == paths.Home ? "state.json*" : "*";
            foreach (string file in System.IO.Directory.EnumerateFileSystemEntries(folder, pattern))
            {
                CheckFile(file);
            }
        }

        // The runtime copies hold what the host and every primary run: no one else may have put or changed them.
        if (TryStat(paths.Runtime, followLink: false) is not null)
        {
            EnsureFolder(paths.Runtime, followLink: false);
            foreach (string copy in System.IO.Directory.EnumerateDirectories(paths.Runtime))
            {
                CheckFile(copy);
                foreach (string file in System.IO.Directory.EnumerateFileSystemEntries(copy))
                {
                    CheckFile(file);
                }
            }
        }

        return warnings;
    }

    /// <summary>
    /// The private folder for the sockets of a CLUSTER_HOME too long for socket paths, recorded in CLUSTER_HOME:
    /// the recorded one while it is still safe, else a new one under $XDG_RUNTIME_DIR (the user's own, 0700) or a
    /// new one with a random name in the temporary folder. Called with the host lock held.
    /// </summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public static string EnsureSocketFolder(string home)
    {
        string record = Path.Combine(home, ClusterHome.SocketFolderRecord);
        string? recorded = ClusterHome.ReadSocketFolder(home);
        if (recorded is not null && IsPrivateFolder(recorded))
        {
            return recorded;
        }

        string folder = NewSocketFolder(home);
        string temporary = record + ".tmp";
        File.Delete(temporary);
        using (var stream = new FileStream(temporary, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(folder);
        }

        File.Move(temporary, record, overwrite: true);
        return folder;
    }

    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static string NewSocketFolder(string home)
    {
        string? runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        if (!string.IsNullOrEmpty(runtime) && Path.IsPathRooted(runtime) && IsPrivateFolder(runtime))
        {
            string folder = Path.Combine(runtime, "cluster-" + Guid.NewGuid().ToString("n")[..12]);
            if (ClusterHome.EndpointFor(home, folder).Length <= 100)
            {
                System.IO.Directory.CreateDirectory(folder, OwnerOnly);
                if (IsPrivateFolder(folder))
                {
                    return folder;
                }
            }
        }

        // mkdtemp: a new folder, 0700, under a name nobody could have created first.
        string created = System.IO.Directory.CreateTempSubdirectory("cluster-").FullName;
        if (!IsPrivateFolder(created))
        {
            throw new UnsafePathException(created, $"The socket folder {created} is not a private folder of this user. Set CLUSTER_HOME to a shorter path (at most about 70 characters) so the sockets fit in it.");
        }

        if (ClusterHome.EndpointFor(home, created).Length > 100)
        {
            throw new UnsafePathException(created, $"No safe place for the host's sockets: CLUSTER_HOME is too long for a socket path, and so is the temporary folder {created}. Set CLUSTER_HOME or TMPDIR to a shorter path.");
        }

        return created;
    }

    private static bool IsPrivateFolder(string path) =>
        TryStat(path, followLink: false) is { } stat
        && (stat.Mode & TypeMask) == Directory
        && stat.Uid == geteuid()
        && (stat.Mode & GroupOrOtherAccess) == 0;

    /// <summary>Creates the folder owner only, or checks the one that is there; returns its mode.</summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static uint EnsureFolder(string path, bool followLink)
    {
        if (TryStat(path, followLink: false) is null)
        {
            string? parent = Path.GetDirectoryName(path);
            if (parent is not null)
            {
                System.IO.Directory.CreateDirectory(parent);
            }

            // The mode applies only to a folder created here; an existing one is checked, never changed.
            System.IO.Directory.CreateDirectory(path, OwnerOnly);
        }

        Stat stat = TryStat(path, followLink) ?? throw new UnsafePathException(path, $"{path} cannot be read.");
        if ((stat.Mode & TypeMask) == SymbolicLink)
        {
            throw new UnsafePathException(path, $"{path} is a symbolic link; the host does not follow links inside CLUSTER_HOME. Remove it.");
        }

        if ((stat.Mode & TypeMask) != Directory)
        {
            throw new UnsafePathException(path, $"{path} is not a folder.");
        }

        CheckOwnerAndMode(path, stat);
        return stat.Mode;
    }

    private static void CheckFile(string path)
    {
        if (TryStat(path, followLink: false) is not { } stat)
        {
            return;
        }

        if ((stat.Mode & TypeMask) == SymbolicLink)
        {
            throw new UnsafePathException(path, $"{path} is a symbolic link; the host does not follow links inside CLUSTER_HOME (it could be made to write to, or run, another file). Remove it.");
        }

        if ((stat.Mode & TypeMask) == Socket)
        {
            // A socket is checked by who owns it: what may connect is the peer check's and the token's job.
            CheckOwner(path, stat);
            return;
        }

        CheckOwnerAndMode(path, stat);
    }

    private static void CheckOwnerAndMode(string path, Stat stat)
    {
        CheckOwner(path, stat);
        if ((stat.Mode & GroupOrOtherWrite) != 0)
        {
            throw new UnsafePathException(path, $"{path} can be written by other users (mode {Octal(stat.Mode)}). Run 'chmod go-w {path}' if you trust its contents, or remove it.");
        }
    }

    private static void CheckOwner(string path, Stat stat)
    {
        uint me = geteuid();
        if (stat.Uid != me)
        {
            throw new UnsafePathException(path, $"{path} is owned by user id {stat.Uid}, not by you (user id {me}). Use a CLUSTER_HOME of your own, or have its owner remove it.");
        }
    }

    private static string Octal(uint mode) => Convert.ToString(mode & 0xFFF, 8).PadLeft(4, '0');

    private readonly record struct Stat(uint Mode, uint Uid);

    private static Stat? TryStat(string path, bool followLink)
    {
        if (OperatingSystem.IsLinux())
        {
            // statx: one layout on every Linux architecture (struct stat differs between them).
            const int AtFdCwd = -100;
            const int AtSymlinkNoFollow = 0x100;
            const uint StatxBasicStats = 0x7FF;
            Span<byte> buffer = stackalloc byte[256];
            if (statx(AtFdCwd, path, followLink ? 0 : AtSymlinkNoFollow, StatxBasicStats, ref MemoryMarshal.GetReference(buffer)) != 0)
            {
                return null;
            }

            return new Stat(BitConverter.ToUInt16(buffer[28..]), BitConverter.ToUInt32(buffer[20..]));
        }

        if (OperatingSystem.IsMacOS())
        {
            // struct stat with 64-bit inodes: st_mode (u16) at 4, st_uid at 16.
            Span<byte> buffer = stackalloc byte[256];
            int result = followLink
                ? (RuntimeInformation.ProcessArchitecture == Architecture.X64 ? stat_x64(path, ref MemoryMarshal.GetReference(buffer)) : stat_arm64(path, ref MemoryMarshal.GetReference(buffer)))
                : (RuntimeInformation.ProcessArchitecture == Architecture.X64 ? lstat_x64(path, ref MemoryMarshal.GetReference(buffer)) : lstat_arm64(path, ref MemoryMarshal.GetReference(buffer)));
            return result != 0 ? null : new Stat(BitConverter.ToUInt16(buffer[4..]), BitConverter.ToUInt32(buffer[16..]));
        }

        throw new PlatformNotSupportedException("File ownership checks are implemented for Linux and macOS.");
    }

    [LibraryImport("libc")]
    private static partial uint geteuid();

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, ref byte buffer);

    [LibraryImport("libc", EntryPoint = "lstat$INODE64", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lstat_x64(string path, ref byte buffer);

    [LibraryImport("libc", EntryPoint = "lstat", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lstat_arm64(string path, ref byte buffer);

    [LibraryImport("libc", EntryPoint = "stat$INODE64", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int stat_x64(string path, ref byte buffer);

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int stat_arm64(string path, ref byte buffer);
}
