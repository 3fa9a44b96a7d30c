using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using Cluster.Protocol;

namespace Cluster.Settings
{
    /// <summary>What an app takes from the session that starts or changes it.</summary>
    internal static class SessionSettings
    {
        /// <summary>Names compare as the platform's environment does.</summary>
        public static StringComparer NameComparer => EnvironmentPolicy.NameComparer;

        /// <summary>
        /// A new app's settings before any is given: one instance, with the session variables an app inherits (see
        /// <see cref="EnvironmentPolicy"/>), or all of them with <paramref name="everything"/> (-InheritEnvironment).
        /// </summary>
        public static StartSpec NewApp(bool everything = false) =>
            new StartSpec { Environment = EnvironmentPolicy.FromSession(System.Environment.GetEnvironmentVariables(), everything) };

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
    }
}
