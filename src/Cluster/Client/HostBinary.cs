using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;

namespace Cluster.Client
{
    /// <summary>
    /// The host this machine runs, out of those the module carries in hosts/&lt;rid&gt;/: one per OS, architecture and
    /// C library (the package holds seven), or a framework-dependent one in hosts/portable/ when the build could not
    /// make a native one.
    /// </summary>
    internal sealed class HostBinary
    {
        public const string HostsFolder = "hosts";
        public const string PortableFolder = "portable";
        public const string PortableEntry = "cluster-host.dll";

        private HostBinary(string rid, string folder, string entry, bool isNative)
        {
            RuntimeIdentifier = rid;
            Folder = folder;
            Entry = entry;
            IsNative = isNative;
        }

        /// <summary>The platform the host is built for (linux-x64, win-arm64, ...), or "portable".</summary>
        public string RuntimeIdentifier { get; }

        /// <summary>The module's folder of this host: every file in it belongs to the host.</summary>
        public string Folder { get; }

        /// <summary>The file that is run: the executable, or the assembly 'dotnet' runs.</summary>
        public string Entry { get; }

        public bool IsNative { get; }

        public static HostBinary Locate(string moduleDirectory) => Locate(moduleDirectory, RuntimeIdentifiers().ToArray());

        /// <summary>The first host of <paramref name="wanted"/> (runtime identifiers, best first) the module carries.</summary>
        internal static HostBinary Locate(string moduleDirectory, string[] wanted)
        {
            string hosts = Path.Combine(moduleDirectory, HostsFolder);
            foreach (string rid in wanted)
            {
                string entry = ExecutableName(rid);
                string folder = Path.Combine(hosts, rid);
                if (File.Exists(Path.Combine(folder, entry)))
                {
                    return new HostBinary(rid, folder, entry, isNative: true);
                }
            }

            string portable = Path.Combine(hosts, PortableFolder);
            if (File.Exists(Path.Combine(portable, PortableEntry)))
            {
                return new HostBinary(PortableFolder, portable, PortableEntry, isNative: false);
            }

            string[] carried = Carried(hosts);
            string platform = wanted[0];
            string message = carried.Length == 0
                ? $"The Cluster module at {moduleDirectory} has no host at all (its {HostsFolder} folder is missing or empty). Reinstall the module, or rebuild it with build.ps1."
                : $"The Cluster module has no host for this platform ({platform}: {RuntimeInformation.OSDescription.Trim()}, {RuntimeInformation.OSArchitecture}). "
                    + $"It carries hosts for {string.Join(", ", carried)}. Run Cluster on one of those, or build the module on this machine with build.ps1 (it builds a host for the platform it runs on).";
            throw new HostUnavailableException(message, "HostUnsupportedPlatform", platform);
        }

        /// <summary>
        /// The runtime identifiers of this machine, best first: the OS's own architecture, then the process's, then
        /// x64 where the OS runs x64 programs under emulation (Windows 11 on Arm, macOS with Rosetta 2).
        /// </summary>
        internal static IEnumerable<string> RuntimeIdentifiers() =>
            RuntimeIdentifiers(OperatingSystemPart(), RuntimeInformation.OSArchitecture, RuntimeInformation.ProcessArchitecture);

        /// <summary>
        /// The runtime identifiers for an OS part ("win", "linux", "linux-musl", "osx") and its architectures, best
        /// first. The package has no win-arm64 host of its own: on Windows on Arm the win-x64 one runs under emulation.
        /// </summary>
        internal static IEnumerable<string> RuntimeIdentifiers(string os, Architecture osArchitecture, Architecture processArchitecture)
        {
            var architectures = new List<Architecture> { osArchitecture, processArchitecture };
            if ((os == "win" || os == "osx") && osArchitecture == Architecture.Arm64)
            {
                architectures.Add(Architecture.X64);
            }

            return architectures.Select(a => os + "-" + ArchitecturePart(a)).Distinct(StringComparer.Ordinal);
        }

        internal static string ExecutableName(string rid) =>
            rid.StartsWith("win-", StringComparison.Ordinal) ? "cluster-host.exe" : "cluster-host";

        private static string[] Carried(string hosts)
        {
            if (!Directory.Exists(hosts))
            {
                return Array.Empty<string>();
            }

            return Directory.GetDirectories(hosts)
                .Select(Path.GetFileName)
                .Where(rid => rid != PortableFolder && File.Exists(Path.Combine(hosts, rid, ExecutableName(rid))))
                .OrderBy(rid => rid, StringComparer.Ordinal)
                .ToArray();
        }

        private static string OperatingSystemPart() => Platform.Current switch
        {
            OperatingSystemFamily.Windows => "win",
            OperatingSystemFamily.MacOS => "osx",
            OperatingSystemFamily.Linux => IsMusl(ReadMaps(), File.Exists, Directory.Exists("/lib") ? Directory.GetFiles("/lib", "ld-*") : Array.Empty<string>())
                ? "linux-musl"
                : "linux",

            // Named as .NET names it, so the error says which platform it was.
            _ => RuntimeInformation.OSDescription.Split(' ')[0].ToLowerInvariant(),
        };

        private static string ArchitecturePart(Architecture architecture) => architecture switch
        {
            Architecture.X64 => "x64",
            Architecture.X86 => "x86",
            Architecture.Arm64 => "arm64",
            Architecture.Arm => "arm",
            _ => architecture.ToString().ToLowerInvariant(),
        };

        private static string? ReadMaps()
        {
            try
            {
                return File.ReadAllText("/proc/self/maps");
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                return null;
            }
        }

        /// <summary>
        /// Whether this Linux runs programs on musl (Alpine) rather than glibc. The C library this process itself is
        /// mapped with decides (a glibc system may have musl's loader installed beside its own, and Alpine may have
        /// a glibc compatibility layer); without /proc, the loaders in /lib do.
        /// </summary>
        internal static bool IsMusl(string? maps, Func<string, bool> fileExists, IEnumerable<string> loaders)
        {
            if (maps is not null)
            {
                if (maps.IndexOf("/ld-musl-", StringComparison.Ordinal) >= 0 || maps.IndexOf("/libc.musl-", StringComparison.Ordinal) >= 0)
                {
                    return true;
                }

                if (maps.IndexOf("/libc.so.6", StringComparison.Ordinal) >= 0)
                {
                    return false;
                }
            }

            string[] names = loaders.Select(Path.GetFileName).ToArray();
            bool musl = names.Any(n => n.StartsWith("ld-musl-", StringComparison.Ordinal));
            bool glibc = names.Any(n => n.StartsWith("ld-linux", StringComparison.Ordinal)) || fileExists("/lib64/ld-linux-x86-64.so.2");
            return musl && !glibc;
        }
    }
}
