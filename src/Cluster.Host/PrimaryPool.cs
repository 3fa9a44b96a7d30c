using Serilog;

namespace Cluster.Host;

/// <summary>
/// Apps that run on the same Node executable with the same scheduling policy share one Node primary. A Node
/// process costs about 40 MB, so one primary per app would make memory grow by that much with every app;
/// shared, it stays flat. Each app holds a lease; the primary stops when the last lease is let go.
/// </summary>
internal sealed class PrimaryPool : IPrimaryLauncher
{
    private readonly Func<string, string, IPrimary> _start;
    private readonly Dictionary<(string NodePath, string Scheduling), Shared> _running = new();

    public PrimaryPool(Func<string, string, IPrimary> start) => _start = start;

    private readonly HostPaths? _paths;
    private readonly ILogger? _log;

    private PrimaryPool(Func<string, string, IPrimary> start, HostPaths paths, ILogger log)
        : this(start)
    {
        _paths = paths;
        _log = log;
    }

    public static PrimaryPool ForNode(HostPaths paths, ILogger log) =>
        new((nodePath, scheduling) => NodePrimary.Start(paths, nodePath, scheduling, log), paths, log);

    public IReadOnlyList<AdoptedWorker> AdoptRunning()
    {
        if (_paths is null || _log is null || !Directory.Exists(_paths.Primaries))
        {
            return Array.Empty<AdoptedWorker>();
        }

        var workers = new List<AdoptedWorker>();
        foreach (string marker in Directory.GetFiles(_paths.Primaries, "*.primary"))
        {
            if (NodePrimary.Adopt(marker, _log) is not var (primary, state))
            {
                _log.Information("Removing {Marker}: no primary answers there any more", marker);
                NodePrimary.RemoveStale(marker);
                continue;
            }

            var key = (primary.NodePath, primary.Scheduling);
            lock (_running)
            {
                if (_running.ContainsKey(key))
                {
                    // Two primaries for one key (a host died while starting one): keep the first.
                    key = (primary.NodePath + "#" + primary.Pid, primary.Scheduling);
                }

                var shared = new Shared(primary);
                primary.Exited += () => Forget(key, shared);
                _running[key] = shared;
            }

            workers.AddRange((state.Workers ?? new List<PrimaryWorkerState>()).Select(w => new AdoptedWorker(
                w.Key, w.App, w.Instance, w.Pid, w.Ready, DateTimeOffset.FromUnixTimeMilliseconds(w.Started), key.Item1, key.Item2, primary)
            {
                Generation = w.Generation,
                Restarts = w.Restarts,
                HealthPort = w.HealthPort,
                Definition = w.Definition,
            }));
        }

        return workers;
    }

    public void ReleaseIdle()
    {
        List<Shared> idle;
        lock (_running)
        {
            idle = _running.Where(e => e.Value.Leases == 0).Select(e => e.Value).ToList();
            foreach (var entry in _running.Where(e => e.Value.Leases == 0).ToList())
            {
                _running.Remove(entry.Key);
            }
        }

        foreach (Shared shared in idle)
        {
            _log?.Information("Stopping Node primary {Pid}: no app uses it", shared.Primary.Pid);
            shared.Primary.Dispose();
        }
    }

    public IPrimary Launch(AppDefinition app)
    {
        var key = (app.NodePath, Scheduling.Of(app.Spec));
        lock (_running)
        {
            if (!_running.TryGetValue(key, out Shared? shared))
            {
                shared = new Shared(_start(key.NodePath, key.Item2));
                shared.Primary.Exited += () => Forget(key, shared);
                _running[key] = shared;
            }

            shared.Leases++;
            return new Lease(this, key, shared);
        }
    }

    private void Forget((string, string) key, Shared shared)
    {
        lock (_running)
        {
            if (_running.TryGetValue(key, out Shared? current) && ReferenceEquals(current, shared))
            {
                _running.Remove(key);
            }
        }
    }

    private void Release((string, string) key, Shared shared)
    {
        lock (_running)
        {
            if (--shared.Leases > 0)
            {
                return;
            }

            Forget(key, shared);
        }

        shared.Primary.Dispose();
    }

    private sealed class Shared
    {
        public Shared(IPrimary primary) => Primary = primary;

        public IPrimary Primary { get; }

        public int Leases { get; set; }
    }

    /// <summary>One app's hold on a shared primary: its events, and its share in keeping the primary alive.</summary>
    private sealed class Lease : IPrimary
    {
        private readonly PrimaryPool _pool;
        private readonly (string, string) _key;
        private readonly Shared _shared;
        private int _released;

        public Lease(PrimaryPool pool, (string, string) key, Shared shared)
        {
            _pool = pool;
            _key = key;
            _shared = shared;
            shared.Primary.EventReceived += Forward;
            shared.Primary.Exited += OnExited;
        }

        public event Action<PrimaryEvent>? EventReceived;

        public event Action? Exited;

        public int Pid => _shared.Primary.Pid;

        public void Send(PrimaryCommand command) => _shared.Primary.Send(command);

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                _shared.Primary.EventReceived -= Forward;
                _shared.Primary.Exited -= OnExited;
                _pool.Release(_key, _shared);
            }
        }

        private void Forward(PrimaryEvent received) => EventReceived?.Invoke(received);

        private void OnExited() => Exited?.Invoke();
    }
}
