using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>
/// Checks a start request before anything is started, so a bad one leaves nothing behind; the same checks, but
/// for the files, apply to each definition read back from the state file or a primary.
/// </summary>
internal static class StartSpecValidator
{
    public static void Validate(StartSpec spec)
    {
        ValidateShape(spec);
        if (!File.Exists(spec.Script))
        {
            throw new ClusterException(
                "ScriptNotFound",
                ErrorCategories.ObjectNotFound,
                $"The script '{spec.Script}' does not exist. Give the path of the app's entry file (for example ./app.js).",
                spec.Script);
        }

        if (!Directory.Exists(spec.WorkingDirectory))
        {
            throw new ClusterException(
                "WorkingDirectoryNotFound",
                ErrorCategories.ObjectNotFound,
                $"The working directory '{spec.WorkingDirectory}' does not exist. Pass an existing folder as -WorkingDirectory.",
                spec.WorkingDirectory);
        }

        if (spec.Mode == AppModes.Fork)
        {
            _ = Launch.For(spec); // its interpreter is found
        }
    }

    /// <summary>Everything about a definition that does not depend on the file system: what a well-formed one is.</summary>
    public static void ValidateShape(StartSpec spec)
    {
        AppName.Validate(spec.Name);
        if (spec.Mode is not (AppModes.Cluster or AppModes.Fork))
        {
            throw Invalid("InvalidMode", $"'{AppName.Printable(spec.Mode)}' is not a mode. Use Cluster or Fork.", AppName.Printable(spec.Mode));
        }

        if (string.IsNullOrEmpty(spec.Script) || !Path.IsPathFullyQualified(spec.Script))
        {
            throw new ClusterException(
                "ScriptNotFound",
                ErrorCategories.ObjectNotFound,
                $"The script '{AppName.Printable(spec.Script)}' is not a full path. Give the path of the app's entry file (for example ./app.js).",
                AppName.Printable(spec.Script));
        }

        if (string.IsNullOrEmpty(spec.WorkingDirectory) || !Path.IsPathFullyQualified(spec.WorkingDirectory))
        {
            throw new ClusterException(
                "WorkingDirectoryNotFound",
                ErrorCategories.ObjectNotFound,
                $"The working directory '{AppName.Printable(spec.WorkingDirectory)}' is not a full path. Pass an existing folder as -WorkingDirectory.",
                AppName.Printable(spec.WorkingDirectory));
        }

        if (spec.Arguments is null || spec.NodeArguments is null || spec.Arguments.Contains(null!) || spec.NodeArguments.Contains(null!))
        {
            throw Invalid("InvalidArguments", "The arguments of an app must be lists of strings.", spec.Name);
        }

        ValidateEnvironment(spec.Environment);
        ValidateInstances(spec.Instances);
        if (spec.Scheduling is not (null or Scheduling.RoundRobin or Scheduling.Shared))
        {
            throw Invalid("InvalidScheduling", $"'{spec.Scheduling}' is not a scheduling policy. Use RoundRobin or Shared.", spec.Scheduling);
        }

        if (spec.Mode == AppModes.Fork && spec.Scheduling is not null)
        {
            throw Invalid("SchedulingNeedsCluster", "A scheduling policy applies to cluster mode only; leave out -Scheduling for a fork-mode app.", spec.Scheduling);
        }

        if (spec.Sticky && spec.Mode == AppModes.Fork)
        {
            throw Invalid("StickyNeedsCluster", "Sticky sessions share a port among the instances of a cluster-mode app; a fork-mode app has no shared port. Leave out -Sticky, or run the app in cluster mode.", spec.Name);
        }

        if (spec.Sticky && spec.Scheduling == Scheduling.Shared)
        {
            throw Invalid("StickyWithSharedScheduling", "With -Sticky the primary accepts every connection and chooses the instance by the client's address, so -Scheduling Shared (the system choosing) cannot apply. Leave out -Scheduling, or leave out -Sticky.", spec.Scheduling);
        }

        foreach (var (name, value) in new (string, int?)[]
        {
            ("ListenTimeout", spec.ListenTimeoutMs), ("KillTimeout", spec.KillTimeoutMs),
            ("MinUptime", spec.MinUptimeMs), ("RestartDelay", spec.RestartDelayMs), ("MaxRestarts", spec.MaxRestarts),
            ("HealthCheckTimeout", spec.HealthCheckTimeoutMs), ("LivenessInterval", spec.LivenessIntervalMs),
            ("LivenessFailures", spec.LivenessFailures), ("StabilityWindow", spec.StabilityWindowMs),
        })
        {
            if (value is < 0 or > Timeouts.MaxMilliseconds)
            {
                throw Invalid("ValueOutOfRange", $"-{name} must be between 0 and {Timeouts.MaxMilliseconds}; it was {value}.", name);
            }
        }

        ValidateHealth(spec);
        if (spec.MaxRestarts is > Limits.MaxRestarts)
        {
            throw Invalid("ValueOutOfRange", $"-MaxRestarts must be between 0 and {Limits.MaxRestarts}; it was {spec.MaxRestarts}.", "MaxRestarts");
        }

        if (spec.LogFileCount is < 0 or > Limits.MaxLogFileCount)
        {
            throw Invalid(
                "LogFileCountOutOfRange",
                $"-LogFileCount must be between 0 and {Limits.MaxLogFileCount}; it was {spec.LogFileCount}. Keep fewer rotated files, or make each larger with -LogMaxSize.",
                "LogFileCount");
        }

        if (spec.LogMaxBytes is < 0)
        {
            throw Invalid("ValueOutOfRange", $"-LogMaxSize must be 0 (never rotate) or more; it was {spec.LogMaxBytes}.", "LogMaxSize");
        }

        if (spec.MaxMemoryBytes is < 1)
        {
            throw Invalid("ValueOutOfRange", $"-MaxMemoryRestart must be at least 1 byte; it was {spec.MaxMemoryBytes}.", "MaxMemoryRestart");
        }

        ValidateRestartControls(spec);
        ValidateCron(spec);
        if (spec.WatchDelayMs is < 0 or > Timeouts.MaxMilliseconds)
        {
            throw Invalid("ValueOutOfRange", $"-WatchDelay must be between 0 and {Timeouts.MaxMilliseconds}; it was {spec.WatchDelayMs}.", "WatchDelay");
        }

        if (spec.WatchIgnore is { } ignored && (ignored.Count > MaxStopExitCodes || ignored.Exists(p => string.IsNullOrEmpty(p) || p.Contains('\0', StringComparison.Ordinal))))
        {
            throw Invalid("InvalidWatchIgnore", $"-WatchIgnore takes at most {MaxStopExitCodes} names or wildcard patterns, none of them empty.", "WatchIgnore");
        }
    }

