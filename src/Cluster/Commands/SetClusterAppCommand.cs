using System.Collections;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using Cluster.Fleet;
using Cluster.Protocol;
using Cluster.Settings;

namespace Cluster.Commands
{
    /// <summary>
    /// Changes a running app's settings, keeping the ones not named: a new instance count alone by adding or
    /// retiring instances; anything else by a rolling reload whose new instances start with the new settings (no
    /// downtime; a restart in fork mode). A stopped app's settings are saved for its next start.
    /// </summary>
    [Cmdlet(VerbsCommon.Set, "ClusterApp", SupportsShouldProcess = true)]
    [OutputType(typeof(App))]
    public sealed class SetClusterAppCommand : AppOperationCmdlet
    {
        /// <summary>The number of instances: 0 = one per CPU, -1 = CPUs minus one, N = N.</summary>
        [Parameter]
        [Alias("i")]
        public int Instances { get; set; }

        /// <summary>A new entry script (or, in fork mode, program).</summary>
        [Parameter]
        [Alias("Script")]
        [ValidateNotNullOrEmpty]
        public string? Path { get; set; }

        /// <summary>New arguments for the script, in place of the old ones.</summary>
        [Parameter]
        [AllowEmptyCollection]
        public string[]? Arguments { get; set; }

        /// <summary>New arguments for node itself, in place of the old ones.</summary>
        [Parameter]
        [AllowEmptyCollection]
        public string[]? NodeArguments { get; set; }

        /// <summary>A new working directory.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? WorkingDirectory { get; set; }

        /// <summary>Environment variables to set (or, with a $null value, to remove); the others stay as they are.</summary>
        [Parameter]
        public Hashtable? Environment { get; set; }

        /// <summary>Milliseconds to wait for an instance to listen or say 'online'.</summary>
        [Parameter]
        [ValidateRange(0, 86400000)]
        public int ListenTimeout { get; set; }

        /// <summary>Milliseconds a stopping instance gets before it is killed.</summary>
        [Parameter]
        [ValidateRange(0, 86400000)]
        public int KillTimeout { get; set; }

        /// <summary>Whether retiring instances go without the drain preload.</summary>
        [Parameter]
        public SwitchParameter NoDrain { get; set; }

        /// <summary>Whether instances that exit on their own stay down.</summary>
        [Parameter]
        public SwitchParameter NoAutoRestart { get; set; }

        /// <summary>Unstable restarts in a row before an instance is errored.</summary>
        [Parameter]
        [ValidateRange(0, 1000000)]
        public int MaxRestarts { get; set; }

        /// <summary>Milliseconds an instance must run to count as started well.</summary>
        [Parameter]
        [ValidateRange(0, 86400000)]
        public int MinUptime { get; set; }

        /// <summary>Milliseconds before the first restart of a crashed instance.</summary>
        [Parameter]
        [ValidateRange(0, 86400000)]
        public int RestartDelay { get; set; }

        /// <summary>Replace an instance when its memory grows past this many bytes.</summary>
        [Parameter]
        [ValidateRange(1, long.MaxValue)]
        public long MaxMemoryRestart { get; set; }

        /// <summary>Bytes after which an instance's log file is rotated (0 = never).</summary>
        [Parameter]
        [ValidateRange(0, long.MaxValue)]
        public long LogMaxSize { get; set; }

        /// <summary>How many rotated log files to keep.</summary>
        [Parameter]
        [ValidateRange(0, 1000)]
        public int LogFileCount { get; set; }

        /// <summary>An instance is ready only once it says 'ready' (process.send('ready')), even when it listens before (PM2's wait_ready).</summary>
        [Parameter]
        public SwitchParameter WaitReady { get; set; }

        /// <summary>A path each new instance must answer with a 2xx status (a GET on a loopback port of its own) before it takes shared traffic, e.g. /health. An empty string takes the check away.</summary>
        [Parameter]
        [AllowEmptyString]
        public string? HealthCheckPath { get; set; }

        /// <summary>A command (run by the system shell, with CLUSTER_PID and CLUSTER_HEALTH_PORT set) that must exit with 0 before an instance counts as ready. An empty string takes the check away.</summary>
        [Parameter]
        [AllowEmptyString]
        public string? HealthCheckCommand { get; set; }

        /// <summary>Milliseconds a readiness check may take to pass, and each liveness check to answer (default 5000).</summary>
        [Parameter]
        [ValidateRange(1, Limits.MaxTimeoutMilliseconds)]
        public int HealthCheckTimeout { get; set; }

        /// <summary>Milliseconds between liveness checks of each online instance (the health check again); 0 or left out: none.</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int LivenessInterval { get; set; }

        /// <summary>Liveness checks in a row an instance may fail before it is replaced (default 3).</summary>
        [Parameter]
        [ValidateRange(1, Limits.MaxRestarts)]
        public int LivenessFailures { get; set; }

        /// <summary>Milliseconds a reload's new instance must stay up after it is ready before its predecessor is retired (default 1000).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int StabilityWindow { get; set; }

