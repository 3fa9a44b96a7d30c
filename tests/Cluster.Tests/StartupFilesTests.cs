extern alias client;

using System.Diagnostics;
using System.Xml;
using Cluster.Tests.Support;
using Xunit;
using StartupFiles = client::Cluster.Client.StartupFiles;
using StartupScope = client::Cluster.StartupScope;

namespace Cluster.Tests;

/// <summary>
/// What Register-ClusterStartup writes for each service manager: the systemd unit (also checked by systemd-analyze
/// where it is installed; the Pester suite checks the user unit the cmdlet writes), the launchd property list and
/// the Task Scheduler XML, which can only be read here: launchd and Task Scheduler are not on this machine.
/// </summary>
public sealed class StartupFilesTests : IDisposable
{
    private const string Home = "/home/ann/my apps/.cluster";
    private static readonly string[] Command = { "/home/ann/my apps/.cluster/runtime/1.2.3/cluster-host", "--module", "/home/ann/my apps/.cluster/runtime/1.2.3", "--home", Home, "--foreground" };

    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Systemd_quoting_keeps_spaces_specifiers_variables_and_quotes_literal()
    {
        Assert.Equal("\"/srv/my app/100%% $$HOME \\\"x\\\" a\\\\b\"", StartupFiles.SystemdQuote("/srv/my app/100% $HOME \"x\" a\\b"));
    }

    [Fact]
    public void System_unit_runs_the_host_as_the_user_in_the_foreground_and_leaves_the_apps_on_stop()
    {
        string unit = StartupFiles.SystemdUnit(StartupScope.System, Home, Command, "ann", "1.2.3");
        string[] lines = unit.Split('\n');

        Assert.Contains("ExecStart=" + string.Join(" ", Command.Select(StartupFiles.SystemdQuote)), lines);
        Assert.Contains("User=ann", lines);
        Assert.Contains("KillMode=process", lines);
        Assert.Contains("Type=simple", lines);
        Assert.Contains("Restart=on-failure", lines);
        Assert.Contains("RestartPreventExitStatus=3 4", lines);
        Assert.Contains("WantedBy=multi-user.target", lines);
        Assert.Contains("After=network-online.target", lines);
        Assert.Contains("Environment=\"CLUSTER_HOME=/home/ann/my apps/.cluster\" \"DOTNET_GCgen0size=200000\"", lines);

        string[] userUnit = StartupFiles.SystemdUnit(StartupScope.User, Home, Command, "ann", "1.2.3").Split('\n');
        Assert.DoesNotContain(userUnit, l => l.StartsWith("User=", StringComparison.Ordinal));
        Assert.Contains("WantedBy=default.target", userUnit);
        Assert.Contains("KillMode=process", userUnit);
    }

