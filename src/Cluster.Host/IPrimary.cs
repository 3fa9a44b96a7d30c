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
}
