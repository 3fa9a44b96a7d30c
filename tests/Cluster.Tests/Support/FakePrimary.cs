using Cluster.Host;

namespace Cluster.Tests.Support;

/// <summary>One thing that crossed the boundary between an app and its primary: a command sent or an event raised.</summary>
internal sealed record Entry(int Sequence, DateTimeOffset At, PrimaryCommand? Command, PrimaryEvent? Event)
{
    public bool IsCommand(string cmd, int key) => Command is { } c && c.Cmd == cmd && c.Key == key;

    public bool IsEvent(string name, int key) => Event is { } e && e.Event == name && e.Key == key;

    public override string ToString() => Command is { } c
        ? $"#{Sequence} -> {c.Cmd} key {c.Key}{(c.Instance is { } i ? $" instance {i}" : "")}{(c.SignalName is { } s ? " " + s : "")}{(c.Message is { } m ? " " + m : "")}"
        : $"#{Sequence} <- {Event!.Event} key {Event.Key}{(Event.Code is { } code ? $" code {code}" : "")}{(Event.Signal is { } sig ? " " + sig : "")}";
}

/// <summary>Everything every fake primary of a launcher was told and said, in order, with the fake clock's time.</summary>
internal sealed class Timeline
{
    private readonly List<Entry> _entries = new();
    private readonly TimeProvider _time;

    public Timeline(TimeProvider time) => _time = time;

    public IReadOnlyList<Entry> Entries
    {
        get
        {
            lock (_entries)
            {
                return _entries.ToArray();
            }
        }
    }

    public IReadOnlyList<PrimaryCommand> Commands => Entries.Where(e => e.Command is not null).Select(e => e.Command!).ToArray();

    /// <summary>The fork commands for one NODE_APP_INSTANCE, oldest first.</summary>
    public IReadOnlyList<PrimaryCommand> Forks(int instance) =>
        Commands.Where(c => c.Cmd == PrimaryCommand.Fork && c.Instance == instance).ToArray();

    public int ForkCount => Commands.Count(c => c.Cmd == PrimaryCommand.Fork);

    /// <summary>The commands sent about one worker after it was forked.</summary>
    public IReadOnlyList<PrimaryCommand> CommandsFor(int key) =>
        Commands.Where(c => c.Key == key && c.Cmd != PrimaryCommand.Fork).ToArray();

    public Entry First(Func<Entry, bool> match, string what) =>
        Entries.FirstOrDefault(match) ?? throw new Xunit.Sdk.XunitException($"The timeline has no {what}. It is:{Environment.NewLine}{this}");

    public void Add(PrimaryCommand? command, PrimaryEvent? received)
    {
        lock (_entries)
        {
            _entries.Add(new Entry(_entries.Count, _time.GetUtcNow(), command, received));
        }
    }

    public override string ToString() => string.Join(Environment.NewLine, Entries);
}

/// <summary>What a newly forked fake worker does.</summary>
internal enum ForkOutcome
{
    /// <summary>Says 'forked', then 'listening'.</summary>
    Ready,

    /// <summary>Says 'forked' and nothing more until the test makes it listen or exit.</summary>
    Hold,

    /// <summary>Says 'forked', writes its error output, and exits before it listens.</summary>
    ExitBeforeReady,

    /// <summary>Says nothing at all, as a primary that stopped answering.</summary>
    Silent,
}

internal sealed record ForkScript(ForkOutcome Outcome, int ExitCode = 1, string? ErrorOutput = null)
{
    public static ForkScript Ready { get; } = new(ForkOutcome.Ready);

    public static ForkScript Hold { get; } = new(ForkOutcome.Hold);

    public static ForkScript Silent { get; } = new(ForkOutcome.Silent);

    public static ForkScript Exits(int code, string? errorOutput = null) => new(ForkOutcome.ExitBeforeReady, code, errorOutput);
}

/// <summary>
/// Launches scripted stand-ins for the Node primary. Every fake answers as the real one does: later, on a
/// thread of its own, in order, as its launcher is set to: a fork says 'forked' and (by default) 'listening'; disconnect says 'disconnect';
/// SIGINT (by default), SIGKILL and 'shutdown' (by default) make the worker exit.
/// </summary>
internal sealed class FakePrimaryLauncher : IPrimaryLauncher
{
    private readonly List<FakePrimary> _launched = new();
    private int _nextPid = 4_000_000;

    public FakePrimaryLauncher(TimeProvider time) => Timeline = new Timeline(time);

    public Timeline Timeline { get; }

    /// <summary>What each forked worker does; every worker is ready by default.</summary>
    public Func<PrimaryCommand, ForkScript> OnFork { get; set; } = _ => ForkScript.Ready;

    public bool ExitOnShutdownMessage { get; set; } = true;

    public bool ExitOnInterrupt { get; set; } = true;

    public IReadOnlyList<FakePrimary> Launched
    {
        get
        {
            lock (_launched)
            {
                return _launched.ToArray();
            }
        }
    }

    /// <summary>The primary launched last.</summary>
    public FakePrimary Current => Launched.LastOrDefault() ?? throw new InvalidOperationException("No primary was launched.");

    /// <summary>The primary that runs the app's workers left by an earlier host, as the pool hands out; else a new one.</summary>
    public IPrimary Launch(AppDefinition app) =>
        Adoptable.FirstOrDefault(w => w.App == app.Name && w.Primary is FakePrimary { Disposed: false })?.Primary ?? Start();