        /// <summary>Whether each client reaches the same instance; a running app cannot change it by a reload (SettingNeedsRestart), a stopped one can.</summary>
        [Parameter]
        public SwitchParameter Sticky { get; set; }

        /// <summary>Exit codes after which an instance is left stopped instead of restarted; an empty list for none.</summary>
        [Parameter]
        [AllowEmptyCollection]
        public int[]? StopExitCodes { get; set; }

        /// <summary>Whether the instances start without the session's environment (-CleanEnvironment:$false inherits it again from this session).</summary>
        [Parameter]
        public SwitchParameter CleanEnvironment { get; set; }

        /// <summary>The variable that holds each instance's number, in place of NODE_APP_INSTANCE.</summary>
        [Parameter]
        [AllowEmptyString]
        public string? InstanceVariable { get; set; }

        /// <summary>A variable of the environment whose number each instance gets increased by its own number; an empty string for none.</summary>
        [Parameter]
        [AllowEmptyString]
        public string? IncrementVariable { get; set; }

        /// <summary>What runs the script in fork mode: node, none, or a program; an empty string for the one its extension means.</summary>
        [Parameter]
        [AllowEmptyString]
        public string? Interpreter { get; set; }

        /// <summary>A cron expression for a scheduled reload (restart in fork mode); an empty string for none.</summary>
        [Parameter]
        [AllowEmptyString]
        public string? CronRestart { get; set; }

        /// <summary>Whether a change under the script's folder reloads the app (-Watch:$false stops watching).</summary>
        [Parameter]
        public SwitchParameter Watch { get; set; }

        /// <summary>Names or wildcard patterns whose changes -Watch ignores; an empty list for none but node_modules and .git.</summary>
        [Parameter]
        [AllowEmptyCollection]
        public string[]? WatchIgnore { get; set; }

        /// <summary>Milliseconds without a further change before -Watch reloads.</summary>
        [Parameter]
        [ValidateRange(0, 86400000)]
        public int WatchDelay { get; set; }

        /// <summary>Reload gracefully: each old instance gets the 'shutdown' message first.</summary>
        [Parameter]
        public SwitchParameter Graceful { get; set; }

        /// <summary>Change the apps on these machines (PSSession objects, from New-PSSession), one machine after the other; the first machine that fails stops the rollout.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public PSSession[]? Session { get; set; }

        /// <summary>With -Session: how many machines are changed at once (default 1).</summary>
        [Parameter]
        [ValidateRange(1, 1000)]
        public int MaxParallelMachines { get; set; } = 1;

        private readonly FleetNames _fleetNames = new FleetNames();

        protected override string Action => "Apply " + string.Join(", ", Given().Keys.Cast<string>().OrderBy(k => k, System.StringComparer.Ordinal));

        internal override Request? RequestFor(string name)
        {
            StartSpec? current = Send(new Request { Command = CommandNames.Definitions, Name = name })?.Specs?.FirstOrDefault();
            if (current is null)
            {
                return null; // the host said why
            }

            try
            {
                StartSpec wanted = ApplySettings(AppSettings.Convert(Given()), current, SessionState.Path.CurrentFileSystemLocation.ProviderPath);
                return UpdateRequest(name, wanted, Graceful);
            }
            catch (SettingsException e)
            {
                ThrowTerminatingError(NewError(e.Code, e.Category, e.Message, e.Target, e));
                throw;
            }
        }

        protected override void ProcessRecord()
        {
            if (Session is null)
            {
                base.ProcessRecord();
                return;
            }

            _fleetNames.Add(Name);
        }

        /// <summary>With -Session, the apps of the whole pipeline roll together: each machine changes them all before the next one starts.</summary>
        protected override void EndProcessing()
        {
            if (Session is not null && _fleetNames.Any)
            {
                // The results are asked for in any case, to see that each machine's apps came through.
                var fleet = new FleetRunner(this);
                fleet.SetRemote("Confirm", false);
                fleet.SetRemote(nameof(PassThru), true);
                fleet.SetRemote(nameof(Name), _fleetNames.All);
                fleet.Roll(Session, MaxParallelMachines, $"{Action} to {string.Join(", ", _fleetNames.All)}", _ => PassThru);
            }
        }

        protected override void BeginProcessing()
        {
            base.BeginProcessing();
            if (Given().Count == 0)
            {
                ThrowTerminatingError(NewError(
                    "NoSetting",
                    ErrorCategory.InvalidArgument,
                    "Name at least one setting to change, for example -Instances 4 or -Environment @{ LOG_LEVEL = 'debug' }.",
                    null));
            }
        }

        /// <summary>The settings this call names, by Start-ClusterApp's parameter names.</summary>
        private Hashtable Given()
        {
            Hashtable given = AppSettings.FromParameters(MyInvocation.BoundParameters);
            given.Remove(nameof(Name)); // the apps to change, not a new name
            return given;
        }
    }
}
