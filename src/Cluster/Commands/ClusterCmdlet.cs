using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Text.Json;
using System.Threading;
using Cluster.Client;
using Cluster.Protocol;
using Cluster.Settings;

namespace Cluster.Commands
{
    /// <summary>
    /// What every Cluster cmdlet shares: one request per call to the host (started on demand), its progress
    /// and warnings written from the pipeline thread, its errors turned into ErrorRecords, and Ctrl+C.
    /// </summary>
    public abstract class ClusterCmdlet : PSCmdlet
    {
        private const int ProgressActivityId = 7160;

        private CancellationTokenSource _cancel = new CancellationTokenSource();
        private HostConnection? _connection;
        private readonly object _connectionLock = new object();

        /// <summary>The error id prefix: the cmdlet's name without its dash (StartClusterApp).</summary>
        protected internal string ErrorIdPrefix => MyInvocation.MyCommand.Name.Replace("-", "");

        protected internal CancellationToken Cancel => _cancel.Token;

        protected override void BeginProcessing() => _cancel = new CancellationTokenSource();

        protected override void StopProcessing()
        {
            _cancel.Cancel();
            lock (_connectionLock)
            {
                _connection?.Dispose();
            }
        }

        /// <summary>
        /// Sends a request and handles its frames until the last; returns the last frame, or null after
        /// writing its error (an error of this one item: the pipeline goes on).
        /// </summary>
        internal Frame? Send(Request request, Action<Frame>? onFrame = null) => Send(request, onFrame, passOnNotResponding: false);

        /// <summary>Like <see cref="Send"/>, but the apps the reply carries are what it returns.</summary>
        internal IReadOnlyList<App> SendForApps(Request request) =>
            Send(request)?.Apps?.Select(a => new App(a)).ToArray() ?? Array.Empty<App>();

        /// <summary>The value of an int parameter the caller gave, or null when it was left out.</summary>
        internal int? Bound(string parameter) =>
            MyInvocation.BoundParameters.TryGetValue(parameter, out object? value) ? (int)value : (int?)null;

        /// <summary>Those of the named environment variables the calling session sets, for the host to resolve timeouts with.</summary>
        internal static Dictionary<string, string> SessionVariables(IEnumerable<string> names)
        {
            var variables = new Dictionary<string, string>();
            foreach (string name in names)
            {
                if (System.Environment.GetEnvironmentVariable(name) is { } value)
                {
                    variables[name] = value;
                }
            }

            return variables;
        }

        /// <summary>
        /// An app's settings laid over <paramref name="basis"/>: relative paths resolved from <paramref name="folder"/>,
        /// programs (an interpreter, node) found on this session's PATH, variables read from this session.
        /// </summary>
        /// <exception cref="SettingsException">A setting that cannot be applied.</exception>
        internal StartSpec ApplySettings(IReadOnlyDictionary<string, object?> settings, StartSpec basis, string folder) =>
            AppSettings.Apply(settings, basis, folder, FindProgram, System.Environment.GetEnvironmentVariables());

        /// <summary>The request that gives an app new settings, and how a reload that they take goes: gracefully or not, with this session's timeout variables.</summary>
        internal static Request UpdateRequest(string name, StartSpec wanted, bool graceful) => new Request
        {
            Command = CommandNames.Update,
            Name = name,
            Start = wanted,
            Reload = new ReloadSpec { Graceful = graceful, SessionEnvironment = SessionVariables(EnvironmentPolicy.TimeoutVariables) },
        };

        /// <summary>The path of a program this session's PATH finds, or null.</summary>
        internal string? FindProgram(string name) =>
            InvokeCommand.GetCommand(name, CommandTypes.Application) is ApplicationInfo program ? program.Path : null;

        internal ErrorRecord ToErrorRecord(ErrorInfo error)
        {
            ErrorCategory category = Enum.TryParse(error.Category, out ErrorCategory parsed) ? parsed : ErrorCategory.InvalidOperation;
            return new ErrorRecord(new ClusterOperationException(error.Message, error.Code), ErrorIdPrefix + error.Code, category, error.Target);
        }

