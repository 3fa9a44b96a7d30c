using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>
/// An app's readiness and liveness settings, resolved once from its spec: what makes a new instance ready
/// (its first listen, or its 'ready' message), the check it must pass before it takes shared traffic, how
/// long it must then stay up before a reload retires its predecessor, and how often a running one is checked again.
/// </summary>
internal sealed record HealthPlan(
    bool WaitReady,
    string? HttpPath,
    string? Command,
    TimeSpan CheckTimeout,
    TimeSpan? LivenessInterval,
    int LivenessFailures,
    TimeSpan StabilityWindow)
{
    public static readonly TimeSpan DefaultCheckTimeout = TimeSpan.FromMilliseconds(5000);
    public static readonly TimeSpan DefaultStabilityWindow = TimeSpan.FromMilliseconds(1000);
    public const int DefaultLivenessFailures = 3;

    /// <summary>How long a failed readiness check waits before it asks again, within its timeout.</summary>
    public static readonly TimeSpan RetryInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>Said by the health preload (module/health.js) once the app asked to listen: the loopback port it checks on.</summary>
    public const string PortMessagePrefix = "cluster:health-port:";

    /// <summary>Sent to an instance whose check passed: the preload lets the app's held listen go ahead.</summary>
    public const string ServeMessage = "cluster:serve";

    public static HealthPlan For(StartSpec spec, int? stabilityWindowMs = null) => new(
        spec.WaitReady,
        string.IsNullOrEmpty(spec.HealthCheckPath) ? null : spec.HealthCheckPath,
        string.IsNullOrEmpty(spec.HealthCheckCommand) ? null : spec.HealthCheckCommand,
        spec.HealthCheckTimeoutMs is { } timeout ? TimeSpan.FromMilliseconds(timeout) : DefaultCheckTimeout,
        spec.LivenessIntervalMs is > 0 and var interval ? TimeSpan.FromMilliseconds(interval) : null,
        spec.LivenessFailures is > 0 and var failures ? failures : DefaultLivenessFailures,
        (stabilityWindowMs ?? spec.StabilityWindowMs) is { } window ? TimeSpan.FromMilliseconds(window) : DefaultStabilityWindow);

    public bool HasCheck => HttpPath is not null || Command is not null;

    /// <summary>Whether the app's instances hold back their listen until their check passed (the health preload).</summary>
    public static bool HoldsListen(StartSpec spec) =>
        !string.IsNullOrEmpty(spec.HealthCheckPath) && (spec.Mode == AppModes.Cluster || IsNodeScript(spec.Script));

    public static bool IsNodeScript(string script) =>
        script.EndsWith(".js", StringComparison.OrdinalIgnoreCase)
        || script.EndsWith(".cjs", StringComparison.OrdinalIgnoreCase)
        || script.EndsWith(".mjs", StringComparison.OrdinalIgnoreCase);
}

/// <summary>The outcome of one check, in words for an error message, a status and the host log.</summary>
internal sealed record CheckResult(bool Passed, string Description);

/// <summary>Runs an instance's HTTP or command check. The HTTP check goes to the instance's own loopback port, never the shared one.</summary>
internal static class HealthCheck
{
    /// <summary>
    /// A readiness check: asked again until it passes or its timeout has passed (an app warming up may answer
    /// 503 at first). Stops early, failed, if the instance exits.
    /// </summary>
    public static async Task<CheckResult> UntilPassedAsync(HealthPlan plan, Worker worker, StartSpec spec, TimeProvider time)
    {
        long started = time.GetTimestamp();
        CheckResult last = new(false, "the check did not run");
        while (true)
        {
            TimeSpan left = plan.CheckTimeout - time.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
            {
                return last with { Description = $"{last.Description} (still failing after {plan.CheckTimeout.TotalMilliseconds} ms)" };
            }

            last = await OnceAsync(plan, worker, spec, left, time);
            if (last.Passed || worker.HasExited)
            {
                return last;
            }

            await Task.WhenAny(Task.Delay(HealthPlan.RetryInterval, time), worker.Exited);
        }
    }

