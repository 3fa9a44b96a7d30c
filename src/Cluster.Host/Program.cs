using System.Runtime.InteropServices;
using Cluster.Protocol;
using Serilog;

namespace Cluster.Host;

/// <summary>
/// The Cluster host: started on demand by the module's cmdlets, detached from the session that started it,
/// one per user and CLUSTER_HOME, from its runtime copy in CLUSTER_HOME/runtime/&lt;version&gt;/. Usage:
/// cluster-host --module &lt;folder of primary.js and drain.js&gt; [--home &lt;CLUSTER_HOME&gt;] [--foreground]
/// With --foreground (as a service manager runs it) the host stays in the session it was given, and a SIGTERM
/// ends the host alone: the apps go on serving and the next host takes them back, so a restart of the service
/// costs no app a request.
/// </summary>
internal static partial class Program
{
    /// <summary>Another host already serves this CLUSTER_HOME.</summary>
    private const int ExitAlreadyRunning = 3;
    private const int ExitUsage = 2;

    /// <summary>CLUSTER_HOME or something in it is not safe to use; stderr says which path (first line) and why.</summary>
    private const int ExitUnsafeHome = 4;

    private static async Task<int> Main(string[] args)
    {
        string? home = null;
        string? module = null;
        bool foreground = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--home" when i + 1 < args.Length: home = args[++i]; break;
                case "--module" when i + 1 < args.Length: module = args[++i]; break;
                case "--foreground": foreground = true; break;
                default: return Usage();
            }
        }

        if (module is null)
        {
            return Usage();
        }

        var paths = new HostPaths(ClusterHome.Resolve(home ?? Environment.GetEnvironmentVariable(ClusterHome.HomeVariable)), Path.GetFullPath(module));
        IReadOnlyList<string> warnings;
        FileStream? hostLock;
        try
        {
            warnings = paths.EnsureFolders();
            hostLock = TryLock(paths.LockFile);
            if (hostLock is null)
            {
                return ExitAlreadyRunning;
            }

            if (!OperatingSystem.IsWindows() && ClusterHome.UsesSocketFolder(paths.Home))
            {
                paths.SocketFolder = StrictModes.EnsureSocketFolder(paths.Home);
            }
        }
        catch (UnsafePathException e)
        {
            // Read by the cmdlet that started this host, which shows it as its error.
            Console.Error.WriteLine(e.Path);
            Console.Error.WriteLine(e.Message);
            return ExitUnsafeHome;
        }

        using FileStream lockHeld = hostLock;

        if (!foreground)
        {
            DetachFromTerminal();
        }

        Log.Logger = new LoggerConfiguration()
            .WriteTo.File(
                paths.HostLog,
                outputTemplate: "{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz} [{Level:u3}] {Message:lj}{NewLine}{Exception}",
                fileSizeLimitBytes: 10 * 1024 * 1024,
                rollOnFileSizeLimit: true,
                retainedFileCountLimit: 5)
            .CreateLogger();
        foreach (string warning in warnings)
        {
            Log.Warning("{Warning}", warning);
        }

        WritePidFile(paths.PidFile);

        try
        {
            return await RunAsync(paths, foreground).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Log.Fatal(e, "The host stopped on an unexpected error");
            return 1;
        }
        finally
        {
            // Before the lock goes (with lockHeld): a host that starts next writes its own.
            RemovePidFile(paths.PidFile);
            await Log.CloseAndFlushAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The pid where a client can read it: the lock file holds it too, but cannot be read while it is locked. A
    /// client names this pid when the host stops answering, and Stop-ClusterHost -Force kills it.
    /// </summary>
    private static void WritePidFile(string path)
    {
        try
        {
            WriteOwnerOnly(path, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Warning("Could not write {PidFile}: {Error}. A cmdlet that finds this host not answering cannot name its pid", path, e.Message);
        }
    }

    private static void RemovePidFile(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Warning("Could not remove {PidFile}: {Error}", path, e.Message);
        }
    }

    private static void WriteOwnerOnly(string path, string text)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var stream = new FileStream(path, options);
        stream.Write(System.Text.Encoding.ASCII.GetBytes(text));
    }

    private static async Task<int> RunAsync(HostPaths paths, bool foreground)
    {
        if (!OperatingSystem.IsWindows() && File.Exists(paths.Endpoint))
        {
            File.Delete(paths.Endpoint); // left by a host that was killed; the lock says none is running
        }

        using var stop = new CancellationTokenSource();
        bool leaveAppsRunning = false;
        using PosixSignalRegistration term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            leaveAppsRunning = foreground;
            stop.Cancel();
        });
        using PosixSignalRegistration hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => c.Cancel = true);
        using PosixSignalRegistration interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true);

        var supervisor = new Supervisor(
            PrimaryPool.ForNode(paths, Log.Logger), paths, new StateStore(paths.StateFile), TimeProvider.System, Log.Logger, Environment.ProcessorCount);
        var handler = new RequestHandler(supervisor, paths, Log.Logger, () => stop.Cancel());
        var server = new ControlServer(paths.Endpoint, handler, Log.Logger);
        Log.Information(
            "Cluster host {Version} started: pid {Pid}, home {Home}, endpoint {Endpoint}, running from {Runtime}{Mode}",
            RequestHandler.Version, Environment.ProcessId, paths.Home, paths.Endpoint, AppContext.BaseDirectory, foreground ? " in the foreground" : "");

        // Every saved app is registered (and running workers taken back) before the first request is answered;
        // instances that must be started again go on starting in the background.
        Task bringingBack = supervisor.ResurrectAsync();
        Task serving = server.RunAsync(stop.Token);
        Task watchingMemory = supervisor.WatchMemoryAsync(stop.Token);
        Task sampling = supervisor.SampleMetricsAsync(stop.Token);
        await bringingBack.ConfigureAwait(false);
        await serving.ConfigureAwait(false);
        await watchingMemory.ConfigureAwait(false);
        await sampling.ConfigureAwait(false);
        if (handler.HandoverRequested)
        {
            Log.Information("Cluster host {Pid} handed over; its apps go on serving for the newer host", Environment.ProcessId);
            return 0;
        }

        if (leaveAppsRunning && !handler.ShutdownRequested)
        {
            Log.Information("Cluster host {Pid} stopped by SIGTERM in the foreground; its apps go on serving for the next host", Environment.ProcessId);
            return 0;
        }

        await supervisor.StopAllAsync().ConfigureAwait(false);
        Log.Information("Cluster host {Pid} stopped", Environment.ProcessId);
        return 0;
    }

    private static FileStream? TryLock(string path)
    {
        try
        {
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            stream.SetLength(0);
            using var writer = new StreamWriter(stream, leaveOpen: true);
            writer.Write(Environment.ProcessId);
            return stream;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>A new session: the terminal's Ctrl+C and hang-up no longer reach the host or its apps.</summary>
    private static void DetachFromTerminal()
    {
        if (!OperatingSystem.IsWindows())
        {
            _ = SetSid();
        }
    }

    [LibraryImport("libc", EntryPoint = "setsid")]
    private static partial int SetSid();

    private static int Usage()
    {
        Console.Error.WriteLine("Usage: cluster-host --module <folder of primary.js and drain.js> [--home <CLUSTER_HOME>] [--foreground]. The Cluster module starts the host itself; Register-ClusterStartup writes a service that runs it in the foreground.");
        return ExitUsage;
    }
}