        protected internal ErrorRecord NewError(string code, ErrorCategory category, string message, object? target, Exception? inner = null) =>
            new ErrorRecord(new ClusterOperationException(message, code, inner), ErrorIdPrefix + code, category, target);

        /// <summary>
        /// The names a -Name parameter means: wildcards expand to the apps that match (none is no error);
        /// a plain name passes through, and the host says if there is no such app.
        /// </summary>
        internal IEnumerable<string> ResolveNames(IEnumerable<string> names)
        {
            string[] all = names.ToArray();
            if (!all.Any(WildcardPattern.ContainsWildcardCharacters))
            {
                return all;
            }

            string[] existing = (Send(new Request { Command = CommandNames.List })?.Apps ?? new List<AppInfo>()).Select(a => a.Name).ToArray();
            return all.SelectMany(name =>
                {
                    if (!WildcardPattern.ContainsWildcardCharacters(name))
                    {
                        return new[] { name };
                    }

                    var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
                    return existing.Where(pattern.IsMatch);
                })
                .Distinct(StringComparer.OrdinalIgnoreCase);
        }

        /// <summary>
        /// Like <see cref="Send"/>, but a host that does not answer in time is not an error here: returns false, so
        /// that the caller can deal with it (Stop-ClusterHost -Force).
        /// </summary>
        internal bool TrySend(Request request, out Frame? last)
        {
            try
            {
                last = Send(request, null, passOnNotResponding: true);
                return true;
            }
            catch (HostNotRespondingException)
            {
                last = null;
                return false;
            }
        }

        /// <summary>The error of a host that sent nothing, not even a heartbeat, within the read timeout.</summary>
        private ErrorRecord HostNotResponding(HostNotRespondingException e)
        {
            int? pid = HostLauncher.RecordedHostPid();
            string who = pid is { } known ? $"The Cluster host (pid {known})" : $"The Cluster host (pid unknown: {System.IO.Path.Combine(HostLauncher.Home, ClusterHome.HostPidRecord)} is missing)";
            string kill = pid is { } id ? $"killing pid {id} (Stop-Process -Id {id} -Force, or kill -9 {id})" : "killing the host process";
            string message = $"{who} did not answer within {e.Timeout.TotalSeconds:0.###} seconds: it may be stopped (SIGSTOP) or hung. "
                + $"Its log is {HostLauncher.HostLog}. Stop-ClusterHost -Force kills it and then stops its apps; {kill} instead leaves the apps serving, "
                + $"and the next Cluster cmdlet starts a host that takes them back. {HostTimeout.Variable} sets how long cmdlets wait.";
            return NewError("HostNotResponding", ErrorCategory.OperationTimeout, message, (object?)pid ?? HostLauncher.Home, e);
        }

        private Frame? Send(Request request, Action<Frame>? onFrame, bool passOnNotResponding)
        {
            Frame? last = Exchange(request, onFrame, passOnNotResponding);
            if (last?.Error is { } error)
            {
                WriteError(ToErrorRecord(error));
                return null;
            }

            return last;
        }

