using System;
using System.Collections;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Threading;
using Cluster.Commands;

namespace Cluster.Fleet
{
    /// <summary>
    /// Runs one Cluster cmdlet on other machines through PowerShell remoting: Invoke-Command with the module's own
    /// cmdlet on the remote side, so there is no agent and no port of ours. Reads go to every machine at once;
    /// a rollout goes machine by machine (or a few at a time) and stops at the first machine that fails, so the
    /// machines after it keep the release they run.
    /// </summary>
    internal sealed class FleetRunner
    {
        private const int ProgressActivityId = 7161;

        /// <summary>What the remote side runs (it must work on Windows PowerShell 5.1 as well).</summary>
        private const string RemoteScript = @"
param([string] $Version, [string] $Command, [hashtable] $Parameters, [string] $FilePath, [string] $FileContent)
$loaded = @(Get-Module -Name Cluster)
$found = if ($loaded.Count) { $loaded } else { @(Get-Module -Name Cluster -ListAvailable) }
$module = $found | Where-Object { $_.Version -eq [version] $Version } | Select-Object -First 1
if (-not $module) {
    return [pscustomobject]@{ ClusterFleetProblem = 'Module'; Found = @($found | ForEach-Object { $_.Version.ToString() }); Loaded = [bool] $loaded.Count }
}
if (-not $loaded.Count) { Import-Module -ModuleInfo $module -ErrorAction Stop }
if (-not $Command) { return }
$copy = $null
if ($FilePath) {
    $folder = Split-Path -Parent $FilePath
    if (-not (Test-Path -LiteralPath $folder -PathType Container)) {
        return [pscustomobject]@{ ClusterFleetProblem = 'Folder'; Folder = $folder }
    }
    # Beside where the file is on the caller's machine, so that its relative paths mean the same folder here.
    $copy = Join-Path $folder ('.' + [guid]::NewGuid().ToString('n').Substring(0, 8) + '.' + (Split-Path -Leaf $FilePath))
    [IO.File]::WriteAllBytes($copy, [Convert]::FromBase64String($FileContent))
    $Parameters['Path'] = $copy
}
try { & ""Cluster\$Command"" @Parameters } finally { if ($copy) { Remove-Item -LiteralPath $copy -Force -ErrorAction SilentlyContinue } }
";

        /// <summary>Parameters that mean something here, not on the remote side.</summary>
        private static readonly HashSet<string> LocalParameters = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        {
            "Session", "ThrottleLimit", "MaxParallelMachines",
            "WhatIf", "Confirm", "Verbose", "Debug", "ErrorAction", "WarningAction", "InformationAction", "ProgressAction",
            "ErrorVariable", "WarningVariable", "InformationVariable", "OutVariable", "OutBuffer", "PipelineVariable",
        };

        private static readonly HashSet<string> FailedStatuses = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        {
            nameof(AppStatus.ReloadFailed), nameof(AppStatus.Errored), nameof(AppStatus.PartlyReloaded),
        };

        private readonly ClusterCmdlet _cmdlet;
        private readonly string _command;
        private readonly Hashtable _parameters = new Hashtable(StringComparer.OrdinalIgnoreCase);
        private readonly string _version;
        private string? _filePath;
        private string? _fileContent;

        /// <summary>The cmdlet to run remotely is the calling one, with the parameters it was given here.</summary>
        public FleetRunner(ClusterCmdlet cmdlet)
        {
            _cmdlet = cmdlet;
            _command = cmdlet.MyInvocation.MyCommand.Name;
            _version = cmdlet.MyInvocation.MyCommand.Module?.Version?.ToString() ?? typeof(FleetRunner).Assembly.GetName().Version!.ToString(3);
            foreach (KeyValuePair<string, object> parameter in cmdlet.MyInvocation.BoundParameters)
            {
                if (!LocalParameters.Contains(parameter.Key))
                {
                    _parameters[parameter.Key] = parameter.Value is SwitchParameter flag ? flag.IsPresent : parameter.Value;
                }
            }
        }

