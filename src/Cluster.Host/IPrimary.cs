namespace Cluster.Host;

/// <summary>
/// The hands of an app: something that forks, disconnects, messages and signals its workers and reports
/// what happens to them. In production a Node cluster primary (NodePrimary); in tests, a scripted fake.
/// </summary>
internal interface IPrimary : IDisposable
{
    /// <summary>Raised for every event the primary reports, on a background thread.</summary>
    event Action<PrimaryEvent>? EventReceived;

    /// <summary>Raised once when the primary itself has gone (crashed, killed or disposed).</summary>
    event Action? Exited;

    int Pid { get; }

    void Send(PrimaryCommand command);
}

internal interface IPrimaryLauncher
{
    IPrimary Launch(AppDefinition app);

    /// <summary>
    /// Connects to the primaries an earlier host left running (their workers kept serving while no host was
    /// there) and returns their workers, for the apps to take back.
    /// </summary>
    IReadOnlyList<AdoptedWorker> AdoptRunning() => Array.Empty<AdoptedWorker>();

    /// <summary>Stops the adopted primaries that no app took back.</summary>
    void ReleaseIdle()
    {
    }
}

/// <summary>A worker found running in a primary that an earlier host started.</summary>
internal sealed record AdoptedWorker(
    int Key, string App, int Instance, int Pid, bool Ready, DateTimeOffset Started, string NodePath, string Scheduling, IPrimary Primary)
{
    public int Generation { get; init; }

    public int Restarts { get; init; }

    /// <summary>The loopback port its health preload answers checks on, as the primary heard it said.</summary>
    public int? HealthPort { get; init; }

    /// <summary>The app's definition as the host that forked the worker had it (JSON), if the primary kept it.</summary>
    public string? Definition { get; init; }
}
