using Cluster.Host;
using Microsoft.Extensions.Time.Testing;
using Xunit;

namespace Cluster.Tests;

/// <summary>When a Node primary that does not answer its pings counts as lost.</summary>
public sealed class PingWatchTests
{
    private readonly FakeTimeProvider _time = new();
    private readonly PingWatch _watch;

    public PingWatchTests() => _watch = new PingWatch(_time);

    [Fact]
    public void A_primary_that_answers_every_ping_is_never_lost()
    {
        for (int i = 0; i < 100; i++)
        {
            long seq = _watch.Tick();
            Assert.True(seq > 0, $"tick {i} gave {seq}");
            _watch.Answered(seq);
            _time.Advance(PingWatch.Interval);
        }
    }

    [Fact]
    public void A_primary_is_lost_after_the_limit_of_ticks_in_a_row_without_an_answer()
    {
        var sent = new List<long>();
        for (int i = 0; i < PingWatch.SilentTicksLimit; i++)
        {
            sent.Add(_watch.Tick());
            _time.Advance(PingWatch.Interval);
        }

        Assert.Equal(Enumerable.Range(1, PingWatch.SilentTicksLimit).Select(n => (long)n), sent);
        Assert.Equal(-1, _watch.Tick());
    }

    [Fact]
    public void A_late_answer_to_an_older_ping_starts_the_count_again()
    {
        long first = _watch.Tick();
        for (int i = 1; i < PingWatch.SilentTicksLimit; i++)
        {
            _time.Advance(PingWatch.Interval);
            Assert.True(_watch.Tick() > 0);
        }

        _watch.Answered(first);
        for (int i = 0; i < PingWatch.SilentTicksLimit - 1; i++)
        {
            _time.Advance(PingWatch.Interval);
            Assert.True(_watch.Tick() > 0, $"tick {i} after the answer");
        }
    }

    [Fact]
    public void A_host_that_was_paused_does_not_take_its_own_pause_for_the_primary_s_silence()
    {
        long seq = _watch.Tick();
        // The host is stopped for a minute; on resuming, its timer fires several times at once.
        _time.Advance(TimeSpan.FromMinutes(1));
        var burst = Enumerable.Range(0, 10).Select(_ => _watch.Tick()).ToArray();

        Assert.True(burst[0] > seq, "the first tick after the pause pings");
        Assert.All(burst.Skip(1), b => Assert.Equal(0, b));
        _watch.Answered(burst[0]);
        _time.Advance(PingWatch.Interval);
        Assert.True(_watch.Tick() > 0);
    }
}
