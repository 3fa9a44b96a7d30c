using System.Collections.Generic;
using System.Linq;

namespace Cluster.Protocol
{
    /// <summary>What an update does to a running app, by the settings that change.</summary>
    internal enum UpdateEffect
    {
        /// <summary>No setting changes: nothing is touched.</summary>
        None,

        /// <summary>Only the instance count: instances are added or retired, and none is replaced.</summary>
        Scale,

        /// <summary>Only settings the host alone acts on: they are saved, and no instance is replaced.</summary>
        SaveOnly,

        /// <summary>Settings the instances start with: a rolling reload replaces them (a restart in fork mode).</summary>
        Reload,
    }

    /// <summary>
    /// What a set of setting changes takes, decided in one place for the host, which carries the update out, and for
    /// the cmdlets, which plan it under -WhatIf and say afterwards what was done.
    /// </summary>
    internal static class UpdateEffects
    {
        public const string Instances = "Instances";

        /// <summary>Settings only the host acts on (when an instance is restarted, what is watched): changing them replaces no instance.</summary>
        public static readonly IReadOnlyList<string> HostSide = new[] { "StopExitCodes", "CronRestart", "Watch", "WatchIgnore", "WatchDelay" };

        public static UpdateEffect Of(IReadOnlyCollection<SettingChange> changes)
        {
            if (changes.Count == 0)
            {
                return UpdateEffect.None;
            }

            if (changes.All(c => c.Setting == Instances))
            {
                return UpdateEffect.Scale;
            }

            return changes.All(c => HostSide.Contains(c.Setting)) ? UpdateEffect.SaveOnly : UpdateEffect.Reload;
        }
    }
}
