using System;
using System.Collections.Generic;
using System.Text.Json.Serialization;

// The request/reply contract between the cmdlets and the host. One JSON object per line, UTF-8.
// A request is answered by one or more frames; the last one has Done = true.
namespace Cluster.Protocol
{
    internal static class CommandNames
    {
        public const string Ping = "ping";
        public const string Start = "start";
        public const string List = "list";
        public const string Stop = "stop";
        public const string Restart = "restart";
        public const string Remove = "remove";
        public const string Reload = "reload";
        public const string Scale = "scale";
        public const string Update = "update";
        public const string Definitions = "definitions";
        public const string Logs = "logs";
        public const string ClearLogs = "clearlogs";
        public const string HostInfo = "host";
        public const string Shutdown = "shutdown";

        /// <summary>A newer module takes over: the host answers, then exits leaving every app running for the newer host to adopt.</summary>
        public const string Handover = "handover";

        // Sent to an app's running instances
        public const string Signal = "signal";
        public const string Message = "message";
        public const string Reset = "reset";
    }

    /// <summary>
    /// What one request may ask, checked by the cmdlets before they send and by the host whatever the sender: the
    /// host refuses a request beyond these with a clear error instead of doing unbounded work.
    /// </summary>
    internal static class Limits
    {
        /// <summary>The largest request frame the host reads (its JSON, without the newline).</summary>
        public const int MaxRequestBytes = 1024 * 1024;

        /// <summary>The most instances of one app.</summary>
        public const int MaxInstances = 1024;

        /// <summary>The longest any timeout may be: a day. Longer is a typo that would hang a runbook.</summary>
        public const int MaxTimeoutMilliseconds = 24 * 60 * 60 * 1000;

        /// <summary>The most unstable restarts in a row an app may allow.</summary>
        public const int MaxRestarts = 1000000;

        /// <summary>The most rotated log files kept per instance and stream.</summary>
        public const int MaxLogFileCount = 1000;

        /// <summary>The most lines one log request returns per instance and stream.</summary>
        public const int MaxTailLines = 100000;
    }

    internal sealed class Request
    {
        public string Command { get; set; } = "";

        /// <summary>An app name; for list, a wildcard pattern.</summary>
        public string? Name { get; set; }

        public StartSpec? Start { get; set; }

        public ReloadSpec? Reload { get; set; }

        public LogQuery? Logs { get; set; }

        /// <summary>For scale: the requested instance count (0 = one per CPU, negative = CPUs minus that many).</summary>
        public int? Instances { get; set; }

        /// <summary>For stop, restart and remove: how the instances are stopped (absent: plainly).</summary>
        public StopSpec? Stop { get; set; }

        /// <summary>For update: only say what would change, and change nothing.</summary>
        public bool Plan { get; set; }

        /// <summary>For signal and message: what goes to which instances.</summary>
        public DeliverySpec? Deliver { get; set; }
    }

    /// <summary>A signal or a message for an app's running instances.</summary>
    internal sealed class DeliverySpec
    {
        /// <summary>For signal: its name, such as SIGUSR2 (see <see cref="Signals"/>).</summary>
        public string? Signal { get; set; }

        /// <summary>For message: the message as JSON text; the instance gets the value it stands for.</summary>
        public string? MessageJson { get; set; }

        /// <summary>Only these instances (NODE_APP_INSTANCE numbers); every running instance when null.</summary>
        public List<int>? Instances { get; set; }
    }

    /// <summary>The signals an instance can be sent, by the names Node gives them.</summary>
    internal static class Signals
    {
        public static readonly IReadOnlyList<string> Names = new[]
        {
            "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1",
            "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP",
            "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGSYS",
        };

        /// <summary>The signal's name as Node knows it (USR2, usr2 and SIGUSR2 are SIGUSR2), or null when it is none.</summary>
        public static string? Normalize(string? name)
        {
            if (string.IsNullOrWhiteSpace(name))
            {
                return null;
            }

            string upper = name!.Trim().ToUpperInvariant();
            string full = upper.StartsWith("SIG", StringComparison.Ordinal) ? upper : "SIG" + upper;
            foreach (string known in Names)
            {
                if (known == full)
                {
                    return known;
                }
            }

            return null;
        }
    }

