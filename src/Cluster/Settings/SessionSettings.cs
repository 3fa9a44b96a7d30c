using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using Cluster.Protocol;

namespace Cluster.Settings
{
    /// <summary>What an app takes from the session that starts or changes it.</summary>
    internal static class SessionSettings
    {
        private static readonly string[] TimeoutNames = { "PM2_GRACEFUL_TIMEOUT", "PM2_GRACEFUL_LISTEN_TIMEOUT" };

        /// <summary>Names compare as the platform's environment does.</summary>
        public static StringComparer NameComparer =>
            RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;

        /// <summary>A new app's settings before any is given: one instance, with the environment it inherits from this session.</summary>
        public static StartSpec NewApp() => new StartSpec { Environment = InheritedEnvironment() };

        /// <summary>The session variables an app inherits.</summary>
        public static Dictionary<string, string> InheritedEnvironment()
        {
            var environment = new Dictionary<string, string>(NameComparer);
            foreach (DictionaryEntry entry in System.Environment.GetEnvironmentVariables())
            {
                environment[(string)entry.Key] = entry.Value?.ToString() ?? "";
            }

            return environment;
        }

        /// <summary>The variables a running app inherited from the session that started it: its environment without those its settings gave.</summary>
        public static Dictionary<string, string> Inherited(StartSpec app)
        {
            var inherited = new Dictionary<string, string>(app.Environment, NameComparer);
            foreach (string name in app.GivenVariables.Concat(app.SessionVariables))
            {
                inherited.Remove(name);
            }

            return inherited;
        }

        /// <summary>The timeout variables (PM2_GRACEFUL_TIMEOUT, ...) this session sets, for a reload to honour.</summary>
        public static Dictionary<string, string> TimeoutVariables()
        {
            var variables = new Dictionary<string, string>();
            foreach (string name in TimeoutNames)
            {
                if (System.Environment.GetEnvironmentVariable(name) is { } value)
                {
                    variables[name] = value;
                }
            }

            return variables;
        }
    }
}
