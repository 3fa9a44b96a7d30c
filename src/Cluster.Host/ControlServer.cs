using System.IO.Pipes;
using System.Text.Json;
using Cluster.Protocol;
using Serilog;

namespace Cluster.Host;

/// <summary>
/// The control endpoint: a named pipe on Windows, a Unix socket elsewhere, open to the owning user only.
/// Each connection carries requests one after another; a bad one gets an error and never takes the host down.
/// </summary>
internal sealed class ControlServer
{
    public const int MaxFrameBytes = Limits.MaxRequestBytes;
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(30);

    /// <summary>How much of a refused oversized frame is read past the limit, and for how long, before the connection is closed.</summary>
    private const long MaxSkippedBytes = 64L * 1024 * 1024;

    private static readonly TimeSpan SkipTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Connections served at once. The others wait in the socket's backlog, unaccepted, so that thousands of idle
    /// connections cost the host nothing but kernel buffers (each served one holds a pipe, a frame buffer and a task).
    /// </summary>
    public const int MaxConcurrentConnections = 64;

    private readonly SemaphoreSlim _slots = new(MaxConcurrentConnections, MaxConcurrentConnections);

    private readonly string _endpoint;
    private readonly RequestHandler _handler;
    private readonly ILogger _log;
    private int _clientWatches;

    public ControlServer(string endpoint, RequestHandler handler, ILogger log)
    {
        _endpoint = endpoint;
        _handler = handler;
        _log = log;
    }

    public async Task RunAsync(CancellationToken stop)
    {
        // There is always one instance listening: on Unix, disposing the last one closes the socket, and any
        // connection still waiting in its backlog would be dropped.
        NamedPipeServerStream listening = NewInstance();
        if (!OperatingSystem.IsWindows())
        {
            // Owner only whatever the umask (the folder it is in is the owner's already).
            File.SetUnixFileMode(_endpoint, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        try
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await _slots.WaitAsync(stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                try
                {
                    await listening.WaitForConnectionAsync(stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                catch (UnauthorizedAccessException e)
                {
                    // PipeOptions.CurrentUserOnly: .NET checks the peer's credentials (SO_PEERCRED, getpeereid) and
                    // refuses another user here; its message names the peer's user id.
                    _log.Warning("Refused a connection from another user: {Error}", e.Message);
                    listening = await ReplaceAsync(listening).ConfigureAwait(false);
                    continue;
                }
                catch (IOException e)
                {
                    _log.Warning("Refused a connection: {Error}", e.Message);
                    listening = await ReplaceAsync(listening).ConfigureAwait(false);
                    continue;
                }

                NamedPipeServerStream accepted = listening;
                listening = NewInstance();
                _ = Task.Run(() => ServeAsync(accepted, stop), CancellationToken.None);
            }
        }
        finally
        {
            await listening.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<NamedPipeServerStream> ReplaceAsync(NamedPipeServerStream refused)
    {
        NamedPipeServerStream next = NewInstance();
        await refused.DisposeAsync().ConfigureAwait(false);
        _slots.Release();
        return next;
    }

    private NamedPipeServerStream NewInstance() => new(
        _endpoint,
        PipeDirection.InOut,
        NamedPipeServerStream.MaxAllowedServerInstances,
        PipeTransmissionMode.Byte,
        PipeOptions.Asynchronous | PipeOptions.CurrentUserOnly);

    /// <summary>One request per connection: read it, answer it, close.</summary>
    private async Task ServeAsync(NamedPipeServerStream pipe, CancellationToken stop)
    {
        try
        {
            await ServeOneAsync(pipe, stop).ConfigureAwait(false);
        }
        finally
        {
            _slots.Release();
        }
    }

    private async Task ServeOneAsync(NamedPipeServerStream pipe, CancellationToken stop)
    {
        await using (pipe.ConfigureAwait(false))
        {
            var reader = new FrameReader(pipe, MaxFrameBytes);
            var writer = new FrameWriter(pipe);
            Request? request = await ReadRequestAsync(reader, writer, stop).ConfigureAwait(false);
            if (request is null)
            {
                return;
            }

            // The client sends nothing more, so a read that ends means it has gone (Ctrl+C, a closed session).
            // That read is ended here before the pipe closes: left pending, it stayed registered on the host's
            // stop token with its buffer, task and the reply's continuations, for every connection ever served.
            using var watching = CancellationTokenSource.CreateLinkedTokenSource(stop);
            Task clientGone = WatchClientAsync(reader, watching.Token);
            try
            {
                await _handler.HandleAsync(request, writer, clientGone).ConfigureAwait(false);
            }
            finally
            {
                await watching.CancelAsync().ConfigureAwait(false);
                await clientGone.ConfigureAwait(false);
            }
        }
    }

    /// <summary>Reads that watch for a served client going away and have not ended yet: none once every connection is closed.</summary>
    public int ClientWatches => Volatile.Read(ref _clientWatches);

    private async Task WatchClientAsync(FrameReader reader, CancellationToken cancel)
    {
        Interlocked.Increment(ref _clientWatches);
        try
        {
            await reader.ReadLineAsync(cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or FrameTooLargeException)
        {
            // Gone, or the reply is done: either way the watch is over.
        }
        finally
        {
            Interlocked.Decrement(ref _clientWatches);
        }
    }

    private static async Task<Request?> ReadRequestAsync(FrameReader reader, FrameWriter writer, CancellationToken stop)
    {
        string? line;
        using (var idle = CancellationTokenSource.CreateLinkedTokenSource(stop))
        {
            idle.CancelAfter(IdleTimeout);
            try
            {
                line = await reader.ReadLineAsync(idle.Token).ConfigureAwait(false);
            }
            catch (FrameTooLargeException e)
            {
                await RefuseAsync(writer, "FrameTooLarge", ErrorCategories.LimitsExceeded, e.Message).ConfigureAwait(false);
                await SkipRefusedFrameAsync(reader, stop).ConfigureAwait(false);
                return null;
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
            {
                return null; // said nothing for too long, or went away
            }
        }

        Request? request = line is null ? null : Parse(line);
        if (line is not null && request is null)
        {
            await RefuseAsync(writer, "MalformedRequest", ErrorCategories.ProtocolError, "The request is not a JSON object of the Cluster protocol.").ConfigureAwait(false);
        }

        return request;
    }

    /// <summary>
    /// Closing while the client still writes the refused frame would break its write (EPIPE) and could lose the
    /// refusal; so the rest of the frame is read and dropped first, bounded in bytes and time.
    /// </summary>
    private static async Task SkipRefusedFrameAsync(FrameReader reader, CancellationToken stop)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(stop);
        limit.CancelAfter(SkipTimeout);
        try
        {
            await reader.SkipFrameAsync(MaxSkippedBytes, limit.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
            // Too slow, or gone: the connection is closed as it is.
        }
    }

    private static Request? Parse(string line)
    {
        try
        {
            Request? request = JsonSerializer.Deserialize(line, ProtocolJson.Default.Request);
            return request is { Command.Length: > 0 } ? request : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static Task RefuseAsync(FrameWriter writer, string code, string category, string message) =>
        writer.WriteAsync(Frame.Failed(new ErrorInfo { Code = code, Category = category, Message = message }));
}