        /// <summary>A deployment file read here and sent: the remote machine needs the app's files, not this one.</summary>
        public void SendFile(string path, byte[] content)
        {
            _filePath = path;
            _fileContent = Convert.ToBase64String(content);
        }

        /// <summary>Sets a parameter for the remote side only (Confirm:$false, -PassThru to see the result).</summary>
        public void SetRemote(string parameter, object value) => _parameters[parameter] = value;

        /// <summary>Runs the cmdlet on every machine at once, at most <paramref name="throttleLimit"/> at a time, and writes what each returns.</summary>
        public void Read(PSSession[] sessions, int throttleLimit)
        {
            MachineRun run = Invoke(sessions, throttleLimit, _command);
            foreach (PSObject result in run.Output)
            {
                if (Problem(result, sessions) is { } problem)
                {
                    _cmdlet.WriteError(problem);
                }
                else
                {
                    _cmdlet.WriteObject(result);
                }
            }

            foreach (ErrorRecord error in run.Errors)
            {
                _cmdlet.WriteError(error);
            }
        }

        /// <summary>
        /// Rolls the cmdlet across the machines in their order, <paramref name="maxParallel"/> at a time. Every
        /// machine is first checked for the module, so that a missing one stops the rollout before anything changes.
        /// The first machine that reports an error or an app that failed stops it: the machines after it are not
        /// touched. <paramref name="keep"/> says which results are written (the others were asked for only to check).
        /// </summary>
        public void Roll(PSSession[] sessions, int maxParallel, string action, Func<PSObject, bool> keep)
        {
            MachineRun probe = Invoke(sessions, sessions.Length, null);
            foreach (PSObject result in probe.Output)
            {
                if (Problem(result, sessions) is { } problem)
                {
                    _cmdlet.ThrowTerminatingError(problem);
                }
            }

            if (probe.Errors.FirstOrDefault() is { } unreachable)
            {
                _cmdlet.ThrowTerminatingError(Stopped(unreachable, sessions, Array.Empty<PSSession>(), Array.Empty<PSSession>(), "could not reach"));
            }

            var done = new List<PSSession>();
            try
            {
                for (int first = 0; first < sessions.Length; first += maxParallel)
                {
                    PSSession[] batch = sessions.Skip(first).Take(maxParallel).ToArray();
                    string machines = string.Join(", ", batch.Select(s => Label(s, sessions)));
                    _cmdlet.WriteProgress(new ProgressRecord(ProgressActivityId, $"{_command} across {sessions.Length} machines", $"Machine {first + 1} of {sessions.Length}: {machines}")
                    {
                        PercentComplete = first * 100 / sessions.Length,
                    });
                    PSSession[] confirmed = batch.Where(s => _cmdlet.ShouldProcess(Label(s, sessions), action)).ToArray();
                    if (confirmed.Length == 0)
                    {
                        continue;
                    }

                    MachineRun run = Invoke(confirmed, confirmed.Length, _command);
                    var failures = new List<ErrorRecord>(run.Errors);
                    foreach (PSObject result in run.Output)
                    {
                        if (Problem(result, sessions) is { } problem)
                        {
                            failures.Add(problem);
                        }
                        else if (Failed(result) is { } status)
                        {
                            failures.Add(new ErrorRecord(
                                new ClusterOperationException($"'{result.Properties["Name"]?.Value}' is {status} after {_command}.", "AppFailed"),
                                _cmdlet.ErrorIdPrefix + "AppFailed",
                                ErrorCategory.InvalidResult,
                                result));
                        }
                        else if (keep(result))
                        {
                            _cmdlet.WriteObject(result);
                        }
                    }

                    // Machines of the same batch that did not fail are done, whatever happened beside them.
                    var failed = new HashSet<PSSession>(failures.Select(f => SessionOf(f, sessions)).Where(s => s is not null)!);
                    done.AddRange(confirmed.Where(s => !failed.Contains(s)));
                    if (failures.Count > 0)
                    {
                        _cmdlet.ThrowTerminatingError(Stopped(failures[0], sessions, done, failed, "failed on"));
                    }
                }
            }
            finally
            {
                _cmdlet.WriteProgress(new ProgressRecord(ProgressActivityId, $"{_command} across {sessions.Length} machines", "Done") { RecordType = ProgressRecordType.Completed });
            }
        }