        private Frame? Exchange(Request request, Action<Frame>? onFrame, bool passOnNotResponding)
        {
            // Checked here, before the host is started or connected: it would drop a larger frame, and the client
            // would see only a broken pipe.
            byte[] json = JsonSerializer.SerializeToUtf8Bytes(request, ProtocolJson.Default.Request);
            if (json.Length > Limits.MaxRequestBytes)
            {
                WriteError(NewError(
                    "RequestTooLarge",
                    ErrorCategory.LimitsExceeded,
                    $"The request is {json.Length} bytes, more than the {Limits.MaxRequestBytes} bytes the Cluster host accepts in one request. "
                        + "Large environment values are the usual cause: pass a file's path in the environment instead of its contents.",
                    request.Name ?? request.Start?.Name));
                return null;
            }

            TimeSpan timeout = ReadTimeout();
            HostConnection? connection = null;
            try
            {
                // Stopping the host is no reason to hand its apps over to a newer one first.
                connection = Connect(timeout, handOver: request.Command != CommandNames.Shutdown);
                connection.ReadTimeout = timeout;
                connection.Send(json);
                while (true)
                {
                    Frame? frame = connection.Read();
                    if (frame is null)
                    {
                        Cancel.ThrowIfCancellationRequested();
                        ThrowTerminatingError(NewError("HostDisconnected", ErrorCategory.ConnectionError, $"The Cluster host closed the connection before it answered. Its log is {HostLauncher.HostLog}.", null));
                    }

                    Show(frame!);
                    onFrame?.Invoke(frame!);
                    if (frame!.Done)
                    {
                        return frame;
                    }
                }
            }
            catch (HostNotRespondingException e) when (!passOnNotResponding)
            {
                Cancel.ThrowIfCancellationRequested();
                ThrowTerminatingError(HostNotResponding(e));
                return null;
            }
            catch (HostProtocolException e)
            {
                ThrowTerminatingError(NewError(
                    "HostProtocolError",
                    ErrorCategory.ProtocolError,
                    $"{e.Message} The module and the host may be of different versions: Stop-ClusterHost, then try again. The host log is {HostLauncher.HostLog}.",
                    null,
                    e));
                return null;
            }
            catch (Exception e) when (e is System.IO.IOException || e is ObjectDisposedException)
            {
                Cancel.ThrowIfCancellationRequested();
                ThrowTerminatingError(NewError("HostDisconnected", ErrorCategory.ConnectionError, $"The connection to the Cluster host broke: {e.Message}", null, e));
                return null;
            }
            finally
            {
                lock (_connectionLock)
                {
                    _connection = null;
                }

                connection?.Dispose();
            }
        }

        private TimeSpan ReadTimeout()
        {
            try
            {
                return HostTimeout.FromEnvironment();
            }
            catch (FormatException e)
            {
                ThrowTerminatingError(NewError("TimeoutSettingInvalid", ErrorCategory.InvalidArgument, e.Message, System.Environment.GetEnvironmentVariable(HostTimeout.Variable), e));
                throw;
            }
        }

        private HostConnection Connect(TimeSpan timeout, bool handOver)
        {
            HostConnection connection;
            try
            {
                connection = HostLauncher.Connect(Cancel, timeout, WriteWarning, handOver);
            }
            catch (HostUnavailableException e)
            {
                ErrorCategory category = e.Code switch
                {
                    "HostUnsafePath" => ErrorCategory.SecurityError,
                    "HostUnsupportedPlatform" => ErrorCategory.NotInstalled,
                    "HostFilesMissing" => ErrorCategory.NotInstalled,
                    "HostRuntimeCopyFailed" => ErrorCategory.WriteError,
                    "HostStartFailed" => ErrorCategory.ResourceUnavailable,
                    _ => ErrorCategory.ConnectionError,
                };
                ThrowTerminatingError(NewError(e.Code, category, e.Message, e.Target ?? HostLauncher.Home, e));
                throw;
            }

            lock (_connectionLock)
            {
                _connection = connection;
            }

            return connection;
        }

        private void Show(Frame frame)
        {
            foreach (ErrorInfo error in frame.Errors ?? new List<ErrorInfo>())
            {
                WriteError(ToErrorRecord(error));
            }

            if (frame.Warning is { } warning)
            {
                WriteWarning(warning);
            }

            if (frame.Progress is { } progress)
            {
                var record = new ProgressRecord(ProgressActivityId, progress.Activity, progress.Status)
                {
                    PercentComplete = Math.Max(0, Math.Min(100, progress.Percent)),
                    CurrentOperation = progress.Operation,
                    RecordType = progress.Completed ? ProgressRecordType.Completed : ProgressRecordType.Processing,
                };
                WriteProgress(record);
            }
        }
    }

    /// <summary>A failure the Cluster host reported, with its stable code.</summary>
    public sealed class ClusterOperationException : Exception
    {
        public ClusterOperationException(string message, string code, Exception? inner = null)
            : base(message, inner)
        {
            Code = code;
        }

        /// <summary>The stable code of the failure (ScriptNotFound, NewInstanceExited, ...).</summary>
        public string Code { get; }
    }
}
