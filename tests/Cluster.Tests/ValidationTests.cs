using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Xunit;

namespace Cluster.Tests;

public sealed class ValidationTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Theory]
    [InlineData("api")]
    [InlineData("API-2")]
    [InlineData("my_app.v2")]
    [InlineData("0")]
    public void AppName_accepts_letters_digits_dots_underscores_and_dashes(string name)
    {
        Assert.True(AppName.IsValid(name));
        AppName.Validate(name);
    }

    [Fact]
    public void AppName_accepts_64_characters_and_rejects_65()
    {
        Assert.True(AppName.IsValid(new string('a', 64)));
        Assert.False(AppName.IsValid(new string('a', 65)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("../etc")]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData("c:app")]
    [InlineData(".hidden")]
    [InlineData("-dash")]
    [InlineData("two words")]
    [InlineData("tab\there")]
    [InlineData("line\nbreak")]
    [InlineData("nul\0")]
    [InlineData("bell\u0007")]
    public void AppName_rejects_path_and_control_characters(string name)
    {
        Assert.False(AppName.IsValid(name));
        var error = Assert.Throws<ClusterException>(() => AppName.Validate(name));
        Assert.Equal("InvalidName", error.Code);
        Assert.Equal(ErrorCategories.InvalidArgument, error.Category);
    }

    [Fact]
    public void AppName_error_shows_control_characters_escaped()
    {
        var error = Assert.Throws<ClusterException>(() => AppName.Validate("evil\u001b[2Jname"));

        Assert.DoesNotContain('\u001b', error.Message);
        Assert.Contains("evil\\x1b[2Jname", error.Message);
    }

    [Fact]
    public void StartSpecValidator_accepts_a_good_spec()
    {
        StartSpecValidator.Validate(GoodSpec());
    }

    [Fact]
    public void StartSpecValidator_reports_a_missing_script_as_ScriptNotFound()
    {
        StartSpec missing = GoodSpec();
        missing.Script = _folder.Combine("missing.js");
        StartSpec relative = GoodSpec();
        relative.Script = "app.js";

        AssertRejected(missing, "ScriptNotFound", ErrorCategories.ObjectNotFound);
        AssertRejected(relative, "ScriptNotFound", ErrorCategories.ObjectNotFound);
    }

    [Fact]
    public void StartSpecValidator_reports_a_missing_working_directory_as_WorkingDirectoryNotFound()
    {
        StartSpec spec = GoodSpec();
        spec.WorkingDirectory = _folder.Combine("no-such-folder");

        AssertRejected(spec, "WorkingDirectoryNotFound", ErrorCategories.ObjectNotFound);
    }

    [Theory]
    [InlineData(1025)]
    [InlineData(-1025)]
    [InlineData(int.MaxValue)]
    public void StartSpecValidator_reports_an_absurd_instance_count_as_TooManyInstances(int instances)
    {
        StartSpec spec = GoodSpec();
        spec.Instances = instances;

        AssertRejected(spec, "TooManyInstances", ErrorCategories.LimitsExceeded);
    }

    [Fact]
    public void StartSpecValidator_accepts_1024_instances()
    {
        StartSpec spec = GoodSpec();
        spec.Instances = 1024;

        StartSpecValidator.Validate(spec);
    }

    [Fact]
    public void StartSpecValidator_reports_an_unknown_mode_as_InvalidMode()
    {
        StartSpec spec = GoodSpec();
        spec.Mode = "daemon";

        AssertRejected(spec, "InvalidMode", ErrorCategories.InvalidArgument);
    }

    [Fact]
    public void StartSpecValidator_refuses_a_health_check_path_it_could_not_send()
    {
        foreach (string path in new[] { "health", "/health check", "/health\r\nX-Injected: 1" })
        {
            AssertRejected(s => s.HealthCheckPath = path, "InvalidHealthCheckPath");
        }
    }

    [Fact]
    public void StartSpecValidator_refuses_an_HTTP_check_for_a_program_that_is_not_Node()
    {
        string program = _folder.WriteFile("serve.sh", "#!/bin/sh\n");
        AssertRejected(s => (s.Mode, s.Script, s.HealthCheckPath) = (AppModes.Fork, program, "/health"), "HealthCheckPathNeedsNode");
    }

    [Fact]
    public void StartSpecValidator_refuses_a_liveness_interval_without_a_check_to_repeat()
    {
        AssertRejected(s => s.LivenessIntervalMs = 1000, "LivenessNeedsCheck");
        StartSpec withCheck = GoodSpec();
        (withCheck.LivenessIntervalMs, withCheck.HealthCheckCommand) = (1000, "true");
        StartSpecValidator.Validate(withCheck);
    }

    /// <summary>A good spec with one change is refused as an invalid argument, with this code.</summary>
    private void AssertRejected(Action<StartSpec> change, string code)
    {
        StartSpec spec = GoodSpec();
        change(spec);
        AssertRejected(spec, code, ErrorCategories.InvalidArgument);
    }

    private StartSpec GoodSpec() => new()
    {
        Name = "api",
        Script = _folder.WriteFile("app.js", "console.log('hi');\n"),
        WorkingDirectory = _folder.Path,
        Instances = 2,
    };

    private static void AssertRejected(StartSpec spec, string code, string category)
    {
        var error = Assert.Throws<ClusterException>(() => StartSpecValidator.Validate(spec));
        Assert.Equal(code, error.Code);
        Assert.Equal(category, error.Category);
    }
}