        /// <summary>The error that ends a rollout: it names the machine, says which machines were done and which were not touched, and carries the remote error.</summary>
        private ErrorRecord Stopped(ErrorRecord remote, PSSession[] sessions, ICollection<PSSession> done, ICollection<PSSession> failed, string what)
        {
            PSSession? machine = SessionOf(remote, sessions);
            string name = machine is null ? "a machine" : Label(machine, sessions);
            string[] untouched = sessions.Where(s => s != machine && !done.Contains(s) && !failed.Contains(s)).Select(s => Label(s, sessions)).ToArray();
            string[] alsoFailed = failed.Where(s => s != machine).Select(s => Label(s, sessions)).ToArray();
            string doneText = done.Count == 0 ? "no machine was changed" : "done on " + string.Join(", ", done.Select(s => Label(s, sessions)));
            string untouchedText = (alsoFailed.Length == 0 ? "" : $"; failed as well: {string.Join(", ", alsoFailed)}")
                + (untouched.Length == 0 ? "" : $"; not touched, still on the release they run: {string.Join(", ", untouched)}");
            string message = $"{_command} {what} {name}: {remote.Exception?.Message} The rollout stopped there ({doneText}{untouchedText}). "
                + $"Fix {name} (its error is in this error's Exception.RemoteError), then run {_command} again.";
            var exception = new ClusterMachineException(message, name, remote);
            return new ErrorRecord(exception, _cmdlet.ErrorIdPrefix + "MachineFailed", remote.CategoryInfo.Category, name);
        }

        /// <summary>The error of a machine without the module in this version, or without the deployment file's folder; null for a result.</summary>
        private ErrorRecord? Problem(PSObject result, PSSession[] sessions)
        {
            if (!(result.Properties["ClusterFleetProblem"]?.Value is string kind))
            {
                return null;
            }

            PSSession? machine = sessions.FirstOrDefault(s => Equals(result.Properties["RunspaceId"]?.Value, s.Runspace.InstanceId));
            string name = machine is null ? $"{result.Properties["PSComputerName"]?.Value}" : Label(machine, sessions);
            if (kind == "Folder")
            {
                string folder = $"{result.Properties["Folder"]?.Value}";
                return _cmdlet.NewError(
                    "DeploymentFolderMissing",
                    ErrorCategory.ObjectNotFound,
                    $"{name} has no folder '{folder}'. The deployment file's relative paths resolve against the folder it is in here, so that folder, with the app's files, must exist on every machine: copy the release there first.",
                    name);
            }

            string[] found = (LanguagePrimitives.GetEnumerable(result.Properties["Found"]?.Value) ?? Array.Empty<object>()).Cast<object>().Select(v => $"{v}").ToArray();
            bool loaded = result.Properties["Loaded"]?.Value is true;
            return found.Length == 0
                ? _cmdlet.NewError(
                    "ModuleMissing",
                    ErrorCategory.NotInstalled,
                    $"{name} does not have the Cluster module. Install Cluster {_version} there (Install-PSResource Cluster -Version {_version}, or copy the module folder into a folder of its PSModulePath), then try again.",
                    name)
                : _cmdlet.NewError(
                    "ModuleVersionMismatch",
                    ErrorCategory.NotInstalled,
                    $"{name} has Cluster {string.Join(", ", found)}{(loaded ? " (already imported in that session)" : "")}, not {_version}, the version running here. "
                        + $"Install Cluster {_version} there{(loaded ? " and open a new session" : "")}, or run this from a session with the version the machines have.",
                    name);
        }

