using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Cluster.Client
{
    /// <summary>
    /// The host's own copy of what it runs: CLUSTER_HOME/runtime/&lt;version&gt;/ holds the host, the Node primary and
    /// the drain and health preloads, copied from the module on first use. The host and the apps use only that copy, so the
    /// module folder can be upgraded or removed under them, and a package that lost the executable bit does not
    /// matter: the copy's modes are set here.
    /// </summary>
    internal static class HostRuntime
    {
        public const string RuntimeFolder = "runtime";

        /// <summary>What the host reads from the module folder besides itself.</summary>
        public static readonly IReadOnlyList<string> ModuleFiles = new[] { "primary.js", "drain.js", "sticky.js", "health.js" };

        private static readonly TimeSpan AbandonedAfter = TimeSpan.FromHours(1);

        /// <summary>
        /// The runtime folder of this module version, made if it is missing. When the folder of this version holds
        /// other files (another build of the same version), the copy goes to &lt;version&gt;-&lt;content hash&gt; instead,
        /// so that a host running from the first one is left alone.
        /// </summary>
        public static string Ensure(string home, string version, HostBinary binary, string moduleDirectory) =>
            Resolve(home, version, binary, moduleDirectory, create: true);

        /// <summary>The folder <see cref="Ensure"/> would return, made or changed in no way (for -WhatIf).</summary>
        public static string Plan(string home, string version, HostBinary binary, string moduleDirectory) =>
            Resolve(home, version, binary, moduleDirectory, create: false);

        private static string Resolve(string home, string version, HostBinary binary, string moduleDirectory, bool create)
        {
            var sources = new List<(string Name, string Path)>();
            foreach (string file in Directory.GetFiles(binary.Folder).OrderBy(f => f, StringComparer.Ordinal))
            {
                sources.Add((Path.GetFileName(file), file));
            }

            foreach (string name in ModuleFiles)
            {
                string file = Path.Combine(moduleDirectory, name);
                if (!File.Exists(file))
                {
                    throw new HostUnavailableException($"The Cluster module is incomplete: {file} is missing. Reinstall the module, or rebuild it with build.ps1.", "HostFilesMissing", file);
                }

                sources.Add((name, file));
            }

            var hashes = sources.ToDictionary(s => s.Name, s => HashOf(s.Path), StringComparer.Ordinal);
            string root = Path.Combine(home, RuntimeFolder);
            string[] candidates = { version, version + "-" + Combined(hashes).Substring(0, 12) };
            if (!create)
            {
                string first = Path.Combine(root, candidates[0]);
                return !Directory.Exists(first) || Matches(first, hashes) ? first : Path.Combine(root, candidates[1]);
            }

            CreatePrivateFolder(root);
            RemoveAbandoned(root);
            foreach (string candidate in candidates)
            {
                string target = Path.Combine(root, candidate);
                if (Directory.Exists(target))
                {
                    if (Matches(target, hashes))
                    {
                        return target;
                    }

                    if (candidate == candidates[0])
                    {
                        continue;
                    }

                    // A copy named for exactly these files that does not hold them was changed after it was made.
                    MoveAside(root, target);
                }

                if (TryCreate(root, target, sources, binary) || Matches(target, hashes))
                {
                    return target;
                }
            }

            throw new HostUnavailableException(
                $"Could not make the host's runtime copy in {root}: a folder there is in the way. Stop-ClusterHost, remove {root}, and try again.",
                "HostRuntimeCopyFailed",
                root);
        }

        private static bool TryCreate(string root, string target, List<(string Name, string Path)> sources, HostBinary binary)
        {
            string temporary = Path.Combine(root, ".tmp-" + Guid.NewGuid().ToString("n"));
            try
            {
                CreatePrivateFolder(temporary);
                foreach (var (name, path) in sources)
                {
                    string copy = Path.Combine(temporary, name);
                    File.Copy(path, copy);
                    SetMode(copy, binary.IsNative && name == binary.Entry ? Posix.OwnerExecutable : Posix.OwnerReadWrite);
                }

                try
                {
                    Directory.Move(temporary, target);
                    return true;
                }
                catch (IOException) when (Directory.Exists(target))
                {
                    return false; // made by another session meanwhile: the caller checks what it holds
                }
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                throw new HostUnavailableException($"Could not copy the Cluster host into {target}: {e.Message}", "HostRuntimeCopyFailed", target);
            }
            finally
            {
                TryDelete(temporary);
            }
        }

        private static bool Matches(string folder, Dictionary<string, string> hashes)
        {
            try
            {
                return hashes.All(h => File.Exists(Path.Combine(folder, h.Key)) && HashOf(Path.Combine(folder, h.Key)) == h.Value);
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                return false;
            }
        }

        private static void MoveAside(string root, string folder)
        {
            string aside = Path.Combine(root, ".tmp-" + Guid.NewGuid().ToString("n"));
            try
            {
                Directory.Move(folder, aside);
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                return;
            }

            TryDelete(aside);
        }

        /// <summary>Temporary folders of copies that never finished (a session killed mid-copy).</summary>
        private static void RemoveAbandoned(string root)
        {
            foreach (string folder in Directory.GetDirectories(root, ".tmp-*"))
            {
                try
                {
                    if (DateTime.UtcNow - Directory.GetLastWriteTimeUtc(folder) > AbandonedAfter)
                    {
                        TryDelete(folder);
                    }
                }
                catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
                {
                }
            }
        }

        private static void TryDelete(string folder)
        {
            try
            {
                if (Directory.Exists(folder))
                {
                    Directory.Delete(folder, recursive: true);
                }
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                // A file still in use (Windows); the next copy's clean-up takes it.
            }
        }

        private static void CreatePrivateFolder(string path)
        {
            if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
            {
                Directory.CreateDirectory(path);
                return;
            }

            if (Posix.mkdir(path, Posix.OwnerOnlyFolder) != 0 && !Directory.Exists(path))
            {
                throw new HostUnavailableException($"Could not create {path} (error {Marshal.GetLastWin32Error()}).", "HostRuntimeCopyFailed", path);
            }
        }

        private static void SetMode(string path, uint mode)
        {
            if (!RuntimeInformation.IsOSPlatform(OSPlatform.Windows) && Posix.chmod(path, mode) != 0)
            {
                throw new IOException($"chmod {Convert.ToString(mode, 8)} {path} failed (error {Marshal.GetLastWin32Error()}).");
            }
        }

        private static string HashOf(string path)
        {
            using var sha = SHA256.Create();
            using FileStream stream = File.OpenRead(path);
            return Hex(sha.ComputeHash(stream));
        }

        private static string Combined(Dictionary<string, string> hashes)
        {
            using var sha = SHA256.Create();
            string all = string.Join("\n", hashes.OrderBy(h => h.Key, StringComparer.Ordinal).Select(h => h.Key + " " + h.Value));
            return Hex(sha.ComputeHash(Encoding.UTF8.GetBytes(all)));
        }

        private static string Hex(byte[] bytes)
        {
            var text = new StringBuilder(bytes.Length * 2);
            foreach (byte b in bytes)
            {
                text.Append(b.ToString("x2"));
            }

            return text.ToString();
        }
    }
}
