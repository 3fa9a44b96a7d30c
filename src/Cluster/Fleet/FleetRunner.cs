using System;
using System.Collections;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Remoting;
using System.Management.Automation.Runspaces;
using System.Threading;
using System.Threading.Tasks;
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
        /// <summary>The bar that counts the machines; each machine's own bars get the ids after it.</summary>
        private const int ProgressActivityId = 7161;

        private const int NoParentActivity = -1;

        /// <summary>How often the pipeline thread looks at the jobs when none of them has said anything.</summary>
        private static readonly TimeSpan WakeInterval = TimeSpan.FromMilliseconds(500);

        /// <summary>How long jobs that are still running when a run is cut short are given to stop.</summary>
        private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

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

        /// <summary>
        /// Parameters that mean something here, not on the remote side. -Verbose goes on: what the machines write
        /// to their verbose stream comes back, and is written here under this cmdlet's own preference.
        /// </summary>
        private static readonly HashSet<string> LocalParameters = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        {
            "Session", "ThrottleLimit", "MaxParallelMachines",
            "WhatIf", "Confirm", "Debug", "ErrorAction", "WarningAction", "InformationAction", "ProgressAction",
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
        private int _nextActivityId = ProgressActivityId + 1;

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

        /// <summary>Runs the cmdlet on every machine at once, at most <paramref name="throttleLimit"/> at a time, and writes what each returns as it finishes.</summary>
        public void Read(PSSession[] sessions, int throttleLimit)
        {
            Run(sessions, sessions, throttleLimit, _command, NoParentActivity, run =>
            {
                foreach (PSObject result in run.Output)
                {
                    if (Problem(result, run) is { } problem)
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
            });
        }

        /// <summary>
        /// Rolls the cmdlet across the machines in their order, <paramref name="maxParallel"/> at a time. Every
        /// machine is first checked for the module, so that a missing one stops the rollout before anything changes.
        /// The first machine that reports an error or an app that failed stops it: the machines after it are not
        /// touched. <paramref name="keep"/> says which results are written (the others were asked for only to check).
        /// Each machine's own progress (its instances) is written under the bar that counts the machines.
        /// </summary>
        public void Roll(PSSession[] sessions, int maxParallel, string action, Func<PSObject, bool> keep)
        {
            IReadOnlyList<MachineRun> probe = Run(sessions, sessions, sessions.Length, null, NoParentActivity);
            foreach (MachineRun run in probe)
            {
                foreach (PSObject result in run.Output)
                {
                    if (Problem(result, run) is { } problem)
                    {
                        _cmdlet.ThrowTerminatingError(problem);
                    }
                }
            }

            if (probe.FirstOrDefault(r => r.Errors.Count > 0) is { } unreachable)
            {
                _cmdlet.ThrowTerminatingError(Stopped(unreachable.Session, unreachable.Errors[0], sessions, Array.Empty<PSSession>(), Array.Empty<PSSession>(), "could not reach"));
            }

            string activity = $"{_command} across {sessions.Length} machines";
            var done = new List<PSSession>();
            try
            {
                for (int first = 0; first < sessions.Length; first += maxParallel)
                {
                    PSSession[] batch = sessions.Skip(first).Take(maxParallel).ToArray();
                    string machines = string.Join(", ", batch.Select(s => Label(s, sessions)));
                    _cmdlet.WriteProgress(new ProgressRecord(ProgressActivityId, activity, $"Machine {first + 1} of {sessions.Length}: {machines}")
                    {
                        PercentComplete = first * 100 / sessions.Length,
                    });
                    PSSession[] confirmed = batch.Where(s => _cmdlet.ShouldProcess(Label(s, sessions), action)).ToArray();
                    if (confirmed.Length == 0)
                    {
                        continue;
                    }

                    var failures = new List<(PSSession Machine, ErrorRecord Error)>();
                    using CancellationTokenRegistration stopNote = _cmdlet.Cancel.Register(() => WarnStopped(confirmed, sessions, done));
                    foreach (MachineRun run in Run(confirmed, sessions, confirmed.Length, _command, ProgressActivityId))
                    {
                        failures.AddRange(run.Errors.Select(e => (run.Session, e)));
                        foreach (PSObject result in run.Output)
                        {
                            if (Problem(result, run) is { } problem)
                            {
                                failures.Add((run.Session, problem));
                            }
                            else if (Failed(result) is { } status)
                            {
                                failures.Add((run.Session, new ErrorRecord(
                                    new ClusterOperationException($"'{result.Properties["Name"]?.Value}' is {status} after {_command}.", "AppFailed"),
                                    _cmdlet.ErrorIdPrefix + "AppFailed",
                                    ErrorCategory.InvalidResult,
                                    result)));
                            }
                            else if (keep(result))
                            {
                                _cmdlet.WriteObject(result);
                            }
                        }
                    }

                    // Machines of the same batch that did not fail are done, whatever happened beside them.
                    var failed = new HashSet<PSSession>(failures.Select(f => f.Machine));
                    done.AddRange(confirmed.Where(s => !failed.Contains(s)));
                    if (failures.Count > 0)
                    {
                        _cmdlet.ThrowTerminatingError(Stopped(failures[0].Machine, failures[0].Error, sessions, done, failed, "failed on"));
                    }
                }
            }
            finally
            {
                _cmdlet.WriteProgress(new ProgressRecord(ProgressActivityId, activity, "Done") { RecordType = ProgressRecordType.Completed });
            }
        }

        /// <summary>
        /// Ctrl+C in a rollout: what the machines were left with. It goes straight to the host's UI (from the thread that
        /// stops the pipeline), since the pipeline that would carry a warning is being stopped; a machine's own warning
        /// about its interrupted reload does not come back through the stopped job.
        /// </summary>
        private void WarnStopped(PSSession[] changing, PSSession[] sessions, ICollection<PSSession> done)
        {
            string[] untouched = sessions.Where(s => !changing.Contains(s) && !done.Contains(s)).Select(s => Label(s, sessions)).ToArray();
            _cmdlet.Host.UI.WriteWarningLine(
                $"{_command} was stopped while it changed {string.Join(", ", changing.Select(s => Label(s, sessions)))}: "
                + "each of them stops once the instance it is replacing is done, and may be left PartlyReloaded. "
                + (done.Count == 0 ? "" : $"Done before: {string.Join(", ", done.Select(s => Label(s, sessions)))}. ")
                + (untouched.Length == 0 ? "" : $"Not touched, still on the release they run: {string.Join(", ", untouched)}. ")
                + $"Get-ClusterApp -Session shows each machine's apps; run {_command} again to finish.");
        }

        /// <summary>The error that ends a rollout: it names the machine, says which machines were done and which were not touched, and carries the remote error.</summary>
        private ErrorRecord Stopped(PSSession machine, ErrorRecord remote, PSSession[] sessions, ICollection<PSSession> done, ICollection<PSSession> failed, string what)
        {
            string name = Label(machine, sessions);
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
        private ErrorRecord? Problem(PSObject result, MachineRun run)
        {
            if (!(result.Properties["ClusterFleetProblem"]?.Value is string kind))
            {
                return null;
            }

            string name = run.Label;
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

        /// <summary>A machine's name in messages: its computer name, and its session's name when two sessions share a computer name.</summary>
        internal static string Label(PSSession session, PSSession[] sessions) =>
            sessions.Count(s => string.Equals(s.ComputerName, session.ComputerName, StringComparison.OrdinalIgnoreCase)) > 1
                ? $"{session.ComputerName} (session {session.Name})"
                : session.ComputerName;

        /// <summary>
        /// Runs the remote script on the machines, at most <paramref name="throttleLimit"/> at a time, and returns
        /// each machine's output and errors in the machines' order. Each machine runs as an Invoke-Command job of
        /// its own: a job keeps the machine's warnings, progress and other records in streams of its own (a plain
        /// Invoke-Command hands them to the session's host, out of the caller's reach), and so says which machine
        /// each came from. The jobs add to those streams on remoting threads, and only wake this one, the pipeline
        /// thread, which writes what they hold as it comes. <paramref name="finished"/> is called for each machine
        /// once it is done.
        /// </summary>
        private IReadOnlyList<MachineRun> Run(PSSession[] machines, PSSession[] sessions, int throttleLimit, string? command, int parentActivityId, Action<MachineRun>? finished = null)
        {
            MachineRun[] runs = machines.Select(s => new MachineRun(s, Label(s, sessions))).ToArray();
            var waiting = new Queue<MachineRun>(runs);
            var running = new List<MachineRun>();
            // Never disposed: a job may still raise an event that releases it after this method returns.
            var wake = new SemaphoreSlim(0);
            try
            {
                while (waiting.Count > 0 || running.Count > 0)
                {
                    while (waiting.Count > 0 && running.Count < throttleLimit)
                    {
                        MachineRun run = waiting.Dequeue();
                        Start(run, command, wake);
                        running.Add(run);
                    }

                    wake.Wait(WakeInterval, _cmdlet.Cancel);
                    while (wake.CurrentCount > 0)
                    {
                        wake.Wait(0);
                    }

                    foreach (MachineRun run in running.ToArray())
                    {
                        // Read before the streams: a job adds its last records before it ends.
                        bool ended = run.Ended;
                        Forward(run, parentActivityId);
                        if (ended)
                        {
                            run.End();
                            CompleteProgress(run);
                            running.Remove(run);
                            finished?.Invoke(run);
                        }
                    }
                }
            }
            finally
            {
                Release(runs);
            }

            return runs;
        }

        /// <summary>Starts the machine's job, from the pipeline thread (Invoke-Command runs in this runspace).</summary>
        private void Start(MachineRun run, string? command, SemaphoreSlim wake)
        {
            using PowerShell shell = PowerShell.Create(RunspaceMode.CurrentRunspace);
            shell.AddCommand("Microsoft.PowerShell.Core\\Invoke-Command")
                .AddParameter("Session", run.Session)
                .AddParameter("AsJob")
                // The machine's errors are collected whatever the caller's $ErrorActionPreference: this class decides what they stop.
                .AddParameter("ErrorAction", ActionPreference.Continue)
                .AddParameter("ScriptBlock", ScriptBlock.Create(RemoteScript))
                .AddParameter("ArgumentList", new object?[] { _version, command, _parameters, _filePath, _fileContent });
            Collection<PSObject> started;
            try
            {
                started = shell.Invoke();
            }
            catch (RuntimeException e)
            {
                _cmdlet.Cancel.ThrowIfCancellationRequested();
                run.Errors.Add(e.ErrorRecord);
                wake.Release();
                return;
            }

            run.Errors.AddRange(shell.Streams.Error);
            if (started.Select(o => o.BaseObject).OfType<Job>().FirstOrDefault() is { } job)
            {
                run.Watch(job, () => wake.Release());
            }
            else
            {
                wake.Release();
            }
        }

        /// <summary>Writes the machine's new records, tagged with the machine, and keeps its output and errors for the caller.</summary>
        private void Forward(MachineRun run, int parentActivityId)
        {
            foreach (Job job in run.Streams)
            {
                run.Output.AddRange(run.Next(job.Output));
                run.Errors.AddRange(run.Next(job.Error));
                foreach (WarningRecord warning in run.Next(job.Warning))
                {
                    _cmdlet.WriteWarning($"{run.Label}: {warning.Message}");
                }

                foreach (VerboseRecord verbose in run.Next(job.Verbose))
                {
                    _cmdlet.WriteVerbose($"{run.Label}: {verbose.Message}");
                }

                foreach (DebugRecord debug in run.Next(job.Debug))
                {
                    _cmdlet.WriteDebug($"{run.Label}: {debug.Message}");
                }

                foreach (InformationRecord information in run.Next(job.Information))
                {
                    information.Tags.Add(run.Label);
                    _cmdlet.WriteInformation(information);
                }

                foreach (ProgressRecord progress in run.Next(job.Progress))
                {
                    _cmdlet.WriteProgress(Nest(run, progress, parentActivityId));
                }
            }
        }

        /// <summary>
        /// A machine's progress record as a child of <paramref name="parentActivityId"/>: its activity id is one of
        /// this rollout's own, so machines running side by side each keep their bar, and its activity names the machine.
        /// </summary>
        private ProgressRecord Nest(MachineRun run, ProgressRecord remote, int parentActivityId)
        {
            var record = new ProgressRecord(ActivityIdOf(run, remote.ActivityId), $"{run.Label}: {remote.Activity}", remote.StatusDescription)
            {
                ParentActivityId = remote.ParentActivityId < 0 ? parentActivityId : ActivityIdOf(run, remote.ParentActivityId),
                PercentComplete = remote.PercentComplete,
                SecondsRemaining = remote.SecondsRemaining,
                CurrentOperation = remote.CurrentOperation,
                RecordType = remote.RecordType,
            };
            run.LastProgress[record.ActivityId] = record;
            return record;
        }

        private int ActivityIdOf(MachineRun run, int remoteActivityId)
        {
            if (!run.ActivityIds.TryGetValue(remoteActivityId, out int id))
            {
                id = _nextActivityId++;
                run.ActivityIds[remoteActivityId] = id;
            }

            return id;
        }

        /// <summary>Closes the machine's bars that it left open (it failed, or its session broke, before it closed them).</summary>
        private void CompleteProgress(MachineRun run)
        {
            foreach (ProgressRecord last in run.LastProgress.Values.Where(r => r.RecordType != ProgressRecordType.Completed).ToArray())
            {
                _cmdlet.WriteProgress(new ProgressRecord(last.ActivityId, last.Activity, last.StatusDescription)
                {
                    ParentActivityId = last.ParentActivityId,
                    RecordType = ProgressRecordType.Completed,
                });
            }
        }

        /// <summary>
        /// Takes the jobs out of the session's job list. Jobs still running (Ctrl+C, or an error that stopped the
        /// caller) are stopped, all at once, and given <see cref="StopTimeout"/> to stop, so that the machines'
        /// sessions are free again for the next command.
        /// </summary>
        private void Release(IEnumerable<MachineRun> runs)
        {
            var stopping = new List<Task>();
            foreach (MachineRun run in runs)
            {
                if (!(run.Job is { } job))
                {
                    continue;
                }

                run.End();
                if (_cmdlet.JobRepository.GetJob(job.InstanceId) is not null)
                {
                    _cmdlet.JobRepository.Remove(job);
                }

                if (MachineRun.IsEnded(job.JobStateInfo.State))
                {
                    job.Dispose();
                }
                else
                {
                    stopping.Add(Task.Run(() =>
                    {
                        job.StopJob();
                        job.Dispose();
                    }));
                }
            }

            try
            {
                Task.WaitAll(stopping.ToArray(), StopTimeout);
            }
            catch (AggregateException)
            {
                // A job that could not be stopped went with its session, which says so at its next use.
            }
        }

        /// <summary>One machine's part of a run: its job, what it returned, and how far its streams have been read.</summary>
        private sealed class MachineRun
        {
            private readonly Dictionary<object, int> _read = new Dictionary<object, int>();
            private Action? _wake;
            private bool _ended;

            public MachineRun(PSSession session, string label)
            {
                Session = session;
                Label = label;
            }

            public PSSession Session { get; }

            public string Label { get; }

            public List<PSObject> Output { get; } = new List<PSObject>();

            public List<ErrorRecord> Errors { get; } = new List<ErrorRecord>();

            /// <summary>The machine's remote activity ids, and the ids its records are written under here.</summary>
            public Dictionary<int, int> ActivityIds { get; } = new Dictionary<int, int>();

            /// <summary>The last record written for each of the machine's bars.</summary>
            public Dictionary<int, ProgressRecord> LastProgress { get; } = new Dictionary<int, ProgressRecord>();

            /// <summary>The machine's Invoke-Command job; null when it could not be started.</summary>
            public Job? Job { get; private set; }

            /// <summary>The job's child (one per session), which holds the machine's streams.</summary>
            public IEnumerable<Job> Streams => Job?.ChildJobs ?? Enumerable.Empty<Job>();

            /// <summary>True once the job has ended, or when it could not be started.</summary>
            public bool Ended => Job is null || IsEnded(Job.JobStateInfo.State);

            public static bool IsEnded(JobState state) =>
                state == JobState.Completed || state == JobState.Failed || state == JobState.Stopped || state == JobState.Disconnected;

            /// <summary>Follows the job: every record it adds, and every change of its state, calls <paramref name="wake"/>.</summary>
            public void Watch(Job job, Action wake)
            {
                Job = job;
                _wake = wake;
                job.StateChanged += OnStateChanged;
                foreach (Job each in Streams)
                {
                    each.Output.DataAdded += OnDataAdded;
                    each.Error.DataAdded += OnDataAdded;
                    each.Warning.DataAdded += OnDataAdded;
                    each.Verbose.DataAdded += OnDataAdded;
                    each.Debug.DataAdded += OnDataAdded;
                    each.Information.DataAdded += OnDataAdded;
                    each.Progress.DataAdded += OnDataAdded;
                }

                // Records added before the handlers were in place are read at the first wake.
                wake();
            }

            /// <summary>The records added to <paramref name="stream"/> since the last call.</summary>
            public List<T> Next<T>(PSDataCollection<T> stream)
            {
                _read.TryGetValue(stream, out int position);
                var records = new List<T>();
                for (int count = stream.Count; position < count; position++)
                {
                    records.Add(stream[position]);
                }

                _read[stream] = position;
                return records;
            }

            /// <summary>Stops following the job, and turns the reason it failed (a terminating error, a broken session) into an error of the machine's.</summary>
            public void End()
            {
                if (Job is null || _ended)
                {
                    return;
                }

                _ended = true;
                Job.StateChanged -= OnStateChanged;
                foreach (Job each in Streams)
                {
                    each.Output.DataAdded -= OnDataAdded;
                    each.Error.DataAdded -= OnDataAdded;
                    each.Warning.DataAdded -= OnDataAdded;
                    each.Verbose.DataAdded -= OnDataAdded;
                    each.Debug.DataAdded -= OnDataAdded;
                    each.Information.DataAdded -= OnDataAdded;
                    each.Progress.DataAdded -= OnDataAdded;
                }

                if (!IsEnded(Job.JobStateInfo.State))
                {
                    return;
                }

                JobStateInfo state = Streams.Select(c => c.JobStateInfo).FirstOrDefault(s => s.Reason is not null) ?? Job.JobStateInfo;
                if (state.State == JobState.Disconnected && state.Reason is null)
                {
                    Errors.Add(new ErrorRecord(
                        new PSInvalidOperationException($"The session to {Label} was disconnected before the command ended there."),
                        "MachineDisconnected",
                        ErrorCategory.ConnectionError,
                        Session));
                }
                else if (state.Reason is { } reason)
                {
                    ErrorRecord error = reason is IContainsErrorRecord remote
                        ? remote.ErrorRecord
                        : new ErrorRecord(reason, "MachineUnreachable", ErrorCategory.ConnectionError, Session);
                    Errors.Add(new RemotingErrorRecord(error, new OriginInfo(Session.ComputerName, Session.Runspace.InstanceId)));
                }
            }

            private void OnStateChanged(object? sender, JobStateEventArgs e) => _wake?.Invoke();

            private void OnDataAdded(object? sender, DataAddedEventArgs e) => _wake?.Invoke();
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