    /// <summary>One setting an update changes: the names are Start-ClusterApp's parameters; environment values are never shown.</summary>
    internal sealed class SettingChange
    {
        public string Setting { get; set; } = "";
        public string? From { get; set; }
        public string? To { get; set; }
    }

    /// <summary>How a stop, restart or remove ends an app's instances.</summary>
    internal sealed class StopSpec
    {
        /// <summary>Send each instance the 'shutdown' message and wait up to the graceful timeout before a kill.</summary>
        public bool ShutdownWithMessage { get; set; }

        public int? GracefulTimeoutMs { get; set; }

        public int? KillTimeoutMs { get; set; }

        /// <summary>The caller's PM2_GRACEFUL_TIMEOUT, when it set one.</summary>
        public Dictionary<string, string> SessionEnvironment { get; set; } = new Dictionary<string, string>();
    }

    internal sealed class StartSpec
    {
        public string Name { get; set; } = "";
        public string Script { get; set; } = "";
        public string Mode { get; set; } = AppModes.Cluster;
        public int Instances { get; set; } = 1;
        public List<string> Arguments { get; set; } = new List<string>();
        public List<string> NodeArguments { get; set; } = new List<string>();
        public string WorkingDirectory { get; set; } = "";

        /// <summary>
        /// The full environment the instances run with, and all of it that is saved: the session variables that
        /// EnvironmentPolicy lets an app inherit (or, with -InheritEnvironment, the whole session), overlaid with -Environment.
        /// </summary>
        public Dictionary<string, string> Environment { get; set; } = new Dictionary<string, string>();

        public int? ListenTimeoutMs { get; set; }
        public int? KillTimeoutMs { get; set; }
        public string? Scheduling { get; set; }
        public bool Drain { get; set; } = true;
        public bool AutoRestart { get; set; } = true;
        public int? MaxRestarts { get; set; }
        public int? MinUptimeMs { get; set; }
        public int? RestartDelayMs { get; set; }

        /// <summary>An instance's log file is rotated past this size (0 = never).</summary>
        public long? LogMaxBytes { get; set; }

        /// <summary>An instance whose memory grows past this many bytes is replaced (reloaded, not killed in place).</summary>
        public long? MaxMemoryBytes { get; set; }

        /// <summary>How many rotated log files are kept beside the current one.</summary>
        public int? LogFileCount { get; set; }

        /// <summary>An instance is ready only once it says 'ready' (or 'online'), even when it listens before (PM2's wait_ready).</summary>
        public bool WaitReady { get; set; }

        /// <summary>A path an instance must answer with a 2xx status, on a loopback port of its own, before it takes shared traffic.</summary>
        public string? HealthCheckPath { get; set; }

        /// <summary>A command (run by the system shell) that must exit with 0 before an instance counts as ready.</summary>
        public string? HealthCheckCommand { get; set; }

        /// <summary>How long a readiness check may take to pass, and each liveness check to answer.</summary>
        public int? HealthCheckTimeoutMs { get; set; }

        /// <summary>Every so often, an online instance is checked again (absent: never).</summary>
        public int? LivenessIntervalMs { get; set; }

        /// <summary>How many liveness checks in a row an instance may fail before it is replaced.</summary>
        public int? LivenessFailures { get; set; }

        /// <summary>How long a new instance must stay up after it is ready before a reload retires its predecessor.</summary>
        public int? StabilityWindowMs { get; set; }

        /// <summary>The primary accepts the app's connections and hands each to the instance its client's address maps to.</summary>
        public bool Sticky { get; set; }

        /// <summary>
        /// Names of environment variables whose values came from the caller's session when the settings were applied
        /// (a deployment file's EnvironmentFromSession): an export writes their names, never their values.
        /// </summary>
        public List<string> SessionVariables { get; set; } = new List<string>();

        /// <summary>Names of the environment variables the app's settings gave (-Environment), as opposed to those inherited from the session.</summary>
        public List<string> GivenVariables { get; set; } = new List<string>();

        // How instances are started and when they are not restarted (Start-ClusterApp's restart controls)

        /// <summary>Exit codes after which an instance is left stopped instead of restarted.</summary>
        public List<int>? StopExitCodes { get; set; }

        /// <summary>The instances inherit nothing from the session: only the variables the settings give.</summary>
        public bool CleanEnvironment { get; set; }

