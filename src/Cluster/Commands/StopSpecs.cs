using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>
    /// How Stop-, Restart- and Remove-ClusterApp end an app's instances: plainly (SIGINT, a kill after the kill
    /// timeout), or with the 'shutdown' message first (a kill after the graceful timeout), as the two reloads do.
    /// </summary>
    internal static class StopSpecs
    {
        /// <summary>The parameter set of a plain stop, with -KillTimeout.</summary>
        public const string Plain = "Plain";

        /// <summary>The parameter set of a stop that sends 'shutdown' first, with -GracefulTimeout.</summary>
        public const string WithMessage = "ShutdownWithMessage";

        /// <summary>What the cmdlet's parameters ask for; null when they leave everything to the app's settings.</summary>
        public static StopSpec? From(ClusterCmdlet cmdlet, bool shutdownWithMessage, string gracefulTimeout, string killTimeout)
        {
            int? graceful = cmdlet.Bound(gracefulTimeout);
            int? kill = cmdlet.Bound(killTimeout);
            var session = ClusterCmdlet.SessionVariables(EnvironmentPolicy.TimeoutVariables);
            if (!shutdownWithMessage && kill is null && session.Count == 0)
            {
                return null;
            }

            return new StopSpec
            {
                ShutdownWithMessage = shutdownWithMessage,
                GracefulTimeoutMs = graceful,
                KillTimeoutMs = kill,
                SessionEnvironment = session,
            };
        }

        /// <summary>What -WhatIf and -Confirm say the cmdlet does to each instance.</summary>
        public static string Describe(bool shutdownWithMessage, string what) =>
            shutdownWithMessage ? what + ", sending each instance the 'shutdown' message first" : what;
    }
}
