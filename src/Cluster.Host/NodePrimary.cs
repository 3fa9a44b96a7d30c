using System.Diagnostics;
using System.Text.Json;
using Serilog;

namespace Cluster.Host;

/// <summary>A Node process running module/primary.js for one app, spoken to over its stdin and stdout.</summary>
internal sealed class NodePrimary : IPrimary
{
    private readonly Process _process;
    private readonly ILogger _log;
    private readonly object _writeLock = new();
    private int _exited;

    private NodePrimary(Process process, ILogger log)
    {
        _process = process;
        _log = log;
    }

    public event Action<PrimaryEvent>? EventReceived;

    public event Action? Exited;

    public int Pid => _process.Id;

    public static NodePrimary Start(string nodePath, string primaryScript, string scheduling, ILogger log)
    {
        var start = new ProcessStartInfo(nodePath)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            CreateNoWindow = true,
        };
        start.ArgumentList.Add(primaryScript);
        // Node reads the scheduling policy once, when the cluster module loads: rr = round-robin, none = shared handle.
        start.Environment["NODE_CLUSTER_SCHED_POLICY"] = scheduling == Scheduling.Shared ? "none" : "rr";

        Process process = Process.Start(start) ?? throw new InvalidOperationException("The Node primary did not start.");
        var primary = new NodePrimary(process, log);
        primary.StartReading();
        log.Information("Started Node primary {Pid}: {NodePath}, {Scheduling} scheduling", process.Id, nodePath, scheduling);
        return primary;
    }

    public void Send(PrimaryCommand command)
    {
        string line = JsonSerializer.Serialize(command, HostJson.Default.PrimaryCommand);
        lock (_writeLock)
        {
            try
            {
                _process.StandardInput.WriteLine(line);
                _process.StandardInput.Flush();
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
            {
                // The primary is gone; its Exited event tells the app.
                _log.Warning("Could not send {Command} to the Node primary {Pid}: {Error}", command.Cmd, Pid, e.Message);
            }
        }
    }

    private void StartReading()
    {
        var events = new Thread(ReadEvents) { IsBackground = true, Name = "primary-events" };
        events.Start();
        var errors = new Thread(ReadErrors) { IsBackground = true, Name = "primary-stderr" };
        errors.Start();
    }

    private void ReadEvents()
    {
        try
        {
            string? line;
            while ((line = _process.StandardOutput.ReadLine()) is not null)
            {
                PrimaryEvent? received = Parse(line);
                if (received is not null)
                {
                    EventReceived?.Invoke(received);
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The pipe closed: the primary is gone.
        }

        OnExited();
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

    private void ReadErrors()
    {
        try
        {
            string? line;
            while ((line = _process.StandardError.ReadLine()) is not null)
            {
                _log.Warning("Node primary {Pid}: {Line}", Pid, line);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
        }
    }

    private void OnExited()
    {
        if (Interlocked.Exchange(ref _exited, 1) == 0)
        {
            _log.Information("Node primary {Pid} has exited", Pid);
            Exited?.Invoke();
        }
    }

    /// <summary>Closes the primary's stdin, which makes it kill any worker left and exit; kills it if it lingers.</summary>
    public void Dispose()
    {
        lock (_writeLock)
        {
            try
            {
                _process.StandardInput.Close();
            }
            catch (IOException)
            {
            }
        }

        try
        {
            if (!_process.WaitForExit(3000))
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }
}

internal static class Scheduling
{
    public const string RoundRobin = "roundrobin";
    public const string Shared = "shared";
}
