using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Xml;

namespace Cluster.Client
{
    /// <summary>What starts the host at boot or logon on one platform: the file, where it goes, and what it runs.</summary>
    internal sealed class StartupPlan
    {
        public StartupPlan(StartupKind kind, StartupScope scope, string path, string content, Encoding encoding, string? enableLink, IReadOnlyList<string> command)
        {
            Kind = kind;
            Scope = scope;
            Path = path;
            Content = content;
            Encoding = encoding;
            EnableLink = enableLink;
            Command = command;
        }

        public StartupKind Kind { get; }

        public StartupScope Scope { get; }

        /// <summary>The file written: a systemd unit, a launchd property list, or a scheduled task's XML.</summary>
        public string Path { get; }

        public string Content { get; }

        public Encoding Encoding { get; }

        /// <summary>systemd: the link in the target's .wants folder that enables the unit, as 'systemctl enable' makes it.</summary>
        public string? EnableLink { get; }

        /// <summary>The host's command line: its runtime copy in CLUSTER_HOME, in the foreground.</summary>
        public IReadOnlyList<string> Command { get; }
    }

    /// <summary>
    /// Writes what a service manager needs to run the host in the foreground at boot (or logon): a systemd unit, a
    /// launchd property list, a Task Scheduler task. The service manager then owns the host; its apps are left
    /// running when it stops the host (KillMode=process, AbandonProcessGroup), so that a restart of the service
    /// costs no app a request: the next host takes them back.
    /// </summary>
    internal static class StartupFiles
    {
        public const string UnitName = "cluster-host.service";
        public const string LaunchdLabel = "io.github.cluster-ps.cluster-host";
        public const string TaskFolder = @"\Cluster";
        public const string TaskName = @"\Cluster\ClusterHost";

        /// <summary>The host's small gen0 budget, as the launcher gives it (see HostLauncher).</summary>
        private static readonly KeyValuePair<string, string> GcBudget = new KeyValuePair<string, string>("DOTNET_GCgen0size", "200000");

        public static StartupKind KindForThisPlatform() => Platform.Current switch
        {
            OperatingSystemFamily.Windows => StartupKind.ScheduledTask,
            OperatingSystemFamily.MacOS => StartupKind.Launchd,
            _ => StartupKind.Systemd,
        };

