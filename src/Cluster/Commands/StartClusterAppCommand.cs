using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Text.RegularExpressions;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Starts a Node.js app (or, in fork mode, any program) as a cluster of instances and returns it once every instance is ready.</summary>
    [Cmdlet(VerbsLifecycle.Start, "ClusterApp", SupportsShouldProcess = true)]
    [OutputType(typeof(App))]
    public sealed class StartClusterAppCommand : ClusterCmdlet
    {
        private static readonly Regex NotNameCharacters = new Regex("[^A-Za-z0-9._-]+");

        /// <summary>The app's entry script (or, in fork mode, the program to run).</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("FullName", "Script")]
        [ValidateNotNullOrEmpty]
        public string Path { get; set; } = "";

        /// <summary>The app's name; the script's base name when left out.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? Name { get; set; }

        /// <summary>How many instances: 0 = one per CPU, -1 = CPUs minus one, N = N; never fewer than 1.</summary>
        [Parameter]
        [Alias("i")]
        public int Instances { get; set; } = 1;

        /// <summary>Cluster (Node workers sharing a port) or Fork (separate processes); Cluster for Node scripts by default.</summary>
        [Parameter]
        public AppMode Mode { get; set; }

        /// <summary>Arguments passed to the script.</summary>
        [Parameter]
        [AllowEmptyCollection]
        public string[] Arguments { get; set; } = Array.Empty<string>();

        /// <summary>Arguments passed to node itself, such as --max-old-space-size=512.</summary>
        [Parameter]
        [AllowEmptyCollection]
        public string[] NodeArguments { get; set; } = Array.Empty<string>();

        /// <summary>The working directory of the instances; the current location when left out.</summary>
        [Parameter]
        public string? WorkingDirectory { get; set; }

        /// <summary>Environment variables for the instances, added to (or, with a $null value, removed from) what they inherit from this session.</summary>
        [Parameter]
        public Hashtable? Environment { get; set; }

        /// <summary>Pass this session's whole environment to the instances (and so to the state file), not only the variables an app inherits by default.</summary>
        [Parameter]
        public SwitchParameter InheritEnvironment { get; set; }

        /// <summary>Milliseconds to wait for an instance to listen or say 'online' (default: PM2_GRACEFUL_LISTEN_TIMEOUT, else 3000).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int ListenTimeout { get; set; }

        /// <summary>Milliseconds a stopping instance gets before it is killed (default 1600).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int KillTimeout { get; set; }

        /// <summary>How connections are shared among instances: RoundRobin (the default, except on Windows) or Shared.</summary>
        [Parameter]
        public SchedulingPolicy Scheduling { get; set; }

        /// <summary>Do not load the preload that lets retiring instances finish keep-alive requests cleanly.</summary>
        [Parameter]
        public SwitchParameter NoDrain { get; set; }

        /// <summary>Do not restart instances that exit on their own.</summary>
        [Parameter]
        public SwitchParameter NoAutoRestart { get; set; }

        /// <summary>Unstable restarts in a row (each run shorter than MinUptime) before an instance is errored (default 16).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxRestarts)]
        public int MaxRestarts { get; set; }

        /// <summary>Milliseconds an instance must run to count as started well (default 1000).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int MinUptime { get; set; }

        /// <summary>Milliseconds before the first restart of a crashed instance; it grows while the instance keeps crashing (default 100).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int RestartDelay { get; set; }

        /// <summary>Replace an instance (by a reload of it alone, in cluster mode) when its memory grows past this many bytes, e.g. 300MB.</summary>
        [Parameter]
        [ValidateRange(1, long.MaxValue)]
        public long MaxMemoryRestart { get; set; }

        /// <summary>Bytes after which an instance's log file is rotated (default 10MB; 0 = never).</summary>
        [Parameter]
        [ValidateRange(0, long.MaxValue)]
        public long LogMaxSize { get; set; }

        /// <summary>How many rotated log files to keep for each instance and stream (default 5).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxLogFileCount)]
        public int LogFileCount { get; set; }

        protected override void ProcessRecord()
        {
            string? script = ResolveScript();
            if (script is null)
            {
                return;
            }

            AppMode mode = MyInvocation.BoundParameters.ContainsKey(nameof(Mode)) ? Mode : DefaultModeFor(script);
            string name = Name ?? NameFromScript(script);
            string? workingDirectory = ResolveWorkingDirectory();
            Dictionary<string, string>? environment = BuildEnvironment();
            if (workingDirectory is null || environment is null || !ShouldProcess(name, $"Start {script} in {mode} mode"))
            {
                return;
            }

            var spec = new StartSpec
            {
                Name = name,
                Script = script,
                Mode = mode == AppMode.Cluster ? AppModes.Cluster : AppModes.Fork,
                Instances = Instances,
                Arguments = Arguments.ToList(),
                NodeArguments = NodeArguments.ToList(),
                WorkingDirectory = workingDirectory,
                Environment = environment,
                ListenTimeoutMs = Bound<int>(nameof(ListenTimeout)),
                KillTimeoutMs = Bound<int>(nameof(KillTimeout)),
                Scheduling = Bound<SchedulingPolicy>(nameof(Scheduling)) is { } policy ? (policy == SchedulingPolicy.Shared ? "shared" : "roundrobin") : null,
                Drain = !NoDrain,
                AutoRestart = !NoAutoRestart,
                MaxRestarts = Bound<int>(nameof(MaxRestarts)),
                MinUptimeMs = Bound<int>(nameof(MinUptime)),
                RestartDelayMs = Bound<int>(nameof(RestartDelay)),
                MaxMemoryBytes = Bound<long>(nameof(MaxMemoryRestart)),
                LogMaxBytes = Bound<long>(nameof(LogMaxSize)),
                LogFileCount = Bound<int>(nameof(LogFileCount)),
            };

            foreach (App app in SendForApps(new Request { Command = CommandNames.Start, Start = spec }))
            {
                WriteObject(app);
            }
        }

        private T? Bound<T>(string parameter)
            where T : struct => MyInvocation.BoundParameters.TryGetValue(parameter, out object? value) ? (T)value : (T?)null;

        private string? ResolveScript()
        {
            string candidate = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
            if (File.Exists(candidate))
            {
                return candidate;
            }

            // In fork mode a program on PATH will do, as it would at the prompt.
            if (Mode == AppMode.Fork && InvokeCommand.GetCommand(Path, CommandTypes.Application) is ApplicationInfo program)
            {
                return program.Path;
            }

            WriteError(NewError(
                "ScriptNotFound",
                ErrorCategory.ObjectNotFound,
                $"The script '{Path}' does not exist (looked for {candidate}). Give the path of the app's entry file, for example ./app.js.",
                Path,
                new FileNotFoundException(null, candidate)));
            return null;
        }

        private string? ResolveWorkingDirectory()
        {
            string folder = WorkingDirectory is null
                ? SessionState.Path.CurrentFileSystemLocation.ProviderPath
                : SessionState.Path.GetUnresolvedProviderPathFromPSPath(WorkingDirectory);
            if (Directory.Exists(folder))
            {
                return folder;
            }

            WriteError(NewError(
                "WorkingDirectoryNotFound",
                ErrorCategory.ObjectNotFound,
                $"The working directory '{folder}' does not exist. Pass an existing folder as -WorkingDirectory.",
                folder,
                new DirectoryNotFoundException(folder)));
            return null;
        }

        /// <summary>
        /// What the instances get: the session variables EnvironmentPolicy lets an app inherit (all of them with
        /// -InheritEnvironment), overlaid with -Environment. Null, after writing the error, when -Environment has a
        /// name or value no environment can hold.
        /// </summary>
        private Dictionary<string, string>? BuildEnvironment()
        {
            Dictionary<string, string> environment = EnvironmentPolicy.FromSession(System.Environment.GetEnvironmentVariables(), InheritEnvironment);
            if (Environment is null)
            {
                return environment;
            }

            foreach (DictionaryEntry entry in Environment)
            {
                object? key = entry.Key is PSObject wrappedKey ? wrappedKey.BaseObject : entry.Key;
                string name = key as string ?? LanguagePrimitives.ConvertTo<string>(key) ?? "";
                object? value = entry.Value is PSObject wrapped ? wrapped.BaseObject : entry.Value;
                string? text = value is null ? null : LanguagePrimitives.ConvertTo<string>(value);
                string? problem = EnvironmentPolicy.InvalidName(name) ?? (text is null ? null : EnvironmentPolicy.InvalidValue(text));
                if (problem is not null)
                {
                    WriteError(NewError(
                        "InvalidEnvironment",
                        ErrorCategory.InvalidArgument,
                        $"-Environment has the variable '{Display.Printable(name)}', but {problem}. Give each variable a name without '=' or NUL characters, and a value without NUL characters.",
                        name));
                    return null;
                }

                if (text is null)
                {
                    environment.Remove(name);
                }
                else
                {
                    environment[name] = text;
                }
            }

            return environment;
        }

        /// <summary>Node scripts run as a cluster; anything else is a program run in fork mode.</summary>
        internal static AppMode DefaultModeFor(string script)
        {
            string extension = System.IO.Path.GetExtension(script).ToLowerInvariant();
            if (extension == ".js" || extension == ".cjs" || extension == ".mjs")
            {
                return AppMode.Cluster;
            }

            return extension.Length == 0 && HasNodeShebang(script) ? AppMode.Cluster : AppMode.Fork;
        }

        private static bool HasNodeShebang(string script)
        {
            try
            {
                using var reader = new StreamReader(script);
                string? first = reader.ReadLine();
                return first is not null && first.StartsWith("#!", StringComparison.Ordinal) && first.Contains("node");
            }
            catch (IOException)
            {
                return false;
            }
            catch (UnauthorizedAccessException)
            {
                return false;
            }
        }

        /// <summary>The script's base name, with characters a name cannot have replaced by '-'.</summary>
        internal static string NameFromScript(string script)
        {
            string name = NotNameCharacters.Replace(System.IO.Path.GetFileNameWithoutExtension(script), "-").Trim('-', '.', '_');
            return name.Length == 0 ? "app" : (name.Length > 64 ? name.Substring(0, 64) : name);
        }
    }
}
