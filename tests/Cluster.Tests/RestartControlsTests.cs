extern alias client;

using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Xunit;
using DeploymentFile = client::Cluster.Settings.DeploymentFile;

namespace Cluster.Tests;

/// <summary>The restart controls and start settings: how they resolve, what the host refuses, what a fork-mode instance runs.</summary>
public sealed class RestartControlsTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Kill_timeout_is_the_parameter_then_the_apps_setting_then_PM2_KILL_TIMEOUT_of_the_session_then_of_the_app()
    {
        var session = new Dictionary<string, string> { [Timeouts.KillTimeoutVariable] = "700" };
        var app = new Dictionary<string, string> { [Timeouts.KillTimeoutVariable] = "800" };

        Assert.Equal(TimeSpan.FromMilliseconds(10), Timeouts.Kill(10, 20, session, app));
        Assert.Equal(TimeSpan.FromMilliseconds(20), Timeouts.Kill(null, 20, session, app));
        Assert.Equal(TimeSpan.FromMilliseconds(700), Timeouts.Kill(null, null, session, app));
        Assert.Equal(TimeSpan.FromMilliseconds(800), Timeouts.Kill(null, null, null, app));
        Assert.Equal(Timeouts.DefaultKillTimeout, Timeouts.Kill(null, null, new Dictionary<string, string> { [Timeouts.KillTimeoutVariable] = "soon" }, null));
        Assert.Equal(TimeSpan.FromMilliseconds(800), Timeouts.Kill(new StartSpec { Environment = app }));
        Assert.Contains(Timeouts.KillTimeoutVariable, EnvironmentPolicy.TimeoutVariables);
    }

    [Fact]
    public void A_stop_or_reload_takes_PM2_KILL_TIMEOUT_from_the_calling_session()
    {
        var app = new AppDefinition { Spec = new StartSpec { Name = "api" } };
        var session = new Dictionary<string, string> { [Timeouts.KillTimeoutVariable] = "450" };

        Assert.Equal(TimeSpan.FromMilliseconds(450), Retirement.For(app, new StopSpec { SessionEnvironment = session }).KillTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(450), ReloadPlan.For(app, new ReloadSpec { SessionEnvironment = session }).Retirement.KillTimeout);
    }

    [Theory]
    [InlineData("run.sh", "sh")]
    [InlineData("run.py", "python3")]
    [InlineData("run.ps1", "pwsh")]
    [InlineData("run.js", "node")]
    [InlineData("run.mjs", "node")]
    [InlineData("run.cjs", "node")]
    [InlineData("run", "none")]
    [InlineData("run.exe", "none")]
    public void A_fork_mode_script_runs_with_the_interpreter_its_extension_names(string script, string interpreter)
    {
        Assert.Equal(interpreter, Launch.InterpreterFor(script));
    }

    [Fact]
    public void An_interpreter_runs_its_arguments_then_the_script_then_the_scripts_arguments()
    {
        StartSpec spec = ForkSpec("job.sh");
        spec.NodeArguments = new List<string> { "-e" };
        spec.Arguments = new List<string> { "one", "two" };

        Launch launch = Launch.For(spec);

        Assert.False(launch.Node);
        Assert.Equal("sh", Path.GetFileName(launch.Exec));
        Assert.True(Path.IsPathFullyQualified(launch.Exec));
        Assert.Equal(new[] { "-e", spec.Script, "one", "two" }, launch.Args);
    }

    [Fact]
    public void Interpreter_node_forks_the_script_and_none_runs_the_file_itself()
    {
        StartSpec node = ForkSpec("worker");
        node.Interpreter = "node";
        StartSpec itself = ForkSpec("job.sh");
        itself.Interpreter = "none";

        Assert.True(Launch.For(node).Node);
        Assert.Equal(node.Script, Launch.For(node).Exec);
        Assert.Equal(itself.Script, Launch.For(itself).Exec);
        Assert.False(Launch.For(itself).Node);
    }

    [Fact]
    public void A_clean_environment_finds_the_interpreter_on_the_hosts_PATH()
    {
        StartSpec spec = ForkSpec("job.py");
        spec.Environment = new Dictionary<string, string> { ["GIVEN"] = "1" };
        spec.CleanEnvironment = true;

        Assert.Equal("python3", Path.GetFileName(Launch.For(spec).Exec));

        spec.CleanEnvironment = false;
        Assert.Equal("InterpreterNotFound", Assert.Throws<ClusterException>(() => StartSpecValidator.Validate(spec)).Code);
    }

    [Fact]
    public void The_host_refuses_an_increment_without_a_number_a_bad_variable_name_and_an_interpreter_in_cluster_mode()
    {
        StartSpec noNumber = ForkSpec("app.js");
        noNumber.IncrementVariable = "PORT";
        StartSpec notANumber = ForkSpec("app.js");
        notANumber.IncrementVariable = "PORT";
        notANumber.Environment["PORT"] = "80a";
        StartSpec badName = ForkSpec("app.js");
        badName.InstanceVariable = "A=B";
        StartSpec same = ForkSpec("app.js");
        same.Environment["PORT"] = "3000";
        same.IncrementVariable = "PORT";
        same.InstanceVariable = "PORT";
        StartSpec pythonCluster = ForkSpec("app.py");
        pythonCluster.Mode = AppModes.Cluster;
        StartSpec tooMany = ForkSpec("app.js");
        tooMany.StopExitCodes = Enumerable.Range(0, StartSpecValidator.MaxStopExitCodes + 1).ToList();

        Assert.Equal("IncrementVariableNotNumber", Assert.Throws<ClusterException>(() => StartSpecValidator.ValidateShape(noNumber)).Code);
        Assert.Equal("IncrementVariableNotNumber", Assert.Throws<ClusterException>(() => StartSpecValidator.ValidateShape(notANumber)).Code);
        Assert.Equal("InvalidVariableName", Assert.Throws<ClusterException>(() => StartSpecValidator.ValidateShape(badName)).Code);
        Assert.Equal("InvalidVariableName", Assert.Throws<ClusterException>(() => StartSpecValidator.ValidateShape(same)).Code);
        Assert.Equal("InterpreterNeedsFork", Assert.Throws<ClusterException>(() => StartSpecValidator.ValidateShape(pythonCluster)).Code);
        Assert.Equal("ValueOutOfRange", Assert.Throws<ClusterException>(() => StartSpecValidator.ValidateShape(tooMany)).Code);
    }

    [Fact]
    public void Each_restart_control_is_a_setting_change_by_its_parameters_name()
    {
        StartSpec before = ForkSpec("app.js");
        StartSpec after = ForkSpec("app.js");
        after.StopExitCodes = new List<int> { 3 };
        after.CleanEnvironment = true;
        after.InstanceVariable = "ID";
        after.Environment["PORT"] = "3000";
        after.IncrementVariable = "PORT";
        after.Interpreter = "node";

        IReadOnlyList<SettingChange> changes = SettingChanges.Between(before, after);

        foreach (string setting in new[] { "StopExitCodes", "CleanEnvironment", "InstanceVariable", "IncrementVariable", "Interpreter" })
        {
            Assert.Contains(changes, c => c.Setting == setting);
        }

        Assert.Equal("3", changes.Single(c => c.Setting == "StopExitCodes").To);
        // An instance variable is the instances' own: they are replaced.
        Assert.Equal(UpdateEffect.Reload, UpdateEffects.Of(changes));
    }

    [Fact]
    public void Stop_exit_codes_a_cron_expression_and_watch_settings_change_no_instance()
    {
        StartSpec before = ForkSpec("app.js");
        StartSpec after = ForkSpec("app.js");
        after.StopExitCodes = new List<int> { 3 };
        after.CronRestart = "0 3 * * *";
        after.Watch = true;
        after.WatchIgnore = new List<string> { "*.log" };
        after.WatchDelayMs = 200;

        IReadOnlyList<SettingChange> changes = SettingChanges.Between(before, after);

        Assert.Equal(5, changes.Count);
        Assert.Equal(UpdateEffect.SaveOnly, UpdateEffects.Of(changes));
    }

    [Fact]
    public void An_ecosystem_file_gives_the_restart_controls_by_PM2s_keys()
    {
        const string Json = """
            { "apps": [ { "name": "api", "script": "./app.js", "stop_exit_codes": [3, 4], "instance_var": "INSTANCE_ID",
              "increment_var": "PORT", "filter_env": true, "interpreter": "node" },
              { "name": "one", "script": "./app.js", "stop_exit_codes": 7 } ] }
            """;

        var entries = DeploymentFile.ReadEcosystem("ecosystem.json", Json, null);

        Dictionary<string, object?> api = entries[0].Settings;
        Assert.Equal(new[] { 3, 4 }, (int[])api["StopExitCodes"]!);
        Assert.Equal("INSTANCE_ID", api["InstanceVariable"]);
        Assert.Equal("PORT", api["IncrementVariable"]);
        Assert.Equal(true, api["CleanEnvironment"]);
        Assert.Equal("node", api["Interpreter"]);
        Assert.Empty(entries[0].Ignored);
        Assert.Equal(new[] { 7 }, (int[])entries[1].Settings["StopExitCodes"]!);
    }

    [Fact]
    public void An_ecosystem_file_with_filter_env_as_a_list_is_refused()
    {
        const string Json = """{ "apps": [ { "name": "api", "script": "./app.js", "filter_env": ["SECRET_"] } ] }""";

        var error = Assert.Throws<client::Cluster.Settings.SettingsException>(() => DeploymentFile.ReadEcosystem("ecosystem.json", Json, null));

        Assert.Equal("InvalidSettingValue", error.Code);
        Assert.Contains("filter_env", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("SIGUSR2", "SIGUSR2")]
    [InlineData("usr2", "SIGUSR2")]
    [InlineData(" SigHup ", "SIGHUP")]
    [InlineData("SIGNOPE", null)]
    [InlineData("", null)]
    [InlineData("9", null)]
    public void Signal_names_are_normalized_and_unknown_ones_refused(string given, string? expected)
    {
        Assert.Equal(expected, Signals.Normalize(given));
    }

    private StartSpec ForkSpec(string script) => new()
    {
        Name = "job",
        Script = _folder.WriteFile(script, "\n"),
        WorkingDirectory = _folder.Path,
        Mode = AppModes.Fork,
        Environment = new Dictionary<string, string> { ["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "" },
    };
}

public sealed class FolderWatchTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Theory]
    [InlineData("node_modules/dep/index.js", true)]
    [InlineData(".git/HEAD", true)]
    [InlineData("src/node_modules/x.js", true)]
    [InlineData("debug.log", true)]
    [InlineData("logs/app.log", true)]
    [InlineData("tmp", true)]
    [InlineData("tmp/cache/file", true)]
    [InlineData("public/uploads/photo.png", true)]
    [InlineData("public/index.html", false)]
    [InlineData("app.js", false)]
    [InlineData("src/config.json", false)]
    [InlineData("logbook.txt", false)]
    public void Changes_under_node_modules_git_and_the_ignore_patterns_do_not_count(string relative, bool ignored)
    {
        using var watch = new FolderWatch(_folder.Path, new[] { "*.log", "tmp", "public/uploads/*" }, _ => { });

        Assert.Equal(ignored, watch.IsIgnored(relative));
    }

    [Fact]
    public void A_watch_is_armed_again_only_when_its_folder_or_patterns_change()
    {
        var spec = new StartSpec { Script = _folder.Combine("app.js"), Watch = true };
        string? key = FolderWatch.KeyOf(spec);

        Assert.NotNull(key);
        Assert.Equal(key, FolderWatch.KeyOf(new StartSpec { Script = spec.Script, Watch = true, WatchDelayMs = 50 }));
        Assert.NotEqual(key, FolderWatch.KeyOf(new StartSpec { Script = spec.Script, Watch = true, WatchIgnore = new List<string> { "*.tmp" } }));
        Assert.Null(FolderWatch.KeyOf(new StartSpec { Script = spec.Script }));
        Assert.Equal(_folder.Path, FolderWatch.FolderOf(spec));
    }
}
