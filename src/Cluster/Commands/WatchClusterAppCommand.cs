using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Text;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>
    /// A live view of the apps and their instances (pm2 monit): redrawn in place once a second until Ctrl+C. When its
    /// output goes on down a pipeline or is redirected, it writes the app objects of each refresh, and nothing else.
    /// </summary>
    [Cmdlet(VerbsCommon.Watch, "ClusterApp")]
    [OutputType(typeof(App))]
    public sealed class WatchClusterAppCommand : ClusterCmdlet
    {
        // Cursor to the top left, then each line cleared to its end, then the rest of the screen cleared.
        private const string Home = "\u001b[H";
        private const string ClearLine = "\u001b[K";
        private const string ClearBelow = "\u001b[J";
        private const string ClearScreen = "\u001b[2J";

        /// <summary>Names of apps to watch; wildcards are allowed. All apps when left out.</summary>
        [Parameter(Position = 0)]
        [ArgumentCompleter(typeof(AppNameCompleter))]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[]? Name { get; set; }

        /// <summary>Seconds between two refreshes (default 1).</summary>
        [Parameter]
        [ValidateRange(1, 3600)]
        public int Interval { get; set; } = 1;

        /// <summary>Stop after this many refreshes; until Ctrl+C when left out.</summary>
        [Parameter]
        [ValidateRange(1, int.MaxValue)]
        public int Count { get; set; }

        protected override void EndProcessing()
        {
            bool draw = DrawsInPlace();
            int refreshes = Bound(nameof(Count)) ?? int.MaxValue;
            for (int i = 0; i < refreshes; i++)
            {
                if (i > 0 && Cancel.WaitHandle.WaitOne(TimeSpan.FromSeconds(Interval)))
                {
                    return;
                }

                IReadOnlyList<App> apps = Apps();
                if (draw)
                {
                    Host.UI.Write((i == 0 ? ClearScreen : "") + Screen(apps));
                }
                else
                {
                    foreach (App app in apps)
                    {
                        WriteObject(app);
                    }
                }
            }
        }

        /// <summary>Only at the end of a pipeline whose output reaches a console: anything else gets objects.</summary>
        private bool DrawsInPlace() =>
            MyInvocation.PipelinePosition == MyInvocation.PipelineLength
            && !Console.IsOutputRedirected
            && Host.Name == "ConsoleHost";

        private IReadOnlyList<App> Apps()
        {
            IReadOnlyList<App> all = SendForApps(new Request { Command = CommandNames.List });
            if (Name is null)
            {
                return all;
            }

            WildcardPattern[] patterns = Name.Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToArray();
            return all.Where(a => patterns.Any(p => p.IsMatch(a.Name))).ToArray();
        }

        /// <summary>The apps table and the instances table, as the format views show them, written over the last screen.</summary>
        private string Screen(IReadOnlyList<App> apps)
        {
            int width = Math.Max(40, Host.UI.RawUI.WindowSize.Width - 1);
            string text;
            using (var shell = PowerShell.Create(RunspaceMode.CurrentRunspace))
            {
                shell.AddScript(
                    "param($Apps, $Width) " +
                    "@(($Apps | Format-Table | Out-String -Width $Width).TrimEnd(), ($Apps.Instances | Format-Table | Out-String -Width $Width).TrimEnd()) -join [Environment]::NewLine")
                    .AddArgument(apps.ToArray())
                    .AddArgument(width);
                text = string.Concat(shell.Invoke().Select(o => o?.ToString()));
            }

            var screen = new StringBuilder(Home);
            screen.Append("Cluster apps, every ").Append(Interval).Append(" s (Ctrl+C to stop) ").Append(DateTime.Now.ToString("HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture));
            screen.Append(ClearLine).AppendLine();
            foreach (string line in (apps.Count == 0 ? "No apps." : text).Split('\n'))
            {
                screen.Append(line.TrimEnd('\r')).Append(ClearLine).AppendLine();
            }

            return screen.Append(ClearBelow).ToString();
        }
    }
}
