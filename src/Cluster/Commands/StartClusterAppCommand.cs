using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using Cluster.Protocol;
using Cluster.Settings;

namespace Cluster.Commands
{
    /// <summary>Starts a Node.js app (or, in fork mode, any program) as a cluster of instances and returns it once every instance is ready.</summary>
    [Cmdlet(VerbsLifecycle.Start, "ClusterApp", SupportsShouldProcess = true)]
    [OutputType(typeof(App))]
    public sealed class StartClusterAppCommand : ClusterCmdlet
    {
        /// <summary>The app's entry script (or, in fork mode, the program to run).</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("FullName", "Script")]
        [ValidateNotNullOrEmpty]
        public string Path { get; set; } = "";

        /// <summary>The app's name; the script's base name when left out.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateNotNullOrEmpty]
        public string? Name { get; set; }

        /// <summary>How many instances: 0 = one per CPU, -1 = CPUs minus one, N = N; never fewer than 1.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [Alias("i")]
        public int Instances { get; set; } = 1;

        /// <summary>Cluster (Node workers sharing a port) or Fork (separate processes); Cluster for Node scripts by default.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public AppMode Mode { get; set; }

        /// <summary>Arguments passed to the script.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [AllowEmptyCollection]
        public string[] Arguments { get; set; } = Array.Empty<string>();

        /// <summary>Arguments passed to node itself, such as --max-old-space-size=512.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [AllowEmptyCollection]
        public string[] NodeArguments { get; set; } = Array.Empty<string>();

        /// <summary>The working directory of the instances; the current location when left out.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string? WorkingDirectory { get; set; }

        /// <summary>Environment variables for the instances, added to (or, with a $null value, removed from) what they inherit from this session.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public Hashtable? Environment { get; set; }

        /// <summary>Pass this session's whole environment to the instances (and so to the state file), not only the variables an app inherits by default.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public SwitchParameter InheritEnvironment { get; set; }

        /// <summary>Milliseconds to wait for an instance to listen or say 'online' (default: PM2_GRACEFUL_LISTEN_TIMEOUT, else 3000).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int ListenTimeout { get; set; }

        /// <summary>Milliseconds a stopping instance gets before it is killed (default 1600).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int KillTimeout { get; set; }

        /// <summary>How connections are shared among instances: RoundRobin (the default, except on Windows) or Shared.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public SchedulingPolicy Scheduling { get; set; }

        /// <summary>Do not load the preload that lets retiring instances finish keep-alive requests cleanly.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public SwitchParameter NoDrain { get; set; }

        /// <summary>Do not restart instances that exit on their own.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public SwitchParameter NoAutoRestart { get; set; }

        /// <summary>Unstable restarts in a row (each run shorter than MinUptime) before an instance is errored (default 16).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(0, Limits.MaxRestarts)]
        public int MaxRestarts { get; set; }

        /// <summary>Milliseconds an instance must run to count as started well (default 1000).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int MinUptime { get; set; }

        /// <summary>Milliseconds before the first restart of a crashed instance; it grows while the instance keeps crashing (default 100).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int RestartDelay { get; set; }

        /// <summary>Replace an instance (by a reload of it alone, in cluster mode) when its memory grows past this many bytes, e.g. 300MB.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(1, long.MaxValue)]
        public long MaxMemoryRestart { get; set; }

        /// <summary>Bytes after which an instance's log file is rotated (default 10MB; 0 = never).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(0, long.MaxValue)]
        public long LogMaxSize { get; set; }

        /// <summary>How many rotated log files to keep for each instance and stream (default 5).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(0, Limits.MaxLogFileCount)]
        public int LogFileCount { get; set; }

        /// <summary>An instance is ready only once it says 'ready' (process.send('ready')), even when it listens before (PM2's wait_ready).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public SwitchParameter WaitReady { get; set; }

        /// <summary>A path each new instance must answer with a 2xx status (a GET on a loopback port of its own) before it takes shared traffic, e.g. /health.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string? HealthCheckPath { get; set; }

