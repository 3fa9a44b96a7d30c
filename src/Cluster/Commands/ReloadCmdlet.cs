using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using Cluster.Fleet;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>What plain and graceful reload share: the rolling replacement of every instance, one app at a time.</summary>
    public abstract class ReloadCmdlet : AppNameCmdlet
    {
        private readonly FleetNames _fleetNames = new FleetNames();
        private volatile string? _reloading;
        private bool _warningsShown = true;

        /// <summary>Milliseconds to wait for each new instance to listen or say 'online' before going on (default: PM2_GRACEFUL_LISTEN_TIMEOUT, else 3000).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int ListenTimeout { get; set; }

        /// <summary>Milliseconds the reload's first new instance (or batch) must stay up after it is ready before its predecessor is retired (default: the app's -StabilityWindow, else 1000).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int StabilityWindow { get; set; }

        /// <summary>How many instances are replaced at once (default 1).</summary>
        [Parameter]
        [ValidateRange(1, Limits.MaxInstances)]
        public int Parallel { get; set; } = 1;

        /// <summary>Only these instances (their NODE_APP_INSTANCE numbers); every instance when left out.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public int[]? Instance { get; set; }

        /// <summary>If the app is already being reloaded, wait for that reload to finish instead of failing.</summary>
        [Parameter]
        public SwitchParameter Wait { get; set; }

        /// <summary>Reload the apps on these machines (PSSession objects, from New-PSSession), one machine after the other; the first machine that fails stops the rollout.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public PSSession[]? Session { get; set; }

        /// <summary>With -Session: how many machines are reloaded at once (default 1).</summary>
        [Parameter]
        [ValidateRange(1, 1000)]
        public int MaxParallelMachines { get; set; } = 1;

        internal abstract bool Graceful { get; }

        internal abstract void AddTimeouts(ReloadSpec spec);

        protected override void BeginProcessing()
        {
            base.BeginProcessing();
            // Read here, on the pipeline thread: StopProcessing runs on another one.
            ActionPreference preference = MyInvocation.BoundParameters.TryGetValue("WarningAction", out object? action)
                ? (ActionPreference)action
                : GetVariableValue("WarningPreference") is ActionPreference set ? set : ActionPreference.Continue;
            _warningsShown = preference != ActionPreference.SilentlyContinue && preference != ActionPreference.Ignore;
        }

        protected override void ProcessRecord()
        {
            if (Session is not null)
            {
                _fleetNames.Add(Name);
                return;
            }

            foreach (string name in Names)
            {
                if (!ShouldProcess(name, Graceful ? "Reload every instance gracefully" : "Reload every instance"))
                {
                    continue;
                }

                var spec = new ReloadSpec
                {
                    Graceful = Graceful,
                    ListenTimeoutMs = Bound(nameof(ListenTimeout)),
                    StabilityWindowMs = Bound(nameof(StabilityWindow)),
                    Parallel = Parallel,
                    Wait = Wait,
                    Instances = Instance?.ToList(),
                    SessionEnvironment = SessionVariables(EnvironmentPolicy.TimeoutVariables),
                };
                AddTimeouts(spec);
                _reloading = name;
                try
                {
                    foreach (App app in SendForApps(new Request { Command = CommandNames.Reload, Name = name, Reload = spec }))
                    {
                        WriteObject(app);
                    }
                }
                finally
                {
                    _reloading = null;
                }
            }
        }

        /// <summary>With -Session, the apps of the whole pipeline roll together: each machine reloads them all before the next one starts.</summary>
        protected override void EndProcessing()
        {
            if (Session is not null && _fleetNames.Any)
            {
                var fleet = new FleetRunner(this);
                fleet.SetRemote("Confirm", false);
                fleet.SetRemote(nameof(Name), _fleetNames.All);
                fleet.Roll(Session, MaxParallelMachines, $"{(Graceful ? "Reload gracefully" : "Reload")} {string.Join(", ", _fleetNames.All)}", _ => true);
            }
        }

        /// <summary>
        /// Ctrl+C: the host finishes the instance it is replacing and stops there. The warning goes straight to the
        /// host's UI, since the pipeline that would carry it is being stopped.
        /// </summary>
        protected override void StopProcessing()
        {
            string? name = _reloading;
            base.StopProcessing();
            if (name is not null && _warningsShown)
            {
                Host.UI.WriteWarningLine(
                    $"The reload of '{name}' stops once the instance being replaced is done; no other instance is touched. "
                    + $"Until the next {MyInvocation.MyCommand.Name} -Name {name} completes the job, Get-ClusterApp shows '{name}' as PartlyReloaded, "
                    + "its instances running different generations.");
            }
        }
    }
}
