using System;
using System.Diagnostics;
using System.IO;
using System.Runtime.InteropServices;

namespace Cluster.Client
{
    /// <summary>Puts a <see cref="StartupPlan"/> in place, and takes it away again.</summary>
    internal static class StartupInstaller
    {
        public static void Install(StartupPlan plan)
        {
            string folder = Path.GetDirectoryName(plan.Path)!;
            Directory.CreateDirectory(folder);
            // Written beside the file and renamed over it: a service manager never reads half a file.
            string temporary = plan.Path + ".tmp-" + Guid.NewGuid().ToString("n").Substring(0, 8);
            try
            {
                File.WriteAllText(temporary, plan.Content, plan.Encoding);
                if (!RuntimeInformation.IsOSPlatform(OSPlatform.Windows) && Posix.chmod(temporary, Posix.ReadableByAll) != 0)
                {
                    throw new IOException($"chmod 644 {temporary} failed (error {Marshal.GetLastWin32Error()}).");
                }

                if (File.Exists(plan.Path))
                {
                    File.Delete(plan.Path);
                }

                File.Move(temporary, plan.Path);
            }
            finally
            {
                if (File.Exists(temporary))
                {
                    File.Delete(temporary);
                }
            }

            if (plan.EnableLink is { } link)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(link)!);
                RemoveLink(link);
                if (Posix.symlink(plan.Path, link) != 0)
                {
                    throw new IOException($"Could not link {link} to {plan.Path} (error {Marshal.GetLastWin32Error()}).");
                }
            }

            if (plan.Kind == StartupKind.ScheduledTask)
            {
                RunSchtasks("/Create", "/TN", StartupFiles.TaskName, "/XML", plan.Path, "/F");
            }
        }

        /// <summary>Removes what <see cref="Install"/> put in place; false when nothing was there.</summary>
        public static bool Uninstall(StartupKind kind, string path, string? link)
        {
            bool found = File.Exists(path);
            if (link is not null && IsLink(link))
            {
                RemoveLink(link);
                found = true;
            }

            if (kind == StartupKind.ScheduledTask && found)
            {
                RunSchtasks("/Delete", "/TN", StartupFiles.TaskName, "/F");
            }

            if (File.Exists(path))
            {
                File.Delete(path);
            }

            return found;
        }

        private static bool IsLink(string path)
        {
            try
            {
                return (File.GetAttributes(path) & FileAttributes.ReparsePoint) != 0;
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                return false;
            }
        }

        private static void RemoveLink(string link)
        {
            if (IsLink(link) || File.Exists(link))
            {
                File.Delete(link);
            }
        }

        private static void RunSchtasks(params string[] arguments)
        {
            var start = new ProcessStartInfo("schtasks.exe", string.Join(" ", Array.ConvertAll(arguments, HostLauncher.Quote)))
            {
                UseShellExecute = false,
                CreateNoWindow = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using Process process = Process.Start(start) ?? throw new IOException("schtasks.exe could not be started.");
            string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                throw new IOException($"schtasks.exe {string.Join(" ", arguments)} failed with exit code {process.ExitCode}: {output.Trim()}");
            }
        }
    }
}
