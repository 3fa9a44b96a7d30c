using System;
using System.Collections;
using System.Collections.Generic;
using System.Runtime.InteropServices;

namespace Cluster.Protocol
{
    /// <summary>
    /// Which of the caller's session variables an app inherits, and which environment names are valid. An app's
    /// environment is saved in the state file so that a later host can bring the app back, so it holds only what the
    /// app needs to run (where programs are, who and where the user is, language, time zone, temporary folders,
    /// Node's own settings, the timeouts Cluster reads) and what the caller passed with -Environment, never the rest
    /// of the session: tokens and passwords that a deployment shell holds stay out of the file.
    /// </summary>
    internal static class EnvironmentPolicy
    {
        /// <summary>The timeout variables a reload or stop reads from the calling session.</summary>
        public static readonly IReadOnlyList<string> TimeoutVariables = new[] { "PM2_GRACEFUL_TIMEOUT", "PM2_GRACEFUL_LISTEN_TIMEOUT", "PM2_KILL_TIMEOUT" };

        /// <summary>Session variables an app inherits, by exact name (ignoring case on Windows, where names do).</summary>
        public static readonly IReadOnlyList<string> InheritedNames = new[]
        {
            // Every system
            "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TMP", "TEMP",
            "CLUSTER_HOME", "PM2_GRACEFUL_TIMEOUT", "PM2_GRACEFUL_LISTEN_TIMEOUT", "PM2_KILL_TIMEOUT",

            // Windows: what programs (Node included) need to find the system, the user's folders and the machine
            "SystemRoot", "SystemDrive", "windir", "ComSpec", "PATHEXT", "OS",
            "USERPROFILE", "USERNAME", "USERDOMAIN", "HOMEDRIVE", "HOMEPATH", "APPDATA", "LOCALAPPDATA",
            "ProgramData", "ALLUSERSPROFILE", "PUBLIC", "ProgramFiles", "ProgramFiles(x86)", "ProgramW6432",
            "CommonProgramFiles", "CommonProgramFiles(x86)", "CommonProgramW6432",
            "COMPUTERNAME", "NUMBER_OF_PROCESSORS", "PROCESSOR_ARCHITECTURE", "PROCESSOR_IDENTIFIER",
        };

        /// <summary>Session variables an app inherits, by prefix: locale categories and Node's own settings.</summary>
        public static readonly IReadOnlyList<string> InheritedPrefixes = new[] { "LC_", "NODE_" };

        /// <summary>
        /// Names that match a prefix above but are never inherited: npm's registry token, and the variables by which
        /// Node tells a child it is a cluster worker or has an IPC channel (a session started from a Node process has
        /// them, and an app that inherited them would take itself for a worker of that process).
        /// </summary>
        public static readonly IReadOnlyList<string> NeverInherited = new[]
        {
            "NODE_AUTH_TOKEN", "NODE_UNIQUE_ID", "NODE_CHANNEL_FD", "NODE_CHANNEL_SERIALIZATION_MODE", "NODE_APP_INSTANCE",
        };

        /// <summary>How environment names compare on this system: ignoring case on Windows, exactly elsewhere.</summary>
        public static StringComparer NameComparer { get; } =
            RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;

        private static StringComparison NameComparison =>
            RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

        /// <summary>Whether an app inherits this session variable (without -InheritEnvironment).</summary>
        public static bool IsInherited(string name)
        {
            foreach (string never in NeverInherited)
            {
                if (string.Equals(name, never, NameComparison))
                {
                    return false;
                }
            }

            foreach (string inherited in InheritedNames)
            {
                if (string.Equals(name, inherited, NameComparison))
                {
                    return true;
                }
            }

            foreach (string prefix in InheritedPrefixes)
            {
                if (name.Length > prefix.Length && name.StartsWith(prefix, NameComparison))
                {
                    return true;
                }
            }

            return false;
        }

        /// <summary>
        /// The part of a session's variables an app inherits: those <see cref="IsInherited"/> allows, or every valid one
        /// when <paramref name="everything"/> is set (Start-ClusterApp -InheritEnvironment).
        /// </summary>
        public static Dictionary<string, string> FromSession(IDictionary session, bool everything)
        {
            var environment = new Dictionary<string, string>(NameComparer);
            foreach (DictionaryEntry entry in session)
            {
                if (entry.Key is string name && InvalidName(name) is null && (everything || IsInherited(name)))
                {
                    string value = entry.Value?.ToString() ?? "";
                    if (value.IndexOf('\0') < 0)
                    {
                        environment[name] = value;
                    }
                }
            }

            return environment;
        }

        /// <summary>Why a name cannot be an environment variable's, or null when it can.</summary>
        public static string? InvalidName(string? name)
        {
            if (string.IsNullOrEmpty(name))
            {
                return "an environment variable's name cannot be empty";
            }

            if (name!.IndexOf('=') >= 0)
            {
                return "an environment variable's name cannot contain '='";
            }

            if (name.IndexOf('\0') >= 0)
            {
                return "an environment variable's name cannot contain a NUL character";
            }

            return null;
        }

        /// <summary>Why a value cannot be an environment variable's, or null when it can.</summary>
        public static string? InvalidValue(string? value) =>
            value is null ? "an environment variable's value cannot be null (leave the variable out instead)"
            : value.IndexOf('\0') >= 0 ? "an environment variable's value cannot contain a NUL character"
            : null;
    }
}
