using Cluster.Host;
using Cluster.Protocol;
using Xunit;

namespace Cluster.Tests;

public sealed class TimeoutsTests
{
    private static Dictionary<string, string> Vars(params (string Name, string Value)[] pairs) =>
        pairs.ToDictionary(p => p.Name, p => p.Value);

    private static readonly Dictionary<string, string> None = new();

    [Fact]
    public void Defaults_are_3000_listen_4000_graceful_1600_kill()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(3000), Timeouts.Listen(null, null, None));
        Assert.Equal(TimeSpan.FromMilliseconds(4000), Timeouts.Graceful(null, null, None));
        Assert.Equal(TimeSpan.FromMilliseconds(1600), Timeouts.Kill(null, null));
    }

    [Fact]
    public void Parameter_beats_session_variable_beats_app_environment_beats_default()
    {
        var session = Vars((Timeouts.ListenTimeoutVariable, "200"), (Timeouts.GracefulTimeoutVariable, "300"));
        var app = Vars((Timeouts.ListenTimeoutVariable, "400"), (Timeouts.GracefulTimeoutVariable, "500"));

        Assert.Equal(TimeSpan.FromMilliseconds(100), Timeouts.Listen(100, session, app));
        Assert.Equal(TimeSpan.FromMilliseconds(200), Timeouts.Listen(null, session, app));
        Assert.Equal(TimeSpan.FromMilliseconds(400), Timeouts.Listen(null, None, app));
        Assert.Equal(TimeSpan.FromMilliseconds(400), Timeouts.Listen(null, null, app));

        Assert.Equal(TimeSpan.FromMilliseconds(150), Timeouts.Graceful(150, session, app));
        Assert.Equal(TimeSpan.FromMilliseconds(300), Timeouts.Graceful(null, session, app));
        Assert.Equal(TimeSpan.FromMilliseconds(500), Timeouts.Graceful(null, None, app));
    }

    [Fact]
    public void Kill_timeout_parameter_beats_the_apps_setting()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(10), Timeouts.Kill(10, 20));
        Assert.Equal(TimeSpan.FromMilliseconds(20), Timeouts.Kill(null, 20));
    }

    [Theory]
    [InlineData("soon")]
    [InlineData("")]
    [InlineData("-5")]
    [InlineData("1.5")]
    [InlineData("99999999999999")]
    public void Variables_that_are_not_a_number_of_milliseconds_are_ignored(string text)
    {
        var session = Vars((Timeouts.ListenTimeoutVariable, text), (Timeouts.GracefulTimeoutVariable, text));
        var app = Vars((Timeouts.GracefulTimeoutVariable, "700"));

        Assert.Equal(Timeouts.DefaultListenTimeout, Timeouts.Listen(null, session, None));
        Assert.Equal(TimeSpan.FromMilliseconds(700), Timeouts.Graceful(null, session, app));
    }

    [Fact]
    public void A_reload_uses_the_listen_timeout_the_app_was_started_with_over_session_variables()
    {
        var app = new AppDefinition { Spec = new StartSpec { Name = "api", ListenTimeoutMs = 250, KillTimeoutMs = 900 } };
        var session = Vars((Timeouts.ListenTimeoutVariable, "5000"), (Timeouts.GracefulTimeoutVariable, "6000"));

        ReloadPlan plan = ReloadPlan.For(app, new ReloadSpec { SessionEnvironment = session });
        ReloadPlan overridden = ReloadPlan.For(app, new ReloadSpec { ListenTimeoutMs = 50, KillTimeoutMs = 60, SessionEnvironment = session });

        Assert.Equal(TimeSpan.FromMilliseconds(250), plan.ListenTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(900), plan.Retirement.KillTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(6000), plan.Retirement.GracefulTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(50), overridden.ListenTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(60), overridden.Retirement.KillTimeout);
    }
}
