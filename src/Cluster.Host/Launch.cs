using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>
/// What a fork-mode instance runs: a Node script is forked by Node (with an IPC channel, so messages reach it),
/// any other script is run by its interpreter (-Interpreter, else by its extension: .sh sh, .py python3, .ps1 pwsh),
/// and a program, or a script with the interpreter 'none', runs itself.
/// </summary>
internal sealed record Launch(bool Node, string Exec, List<string> Args)
{
    public const string NodeInterpreter = "node";
    public const string NoInterpreter = "none";

    /// <summary>The interpreter a script runs with when none is given: by its extension; 'none' for a program.</summary>
    public static string InterpreterFor(string script) => Path.GetExtension(script).ToLowerInvariant() switch
    {
        ".js" or ".mjs" or ".cjs" => NodeInterpreter,
        ".sh" => "sh",
        ".py" => "python3",
        ".ps1" => "pwsh",
        _ => NoInterpreter,
    };

    /// <summary>The interpreter in effect for an app: the one it gives, else the one its script's extension means.</summary>
    public static string InterpreterOf(StartSpec spec) => spec.Interpreter ?? InterpreterFor(spec.Script);

    /// <summary>How an instance of a fork-mode app starts; an interpreter that cannot be found is an error naming it.</summary>
    public static Launch For(StartSpec spec)
    {
        string interpreter = InterpreterOf(spec);
        if (string.Equals(interpreter, NodeInterpreter, StringComparison.OrdinalIgnoreCase))
        {
            return new Launch(true, spec.Script, spec.Arguments);
        }

        if (string.Equals(interpreter, NoInterpreter, StringComparison.OrdinalIgnoreCase))
        {
            return new Launch(false, spec.Script, spec.Arguments);
        }

        // An interpreter's own arguments (PM2's interpreter_args) come before the script.
        return new Launch(false, ProgramPath(interpreter, spec), spec.NodeArguments.Append(spec.Script).Concat(spec.Arguments).ToList());
    }

    /// <summary>The interpreter's full path: a path is taken from the working directory, a name is looked for on PATH.</summary>
    private static string ProgramPath(string interpreter, StartSpec spec)
    {
        bool isPath = interpreter.Contains('/', StringComparison.Ordinal) || interpreter.Contains(Path.DirectorySeparatorChar, StringComparison.Ordinal);
        string? found = isPath
            ? Path.GetFullPath(interpreter, spec.WorkingDirectory) is var full && File.Exists(full) ? full : null
            : NodeRuntime.FindProgram(interpreter, NodeRuntime.SearchEnvironment(spec));
        return found ?? throw new ClusterException(
            "InterpreterNotFound",
            ErrorCategories.ObjectNotFound,
            $"'{AppName.Printable(spec.Script)}' runs with the interpreter '{AppName.Printable(interpreter)}', which is not "
                + (isPath ? "an existing file" : "on the PATH the app runs with")
                + ". Install it, give its full path with -Interpreter, or use -Interpreter none to run the script itself.",
            AppName.Printable(interpreter));
    }
}