        public static string PathFor(StartupKind kind, StartupScope scope, string home)
        {
            switch (kind)
            {
                case StartupKind.Systemd:
                    return System.IO.Path.Combine(SystemdFolder(scope), UnitName);
                case StartupKind.Launchd:
                    return scope == StartupScope.User
                        ? System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), "Library", "LaunchAgents", LaunchdLabel + ".plist")
                        : System.IO.Path.Combine("/Library/LaunchDaemons", LaunchdLabel + ".plist");
                default:
                    return System.IO.Path.Combine(home, "startup", "ClusterHost.xml");
            }
        }

        public static StartupPlan Plan(StartupKind kind, StartupScope scope, string home, IReadOnlyList<string> command, string user, string version)
        {
            string path = PathFor(kind, scope, home);
            switch (kind)
            {
                case StartupKind.Systemd:
                    return new StartupPlan(kind, scope, path, SystemdUnit(scope, home, command, user, version), new UTF8Encoding(false), EnableLinkFor(kind, scope, path), command);
                case StartupKind.Launchd:
                    return new StartupPlan(kind, scope, path, LaunchdPlist(scope, home, command, user), new UTF8Encoding(false), null, command);
                default:
                    return new StartupPlan(kind, scope, path, TaskXml(scope, home, command, user, version), Encoding.Unicode, null, command);
            }
        }

        /// <summary>systemd: the link in the wanting target's .wants folder, as 'systemctl enable' makes it; else null.</summary>
        public static string? EnableLinkFor(StartupKind kind, StartupScope scope, string path) =>
            kind == StartupKind.Systemd
                ? System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path)!, WantedBy(scope) + ".wants", UnitName)
                : null;

        private static string WantedBy(StartupScope scope) => scope == StartupScope.User ? "default.target" : "multi-user.target";

        private static string SystemdFolder(StartupScope scope)
        {
            if (scope == StartupScope.System)
            {
                return "/etc/systemd/system";
            }

            string? config = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
            if (string.IsNullOrEmpty(config) || !System.IO.Path.IsPathRooted(config))
            {
                config = System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
            }

            return System.IO.Path.Combine(config, "systemd", "user");
        }

        internal static string SystemdUnit(StartupScope scope, string home, IReadOnlyList<string> command, string user, string version)
        {
            var unit = new StringBuilder();
            unit.Append("# Written by Register-ClusterStartup (Cluster ").Append(version).Append("); Unregister-ClusterStartup removes it.\n");
            unit.Append("# Run Register-ClusterStartup again after updating the module, so that the new host runs at boot.\n");
            unit.Append("[Unit]\n");
            unit.Append("Description=Cluster host: the Node.js apps of ").Append(SystemdEscape(home)).Append('\n');
            unit.Append("Documentation=https://github.com/cluster-ps/Cluster\n");
            if (scope == StartupScope.System)
            {
                unit.Append("Wants=network-online.target\n");
                unit.Append("After=network-online.target\n");
            }

            unit.Append('\n');
            unit.Append("[Service]\n");
            unit.Append("Type=simple\n");
            unit.Append("ExecStart=").Append(string.Join(" ", command.Select(SystemdQuote))).Append('\n');
            unit.Append("WorkingDirectory=").Append(SystemdEscape(home)).Append('\n');
            unit.Append("Environment=").Append(SystemdQuote("CLUSTER_HOME=" + home)).Append(' ').Append(SystemdQuote(GcBudget.Key + "=" + GcBudget.Value)).Append('\n');
            if (scope == StartupScope.System)
            {
                unit.Append("User=").Append(SystemdEscape(user)).Append('\n');
            }

            // Only the host is stopped with the unit: the Node primaries and the apps go on serving, and the host
            // the unit starts next takes them back.
            unit.Append("KillMode=process\n");
            unit.Append("Restart=on-failure\n");
            unit.Append("RestartSec=2\n");
            // 3: another host already serves this CLUSTER_HOME (one a cmdlet started). 4: CLUSTER_HOME is not safe;
            // starting again would not change that.
            unit.Append("SuccessExitStatus=3\n");
            unit.Append("RestartPreventExitStatus=3 4\n");
            unit.Append('\n');
            unit.Append("[Install]\n");
            unit.Append("WantedBy=").Append(WantedBy(scope)).Append('\n');
            return unit.ToString();
        }

        /// <summary>One word of a systemd command line: quoted, with specifiers and variables kept literal.</summary>
        internal static string SystemdQuote(string word)
        {
            var quoted = new StringBuilder("\"");
            foreach (char c in word)
            {
                switch (c)
                {
                    case '\\': quoted.Append("\\\\"); break;
                    case '"': quoted.Append("\\\""); break;
                    case '%': quoted.Append("%%"); break;
                    case '$': quoted.Append("$$"); break;
                    default: quoted.Append(c); break;
                }
            }

            return quoted.Append('"').ToString();
        }

        /// <summary>A value of a systemd setting that is not a command line: specifiers kept literal, no line breaks.</summary>
        private static string SystemdEscape(string value) => value.Replace("%", "%%").Replace("\n", " ").Replace("\r", " ");

        internal static string LaunchdPlist(StartupScope scope, string home, IReadOnlyList<string> command, string user)
        {
            var text = new StringBuilder();
            var settings = new XmlWriterSettings { Indent = true, IndentChars = "  ", Encoding = new UTF8Encoding(false), OmitXmlDeclaration = true };
            using (var writer = XmlWriter.Create(text, settings))
            {
                writer.WriteDocType("plist", "-//Apple//DTD PLIST 1.0//EN", "http://www.apple.com/DTDs/PropertyList-1.0.dtd", null);
                writer.WriteStartElement("plist");
                writer.WriteAttributeString("version", "1.0");
                writer.WriteStartElement("dict");
                Key(writer, "Label");
                writer.WriteElementString("string", LaunchdLabel);
                Key(writer, "ProgramArguments");
                writer.WriteStartElement("array");
                foreach (string word in command)
                {
                    writer.WriteElementString("string", word);
                }

                writer.WriteEndElement();
                Key(writer, "WorkingDirectory");
                writer.WriteElementString("string", home);
                Key(writer, "EnvironmentVariables");
                writer.WriteStartElement("dict");
                Key(writer, "CLUSTER_HOME");
                writer.WriteElementString("string", home);
                Key(writer, GcBudget.Key);
                writer.WriteElementString("string", GcBudget.Value);
                writer.WriteEndElement();
                if (scope == StartupScope.System)
                {
                    Key(writer, "UserName");
                    writer.WriteElementString("string", user);
                }

                Key(writer, "RunAtLoad");
                writer.WriteElementString("true", "");
                // Started again when it fails, not when it exits on purpose (Stop-ClusterHost).
                Key(writer, "KeepAlive");
                writer.WriteStartElement("dict");
                Key(writer, "SuccessfulExit");
                writer.WriteElementString("false", "");
                writer.WriteEndElement();
                // The apps are not the job's to kill when the host stops: the next host takes them back.
                Key(writer, "AbandonProcessGroup");
                writer.WriteElementString("true", "");
                Key(writer, "ProcessType");
                writer.WriteElementString("string", "Background");
                writer.WriteEndElement();
                writer.WriteEndElement();
            }

            return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + text.ToString().Replace("\r\n", "\n").Replace("<true></true>", "<true />").Replace("<false></false>", "<false />") + "\n";
        }

        private static void Key(XmlWriter writer, string key) => writer.WriteElementString("key", key);

        internal static string TaskXml(StartupScope scope, string home, IReadOnlyList<string> command, string user, string version)
        {
            const string ns = "http://schemas.microsoft.com/windows/2004/02/mit/task";
            var text = new StringBuilder();
            var settings = new XmlWriterSettings { Indent = true, IndentChars = "  ", OmitXmlDeclaration = true };
            using (var writer = XmlWriter.Create(text, settings))
            {
                writer.WriteStartElement("Task", ns);
                writer.WriteAttributeString("version", "1.2");
                writer.WriteStartElement("RegistrationInfo", ns);
                writer.WriteElementString("Description", ns, $"Starts the Cluster host (Cluster {version}) of {home}: the Node.js apps it runs come back. Written by Register-ClusterStartup; Unregister-ClusterStartup removes it.");
                writer.WriteElementString("URI", ns, TaskName);
                writer.WriteEndElement();

                writer.WriteStartElement("Triggers", ns);
                if (scope == StartupScope.User)
                {
                    writer.WriteStartElement("LogonTrigger", ns);
                    writer.WriteElementString("Enabled", ns, "true");
                    writer.WriteElementString("UserId", ns, user);
                    writer.WriteEndElement();
                }
                else
                {
                    writer.WriteStartElement("BootTrigger", ns);
                    writer.WriteElementString("Enabled", ns, "true");
                    writer.WriteEndElement();
                }

                writer.WriteEndElement();

                writer.WriteStartElement("Principals", ns);
                writer.WriteStartElement("Principal", ns);
                writer.WriteAttributeString("id", "Author");
                writer.WriteElementString("UserId", ns, user);
                // At boot no one is logged on: S4U runs the task as the user without a stored password.
                writer.WriteElementString("LogonType", ns, scope == StartupScope.User ? "InteractiveToken" : "S4U");
                writer.WriteElementString("RunLevel", ns, "LeastPrivilege");
                writer.WriteEndElement();
                writer.WriteEndElement();

                writer.WriteStartElement("Settings", ns);
                writer.WriteElementString("MultipleInstancesPolicy", ns, "IgnoreNew");
                writer.WriteElementString("DisallowStartIfOnBatteries", ns, "false");
                writer.WriteElementString("StopIfGoingOnBatteries", ns, "false");
                writer.WriteElementString("AllowHardTerminate", ns, "true");
                writer.WriteElementString("StartWhenAvailable", ns, "true");
                writer.WriteElementString("AllowStartOnDemand", ns, "true");
                writer.WriteElementString("Enabled", ns, "true");
                writer.WriteElementString("Hidden", ns, "false");
                // No time limit: the host runs until the machine stops or Stop-ClusterHost.
                writer.WriteElementString("ExecutionTimeLimit", ns, "PT0S");
                writer.WriteStartElement("RestartOnFailure", ns);
                writer.WriteElementString("Interval", ns, "PT1M");
                writer.WriteElementString("Count", ns, "3");
                writer.WriteEndElement();
                writer.WriteEndElement();

                writer.WriteStartElement("Actions", ns);
                writer.WriteAttributeString("Context", "Author");
                writer.WriteStartElement("Exec", ns);
                writer.WriteElementString("Command", ns, command[0]);
                writer.WriteElementString("Arguments", ns, string.Join(" ", command.Skip(1).Select(HostLauncher.Quote)));
                writer.WriteElementString("WorkingDirectory", ns, home);
                writer.WriteEndElement();
                writer.WriteEndElement();
                writer.WriteEndElement();
            }

            return "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n" + text.ToString().Replace("\r\n", "\n").Replace("\n", "\r\n") + "\r\n";
        }
    }
}
