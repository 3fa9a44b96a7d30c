using System.Reflection;
using Cluster.Protocol;
using Serilog;

namespace Cluster.Host;

/// <summary>Answers one request: calls the supervisor and writes the frames of the reply.</summary>
internal sealed class RequestHandler
{
    private static readonly TimeSpan FollowInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>How often a request in progress tells its client that the host is alive (cmdlets wait 10 s by default).</summary>
    public static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(1);

    private readonly Supervisor _supervisor;
    private readonly HostPaths _paths;
    private readonly ILogger _log;
    private readonly Action _requestShutdown;
    private readonly DateTimeOffset _started = DateTimeOffset.UtcNow;

    public RequestHandler(Supervisor supervisor, HostPaths paths, ILogger log, Action requestShutdown)
    {
        _supervisor = supervisor;
        _paths = paths;
        _log = log;
        _requestShutdown = requestShutdown;
    }

    /// <summary>Whether the host stops because a client asked it to (Stop-ClusterHost).</summary>
    public bool ShutdownRequested { get; private set; }

    /// <summary>Whether the host exits to let a newer host take over its apps, which it leaves running.</summary>
    public bool HandoverRequested { get; private set; }

    public static string Version =>
        typeof(RequestHandler).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public async Task HandleAsync(Request request, FrameWriter writer, Task clientGone)
    {
        try
        {
            Task<Frame> answering = AnswerAsync(request, writer, clientGone);
            await BeatUntilAsync(answering, writer).ConfigureAwait(false);
            Frame reply = await answering.ConfigureAwait(false);
            reply.Done = true;
            await writer.WriteAsync(reply).ConfigureAwait(false);
        }
        catch (ClusterException e)
        {
            await writer.WriteAsync(Frame.Failed(ErrorOf(e))).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _log.Error(e, "The {Command} request failed", request.Command);
            await writer.WriteAsync(Frame.Failed(new ErrorInfo
            {
                Code = "HostError",
                Category = ErrorCategories.InvalidOperation,
                Message = $"The Cluster host could not complete '{request.Command}': {e.Message} The host log has details: {_paths.HostLog}",
            })).ConfigureAwait(false);
        }

        if (request.Command == CommandNames.Shutdown)
        {
            ShutdownRequested = true;
            _requestShutdown();
        }
        else if (request.Command == CommandNames.Handover)
        {
            HandoverRequested = true;
            _requestShutdown();
        }
        else if (request.Command is not (CommandNames.Ping or CommandNames.List or CommandNames.HostInfo or CommandNames.Definitions or CommandNames.Handover))
        {
            ReturnFreeMemory();
        }
    }