        /// <summary>The variable that holds the instance's number, in place of NODE_APP_INSTANCE.</summary>
        public string? InstanceVariable { get; set; }

        /// <summary>A variable of the environment whose number is incremented per instance (instance N gets base + N).</summary>
        public string? IncrementVariable { get; set; }

        /// <summary>What runs the script in fork mode: node, none (the file itself), or a program; by the file's extension when null.</summary>
        public string? Interpreter { get; set; }

        /// <summary>A cron expression: when it matches, the app is reloaded (cluster mode) or restarted (fork mode).</summary>
        public string? CronRestart { get; set; }

        /// <summary>A change to a file under the script's folder reloads the app (restarts it in fork mode).</summary>
        public bool Watch { get; set; }

        /// <summary>Names or wildcard patterns of files and folders whose changes do not count, beside node_modules and .git.</summary>
        public List<string>? WatchIgnore { get; set; }

        /// <summary>Milliseconds without a further change before a watched change reloads the app.</summary>
        public int? WatchDelayMs { get; set; }
    }

    internal sealed class ReloadSpec
    {
        public bool Graceful { get; set; }
        public int? ListenTimeoutMs { get; set; }
        public int? KillTimeoutMs { get; set; }
        public int? GracefulTimeoutMs { get; set; }

        /// <summary>For this reload only, in place of the app's stability window.</summary>
        public int? StabilityWindowMs { get; set; }

        public int Parallel { get; set; } = 1;

        /// <summary>Only these instances (NODE_APP_INSTANCE numbers); every instance when null.</summary>
        public List<int>? Instances { get; set; }

        /// <summary>Wait for a running reload of the same app to finish instead of refusing.</summary>
        public bool Wait { get; set; }

        /// <summary>The timeout variables (PM2_GRACEFUL_TIMEOUT, ...) as the calling session has them.</summary>
        public Dictionary<string, string> SessionEnvironment { get; set; } = new Dictionary<string, string>();
    }

    internal sealed class LogQuery
    {
        /// <summary>
        /// The apps whose logs are read, merged in time order: every app when null and the request names none. An app
        /// that is gone (its start failed, or it was removed) is still read while its log files are there.
        /// </summary>
        public List<string>? Apps { get; set; }

        public int? Instance { get; set; }
        public int Tail { get; set; } = 20;
        public bool Follow { get; set; }

        /// <summary>Only lines stamped at or after this time.</summary>
        public DateTimeOffset? Since { get; set; }

        /// <summary>Only this stream ("out" or "err"); both when null.</summary>
        public string? Stream { get; set; }
    }

    internal static class AppModes
    {
        public const string Cluster = "cluster";
        public const string Fork = "fork";
    }

    internal sealed class Frame
    {
        public bool Done { get; set; }

        /// <summary>
        /// Says only that the host is alive: sent every second while a request is in progress, so that a client
        /// can tell a long operation (a reload of minutes) from a host that stopped answering.
        /// </summary>
        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
        public bool Heartbeat { get; set; }

        public ErrorInfo? Error { get; set; }

        /// <summary>Failures of single items (an app that is not there) that do not end the request: the rest goes on.</summary>
        public List<ErrorInfo>? Errors { get; set; }

        public string? Warning { get; set; }
        public ProgressInfo? Progress { get; set; }
        public List<AppInfo>? Apps { get; set; }
        public HostInfo? Host { get; set; }
        public List<LogLineInfo>? Lines { get; set; }

        /// <summary>For update: the settings it changed (or, planned, would change).</summary>
        public List<SettingChange>? Changes { get; set; }

        /// <summary>For definitions: each app's settings, as it was started or last updated.</summary>
        public List<StartSpec>? Specs { get; set; }

        public static Frame Final() => new Frame { Done = true };
        public static Frame Failed(ErrorInfo error) => new Frame { Done = true, Error = error };
        public static Frame Beat() => new Frame { Heartbeat = true };
    }

    internal sealed class ErrorInfo
    {
        /// <summary>A stable PascalCase code; the cmdlet prefixes its own name to make the error id.</summary>
        public string Code { get; set; } = "";

        /// <summary>The name of a System.Management.Automation.ErrorCategory value.</summary>
        public string Category { get; set; } = "";

        public string Message { get; set; } = "";
        public string? Target { get; set; }
    }

