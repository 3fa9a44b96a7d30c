extern alias client;

using System.Collections.ObjectModel;
using System.Diagnostics;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Text.Json;
using Cluster.Tests.Support;
using Xunit;
using AppMode = client::Cluster.AppMode;
using HostLauncher = client::Cluster.Client.HostLauncher;
using StartClusterAppCommand = client::Cluster.Commands.StartClusterAppCommand;

namespace Cluster.Tests;

/// <summary>The module loaded into an in-process runspace, as PowerShell sees it.</summary>
public sealed class ModuleRunspace : IDisposable
{
    public ModuleRunspace()
    {
        InitialSessionState state = InitialSessionState.CreateDefault2();
        state.ImportPSModule(new[] { ModulePath });
        Runspace = RunspaceFactory.CreateRunspace(state);
        Runspace.Open();
    }

    public static string ModulePath => typeof(StartClusterAppCommand).Assembly.Location;

    public Runspace Runspace { get; }

    public Collection<PSObject> Invoke(string script, out PowerShell shell)
    {
        shell = PowerShell.Create();
        shell.Runspace = Runspace;
        shell.AddScript(script);
        return shell.Invoke();
    }

    public void Dispose() => Runspace.Dispose();
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CmdletCollection : ICollectionFixture<ModuleRunspace>
{
    /// <summary>Its tests set CLUSTER_HOME, which is process-wide.</summary>
    public const string Name = "Cmdlets in-process";
}

[Collection(CmdletCollection.Name)]
public sealed class CmdletTests
{
    private static readonly string[] WriteNoObjects = { "Remove-ClusterApp", "Stop-ClusterHost", "Clear-ClusterAppLog", "Unregister-ClusterStartup" };

    private static readonly string[] ChangeState =
    {
        "Start-ClusterApp", "Stop-ClusterApp", "Restart-ClusterApp", "Remove-ClusterApp", "Set-ClusterApp",
        "Invoke-ClusterReload", "Invoke-ClusterGracefulReload", "Stop-ClusterHost",
        "Register-ClusterStartup", "Unregister-ClusterStartup", "Sync-ClusterApp", "Export-ClusterApp", "Clear-ClusterAppLog",
    };

    /// <summary>Export-ClusterApp writes a deployment file's text, or the file it wrote.</summary>
    private static readonly string[] WriteFilesOrText = { "Export-ClusterApp" };

    /// <summary>The cmdlets that act on apps that exist: Get-ClusterApp | &lt;cmdlet&gt; binds each app's Name.</summary>
    private static readonly string[] TakeAnAppsName =
    {
        "Get-ClusterApp", "Stop-ClusterApp", "Restart-ClusterApp", "Remove-ClusterApp", "Set-ClusterApp",
        "Invoke-ClusterReload", "Invoke-ClusterGracefulReload", "Get-ClusterAppLog", "Clear-ClusterAppLog",
    };

    private readonly ModuleRunspace _module;

    public CmdletTests(ModuleRunspace module) => _module = module;

    private IReadOnlyList<CmdletInfo> Cmdlets()
    {
        Collection<PSObject> found = _module.Invoke("Get-Command -Module Cluster -CommandType Cmdlet", out PowerShell shell);
        using (shell)
        {
            Assert.Empty(shell.Streams.Error);
        }

        return found.Select(o => (CmdletInfo)o.BaseObject).ToArray();
    }

    [Fact]
    public void Module_exports_every_public_cmdlet_in_the_assembly()
    {
        string[] declared = typeof(StartClusterAppCommand).Assembly.GetExportedTypes()
            .Where(t => !t.IsAbstract && typeof(PSCmdlet).IsAssignableFrom(t))
            .Select(t => t.GetCustomAttributes(typeof(CmdletAttribute), false).Cast<CmdletAttribute>().Single())
            .Select(a => a.VerbName + "-" + a.NounName)
            .OrderBy(n => n)
            .ToArray();

        Assert.Equal(declared, Cmdlets().Select(c => c.Name).OrderBy(n => n));
        Assert.NotEmpty(declared);
        Assert.All(declared, n => Assert.True(ChangeState.Contains(n) || n.StartsWith("Get-", StringComparison.Ordinal) || n.StartsWith("Watch-", StringComparison.Ordinal), $"{n} is neither a getter nor listed as changing state."));
    }