    /// <summary>A check the host can run: an HTTP path it can send, on an app whose preload can answer it; liveness only with a check.</summary>
    private static void ValidateHealth(StartSpec spec)
    {
        if (!string.IsNullOrEmpty(spec.HealthCheckPath))
        {
            string path = spec.HealthCheckPath;
            if (path[0] != '/' || path.Length > 2048 || path.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
            {
                throw Invalid("InvalidHealthCheckPath", $"-HealthCheckPath must be a URL path that starts with '/' and has no spaces or control characters, for example /health; it was '{Display.Printable(path)}'.", Display.Printable(path));
            }

            if (!HealthPlan.HoldsListen(spec))
            {
                throw Invalid("HealthCheckPathNeedsNode", "-HealthCheckPath needs a Node.js script: a program run in fork mode cannot be checked on a port of its own. Use -HealthCheckCommand instead.", Display.Printable(path));
            }
        }

        if (spec.HealthCheckCommand is { Length: > 0 } command && command.Contains('\0', StringComparison.Ordinal))
        {
            throw Invalid("InvalidHealthCheckCommand", "-HealthCheckCommand must not contain NUL characters.", null);
        }

        if (spec.LivenessIntervalMs is > 0 && string.IsNullOrEmpty(spec.HealthCheckPath) && string.IsNullOrEmpty(spec.HealthCheckCommand))
        {
            throw Invalid("LivenessNeedsCheck", "-LivenessInterval repeats the app's health check, and it has none. Give -HealthCheckPath or -HealthCheckCommand as well.", "LivenessInterval");
        }
    }

    /// <summary>The restart controls and start settings: exit codes, variable names, an increment with a number to start from, the interpreter.</summary>
    private static void ValidateRestartControls(StartSpec spec)
    {
        if (spec.StopExitCodes is { Count: > MaxStopExitCodes })
        {
            throw Invalid("ValueOutOfRange", $"-StopExitCodes may list at most {MaxStopExitCodes} exit codes; it lists {spec.StopExitCodes.Count}.", "StopExitCodes");
        }

        foreach (var (setting, name) in new[] { ("InstanceVariable", spec.InstanceVariable), ("IncrementVariable", spec.IncrementVariable) })
        {
            if (name is not null && EnvironmentPolicy.InvalidName(name) is { } problem)
            {
                throw Invalid("InvalidVariableName", $"-{setting} '{Display.Printable(name)}' cannot be a variable's name: {problem}.", setting);
            }
        }

        if (spec.IncrementVariable is { } increment
            && !(spec.Environment.TryGetValue(increment, out string? start) && long.TryParse(start, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out _)))
        {
            throw Invalid(
                "IncrementVariableNotNumber",
                $"-IncrementVariable {Display.Printable(increment)} needs the number to start from in the app's environment, for example -Environment @{{ {Display.Printable(increment)} = '3000' }}; "
                    + (start is null ? "the environment does not have it." : $"its value '{Display.Printable(start)}' is not a whole number."),
                increment);
        }

        if (spec.InstanceVariable is { } instanceVariable && string.Equals(instanceVariable, spec.IncrementVariable, StringComparison.Ordinal))
        {
            throw Invalid("InvalidVariableName", $"-InstanceVariable and -IncrementVariable both name {Display.Printable(instanceVariable)}; give each its own variable.", "InstanceVariable");
        }

        if (spec.Interpreter is { } interpreter && (interpreter.Length == 0 || interpreter.Contains('\0', StringComparison.Ordinal)))
        {
            throw Invalid("InvalidInterpreter", "-Interpreter must be node, none, or a program's name or path.", "Interpreter");
        }

        if (spec.Mode == AppModes.Cluster && !string.Equals(Launch.InterpreterOf(spec), Launch.NodeInterpreter, StringComparison.OrdinalIgnoreCase)
            && (spec.Interpreter is not null || Launch.InterpreterFor(spec.Script) != Launch.NoInterpreter))
        {
            throw Invalid(
                "InterpreterNeedsFork",
                $"'{AppName.Printable(spec.Script)}' runs with {AppName.Printable(Launch.InterpreterOf(spec))}, and only Node scripts run in cluster mode. Start it with -Mode Fork.",
                "Interpreter");
        }
    }

    /// <summary>A -CronRestart expression is one <see cref="CronExpression"/> reads.</summary>
    private static void ValidateCron(StartSpec spec)
    {
        if (spec.CronRestart is not { } expression)
        {
            return;
        }

        try
        {
            CronExpression.Parse(expression);
        }
        catch (FormatException e)
        {
            throw Invalid("InvalidCronExpression", $"-CronRestart '{Display.Printable(expression)}' is not a cron expression: {e.Message}", "CronRestart");
        }
    }

    /// <summary>The most exit codes -StopExitCodes may list.</summary>
    public const int MaxStopExitCodes = 256;

    /// <summary>Every name is one an environment can hold (not empty, no '=', no NUL), and so is every value.</summary>
    public static void ValidateEnvironment(Dictionary<string, string>? environment)
    {
        if (environment is null)
        {
            throw Invalid("InvalidEnvironment", "The environment of an app must be an object of names and string values.", null);
        }

        foreach (var (name, value) in environment)
        {
            if ((EnvironmentPolicy.InvalidName(name) ?? EnvironmentPolicy.InvalidValue(value)) is { } problem)
            {
                throw Invalid(
                    "InvalidEnvironment",
                    $"The environment has the variable '{Display.Printable(name)}', but {problem}. Give each variable a name without '=' or NUL characters, and a value without NUL characters.",
                    Display.Printable(name));
            }
        }
    }

    /// <summary>A log request asks for a bounded number of lines.</summary>
    public static void ValidateLogQuery(LogQuery query)
    {
        if (query.Tail is < 0 or > Limits.MaxTailLines)
        {
            throw Invalid(
                "TailOutOfRange",
                $"-Tail must be between 0 and {Limits.MaxTailLines} lines; it was {query.Tail}. For more, read the log files in CLUSTER_HOME/logs directly.",
                "Tail");
        }

        if (query.Instance is < 0)
        {
            throw Invalid("ValueOutOfRange", $"-Instance must be 0 or more; it was {query.Instance}.", "Instance");
        }

        if (query.Stream is not (null or "out" or "err"))
        {
            throw Invalid("ValueOutOfRange", $"-Stream must be Out or Err; it was '{Display.Printable(query.Stream)}'.", "Stream");
        }

        if (query.Apps is { } apps)
        {
            apps.ForEach(AppName.Validate);
        }
    }

    public static void ValidateInstances(int requested)
    {
        if (requested > InstanceCount.Max || requested < -InstanceCount.Max)
        {
            throw new ClusterException(
                "TooManyInstances",
                ErrorCategories.LimitsExceeded,
                $"{requested} instances is more than Cluster runs for one app (at most {InstanceCount.Max}). Use 0 for one per CPU, or a smaller number.",
                requested.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    private static ClusterException Invalid(string code, string message, string? target) =>
        new(code, ErrorCategories.InvalidArgument, message, target);
}
