using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using Cluster.Fleet;
using Cluster.Protocol;
using Cluster.Settings;

namespace Cluster.Commands
{
    /// <summary>
    /// Makes the running apps match a deployment file, and can be run again and again: starts the apps that are
    /// missing, reloads (with no downtime) those whose settings changed, only saves settings that the host alone acts
    /// on, starts stopped ones, leaves the rest alone, and with -Prune removes the apps the file no longer lists.
    /// </summary>
    [Cmdlet(VerbsData.Sync, "ClusterApp", SupportsShouldProcess = true)]
    [OutputType(typeof(SyncResult))]
    public sealed class SyncClusterAppCommand : ClusterCmdlet
    {
        /// <summary>The deployment file: a .psd1 data file, or a PM2 ecosystem file (.json, .js, .cjs, .mjs).</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("FullName")]
        [ValidateNotNullOrEmpty]
        public string Path { get; set; } = "";

        /// <summary>For a PM2 ecosystem file: the env_&lt;name&gt; block laid over each app's env (PM2's --env).</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? EnvironmentName { get; set; }

        /// <summary>Also remove the apps that run but that the file does not list.</summary>
        [Parameter]
        public SwitchParameter Prune { get; set; }

        /// <summary>Reload changed apps gracefully: each old instance gets the 'shutdown' message first.</summary>
        [Parameter]
        public SwitchParameter Graceful { get; set; }

        /// <summary>Apply the file on these machines (PSSession objects, from New-PSSession), one machine after the other; the first machine that fails stops the rollout. The file is read here and its content sent.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public PSSession[]? Session { get; set; }

        /// <summary>With -Session: how many machines apply the file at once (default 1).</summary>
        [Parameter]
        [ValidateRange(1, 1000)]
        public int MaxParallelMachines { get; set; } = 1;

        protected override void ProcessRecord()
        {
            string file = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
            if (Session is not null)
            {
                Roll(file, Session);
                return;
            }

            List<StartSpec> wanted;
            try
            {
                wanted = Read(file, Send(new Request { Command = CommandNames.Definitions })?.Specs ?? new List<StartSpec>());
            }
            catch (SettingsException e)
            {
                // Nothing is applied from a file with any problem in it.
                ThrowTerminatingError(NewError(e.Code, e.Category, e.Message, e.Target ?? file, e));
                return;
            }

            List<AppInfo> running = Send(new Request { Command = CommandNames.List })?.Apps ?? new List<AppInfo>();
            foreach (StartSpec spec in wanted)
            {
                AppInfo? current = running.FirstOrDefault(a => string.Equals(a.Name, spec.Name, StringComparison.OrdinalIgnoreCase));
                SyncResult? result = current is null ? Start(spec) : Update(spec, current);
                if (result is not null)
                {
                    WriteObject(result);
                }
            }

            if (Prune)
            {
                foreach (AppInfo extra in running.Where(a => !wanted.Any(w => string.Equals(w.Name, a.Name, StringComparison.OrdinalIgnoreCase))))
                {
                    if (ShouldProcess(extra.Name, $"Remove (not listed in {file})") && Send(new Request { Command = CommandNames.Remove, Name = extra.Name }) is not null)
                    {
                        WriteObject(new SyncResult(extra.Name, SyncAction.Removed, $"{System.IO.Path.GetFileName(file)} does not list it", Array.Empty<SettingChange>(), null));
                    }
                }
            }
        }

        /// <summary>The file goes to each machine as content; its relative paths mean the same folder there as here.</summary>
        private void Roll(string file, PSSession[] sessions)
        {
            byte[] content;
            try
            {
                content = System.IO.File.ReadAllBytes(file);
            }
            catch (Exception e) when (e is System.IO.IOException || e is UnauthorizedAccessException)
            {
                ThrowTerminatingError(NewError("FileNotFound", ErrorCategory.ObjectNotFound, $"The deployment file '{file}' cannot be read here: {e.Message}", file, e));
                return;
            }

            var fleet = new FleetRunner(this);
            fleet.SendFile(file, content);
            fleet.SetRemote("Confirm", false);
            fleet.Roll(sessions, MaxParallelMachines, $"Apply {file}", _ => true);
        }