    /// <summary>One check, which fails if it has no answer within the timeout.</summary>
    public static async Task<CheckResult> OnceAsync(HealthPlan plan, Worker worker, StartSpec spec, TimeSpan timeout, TimeProvider time)
    {
        using var deadline = new CancellationTokenSource(timeout, time);
        try
        {
            if (plan.HttpPath is { } path)
            {
                CheckResult http = await HttpAsync(worker, path, deadline.Token);
                if (!http.Passed || plan.Command is null)
                {
                    return http;
                }
            }

            return await CommandAsync(plan.Command!, worker, spec, deadline.Token);
        }
        catch (OperationCanceledException)
        {
            string what = plan.HttpPath is { } p ? $"GET {p}" : $"the command '{plan.Command}'";
            return new CheckResult(false, $"{what} did not answer within {timeout.TotalMilliseconds:0} ms");
        }
    }

    private static async Task<CheckResult> HttpAsync(Worker worker, string path, CancellationToken cancel)
    {
        if (worker.HealthPort is not { } port)
        {
            return new CheckResult(false, $"GET {path} could not be sent: the instance has not asked to listen on an HTTP server yet");
        }

        string target = $"GET {path} on 127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)} (pid {worker.Pid})";
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(System.Net.IPAddress.Loopback, port, cancel);
            NetworkStream stream = client.GetStream();
            byte[] request = Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: cluster-health-check\r\nConnection: close\r\n\r\n");
            await stream.WriteAsync(request, cancel);
            string? statusLine = await ReadLineAsync(stream, cancel);
            string[] parts = statusLine?.Split(' ', 3) ?? Array.Empty<string>();
            if (parts.Length < 2 || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int status))
            {
                return new CheckResult(false, $"{target} got no HTTP answer");
            }

            string answer = $"{target} answered {statusLine!.Trim()}";
            return new CheckResult(status is >= 200 and < 300, answer);
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            return new CheckResult(false, $"{target} failed: {e.Message}");
        }
    }

    private static async Task<string?> ReadLineAsync(NetworkStream stream, CancellationToken cancel)
    {
        var line = new StringBuilder();
        var buffer = new byte[1];
        while (line.Length < 1024 && await stream.ReadAsync(buffer, cancel) == 1)
        {
            if (buffer[0] == (byte)'\n')
            {
                return line.ToString().TrimEnd('\r');
            }

            line.Append((char)buffer[0]);
        }

        return line.Length == 0 ? null : line.ToString();
    }

    private static async Task<CheckResult> CommandAsync(string command, Worker worker, StartSpec spec, CancellationToken cancel)
    {
        var start = OperatingSystem.IsWindows()
            ? new ProcessStartInfo("cmd.exe") { ArgumentList = { "/d", "/c", command } }
            : new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", command } };
        start.WorkingDirectory = spec.WorkingDirectory;
        start.UseShellExecute = false;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.CreateNoWindow = true;
        start.Environment.Clear();
        foreach (KeyValuePair<string, string> variable in spec.Environment)
        {
            start.Environment[variable.Key] = variable.Value;
        }

        start.Environment["CLUSTER_APP"] = spec.Name;
        start.Environment["CLUSTER_INSTANCE"] = worker.Instance.ToString(CultureInfo.InvariantCulture);
        start.Environment["CLUSTER_PID"] = worker.Pid?.ToString(CultureInfo.InvariantCulture) ?? "";
        start.Environment["CLUSTER_HEALTH_PORT"] = worker.HealthPort?.ToString(CultureInfo.InvariantCulture) ?? "";
        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return new CheckResult(false, $"the command '{command}' could not start: {e.Message}");
        }

        Task<string> output = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        Task<string> errors = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.WaitForExitAsync(cancel);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        string said = LastLine((await errors).Trim().Length > 0 ? await errors : await output);
        string result = $"the command '{command}' exited with code {process.ExitCode}" + (said.Length > 0 ? $" ({said})" : "");
        return new CheckResult(process.ExitCode == 0, result);
    }

    private static string LastLine(string text)
    {
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string last = lines.Length == 0 ? "" : lines[^1];
        return last.Length > 200 ? last[..200] : last;
    }
}
