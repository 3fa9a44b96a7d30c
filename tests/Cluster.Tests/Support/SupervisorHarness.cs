using Cluster.Host;
using Cluster.Protocol;
using Microsoft.Extensions.Time.Testing;
using Serilog;

namespace Cluster.Tests.Support;

/// <summary>A Supervisor over scripted fake primaries, a fake clock, and a temp CLUSTER_HOME.</summary>
internal sealed class SupervisorHarness : IDisposable
{
    private readonly TempFolder _folder = new();

    /// <param name="pooled">Whether apps share primaries through a PrimaryPool, as in the host, or each launches its own.</param>
    public SupervisorHarness(int processorCount = 2, bool pooled = false)
    {
        Time = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        Launcher = new FakePrimaryLauncher(Time);
        Paths = new HostPaths(_folder.Combine("home"), _folder.Combine("module"));
        Paths.EnsureFolders();
        State = new StateStore(Paths.StateFile);
        Script = _folder.WriteFile("app.js", "require('http').createServer((q, s) => s.end('ok')).listen(3000);\n");
        IPrimaryLauncher launcher = pooled ? new PrimaryPool((_, _) => Launcher.Start()) : Launcher;
        Supervisor = new Supervisor(launcher, Paths, State, Time, new LoggerConfiguration().CreateLogger(), processorCount);
    }

    /// <summary>A second host over the same CLUSTER_HOME and state file, as after the host was restarted.</summary>
    public Supervisor NextHost(FakePrimaryLauncher launcher) =>
        new(launcher, Paths, State, Time, new LoggerConfiguration().CreateLogger(), processorCount: 2);

    public FakeTimeProvider Time { get; }

    public FakePrimaryLauncher Launcher { get; }

    public Timeline Timeline => Launcher.Timeline;

    public HostPaths Paths { get; }

    public StateStore State { get; }

    public Supervisor Supervisor { get; }

    public string Script { get; }

    public List<ProgressInfo> Progress { get; } = new();

    public List<string> Warnings { get; } = new();

    /// <summary>
    /// A start request for the temp script, with the real PATH so that the real node is found. Its stability
    /// window is 0, so that a reload goes on as soon as a new worker is ready without the fake clock being
    /// advanced; the tests of the window set one.
    /// </summary>
    public StartSpec Spec(string name, int instances, string mode = AppModes.Cluster) => new()
    {
        StabilityWindowMs = 0,
        Name = name,
        Script = Script,
        Mode = mode,
        Instances = instances,
        WorkingDirectory = _folder.Path,
        Environment = new Dictionary<string, string> { ["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "" },
    };

    public Task<AppInfo> StartAsync(string name, int instances) => Supervisor.StartAsync(Spec(name, instances));

    public Task<AppInfo> ReloadAsync(string name, ReloadSpec? spec = null) =>
        Supervisor.ReloadAsync(
            name,
            spec ?? new ReloadSpec(),
            p =>
            {
                lock (Progress)
                {
                    Progress.Add(p);
                }

                return Task.CompletedTask;
            },
            w =>
            {
                lock (Warnings)
                {
                    Warnings.Add(w);
                }

                return Task.CompletedTask;
            },
            CancellationToken.None);

    public IReadOnlyList<AppInfo> List(string? name) => Supervisor.ListAsync(name).GetAwaiter().GetResult();

    public AppInfo App(string name) => List(name).Single();

    public InstanceInfo Instance(string name, int instance) => App(name).Instances.Single(i => i.Instance == instance);

    /// <summary>The key of the worker that serves an instance now (the last one forked for it).</summary>
    public int KeyOf(int instance) => Timeline.Forks(instance)[^1].Key;

    public void Dispose()
    {
        Supervisor.StopAllAsync().Wait(TimeSpan.FromSeconds(10));
        _folder.Dispose();
    }
}