    [Fact]
    public void Every_cmdlet_that_writes_objects_declares_its_OutputType()
    {
        foreach (CmdletInfo cmdlet in Cmdlets().Where(c => !WriteNoObjects.Contains(c.Name)))
        {
            Assert.True(cmdlet.OutputType.Count > 0, $"{cmdlet.Name} writes objects but declares no [OutputType].");
            foreach (PSTypeName output in cmdlet.OutputType)
            {
                bool fileOrText = WriteFilesOrText.Contains(cmdlet.Name) && (output.Type == typeof(string) || output.Type == typeof(FileInfo));
                Assert.True(fileOrText || (output.Type is not null && output.Type.Assembly == typeof(StartClusterAppCommand).Assembly), $"{cmdlet.Name} declares {output.Name}, not one of the module's output types.");
            }
        }
    }

    [Fact]
    public void Name_binds_by_property_name_from_the_pipeline()
    {
        Assert.NotNull(typeof(client::Cluster.App).GetProperty("Name"));
        foreach (CmdletInfo cmdlet in Cmdlets().Where(c => TakeAnAppsName.Contains(c.Name)))
        {
            ParameterMetadata name = cmdlet.Parameters["Name"];
            foreach (ParameterAttribute parameter in name.Attributes.OfType<ParameterAttribute>())
            {
                Assert.True(parameter.ValueFromPipelineByPropertyName, $"{cmdlet.Name} -Name does not bind by property name.");
            }
        }

        Assert.Equal(TakeAnAppsName.Length, Cmdlets().Count(c => TakeAnAppsName.Contains(c.Name)));
    }

    [Fact]
    public void State_changing_cmdlets_support_WhatIf_and_Confirm_and_getters_do_not()
    {
        foreach (CmdletInfo cmdlet in Cmdlets())
        {
            bool supports = cmdlet.Parameters.ContainsKey("WhatIf") && cmdlet.Parameters.ContainsKey("Confirm");
            Assert.True(supports == ChangeState.Contains(cmdlet.Name), $"{cmdlet.Name}: SupportsShouldProcess is {supports}.");
        }
    }

    [Theory]
    [InlineData("app.js", AppMode.Cluster)]
    [InlineData("server.MJS", AppMode.Cluster)]
    [InlineData("lib.cjs", AppMode.Cluster)]
    [InlineData("worker.py", AppMode.Fork)]
    [InlineData("run.sh", AppMode.Fork)]
    public void DefaultModeFor_runs_Node_scripts_as_a_cluster_and_the_rest_forked(string file, AppMode expected)
    {
        Assert.Equal(expected, StartClusterAppCommand.DefaultModeFor(Path.Combine("/srv", file)));
    }

    [Fact]
    public void DefaultModeFor_reads_the_shebang_of_a_script_without_extension()
    {
        using var folder = new TempFolder();

        Assert.Equal(AppMode.Cluster, StartClusterAppCommand.DefaultModeFor(folder.WriteFile("server", "#!/usr/bin/env node\nconsole.log(1);\n")));
        Assert.Equal(AppMode.Fork, StartClusterAppCommand.DefaultModeFor(folder.WriteFile("tool", "#!/bin/sh\necho 1\n")));
        Assert.Equal(AppMode.Fork, StartClusterAppCommand.DefaultModeFor(folder.Combine("missing")));
    }