    /// <summary>Workers that an earlier host left running, for the next host to take back.</summary>
    public List<AdoptedWorker> Adoptable { get; } = new();

    public IReadOnlyList<AdoptedWorker> AdoptRunning() => Adoptable.ToArray();

    /// <summary>A new fake primary, for a launcher that decides itself when to start one (PrimaryPool).</summary>
    public FakePrimary Start()
    {
        var primary = new FakePrimary(this, NextPid());
        lock (_launched)
        {
            _launched.Add(primary);
        }

        return primary;
    }

    internal int NextPid() => Interlocked.Increment(ref _nextPid);
}

internal sealed class FakePrimary : IPrimary
{
    private readonly FakePrimaryLauncher _launcher;
    private readonly Dictionary<int, int> _pids = new();
    private readonly HashSet<int> _live = new();
    private readonly System.Threading.Channels.Channel<PrimaryEvent> _events = System.Threading.Channels.Channel.CreateUnbounded<PrimaryEvent>();
    private int _disposed;

    public FakePrimary(FakePrimaryLauncher launcher, int pid)
    {
        _launcher = launcher;
        Pid = pid;
        _ = Task.Run(RaiseEventsAsync);
    }

    private async Task RaiseEventsAsync()
    {
        await foreach (PrimaryEvent received in _events.Reader.ReadAllAsync())
        {
            EventReceived?.Invoke(received);
        }

        Exited?.Invoke();
    }

    public event Action<PrimaryEvent>? EventReceived;

    public event Action? Exited;

    public int Pid { get; }

    public bool Disposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The keys of the workers that run on this primary now.</summary>
    public IReadOnlyList<int> LiveKeys
    {
        get
        {
            lock (_live)
            {
                return _live.Order().ToArray();
            }
        }
    }

    /// <summary>The pid the fake gave the worker with this key.</summary>
    public int PidOf(int key)
    {
        lock (_live)
        {
            return _pids[key];
        }
    }

    public void Send(PrimaryCommand command)
    {
        _launcher.Timeline.Add(command, null);
        switch (command.Cmd)
        {
            case PrimaryCommand.Fork:
                Fork(command);
                break;
            case PrimaryCommand.Disconnect:
                if (IsLive(command.Key))
                {
                    Raise(new PrimaryEvent { Event = PrimaryEvent.Disconnected, Key = command.Key });
                }

                break;
            case PrimaryCommand.Send when command.Message == "shutdown" && _launcher.ExitOnShutdownMessage:
                Exit(command.Key, code: 0);
                break;
            case PrimaryCommand.Signal when command.SignalName == "SIGKILL" || (command.SignalName == "SIGINT" && _launcher.ExitOnInterrupt):
                Exit(command.Key, code: null, signal: command.SignalName);
                break;
        }
    }

    /// <summary>Makes a worker send the primary a message, as process.send(text) does.</summary>
    public void Say(int key, string text) => Raise(new PrimaryEvent { Event = PrimaryEvent.Message, Key = key, Text = text });

    /// <summary>Makes a held worker listen.</summary>
    public void Listen(int key) => Raise(new PrimaryEvent { Event = PrimaryEvent.Listening, Key = key, Address = "127.0.0.1", Port = 3000 });

    /// <summary>Makes a worker exit, as a crash or a clean exit of its own.</summary>
    public void Exit(int key, int? code, string? signal = null)
    {
        lock (_live)
        {
            if (!_live.Remove(key))
            {
                return;
            }
        }

        Raise(new PrimaryEvent { Event = PrimaryEvent.Exit, Key = key, Code = code, Signal = signal });
    }

    /// <summary>The primary dies (SIGKILL): it says nothing more, and its workers are gone with it.</summary>
    public void Kill()
    {
        lock (_live)
        {
            _live.Clear();
        }

        Dispose();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            // Raised after every event already said, as the real primary's end of stream comes after its last line.
            _events.Writer.TryComplete();
        }
    }

    /// <summary>A worker that an earlier host forked on this primary, still running.</summary>
    public void Running(int key, int pid)
    {
        lock (_live)
        {
            _pids[key] = pid;
            _live.Add(key);
        }
    }

    private void Fork(PrimaryCommand command)
    {
        ForkScript script = _launcher.OnFork(command);
        if (script.Outcome == ForkOutcome.Silent)
        {
            return;
        }

        int pid = _launcher.NextPid();
        lock (_live)
        {
            _pids[command.Key] = pid;
            _live.Add(command.Key);
        }

        Raise(new PrimaryEvent { Event = PrimaryEvent.Forked, Key = command.Key, Pid = pid });
        switch (script.Outcome)
        {
            case ForkOutcome.Ready:
                Listen(command.Key);
                break;
            case ForkOutcome.ExitBeforeReady:
                if (script.ErrorOutput is not null && command.Err is not null)
                {
                    File.AppendAllText(command.Err, script.ErrorOutput + "\n");
                }

                Exit(command.Key, script.ExitCode);
                break;
        }
    }

    private bool IsLive(int key)
    {
        lock (_live)
        {
            return _live.Contains(key);
        }
    }

    private void Raise(PrimaryEvent received)
    {
        _launcher.Timeline.Add(null, received);
        _events.Writer.TryWrite(received);
    }
}