    /// <summary>Sends a heartbeat every second until the work is done, so that the client's read timeout never trips on a long operation.</summary>
    private static async Task BeatUntilAsync(Task work, FrameWriter writer)
    {
        while (!work.IsCompleted)
        {
            await Task.WhenAny(work, Task.Delay(HeartbeatInterval)).ConfigureAwait(false);
            if (!work.IsCompleted && !writer.ClientGone)
            {
                await writer.WriteAsync(Frame.Beat()).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// After an operation, a full compacting collection gives the memory it used back to the system. The host's
    /// heap is small (well under a megabyte), so this costs about a millisecond; left to itself the runtime lets
    /// the process grow by tens of kilobytes per reload before it collects (measured: 10 to 30 MB over 200).
    /// </summary>
    private static void ReturnFreeMemory() =>
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    private async Task<Frame> AnswerAsync(Request request, FrameWriter writer, Task clientGone)
    {
        switch (request.Command)
        {
            case CommandNames.Ping:
                return new Frame();
            case CommandNames.Start:
                return Apps(await _supervisor.StartAsync(Required(request.Start, "start")).ConfigureAwait(false));
            case CommandNames.List:
                return new Frame { Apps = (await _supervisor.ListAsync(request.Name).ConfigureAwait(false)).ToList() };
            case CommandNames.Stop:
                return Apps(await _supervisor.StopAsync(NameOf(request), request.Stop).ConfigureAwait(false));
            case CommandNames.Restart:
                return Apps(await _supervisor.RestartAsync(NameOf(request), request.Stop).ConfigureAwait(false));
            case CommandNames.Remove:
                await _supervisor.RemoveAsync(NameOf(request), request.Stop).ConfigureAwait(false);
                return new Frame();
            case CommandNames.Scale:
                return Apps(await _supervisor.ScaleAsync(NameOf(request), Required(request.Instances, "instances")).ConfigureAwait(false));
            case CommandNames.Reload:
                return await ReloadAsync(request, writer, clientGone).ConfigureAwait(false);
            case CommandNames.Update:
                return await UpdateAsync(request, writer, clientGone).ConfigureAwait(false);
            case CommandNames.Definitions:
                return new Frame { Specs = _supervisor.Definitions(request.Name).ToList() };
            case CommandNames.Logs:
                return await LogsAsync(request, Required(request.Logs, "logs"), writer, clientGone).ConfigureAwait(false);
            case CommandNames.ClearLogs:
                return await ClearLogsAsync(request, Required(request.Logs, "logs")).ConfigureAwait(false);
            case CommandNames.HostInfo:
                return new Frame { Host = HostInfo() };
            case CommandNames.Handover:
                _log.Information("Handing over to a newer host: leaving every app running for it to take back");
                return new Frame { Host = HostInfo() };
            case CommandNames.Shutdown:
                _log.Information("Shutting down on request: stopping every app, which stays stopped until it is started again");
                await _supervisor.StopAllAsync(keepStopped: true).ConfigureAwait(false);
                return new Frame { Host = HostInfo() };
            default:
                throw new ClusterException(
                    "UnknownCommand",
                    ErrorCategories.InvalidArgument,
                    $"The host does not know the command '{AppName.Printable(request.Command)}'. The module and the host may be of different versions: Stop-ClusterHost, then try again.",
                    AppName.Printable(request.Command));
        }
    }

    private async Task<Frame> ReloadAsync(Request request, FrameWriter writer, Task clientGone)
    {
        // Not disposed: the client goes (and this cancels) after the reply too, and a source with no timer
        // holds nothing to release.
        var cancel = new CancellationTokenSource();
        _ = clientGone.ContinueWith(_ => cancel.Cancel(), TaskScheduler.Default);
        AppInfo app = await _supervisor.ReloadAsync(
            NameOf(request),
            Required(request.Reload, "reload"),
            progress => writer.WriteAsync(new Frame { Progress = progress }),
            warning => writer.WriteAsync(new Frame { Warning = warning }),
            cancel.Token).ConfigureAwait(false);
        return Apps(app);
    }

    private async Task<Frame> UpdateAsync(Request request, FrameWriter writer, Task clientGone)
    {
        var cancel = new CancellationTokenSource();
        _ = clientGone.ContinueWith(_ => cancel.Cancel(), TaskScheduler.Default);
        (AppInfo app, IReadOnlyList<SettingChange> changes) = await _supervisor.UpdateAsync(
            NameOf(request),
            Required(request.Start, "start"),
            request.Reload ?? new ReloadSpec(),
            request.Plan,
            progress => writer.WriteAsync(new Frame { Progress = progress }),
            warning => writer.WriteAsync(new Frame { Warning = warning }),
            cancel.Token).ConfigureAwait(false);
        Frame reply = Apps(app);
        reply.Changes = changes.ToList();
        return reply;
    }

    /// <summary>
    /// The tail, then with -Follow what is written from then on, in frames of a bounded size: the client reads them
    /// as they come, so a large tail never sits whole in the host's memory. Apps named that have no logs are
    /// reported in the first frame, and the others are read.
    /// </summary>
    private async Task<Frame> LogsAsync(Request request, LogQuery query, FrameWriter writer, Task clientGone)
    {
        StartSpecValidator.ValidateLogQuery(query);
        (IReadOnlyList<LogSource> sources, IReadOnlyList<ClusterException> missing) = await _supervisor.LogSourcesAsync(LogNames(request, query)).ConfigureAwait(false);
        if (missing.Count > 0)
        {
            await writer.WriteAsync(new Frame { Errors = missing.Select(ErrorOf).ToList() }).ConfigureAwait(false);
        }

        using var logs = new AppLogs(_paths, sources, query.Instance, query.Stream, query.Since);
        // Not disposed, as in ReloadAsync: the client goes (and this cancels) after the reply too.
        var cancel = new CancellationTokenSource();
        _ = clientGone.ContinueWith(_ => cancel.Cancel(), TaskScheduler.Default);
        async Task Send(List<LogLineInfo> lines)
        {
            await writer.WriteAsync(new Frame { Lines = lines }).ConfigureAwait(false);
            if (writer.ClientGone)
            {
                await cancel.CancelAsync().ConfigureAwait(false);
            }
        }

        try
        {
            await logs.TailAsync(query.Tail, Send, cancel.Token).ConfigureAwait(false);
            while (query.Follow && !cancel.IsCancellationRequested && !clientGone.IsCompleted)
            {
                await Task.WhenAny(clientGone, Task.Delay(FollowInterval)).ConfigureAwait(false);
                await logs.ReadNewAsync(Send, cancel.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            // The client has gone: there is nobody to send the rest to.
        }

        return new Frame();
    }

    /// <summary>Empties the log files of the apps named (Clear-ClusterAppLog): see <see cref="LogFiles.Clear"/>.</summary>
    private async Task<Frame> ClearLogsAsync(Request request, LogQuery query)
    {
        (IReadOnlyList<LogSource> sources, IReadOnlyList<ClusterException> missing) = await _supervisor.LogSourcesAsync(LogNames(request, query)).ConfigureAwait(false);
        foreach (LogSource source in sources)
        {
            int cleared = LogFiles.Clear(_paths, source);
            _log.Information("Cleared {Count} log files of {App}", cleared, source.App);
        }

        return new Frame { Errors = missing.Count > 0 ? missing.Select(ErrorOf).ToList() : null };
    }

    /// <summary>The apps a log request names: its list, or its one name; null for every app.</summary>
    private static IReadOnlyList<string>? LogNames(Request request, LogQuery query) =>
        query.Apps ?? (request.Name is { } name ? new List<string> { name } : null);

    private static ErrorInfo ErrorOf(ClusterException e) => new() { Code = e.Code, Category = e.Category, Message = e.Message, Target = e.Target };

    private HostInfo HostInfo() => new()
    {
        Pid = Environment.ProcessId,
        Version = Version,
        StartTime = _started,
        Home = _paths.Home,
        Endpoint = _paths.Endpoint,
        AppCount = _supervisor.Count,
        MemoryBytes = Environment.WorkingSet,
        StateProblem = _supervisor.StateHealth.Problem,
        Runtime = Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory),
    };

    private static Frame Apps(AppInfo app) => new() { Apps = new List<AppInfo> { app } };

    private static string NameOf(Request request)
    {
        AppName.Validate(request.Name);
        return request.Name!;
    }

    private static T Required<T>(T? value, string what)
        where T : class => value ?? throw MissingPart(what);

    private static int Required(int? value, string what) => value ?? throw MissingPart(what);

    private static ClusterException MissingPart(string what) => new(
        "MalformedRequest",
        ErrorCategories.ProtocolError,
        $"The request has no '{what}' part. The module and the host may be of different versions: Stop-ClusterHost, then try again.");
}
