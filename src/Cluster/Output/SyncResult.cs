using System.Linq;
using Cluster.Protocol;

namespace Cluster
{
    /// <summary>What Sync-ClusterApp did to an app.</summary>
    public enum SyncAction
    {
        /// <summary>The app was not running, so it was started.</summary>
        Started,

        /// <summary>Its settings changed: it was reloaded with the new ones, with no downtime (restarted in fork mode).</summary>
        Reloaded,

        /// <summary>Only its instance count changed, so instances were added or retired and none was replaced.</summary>
        Scaled,

        /// <summary>Only settings the host alone acts on changed (a cron restart, watching, stop exit codes): they were saved, and no instance was replaced.</summary>
        Updated,

        /// <summary>The app was stopped or errored: its new settings were saved and it was started with them.</summary>
        Restarted,

        /// <summary>Nothing differed: nothing was touched.</summary>
        Unchanged,

        /// <summary>The file no longer lists it, and -Prune was given.</summary>
        Removed,
    }

    /// <summary>One setting a sync or an update changed. Environment values are never shown, only whether one was set, changed or removed.</summary>
    public sealed class AppSettingChange
    {
        internal AppSettingChange(SettingChange change)
        {
            Setting = change.Setting;
            From = change.From;
            To = change.To;
        }

        public string Setting { get; }

        public string? From { get; }

        public string? To { get; }

        public override string ToString() => $"{Setting}: {From} -> {To}";
    }

    /// <summary>One app of a deployment file, and what Sync-ClusterApp did to it and why.</summary>
    public sealed class SyncResult
    {
        internal SyncResult(string name, SyncAction action, string reason, SettingChange[] changes, App? app)
        {
            Name = name;
            Action = action;
            Reason = reason;
            Changes = changes.Select(c => new AppSettingChange(c)).ToArray();
            App = app;
        }

        public string Name { get; }

        public SyncAction Action { get; }

        public string Reason { get; }

        /// <summary>The settings that differed from the file, one by one.</summary>
        public AppSettingChange[] Changes { get; }

        /// <summary>The app as it is afterwards; none once removed.</summary>
        public App? App { get; }
    }
}