        /// <summary>The apps of the file as start requests; an app that runs already keeps the variables it inherited when it started.</summary>
        private List<StartSpec> Read(string file, List<StartSpec> current)
        {
            string folder = System.IO.Path.GetDirectoryName(file) ?? SessionState.Path.CurrentFileSystemLocation.ProviderPath;
            var specs = new List<StartSpec>();
            foreach (DeploymentEntry entry in DeploymentFile.Read(file, EnvironmentName, FindProgram))
            {
                if (entry.Ignored.Count > 0)
                {
                    WriteWarning($"{System.IO.Path.GetFileName(file)}, app '{entry.Label}': Cluster does not use {string.Join(", ", entry.Ignored)}; {(entry.Ignored.Count == 1 ? "it was" : "they were")} left out.");
                }

                try
                {
                    string name = entry.Settings.TryGetValue("Name", out object? given) && given is string text ? text : "";
                    StartSpec basis = SessionSettings.NewApp();
                    if (current.FirstOrDefault(c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase)) is { } running)
                    {
                        // Compared with what the file gives, not with whatever the session running the sync has: a
                        // runbook's next run, in a new process, finds nothing to change.
                        basis.Environment = SessionSettings.Inherited(running);
                    }

                    specs.Add(ApplySettings(entry.Settings, basis, folder));
                }
                catch (SettingsException e)
                {
                    throw new SettingsException(e.Code, e.Category, $"In {file}, app '{entry.Label}': {e.Message}", e.Target, e);
                }
            }

            return specs;
        }

        private SyncResult? Start(StartSpec spec)
        {
            if (!ShouldProcess(spec.Name, $"Start {spec.Script} ({spec.Instances} instances)"))
            {
                return null;
            }

            App? app = SendForApps(new Request { Command = CommandNames.Start, Start = spec }).FirstOrDefault();
            return app is null ? null : new SyncResult(spec.Name, SyncAction.Started, "it was not running", Array.Empty<SettingChange>(), app);
        }

        private SyncResult? Update(StartSpec spec, AppInfo current)
        {
            Frame? plan = Send(new Request { Command = CommandNames.Update, Name = current.Name, Start = spec, Plan = true });
            if (plan is null)
            {
                return null;
            }

            SettingChange[] changes = (plan.Changes ?? new List<SettingChange>()).ToArray();
            AppStatus status = Enums.Parse(current.Status, AppStatus.Unknown);
            SyncAction action = ActionFor(status, changes);
            if (action == SyncAction.Unchanged)
            {
                return new SyncResult(current.Name, action, "its settings match the file", changes, plan.Apps?.Select(a => new App(a)).FirstOrDefault());
            }

            string what = changes.Length == 0 ? "nothing changed" : string.Join("; ", changes.Select(c => $"{c.Setting}: {c.From} -> {c.To}"));
            if (!ShouldProcess(current.Name, $"{Verb(action)} ({what})"))
            {
                return null;
            }

            if (changes.Length > 0 && Send(UpdateRequest(current.Name, spec, Graceful)) is null)
            {
                return null;
            }

            bool stopped = action == SyncAction.Restarted;
            App? app = stopped
                ? SendForApps(new Request { Command = CommandNames.Restart, Name = current.Name }).FirstOrDefault()
                : SendForApps(new Request { Command = CommandNames.List, Name = current.Name }).FirstOrDefault();
            string was = status == AppStatus.Errored ? "it was errored" : "it was stopped";
            string reason = stopped ? (changes.Length == 0 ? was : was + ", and its settings changed") : "its settings changed";
            return app is null ? null : new SyncResult(current.Name, action, reason, changes, app);
        }

        /// <summary>What a sync does to an app the host has: a stopped or errored one is started; a running one is updated as the host updates it.</summary>
        internal static SyncAction ActionFor(AppStatus status, IReadOnlyCollection<SettingChange> changes)
        {
            if (status == AppStatus.Stopped || status == AppStatus.Errored)
            {
                return SyncAction.Restarted;
            }

            return UpdateEffects.Of(changes) switch
            {
                UpdateEffect.None => SyncAction.Unchanged,
                UpdateEffect.Scale => SyncAction.Scaled,
                UpdateEffect.SaveOnly => SyncAction.Updated,
                _ => SyncAction.Reloaded,
            };
        }

        /// <summary>The action as -WhatIf and -Confirm name it.</summary>
        internal static string Verb(SyncAction action) => action switch
        {
            SyncAction.Restarted => "Save the new settings and start it",
            SyncAction.Scaled => "Scale",
            SyncAction.Updated => "Save the new settings, replacing no instance",
            _ => "Reload with the new settings",
        };
    }
}