    [Theory]
    [InlineData("/srv/api/app.js", "app")]
    [InlineData("/srv/my api (v2).js", "my-api-v2")]
    [InlineData("/srv/.hidden.js", "hidden")]
    [InlineData("/srv/ünïcode.js", "n-code")]
    [InlineData("/srv/@@@.js", "app")]
    public void NameFromScript_makes_a_valid_app_name(string script, string expected)
    {
        string name = StartClusterAppCommand.NameFromScript(script);

        Assert.Equal(expected, name);
        Assert.True(Cluster.Host.AppName.IsValid(name));
    }

    [Fact]
    public void NameFromScript_shortens_long_names_to_a_valid_length()
    {
        string name = StartClusterAppCommand.NameFromScript("/srv/" + new string('a', 100) + ".js");

        Assert.Equal(64, name.Length);
        Assert.True(Cluster.Host.AppName.IsValid(name));
    }

    [Fact]
    public async Task HostLauncher_Quote_round_trips_tricky_arguments_through_a_real_command_line()
    {
        string[] arguments =
        {
            "plain", "two words", "", " ", "say \"hi\"", "\"", "trailing\\", "C:\\Program Files\\app\\",
            "\\\\server\\share\\", "back\\\"slash", "tab\there", "ünï €", "--flag=\"x y\"", "-e",
        };
        const string echo = "console.log(JSON.stringify(process.argv.slice(1)))";
        string commandLine = string.Join(" ", new[] { "-e", echo, "--" }.Concat(arguments).Select(HostLauncher.Quote));
        var start = new ProcessStartInfo("node", commandLine)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = System.Text.Encoding.UTF8,
        };

        using Process node = Process.Start(start)!;
        Task<string> output = node.StandardOutput.ReadToEndAsync();
        Task<string> errors = node.StandardError.ReadToEndAsync();
        await Wait.Bounded(node.WaitForExitAsync());

        Assert.True(node.ExitCode == 0, await errors);
        Assert.Equal(arguments, JsonSerializer.Deserialize<string[]>(await output));
    }

    [Fact]
    public void Start_ClusterApp_with_a_missing_script_writes_ScriptNotFound_without_contacting_a_host()
    {
        using var folder = new TempFolder();
        string home = folder.Combine("home");
        string missing = folder.Combine("missing.js");
        string? saved = Environment.GetEnvironmentVariable("CLUSTER_HOME");
        Environment.SetEnvironmentVariable("CLUSTER_HOME", home);
        try
        {
            Collection<PSObject> output = _module.Invoke($"Start-ClusterApp -Path '{missing}' -Name api", out PowerShell shell);
            using (shell)
            {
                Assert.Empty(output);
                ErrorRecord error = Assert.Single(shell.Streams.Error);
                Assert.Equal("StartClusterAppScriptNotFound,Cluster.Commands.StartClusterAppCommand", error.FullyQualifiedErrorId);
                Assert.Equal(ErrorCategory.ObjectNotFound, error.CategoryInfo.Category);
                Assert.Equal(missing, error.TargetObject);
                Assert.IsType<FileNotFoundException>(error.Exception.InnerException);
            }

            Assert.False(File.Exists(Path.Combine(home, "host.lock")));
            Assert.False(Directory.Exists(home));
        }
        finally
        {
            Environment.SetEnvironmentVariable("CLUSTER_HOME", saved);
        }
    }

    [Fact]
    public void Start_ClusterApp_WhatIf_starts_nothing()
    {
        using var folder = new TempFolder();
        string home = folder.Combine("home");
        string script = folder.WriteFile("app.js", "console.log('hi');\n");
        string? saved = Environment.GetEnvironmentVariable("CLUSTER_HOME");
        Environment.SetEnvironmentVariable("CLUSTER_HOME", home);
        try
        {
            Collection<PSObject> output = _module.Invoke($"Start-ClusterApp -Path '{script}' -WhatIf", out PowerShell shell);
            using (shell)
            {
                Assert.Empty(output);
                Assert.Empty(shell.Streams.Error);
            }

            Assert.False(Directory.Exists(home));
        }
        finally
        {
            Environment.SetEnvironmentVariable("CLUSTER_HOME", saved);
        }
    }
}
