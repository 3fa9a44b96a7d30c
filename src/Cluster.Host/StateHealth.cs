namespace Cluster.Host;

/// <summary>
/// What is wrong with the state file, as Get-ClusterHost shows it: what this host found and repaired when it
/// started (kept for its lifetime, so that the owner learns of it), and whether the last write failed.
/// </summary>
internal sealed class StateHealth
{
    private readonly object _lock = new();
    private readonly List<string> _repaired = new();
    private string? _writeFailure;

    /// <summary>The problems in words, one sentence group each; null when there is none.</summary>
    public string? Problem
    {
        get
        {
            lock (_lock)
            {
                IEnumerable<string> all = _writeFailure is null ? _repaired : _repaired.Append(_writeFailure);
                string text = string.Join(" ", all);
                return text.Length == 0 ? null : text;
            }
        }
    }

    /// <summary>Something found at start that the host repaired (recovered from the backup, taken back from a primary).</summary>
    public void Repaired(string problem)
    {
        lock (_lock)
        {
            _repaired.Add(problem);
        }
    }

    public void WriteFailed(string problem)
    {
        lock (_lock)
        {
            _writeFailure = problem;
        }
    }

    public void WriteSucceeded()
    {
        lock (_lock)
        {
            _writeFailure = null;
        }
    }
}