    [Fact]
    public void System_unit_passes_systemd_analyze_verify()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // systemd exists only on Linux; the Windows and macOS files are checked below
        }

        string analyze = new[] { "/usr/bin/systemd-analyze", "/bin/systemd-analyze" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("systemd-analyze is not installed (Debian package systemd; .ci/run installs it).");
        string home = _folder.Combine("home dir");
        Directory.CreateDirectory(home);
        string host = _folder.WriteFile("cluster-host", "#!/bin/sh\n");
        File.SetUnixFileMode(host, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string unit = _folder.WriteFile("cluster-host.service", StartupFiles.SystemdUnit(StartupScope.System, home, new[] { host, "--module", _folder.Path, "--home", home, "--foreground" }, Environment.UserName, "1.2.3"));

        using Process verify = Process.Start(new ProcessStartInfo(analyze, new[] { "verify", unit }) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string output = verify.StandardOutput.ReadToEnd() + verify.StandardError.ReadToEnd();
        verify.WaitForExit();

        Assert.True(verify.ExitCode == 0, output);
        Assert.DoesNotContain("cluster-host.service:", output);
    }

    [Theory]
    [InlineData(StartupScope.User)]
    [InlineData(StartupScope.System)]
    public void Launchd_plist_has_the_keys_launchd_needs(StartupScope scope)
    {
        var document = new XmlDocument();
        using (var reader = XmlReader.Create(new StringReader(StartupFiles.LaunchdPlist(scope, Home, Command, "ann")), new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore }))
        {
            document.Load(reader);
        }

        Assert.Equal("plist", document.DocumentElement!.Name);
        Assert.Equal("1.0", document.DocumentElement.GetAttribute("version"));
        Dictionary<string, XmlElement> keys = Entries((XmlElement)document.DocumentElement.SelectSingleNode("dict")!);

        Assert.Equal(StartupFiles.LaunchdLabel, keys["Label"].InnerText);
        Assert.Equal(Command, keys["ProgramArguments"].SelectNodes("string")!.Cast<XmlElement>().Select(e => e.InnerText));
        Assert.Equal("true", keys["RunAtLoad"].Name);
        Assert.Equal("true", keys["AbandonProcessGroup"].Name);
        Assert.Equal("false", Entries(keys["KeepAlive"])["SuccessfulExit"].Name);
        Assert.Equal(Home, Entries(keys["EnvironmentVariables"])["CLUSTER_HOME"].InnerText);
        Assert.Equal(Home, keys["WorkingDirectory"].InnerText);
        Assert.Equal(scope == StartupScope.System, keys.ContainsKey("UserName"));
        Assert.StartsWith("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\"", StartupFiles.LaunchdPlist(scope, Home, Command, "ann"));
    }

    [Theory]
    [InlineData(StartupScope.User, "LogonTrigger", "InteractiveToken")]
    [InlineData(StartupScope.System, "BootTrigger", "S4U")]
    public void Scheduled_task_has_the_elements_Task_Scheduler_needs(StartupScope scope, string trigger, string logonType)
    {
        const string user = @"CONTOSO\ann";
        string[] command = { @"C:\Users\ann\.cluster\runtime\1.2.3\cluster-host.exe", "--module", @"C:\Users\ann\.cluster\runtime\1.2.3", "--home", @"C:\Users\ann\.cluster", "--foreground" };
        string xml = StartupFiles.TaskXml(scope, @"C:\Users\ann\.cluster", command, user, "1.2.3");
        var document = new XmlDocument();
        document.LoadXml(xml[(xml.IndexOf("?>", StringComparison.Ordinal) + 2)..]);
        var ns = new XmlNamespaceManager(document.NameTable);
        ns.AddNamespace("t", "http://schemas.microsoft.com/windows/2004/02/mit/task");
        string Text(string path) => document.SelectSingleNode(path, ns)?.InnerText ?? throw new Xunit.Sdk.XunitException($"{path} is missing from the task XML.");

        Assert.StartsWith("<?xml version=\"1.0\" encoding=\"UTF-16\"?>", xml);
        Assert.Equal("1.2", document.DocumentElement!.GetAttribute("version"));
        Assert.Equal(StartupFiles.TaskName, Text("/t:Task/t:RegistrationInfo/t:URI"));
        Assert.Equal("true", Text($"/t:Task/t:Triggers/t:{trigger}/t:Enabled"));
        Assert.Equal(user, Text("/t:Task/t:Principals/t:Principal/t:UserId"));
        Assert.Equal(logonType, Text("/t:Task/t:Principals/t:Principal/t:LogonType"));
        Assert.Equal("LeastPrivilege", Text("/t:Task/t:Principals/t:Principal/t:RunLevel"));
        Assert.Equal("PT0S", Text("/t:Task/t:Settings/t:ExecutionTimeLimit"));
        Assert.Equal("IgnoreNew", Text("/t:Task/t:Settings/t:MultipleInstancesPolicy"));
        Assert.Equal(command[0], Text("/t:Task/t:Actions/t:Exec/t:Command"));
        Assert.Equal(@"--module ""C:\Users\ann\.cluster\runtime\1.2.3"" --home ""C:\Users\ann\.cluster"" --foreground", Text("/t:Task/t:Actions/t:Exec/t:Arguments"));
        Assert.Equal("Author", document.SelectSingleNode("/t:Task/t:Actions", ns)!.Attributes!["Context"]!.Value);
    }

    private static Dictionary<string, XmlElement> Entries(XmlElement dict)
    {
        var entries = new Dictionary<string, XmlElement>();
        XmlElement[] children = dict.ChildNodes.OfType<XmlElement>().ToArray();
        for (int i = 0; i + 1 < children.Length; i += 2)
        {
            Assert.Equal("key", children[i].Name);
            entries[children[i].InnerText] = children[i + 1];
        }

        return entries;
    }
}
