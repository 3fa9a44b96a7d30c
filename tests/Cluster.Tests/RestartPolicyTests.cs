using Cluster.Host;
using Xunit;

namespace Cluster.Tests;

public sealed class RestartPolicyTests
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(200);

    [Fact]
    public void Unstable_runs_are_restarted_after_a_growing_delay()
    {
        RestartPolicy policy = RestartPolicy.Default;
        var delays = new List<TimeSpan>();
        int unstable = 0;
        for (int i = 0; i < 5; i++)
        {
            RestartDecision decision = policy.Decide(Short, unstable);
            Assert.Equal(RestartAction.Restart, decision.Action);
            Assert.Equal(unstable + 1, decision.UnstableRestarts);
            delays.Add(decision.Delay);
            unstable = decision.UnstableRestarts;
        }

        Assert.Equal(RestartPolicy.DefaultRestartDelay, delays[0]);
        for (int i = 1; i < delays.Count; i++)
        {
            Assert.True(delays[i] > delays[i - 1], $"Delay {i} ({delays[i]}) is not longer than delay {i - 1} ({delays[i - 1]}).");
        }
    }

    [Fact]
    public void Gives_up_after_MaxRestarts_unstable_restarts_in_a_row()
    {
        RestartPolicy policy = RestartPolicy.Default;
        Assert.Equal(16, RestartPolicy.DefaultMaxRestarts);

        int unstable = 0;
        for (int i = 1; i < RestartPolicy.DefaultMaxRestarts; i++)
        {
            RestartDecision decision = policy.Decide(Short, unstable);
            Assert.Equal(RestartAction.Restart, decision.Action);
            unstable = decision.UnstableRestarts;
        }

        RestartDecision last = policy.Decide(Short, unstable);
        Assert.Equal(RestartAction.GiveUp, last.Action);
        Assert.Equal(RestartPolicy.DefaultMaxRestarts, last.UnstableRestarts);
    }

    [Fact]
    public void A_stable_run_resets_the_unstable_count_and_the_delay()
    {
        RestartPolicy policy = RestartPolicy.Default with { MaxRestarts = 3 };

        RestartDecision decision = policy.Decide(policy.MinUptime, unstableRestarts: 2);

        Assert.Equal(RestartAction.Restart, decision.Action);
        Assert.Equal(0, decision.UnstableRestarts);
        Assert.Equal(policy.RestartDelay, decision.Delay);
    }

    [Fact]
    public void AutoRestart_off_stops_the_instance()
    {
        RestartPolicy policy = RestartPolicy.Default with { AutoRestart = false };

        Assert.Equal(RestartAction.Stop, policy.Decide(Short, 0).Action);
        Assert.Equal(RestartAction.Stop, policy.Decide(TimeSpan.FromHours(1), 0).Action);
    }

    [Fact]
    public void Delays_are_capped_at_MaxDelay()
    {
        RestartPolicy policy = RestartPolicy.Default with { MaxRestarts = 1000 };

        RestartDecision decision = policy.Decide(Short, unstableRestarts: 500);

        Assert.Equal(RestartAction.Restart, decision.Action);
        Assert.Equal(RestartPolicy.MaxDelay, decision.Delay);
    }

    [Fact]
    public void A_restart_delay_longer_than_the_cap_is_kept_as_given()
    {
        var delay = TimeSpan.FromSeconds(5);
        RestartPolicy policy = RestartPolicy.Default with { RestartDelay = delay, MaxRestarts = 1000 };

        Assert.Equal(delay, policy.Decide(Short, 0).Delay);
        Assert.Equal(delay, policy.Decide(Short, 40).Delay);
    }
}
