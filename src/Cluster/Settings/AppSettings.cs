using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Settings
{
    /// <summary>
    /// An app's settings by Start-ClusterApp's parameter names, turned into the start request the host runs. One
    /// place for Start-ClusterApp, Set-ClusterApp and deployment files, so that each setting means the same in all three.
    /// </summary>
    internal static class AppSettings
    {
        /// <summary>Every setting, by name, with the type its value converts to.</summary>
        public static readonly IReadOnlyDictionary<string, Type> Types = new Dictionary<string, Type>(StringComparer.OrdinalIgnoreCase)
        {
            ["Name"] = typeof(string),
            ["Path"] = typeof(string),
            ["Instances"] = typeof(int),
            ["Mode"] = typeof(AppMode),
            ["Arguments"] = typeof(string[]),
            ["NodeArguments"] = typeof(string[]),
            ["WorkingDirectory"] = typeof(string),
            ["Environment"] = typeof(Hashtable),
            ["EnvironmentFromSession"] = typeof(string[]),
            ["ListenTimeout"] = typeof(int),
            ["KillTimeout"] = typeof(int),
            ["Scheduling"] = typeof(SchedulingPolicy),
            ["NoDrain"] = typeof(bool),
            ["NoAutoRestart"] = typeof(bool),
            ["MaxRestarts"] = typeof(int),
            ["MinUptime"] = typeof(int),
            ["RestartDelay"] = typeof(int),
            ["MaxMemoryRestart"] = typeof(long),
            ["LogMaxSize"] = typeof(long),
            ["LogFileCount"] = typeof(int),
            ["WaitReady"] = typeof(bool),
            ["HealthCheckPath"] = typeof(string),
            ["HealthCheckCommand"] = typeof(string),
            ["HealthCheckTimeout"] = typeof(int),
            ["LivenessInterval"] = typeof(int),
            ["LivenessFailures"] = typeof(int),
            ["StabilityWindow"] = typeof(int),
            ["Sticky"] = typeof(bool),

            // Restart controls, and how each instance is started
            ["StopExitCodes"] = typeof(int[]),
            ["CleanEnvironment"] = typeof(bool),
            ["InstanceVariable"] = typeof(string),
            ["IncrementVariable"] = typeof(string),
            ["Interpreter"] = typeof(string),
            ["CronRestart"] = typeof(string),
            ["Watch"] = typeof(bool),
            ["WatchIgnore"] = typeof(string[]),
            ["WatchDelay"] = typeof(int),
        };

        /// <summary>The settings among a cmdlet's bound parameters (switches as $true or $false).</summary>
        public static Hashtable FromParameters(IDictionary<string, object> bound)
        {
            var given = new Hashtable(StringComparer.OrdinalIgnoreCase);
            foreach (KeyValuePair<string, object> parameter in bound)
            {
                if (Types.ContainsKey(parameter.Key))
                {
                    given[parameter.Key] = parameter.Value is SwitchParameter flag ? flag.IsPresent : parameter.Value;
                }
            }

            return given;
        }

        /// <summary>Converts each value to its setting's type; an unknown name or a value of the wrong type is an error naming it.</summary>
        public static Dictionary<string, object?> Convert(IDictionary raw)
        {
            var settings = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
            foreach (DictionaryEntry entry in raw)
            {
                string key = entry.Key?.ToString() ?? "";
                if (key.Equals("Script", StringComparison.OrdinalIgnoreCase))
                {
                    key = "Path";
                }

                if (!Types.TryGetValue(key, out Type? type))
                {
                    throw new SettingsException(
                        "UnknownSetting",
                        ErrorCategory.InvalidData,
                        $"'{key}' is not a setting. The settings are: {string.Join(", ", Types.Keys)}.",
                        key);
                }

                if (settings.ContainsKey(key))
                {
                    throw new SettingsException("DuplicateSetting", ErrorCategory.InvalidData, $"'{key}' is given twice.", key);
                }

                object? value = entry.Value is PSObject wrapped ? wrapped.BaseObject : entry.Value;
                try
                {
                    settings[key] = value is null || type.IsInstanceOfType(value) ? value : LanguagePrimitives.ConvertTo(value, type, CultureInfo.InvariantCulture);
                }
                catch (PSInvalidCastException e)
                {
                    throw new SettingsException(
                        "InvalidSettingValue",
                        ErrorCategory.InvalidData,
                        $"'{key}' must be {Describe(type)}; '{value}' is not.",
                        key,
                        e);
                }
            }

            return settings;
        }

        /// <summary>
        /// The start request for these settings over <paramref name="basis"/> (a new app's defaults, or the app as it runs):
        /// what the settings name is replaced, the rest kept. Paths are resolved from <paramref name="folder"/>.
        /// </summary>
        public static StartSpec Apply(IReadOnlyDictionary<string, object?> settings, StartSpec basis, string folder, Func<string, string?> findProgram, IDictionary session)
        {
            StartSpec spec = Copy(basis);
            T? Get<T>(string name)
                where T : struct => settings.TryGetValue(name, out object? value) && value is not null ? (T)value : (T?)null;
            bool Has(string name) => settings.ContainsKey(name);

            if (Has("Path"))
            {
                spec.Script = ResolveScript((string?)settings["Path"] ?? "", folder, Get<AppMode>("Mode") ?? (basis.Script.Length == 0 ? (AppMode?)null : ModeOf(basis)), findProgram);
            }
            else if (spec.Script.Length == 0)
            {
                throw new SettingsException("PathMissing", ErrorCategory.InvalidData, "An app needs a Path: its entry script (or, in fork mode, the program to run).", "Path");
            }

            if (Has("Name"))
            {
                spec.Name = (string?)settings["Name"] ?? "";
            }
            else if (spec.Name.Length == 0)
            {
                spec.Name = NameFromScript(spec.Script);
            }

            if (Get<AppMode>("Mode") is { } mode)
            {
                spec.Mode = mode == AppMode.Cluster ? AppModes.Cluster : AppModes.Fork;
            }
            else if (basis.Script.Length == 0)
            {
                spec.Mode = DefaultModeFor(spec.Script) == AppMode.Cluster ? AppModes.Cluster : AppModes.Fork;
            }

            spec.Instances = Get<int>("Instances") ?? spec.Instances;
            if (Has("Arguments"))
            {
                spec.Arguments = ((string[]?)settings["Arguments"] ?? Array.Empty<string>()).ToList();
            }

            if (Has("NodeArguments"))
            {
                spec.NodeArguments = ((string[]?)settings["NodeArguments"] ?? Array.Empty<string>()).ToList();
            }

            if (Has("WorkingDirectory") || spec.WorkingDirectory.Length == 0)
            {
                spec.WorkingDirectory = ResolveFolder((string?)(Has("WorkingDirectory") ? settings["WorkingDirectory"] : null), folder);
            }

            spec.ListenTimeoutMs = Has("ListenTimeout") ? Get<int>("ListenTimeout") : spec.ListenTimeoutMs;
            spec.KillTimeoutMs = Has("KillTimeout") ? Get<int>("KillTimeout") : spec.KillTimeoutMs;
            if (Has("Scheduling"))
            {
                spec.Scheduling = Get<SchedulingPolicy>("Scheduling") is { } policy ? (policy == SchedulingPolicy.Shared ? "shared" : "roundrobin") : null;
            }

            spec.Drain = Has("NoDrain") ? Get<bool>("NoDrain") != true : spec.Drain;
            spec.AutoRestart = Has("NoAutoRestart") ? Get<bool>("NoAutoRestart") != true : spec.AutoRestart;
            spec.MaxRestarts = Has("MaxRestarts") ? Get<int>("MaxRestarts") : spec.MaxRestarts;
            spec.MinUptimeMs = Has("MinUptime") ? Get<int>("MinUptime") : spec.MinUptimeMs;
            spec.RestartDelayMs = Has("RestartDelay") ? Get<int>("RestartDelay") : spec.RestartDelayMs;
            spec.MaxMemoryBytes = Has("MaxMemoryRestart") ? Get<long>("MaxMemoryRestart") : spec.MaxMemoryBytes;
            spec.LogMaxBytes = Has("LogMaxSize") ? Get<long>("LogMaxSize") : spec.LogMaxBytes;
            spec.LogFileCount = Has("LogFileCount") ? Get<int>("LogFileCount") : spec.LogFileCount;
            spec.WaitReady = Has("WaitReady") ? Get<bool>("WaitReady") == true : spec.WaitReady;
            // An empty path or command takes the check away.
            spec.HealthCheckPath = Has("HealthCheckPath") ? NullIfEmpty((string?)settings["HealthCheckPath"]) : spec.HealthCheckPath;
            spec.HealthCheckCommand = Has("HealthCheckCommand") ? NullIfEmpty((string?)settings["HealthCheckCommand"]) : spec.HealthCheckCommand;
            spec.HealthCheckTimeoutMs = Has("HealthCheckTimeout") ? Get<int>("HealthCheckTimeout") : spec.HealthCheckTimeoutMs;
            spec.LivenessIntervalMs = Has("LivenessInterval") ? Get<int>("LivenessInterval") : spec.LivenessIntervalMs;
            spec.LivenessFailures = Has("LivenessFailures") ? Get<int>("LivenessFailures") : spec.LivenessFailures;
            spec.StabilityWindowMs = Has("StabilityWindow") ? Get<int>("StabilityWindow") : spec.StabilityWindowMs;
            spec.Sticky = Has("Sticky") ? Get<bool>("Sticky") == true : spec.Sticky;
            ApplyEnvironment(spec, settings, session);
            ApplyRestartControls(spec, settings, session);
            return spec;
        }

        /// <summary>The restart controls and start settings; a clean environment drops what the app inherited from the session.</summary>
        private static void ApplyRestartControls(StartSpec spec, IReadOnlyDictionary<string, object?> settings, IDictionary session)
        {
            if (settings.TryGetValue("StopExitCodes", out object? codes))
            {
                spec.StopExitCodes = codes is int[] list && list.Length > 0 ? list.Distinct().OrderBy(c => c).ToList() : null;
            }

            string? Text(string name) => settings[name] is string text && text.Length > 0 ? text : null;
            spec.InstanceVariable = settings.ContainsKey("InstanceVariable") ? Text("InstanceVariable") : spec.InstanceVariable;
            spec.IncrementVariable = settings.ContainsKey("IncrementVariable") ? Text("IncrementVariable") : spec.IncrementVariable;
            spec.Interpreter = settings.ContainsKey("Interpreter") ? Text("Interpreter") : spec.Interpreter;
            spec.CronRestart = settings.ContainsKey("CronRestart") ? Text("CronRestart") : spec.CronRestart;
            spec.Watch = settings.TryGetValue("Watch", out object? watch) && watch is bool watched ? watched : spec.Watch;
            if (settings.TryGetValue("WatchIgnore", out object? ignore))
            {
                spec.WatchIgnore = ignore is string[] patterns && patterns.Length > 0 ? patterns.ToList() : null;
            }

            spec.WatchDelayMs = settings.TryGetValue("WatchDelay", out object? delay) ? (int?)delay : spec.WatchDelayMs;
            if (settings.TryGetValue("CleanEnvironment", out object? clean) && clean is bool wanted && wanted != spec.CleanEnvironment)
            {
                spec.CleanEnvironment = wanted;
                if (!wanted)
                {
                    // Inherits again what an app inherits from the session that applies the setting.
                    foreach (KeyValuePair<string, string> inherited in EnvironmentPolicy.FromSession(session, false))
                    {
                        if (!spec.Environment.ContainsKey(inherited.Key))
                        {
                            spec.Environment[inherited.Key] = inherited.Value;
                        }
                    }
                }
            }

            if (spec.CleanEnvironment)
            {
                foreach (string inherited in SessionSettings.Inherited(spec).Keys)
                {
                    spec.Environment.Remove(inherited);
                }
            }
        }

        /// <summary>Variables the settings give are set (or, with a $null value, removed); EnvironmentFromSession ones are read from the session now.</summary>
        private static void ApplyEnvironment(StartSpec spec, IReadOnlyDictionary<string, object?> settings, IDictionary session)
        {
            if (settings.TryGetValue("Environment", out object? given) && given is IDictionary variables)
            {
                foreach (DictionaryEntry entry in variables)
                {
                    object? key = entry.Key is PSObject wrappedKey ? wrappedKey.BaseObject : entry.Key;
                    string name = key as string ?? LanguagePrimitives.ConvertTo<string>(key) ?? "";
                    object? value = entry.Value is PSObject wrapped ? wrapped.BaseObject : entry.Value;
                    CheckName(name, value is null ? null : LanguagePrimitives.ConvertTo<string>(value));
                    if (value is null)
                    {
                        spec.Environment.Remove(name);
                        spec.GivenVariables.Remove(name);
                    }
                    else
                    {
                        spec.Environment[name] = LanguagePrimitives.ConvertTo<string>(value);
                        if (!spec.GivenVariables.Contains(name))
                        {
                            spec.GivenVariables.Add(name);
                        }
                    }
                }
            }

            if (settings.TryGetValue("EnvironmentFromSession", out object? fromSession) && fromSession is string[] names)
            {
                spec.SessionVariables = new List<string>();
                foreach (string name in names)
                {
                    CheckName(name);
                    if (!session.Contains(name))
                    {
                        throw new SettingsException(
                            "SessionVariableMissing",
                            ErrorCategory.ObjectNotFound,
                            $"EnvironmentFromSession names '{name}', which this session does not have. Set $env:{name} before applying the file.",
                            name);
                    }

                    spec.Environment[name] = session[name]?.ToString() ?? "";
                    spec.SessionVariables.Add(name);
                }
            }
        }

        private static void CheckName(string name, string? value = "")
        {
            if ((EnvironmentPolicy.InvalidName(name) ?? (value is null ? null : EnvironmentPolicy.InvalidValue(value))) is { } problem)
            {
                throw new SettingsException(
                    "InvalidEnvironment",
                    ErrorCategory.InvalidArgument,
                    $"The Environment setting (-Environment) has the variable '{Display.Printable(name)}', but {problem}. Give each variable a name without '=' or NUL characters, and a value without NUL characters.",
                    name);
            }
        }

        private static string ResolveScript(string path, string folder, AppMode? mode, Func<string, string?> findProgram)
        {
            string candidate = System.IO.Path.GetFullPath(System.IO.Path.Combine(folder, path));
            if (File.Exists(candidate))
            {
                return candidate;
            }

            // In fork mode a program on PATH will do, as it would at the prompt.
            if (mode == AppMode.Fork && findProgram(path) is { } program)
            {
                return program;
            }

            throw new SettingsException(
                "ScriptNotFound",
                ErrorCategory.ObjectNotFound,
                $"The script '{path}' does not exist (looked for {candidate}). Give the path of the app's entry file, for example ./app.js.",
                path,
                new FileNotFoundException(null, candidate));
        }

        private static string ResolveFolder(string? path, string folder)
        {
            string full = path is null ? folder : System.IO.Path.GetFullPath(System.IO.Path.Combine(folder, path));
            if (!Directory.Exists(full))
            {
                throw new SettingsException(
                    "WorkingDirectoryNotFound",
                    ErrorCategory.ObjectNotFound,
                    $"The working directory '{full}' does not exist. Give an existing folder as WorkingDirectory.",
                    full,
                    new DirectoryNotFoundException(full));
            }

            return full;
        }

        private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

        private static AppMode ModeOf(StartSpec spec) => spec.Mode == AppModes.Fork ? AppMode.Fork : AppMode.Cluster;

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

        private static readonly System.Text.RegularExpressions.Regex NotNameCharacters = new System.Text.RegularExpressions.Regex("[^A-Za-z0-9._-]+");

        /// <summary>The script's base name, with characters a name cannot have replaced by '-'.</summary>
        internal static string NameFromScript(string script)
        {
            string name = NotNameCharacters.Replace(System.IO.Path.GetFileNameWithoutExtension(script), "-").Trim('-', '.', '_');
            return name.Length == 0 ? "app" : (name.Length > 64 ? name.Substring(0, 64) : name);
        }

        private static string Describe(Type type) =>
            type == typeof(int) || type == typeof(long) ? "a number"
            : type == typeof(bool) ? "$true or $false"
            : type == typeof(string[]) ? "a list of strings"
            : type == typeof(Hashtable) ? "a hashtable of names and values"
            : type.IsEnum ? "one of " + string.Join(", ", Enum.GetNames(type))
            : "a string";

        private static StartSpec Copy(StartSpec spec) => new StartSpec
        {
            Name = spec.Name,
            Script = spec.Script,
            Mode = spec.Mode,
            Instances = spec.Instances,
            Arguments = spec.Arguments.ToList(),
            NodeArguments = spec.NodeArguments.ToList(),
            WorkingDirectory = spec.WorkingDirectory,
            Environment = new Dictionary<string, string>(spec.Environment, spec.Environment.Comparer),
            ListenTimeoutMs = spec.ListenTimeoutMs,
            KillTimeoutMs = spec.KillTimeoutMs,
            Scheduling = spec.Scheduling,
            Drain = spec.Drain,
            AutoRestart = spec.AutoRestart,
            MaxRestarts = spec.MaxRestarts,
            MinUptimeMs = spec.MinUptimeMs,
            RestartDelayMs = spec.RestartDelayMs,
            LogMaxBytes = spec.LogMaxBytes,
            MaxMemoryBytes = spec.MaxMemoryBytes,
            LogFileCount = spec.LogFileCount,
            WaitReady = spec.WaitReady,
            HealthCheckPath = spec.HealthCheckPath,
            HealthCheckCommand = spec.HealthCheckCommand,
            HealthCheckTimeoutMs = spec.HealthCheckTimeoutMs,
            LivenessIntervalMs = spec.LivenessIntervalMs,
            LivenessFailures = spec.LivenessFailures,
            StabilityWindowMs = spec.StabilityWindowMs,
            Sticky = spec.Sticky,
            SessionVariables = spec.SessionVariables.ToList(),
            GivenVariables = spec.GivenVariables.ToList(),
            StopExitCodes = spec.StopExitCodes?.ToList(),
            CleanEnvironment = spec.CleanEnvironment,
            InstanceVariable = spec.InstanceVariable,
            IncrementVariable = spec.IncrementVariable,
            Interpreter = spec.Interpreter,
            CronRestart = spec.CronRestart,
            Watch = spec.Watch,
            WatchIgnore = spec.WatchIgnore?.ToList(),
            WatchDelayMs = spec.WatchDelayMs,
        };
    }

    /// <summary>A setting that cannot be used as given.</summary>
    internal sealed class SettingsException : Exception
    {
        public SettingsException(string code, ErrorCategory category, string message, object? target, Exception? inner = null)
            : base(message, inner)
        {
            Code = code;
            Category = category;
            Target = target;
        }

        public string Code { get; }

        public ErrorCategory Category { get; }

        public object? Target { get; }
    }
}