        private static string? Failed(PSObject result)
        {
            object? app = result.Properties["App"]?.Value is PSObject inner ? inner : result;
            string? status = (app as PSObject)?.Properties["Status"]?.Value?.ToString();
            return status is not null && FailedStatuses.Contains(status) ? status : null;
        }

        private static PSSession? SessionOf(ErrorRecord error, PSSession[] sessions)
        {
            // A session that could not run the command (broken, closed) is the target of Invoke-Command's error.
            PSSession? target = error.TargetObject as PSSession ?? (error.TargetObject as PSObject)?.BaseObject as PSSession;
            if (target is not null)
            {
                return sessions.FirstOrDefault(s => s.Runspace.InstanceId == target.Runspace.InstanceId);
            }

            Guid? id = (error as RemotingErrorRecord)?.OriginInfo?.RunspaceID ?? (error.TargetObject as PSObject)?.Properties["RunspaceId"]?.Value as Guid?;
            return sessions.FirstOrDefault(s => s.Runspace.InstanceId == id)
                ?? sessions.FirstOrDefault(s => Equals((error as RemotingErrorRecord)?.OriginInfo?.PSComputerName, s.ComputerName) && sessions.Count(o => o.ComputerName == s.ComputerName) == 1);
        }

        /// <summary>A machine's name in messages: its computer name, and its session's name when two sessions share a computer name.</summary>
        internal static string Label(PSSession session, PSSession[] sessions) =>
            sessions.Count(s => string.Equals(s.ComputerName, session.ComputerName, StringComparison.OrdinalIgnoreCase)) > 1
                ? $"{session.ComputerName} (session {session.Name})"
                : session.ComputerName;

        private MachineRun Invoke(PSSession[] sessions, int throttleLimit, string? command)
        {
            using PowerShell shell = PowerShell.Create(RunspaceMode.CurrentRunspace);
            shell.AddCommand("Microsoft.PowerShell.Core\\Invoke-Command")
                .AddParameter("Session", sessions)
                .AddParameter("ThrottleLimit", throttleLimit)
                // Each machine's errors are collected whatever the caller's $ErrorActionPreference: this class decides what they stop.
                .AddParameter("ErrorAction", ActionPreference.Continue)
                .AddParameter("ScriptBlock", ScriptBlock.Create(RemoteScript))
                .AddParameter("ArgumentList", new object?[] { _version, command, _parameters, _filePath, _fileContent });
            using CancellationTokenRegistration stop = _cmdlet.Cancel.Register(() => shell.BeginStop(null, null));
            var run = new MachineRun();
            try
            {
                run.Output = shell.Invoke();
            }
            catch (RuntimeException e)
            {
                _cmdlet.Cancel.ThrowIfCancellationRequested();
                run.Errors.Add(e.ErrorRecord);
            }

            run.Errors.InsertRange(0, shell.Streams.Error);
            return run;
        }

        private sealed class MachineRun
        {
            public Collection<PSObject> Output { get; set; } = new Collection<PSObject>();

            public List<ErrorRecord> Errors { get; } = new List<ErrorRecord>();
        }
    }

    /// <summary>The failure of one machine in a rollout; <see cref="RemoteError"/> is the error that machine reported.</summary>
    public sealed class ClusterMachineException : Exception
    {
        public ClusterMachineException(string message, string machine, ErrorRecord remoteError)
            : base(message, remoteError.Exception)
        {
            Machine = machine;
            RemoteError = remoteError;
        }

        /// <summary>The machine, as the rollout names it.</summary>
        public string Machine { get; }

        /// <summary>The error the machine reported, with its own id and category.</summary>
        public ErrorRecord RemoteError { get; }
    }
}
