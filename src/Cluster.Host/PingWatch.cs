namespace Cluster.Host;

/// <summary>
/// Decides when a Node primary that does not answer its pings is lost (stopped with SIGSTOP, its event loop
/// blocked). The silence is counted in the host's own ticks, at least half an interval apart, not in wall-clock
/// time: a host that was stopped itself (SIGSTOP, a suspended machine) does not take its own pause for the
/// primary's silence, and a burst of late ticks counts as one.
/// </summary>
internal sealed class PingWatch
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    /// <summary>Ticks in a row that find the last ping unanswered before the primary counts as lost: about 5 s.</summary>
    public const int SilentTicksLimit = 5;

    private readonly TimeProvider _time;
    private readonly object _lock = new();
    private long _lastSent;
    private long _lastAnswered;
    private int _silentTicks;
    private long? _lastTick;

    public PingWatch(TimeProvider time) => _time = time;

    /// <summary>How long the primary has not answered, for a message.</summary>
    public TimeSpan Silence
    {
        get
        {
            lock (_lock)
            {
                return Interval * _silentTicks;
            }
        }
    }

    /// <summary>On each tick of the watchdog timer: the sequence number of the ping to send, 0 for none this time, or -1 when the primary is lost.</summary>
    public long Tick()
    {
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            if (_lastTick is { } last && _time.GetElapsedTime(last, now) < Interval / 2)
            {
                return 0;
            }

            _lastTick = now;
            if (_lastAnswered < _lastSent && ++_silentTicks >= SilentTicksLimit)
            {
                return -1;
            }

            return ++_lastSent;
        }
    }

    /// <summary>A pong: the primary's event loop runs.</summary>
    public void Answered(long seq)
    {
        lock (_lock)
        {
            _lastAnswered = Math.Max(_lastAnswered, seq);
            _silentTicks = 0;
        }
    }
}