    internal sealed class ProgressInfo
    {
        public string Activity { get; set; } = "";
        public string Status { get; set; } = "";
        public string? Operation { get; set; }
        public int Percent { get; set; }
        public bool Completed { get; set; }
    }

    internal sealed class AppInfo
    {
        public string Name { get; set; } = "";
        public string Mode { get; set; } = "";
        public string Script { get; set; } = "";
        public List<string> Arguments { get; set; } = new List<string>();
        public List<string> NodeArguments { get; set; } = new List<string>();
        public string WorkingDirectory { get; set; } = "";
        public string Status { get; set; } = "";
        public string? Scheduling { get; set; }
        public string? ReloadError { get; set; }
        public DateTimeOffset Created { get; set; }
        public List<InstanceInfo> Instances { get; set; } = new List<InstanceInfo>();

        /// <summary>What pm2 describe shows beside the status: the settings as they apply, and where the logs are.</summary>
        public AppDetails? Details { get; set; }
    }

    /// <summary>An app's settings as they apply (defaults and timeout variables resolved), its log files and Node executable.</summary>
    internal sealed class AppDetails
    {
        public string NodePath { get; set; } = "";
        public bool AutoRestart { get; set; }
        public int MaxRestarts { get; set; }
        public int MinUptimeMs { get; set; }
        public int RestartDelayMs { get; set; }
        public int ListenTimeoutMs { get; set; }
        public int KillTimeoutMs { get; set; }
        public int GracefulTimeoutMs { get; set; }
        public long? MaxMemoryBytes { get; set; }
        public long LogMaxBytes { get; set; }
        public int LogFileCount { get; set; }
        public bool Drain { get; set; }
        public bool Sticky { get; set; }

        /// <summary>The names of the variables of the app's environment; never their values.</summary>
        public List<string> EnvironmentNames { get; set; } = new List<string>();

        /// <summary>Each instance's stdout and stderr log, by instance.</summary>
        public List<string> OutLogs { get; set; } = new List<string>();
        public List<string> ErrorLogs { get; set; } = new List<string>();
    }

    internal sealed class InstanceInfo
    {
        public int Instance { get; set; }
        public int? Pid { get; set; }
        public string Status { get; set; } = "";
        public int Restarts { get; set; }
        public DateTimeOffset? StartTime { get; set; }
        public long MemoryBytes { get; set; }
        public double CpuPercent { get; set; }
        public int? LastExitCode { get; set; }
        public string? LastSignal { get; set; }

        /// <summary>Which start of the app this instance runs: a reload moves every instance to the next one.</summary>
        public int Generation { get; set; }

        /// <summary>Why the instance is not online, in words (a crash, a lost primary, a reload that stopped).</summary>
        public string? Reason { get; set; }

        /// <summary>Why its process was last replaced (a crash, a reload, a restart asked for), and when; null until it was.</summary>
        public string? LastRestartReason { get; set; }
        public DateTimeOffset? LastRestartTime { get; set; }
    }

    internal sealed class HostInfo
    {
        public int Pid { get; set; }
        public string Version { get; set; } = "";
        public DateTimeOffset StartTime { get; set; }
        public string Home { get; set; } = "";
        public string Endpoint { get; set; } = "";
        public int AppCount { get; set; }
        public long MemoryBytes { get; set; }

        /// <summary>What is wrong with the state file (or was, when this host started and recovered it); null when nothing is.</summary>
        public string? StateProblem { get; set; }
        /// <summary>The folder the host runs from: its runtime copy in CLUSTER_HOME (empty from hosts before 0.1.0's copy).</summary>
        public string Runtime { get; set; } = "";
    }

    internal sealed class LogLineInfo
    {
        /// <summary>When the Node primary read the line; null for a line written without a stamp.</summary>
        public DateTimeOffset? Timestamp { get; set; }

        public string App { get; set; } = "";
        public int Instance { get; set; }

        /// <summary>The process that wrote the line; null when unknown.</summary>
        public int? Pid { get; set; }

        public string Stream { get; set; } = "";
        public string Text { get; set; } = "";
    }

    [JsonSourceGenerationOptions(
        PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
    [JsonSerializable(typeof(Request))]
    [JsonSerializable(typeof(Frame))]
    internal sealed partial class ProtocolJson : JsonSerializerContext
    {
    }
}