        /// <summary>A command (run by the system shell, with CLUSTER_PID and CLUSTER_HEALTH_PORT set) that must exit with 0 before an instance counts as ready.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string? HealthCheckCommand { get; set; }

        /// <summary>Milliseconds a readiness check may take to pass, and each liveness check to answer (default 5000).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(1, Limits.MaxTimeoutMilliseconds)]
        public int HealthCheckTimeout { get; set; }

        /// <summary>Milliseconds between liveness checks of each online instance (the health check again); 0 or left out: none.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int LivenessInterval { get; set; }

        /// <summary>Liveness checks in a row an instance may fail before it is replaced (default 3).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(1, Limits.MaxRestarts)]
        public int LivenessFailures { get; set; }

        /// <summary>Milliseconds a reload's new instance must stay up after it is ready before its predecessor is retired (default 1000).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int StabilityWindow { get; set; }

        /// <summary>Sticky sessions: each client reaches the same instance (chosen by its address) while that instance lives, and its successor after a reload.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public SwitchParameter Sticky { get; set; }

        /// <summary>Exit codes after which an instance is left stopped, with the reason, instead of restarted.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [AllowEmptyCollection]
        public int[] StopExitCodes { get; set; } = Array.Empty<int>();

        /// <summary>Start the instances without this session's environment: with only the variables -Environment gives.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public SwitchParameter CleanEnvironment { get; set; }

        /// <summary>The variable that holds each instance's number, in place of NODE_APP_INSTANCE.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateNotNullOrEmpty]
        public string? InstanceVariable { get; set; }

        /// <summary>A variable of -Environment holding a number that each instance gets increased by its own number (PORT 3000: instance 1 gets 3001).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateNotNullOrEmpty]
        public string? IncrementVariable { get; set; }

        /// <summary>What runs the script in fork mode: node, none (the file itself), or a program; by the file's extension when left out.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateNotNullOrEmpty]
        public string? Interpreter { get; set; }

        /// <summary>A cron expression (5 fields, or 6 with seconds first): when it matches, the app is reloaded (restarted in fork mode).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateNotNullOrEmpty]
        public string? CronRestart { get; set; }

        /// <summary>Reload the app (restart it in fork mode) when a file under its script's folder changes.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        public SwitchParameter Watch { get; set; }

        /// <summary>Names or wildcard patterns of files and folders whose changes -Watch ignores, beside node_modules and .git.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [AllowEmptyCollection]
        public string[] WatchIgnore { get; set; } = Array.Empty<string>();

        /// <summary>Milliseconds without a further change before -Watch reloads (default 1000).</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int WatchDelay { get; set; }

        protected override void ProcessRecord()
        {
            if (CleanEnvironment && InheritEnvironment)
            {
                WriteError(NewError(
                    "EnvironmentConflict",
                    ErrorCategory.InvalidArgument,
                    "-CleanEnvironment starts the instances with none of this session's variables, and -InheritEnvironment with all of them: give one of the two.",
                    Name ?? Path));
                return;
            }

            StartSpec spec;
            try
            {
                spec = ApplySettings(
                    AppSettings.Convert(AppSettings.FromParameters(MyInvocation.BoundParameters)),
                    SessionSettings.NewApp(InheritEnvironment),
                    SessionState.Path.CurrentFileSystemLocation.ProviderPath);
            }
            catch (SettingsException e)
            {
                WriteError(NewError(e.Code, e.Category, e.Message, e.Target, e.InnerException ?? e));
                return;
            }

            if (!ShouldProcess(spec.Name, $"Start {spec.Script} in {spec.Mode} mode"))
            {
                return;
            }

            foreach (App app in SendForApps(new Request { Command = CommandNames.Start, Start = spec }))
            {
                WriteObject(app);
            }
        }

        /// <summary>Node scripts run as a cluster; anything else is a program run in fork mode.</summary>
        internal static AppMode DefaultModeFor(string script) => AppSettings.DefaultModeFor(script);

        /// <summary>The script's base name, with characters a name cannot have replaced by '-'.</summary>
        internal static string NameFromScript(string script) => AppSettings.NameFromScript(script);
    }
}
