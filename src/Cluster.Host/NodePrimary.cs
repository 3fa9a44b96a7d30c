using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.IO.Pipes;
using System.Text;
using System.Text.Json;
using Cluster.Protocol;
using Serilog;

namespace Cluster.Host;

/// <summary>
/// A Node process running module/primary.js, spoken to over its own endpoint (a Unix socket or named pipe).
/// The primary does not depend on the host: if the host dies, it and its workers go on serving, and the next
/// host adopts it through the file it finds under CLUSTER_HOME/primaries. The host pings it every second; one
/// that stops answering (SIGSTOP, a blocked event loop) is killed with its workers and reported as exited, so
/// that its apps are started again on a new primary.
/// </summary>
internal sealed class NodePrimary : IPrimary
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(3);

    /// <summary>
    /// The environment variable that hands a new primary its token (never its command line, which every user can
    /// read); primary.js removes it from its environment as it starts.
    /// </summary>
    private const string TokenVariable = "CLUSTER_PRIMARY_TOKEN";

    private readonly NamedPipeClientStream _stream;
    private readonly StreamReader _reader;
    private readonly string _marker;
    private readonly ILogger _log;
    private readonly object _writeLock = new();

    /// <summary>The primary's process, to signal only while it is still that process; null if it was gone when adopted.</summary>
    private readonly KnownProcess? _process;

    private readonly PingWatch? _pings;
    private readonly ITimer? _watchdog;

    /// <summary>The workers that run, by key: their pids, which are their process groups' ids too.</summary>
    private readonly ConcurrentDictionary<int, int> _workerPids = new();
    private int _exited;
    private int _stopping;

    private NodePrimary(NamedPipeClientStream stream, StreamReader reader, KnownProcess? process, int pid, string nodePath, string scheduling, string marker, bool answersPings, ILogger log)
    {
        _stream = stream;
        _reader = reader;
        _process = process;
        Pid = pid;
        NodePath = nodePath;
        Scheduling = scheduling;
        _marker = marker;
        _log = log;
        if (answersPings)
        {
            _pings = new PingWatch(TimeProvider.System);
            _watchdog = TimeProvider.System.CreateTimer(_ => Watch(), null, PingWatch.Interval, PingWatch.Interval);
        }
    }

    public event Action<PrimaryEvent>? EventReceived;

    public event Action? Exited;

    public int Pid { get; }

    public string NodePath { get; }

    public string Scheduling { get; }

    public static NodePrimary Start(HostPaths paths, string nodePath, string scheduling, ILogger log)
    {
        string id = Guid.NewGuid().ToString("n")[..12];
        var (pipeName, nodeAddress) = ClusterHome.PrimaryEndpointFor(paths.Home, paths.SocketFolder, id);
        string marker = Path.Combine(paths.Primaries, id + ".primary");

        // Whoever connects to the primary must say this first: Node cannot check a peer's credentials, and the
        // token file (owner only, next to the marker) lets a later host adopt the primary.
        string token = Convert.ToHexString(RandomNumberGenerator.GetBytes(32)).ToLowerInvariant();
        WriteOwnerOnly(TokenFileOf(marker), token);
        var start = new ProcessStartInfo(nodePath)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            CreateNoWindow = true,
            WorkingDirectory = paths.Home,
        };
        foreach (string argument in new[] { paths.PrimaryScript, "--listen", nodeAddress, "--node", nodePath, "--scheduling", scheduling })
        {
            start.ArgumentList.Add(argument);
        }

        // Node reads the scheduling policy once, when the cluster module loads: rr = round-robin, none = shared handle.
        start.Environment["NODE_CLUSTER_SCHED_POLICY"] = scheduling == Host.Scheduling.Shared ? "none" : "rr";
        start.Environment[TokenVariable] = token;

        Process process = Process.Start(start) ?? throw new InvalidOperationException("The Node primary did not start.");
        process.StandardInput.Close();
        ForwardDiagnostics(process, log);
        NamedPipeClientStream stream;
        try
        {
            stream = ConnectToStarted(pipeName, process);
            SayHello(stream, token);
        }
        catch
        {
            File.Delete(TokenFileOf(marker));
            process.Dispose();
            throw;
        }

        WriteOwnerOnly(marker, pipeName);
        var primary = new NodePrimary(stream, NewReader(stream), KnownProcess.Child(process), process.Id, nodePath, scheduling, marker, answersPings: true, log);
        primary.StartReading();
        log.Information("Started Node primary {Pid}: {NodePath}, {Scheduling} scheduling", process.Id, nodePath, scheduling);
        return primary;
    }

    /// <summary>Connects to a primary an earlier host started, and asks it what it runs.</summary>
    public static (NodePrimary Primary, PrimaryEvent State)? Adopt(string marker, ILogger log)
    {
        string pipeName = File.ReadAllText(marker).Trim();
        NamedPipeClientStream? stream = TryConnect(pipeName, TimeSpan.FromSeconds(1));
        if (stream is null)
        {
            return null;
        }

        try
        {
            StreamReader reader = NewReader(stream);
            // A primary of an older version has no token file, and ignores a hello it does not know.
            string tokenFile = TokenFileOf(marker);
            if (File.Exists(tokenFile))
            {
                SayHello(stream, File.ReadAllText(tokenFile).Trim());
            }

            WriteLine(stream, new PrimaryCommand { Cmd = PrimaryCommand.State });
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            string? line = reader.ReadLineAsync(timeout.Token).AsTask().GetAwaiter().GetResult();
            PrimaryEvent? state = line is null ? null : JsonSerializer.Deserialize(line, HostJson.Default.PrimaryEvent);
            if (state is not { Event: PrimaryEvent.State, Pid: { } pid })
            {
                stream.Dispose();
                return null;
            }

            // It has just answered on its own endpoint, so the process with its pid now is the primary.
            var primary = new NodePrimary(stream, reader, KnownProcess.Find(pid), pid, state.NodePath ?? "", state.Scheduling ?? Host.Scheduling.Default, marker, state.Pings == true, log);
            foreach (PrimaryWorkerState worker in state.Workers ?? new List<PrimaryWorkerState>())
            {
                primary._workerPids[worker.Key] = worker.Pid;
            }

            primary.StartReading();
            log.Information("Adopted Node primary {Pid} with {Count} workers", pid, state.Workers?.Count ?? 0);
            return (primary, state);
        }
        catch (Exception e) when (e is IOException or JsonException or OperationCanceledException)
        {
            stream.Dispose();
            return null;
        }
    }

    /// <summary>Removes what a primary that is gone left behind: its marker and, on Unix, its socket file.</summary>
    public static void RemoveStale(string marker)
    {
        try
        {
            string pipeName = File.ReadAllText(marker).Trim();
            if (!OperatingSystem.IsWindows() && Path.IsPathRooted(pipeName))
            {
                File.Delete(pipeName);
            }

            File.Delete(marker);
            File.Delete(TokenFileOf(marker));
        }
        catch (IOException)
        {
            // Already removed (the primary's exit and the host's stop can both get here).
        }
    }

    public void Send(PrimaryCommand command)
    {
        lock (_writeLock)
        {
            try
            {
                WriteLine(_stream, command);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
            {
                // The primary is gone; its Exited event tells the app.
                _log.Warning("Could not send {Command} to the Node primary {Pid}: {Error}", command.Cmd, Pid, e.Message);
            }
        }
    }

    /// <summary>
    /// Tells the primary to kill any worker left and exit; kills it if it lingers. Only the primary's own process
    /// is ever signalled: once it has exited, its pid may belong to an unrelated process.
    /// </summary>
    public void Dispose()
    {
        Volatile.Write(ref _stopping, 1); // it ends its workers' groups itself
        _watchdog?.Dispose();
        if (Volatile.Read(ref _exited) == 0)
        {
            Send(new PrimaryCommand { Cmd = PrimaryCommand.Exit });
        }

        if (_process is not null && !_process.WaitForExit(ExitTimeout))
        {
            _log.Warning("Node primary {Pid} did not exit within {Seconds} s; killing it and its workers", Pid, ExitTimeout.TotalSeconds);
            _process.KillTree();
        }

        _stream.Dispose();
        _process?.Dispose();
        Forget();
    }

    /// <summary>On each tick of the watchdog: a ping, or, when the primary has not answered for a few ticks, its end.</summary>
    private void Watch()
    {
        if (_pings is null || Volatile.Read(ref _exited) != 0)
        {
            return;
        }

        long seq = _pings.Tick();
        if (seq > 0)
        {
            Send(new PrimaryCommand { Cmd = PrimaryCommand.Ping, Seq = seq });
        }
        else if (seq < 0)
        {
            Lose();
        }
    }

    /// <summary>
    /// The primary does not answer: its apps are told it is gone before its processes are killed, so that no
    /// one is told its workers serve once they are dead. Its workers end with it (killed with its tree; cluster
    /// workers would also exit as their IPC channel closes).
    /// </summary>
    private void Lose()
    {
        if (Interlocked.Exchange(ref _exited, 1) != 0)
        {
            return;
        }

        _watchdog?.Dispose();
        _log.Error("Node primary {Pid} has not answered for {Seconds} s (stopped, or its event loop is blocked); killing it and its workers, and starting its apps again on a new primary", Pid, _pings!.Silence.TotalSeconds);
        Exited?.Invoke();
        _process?.KillTree();
        EndWorkerGroups();
        _stream.Dispose();
        Forget();
    }

    /// <summary>
    /// A primary that is lost can no longer end its workers' process groups as they exit; the workers themselves
    /// exit as their IPC channel closes, but what they spawned would run on. So the host ends those groups, at once
    /// (the workers are lost anyway), before the apps fork replacements.
    /// </summary>
    private void EndWorkerGroups()
    {
        foreach (int pid in _workerPids.Values)
        {
            ProcessGroups.Kill(pid);
        }

        if (!_workerPids.IsEmpty)
        {
            _log.Information("Ended the process groups of the {Count} workers of the lost Node primary {Pid}", _workerPids.Count, Pid);
        }

        _workerPids.Clear();
    }

    /// <summary>Removes the marker that lets a new host find this primary, and on Unix its socket file.</summary>
    private void Forget() => RemoveStale(_marker);

    private static string TokenFileOf(string marker) => Path.ChangeExtension(marker, ".token");

    private static void WriteOwnerOnly(string path, string text)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var stream = new FileStream(path, options);
        stream.Write(Encoding.UTF8.GetBytes(text));
    }

    /// <summary>The first line on every connection to a primary: without it the primary closes the connection.</summary>
    private static void SayHello(Stream stream, string token)
    {
        // The token is hex, so the line needs no JSON escaping.
        stream.Write(Encoding.UTF8.GetBytes("{\"cmd\":\"hello\",\"token\":\"" + token + "\"}\n"));
        stream.Flush();
    }

    private static StreamReader NewReader(Stream stream) => new(stream, new UTF8Encoding(false), false, 16 * 1024, leaveOpen: true);

    private static void WriteLine(Stream stream, PrimaryCommand command)
    {
        byte[] line = JsonSerializer.SerializeToUtf8Bytes(command, HostJson.Default.PrimaryCommand);
        stream.Write(line);
        stream.WriteByte((byte)'\n');
        stream.Flush();
    }

    private static NamedPipeClientStream ConnectToStarted(string pipeName, Process process)
    {
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < ConnectTimeout)
        {
            NamedPipeClientStream? stream = TryConnect(pipeName, TimeSpan.FromMilliseconds(100));
            if (stream is not null)
            {
                return stream;
            }

            if (process.HasExited)
            {
                throw new ClusterException(
                    "PrimaryFailed",
                    ErrorCategories.InvalidOperation,
                    $"The Node primary exited with code {process.ExitCode} as it started. The host log has its output.");
            }
        }

        process.Kill(entireProcessTree: true);
        throw new ClusterException("PrimaryFailed", ErrorCategories.InvalidOperation, $"The Node primary did not open its endpoint within {ConnectTimeout.TotalSeconds} seconds.");
    }

    private static NamedPipeClientStream? TryConnect(string pipeName, TimeSpan timeout)
    {
        var stream = new NamedPipeClientStream(".", pipeName, PipeDirection.InOut, PipeOptions.Asynchronous | PipeOptions.CurrentUserOnly);
        try
        {
            stream.Connect(timeout);
            return stream;
        }
        catch (Exception e) when (e is TimeoutException or IOException or UnauthorizedAccessException)
        {
            stream.Dispose();
            return null;
        }
    }

    /// <summary>What the primary itself writes (not its workers) goes to the host log while the host is there.</summary>
    private static void ForwardDiagnostics(Process process, ILogger log)
    {
        int pid = process.Id;
        StreamReader stderr = process.StandardError;
        var thread = new Thread(() =>
        {
            try
            {
                string? line;
                while ((line = stderr.ReadLine()) is not null)
                {
                    log.Warning("Node primary {Pid}: {Line}", pid, line);
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
            }
        })
        { IsBackground = true, Name = "primary-stderr" };
        thread.Start();
    }

    private void StartReading()
    {
        var events = new Thread(ReadEvents) { IsBackground = true, Name = "primary-events" };
        events.Start();
    }

    private void ReadEvents()
    {
        try
        {
            string? line;
            while ((line = _reader.ReadLine()) is not null)
            {
                PrimaryEvent? received = Parse(line);
                if (received is { Event: PrimaryEvent.Pong })
                {
                    _pings?.Answered(received.Seq ?? 0);
                }
                else if (received is not null)
                {
                    Track(received);
                    EventReceived?.Invoke(received);
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The connection closed: the primary is gone.
        }

        if (Interlocked.Exchange(ref _exited, 1) == 0)
        {
            _watchdog?.Dispose();
            _log.Information("Node primary {Pid} has exited", Pid);
            if (Volatile.Read(ref _stopping) == 0)
            {
                EndWorkerGroups();
            }

            Forget();
            Exited?.Invoke();
        }
    }

    private void Track(PrimaryEvent received)
    {
        if (received.Event == PrimaryEvent.Forked && received.Pid is int pid && pid > 0)
        {
            _workerPids[received.Key] = pid;
        }
        else if (received.Event == PrimaryEvent.Exit)
        {
            _workerPids.TryRemove(received.Key, out _);
        }
    }

    private PrimaryEvent? Parse(string line)
    {
        try
        {
            return JsonSerializer.Deserialize(line, HostJson.Default.PrimaryEvent);
        }
        catch (JsonException)
        {
            _log.Warning("The Node primary {Pid} wrote a line that is not an event: {Line}", Pid, line);
            return null;
        }
    }
}

internal static class Scheduling
{
    public const string RoundRobin = "roundrobin";
    public const string Shared = "shared";

    /// <summary>
    /// Round-robin spreads connections evenly, where the kernel, sharing one socket, was measured to give up to
    /// 73% of keep-alive connections to one of two instances (docs/benchmarks.md). Windows keeps Node's own
    /// default there, the shared handle, since handing sockets over is slow on Windows.
    /// </summary>
    public static string Default => OperatingSystem.IsWindows() ? Shared : RoundRobin;

    public static string Of(StartSpec spec) => spec.Scheduling ?? Default;
}
