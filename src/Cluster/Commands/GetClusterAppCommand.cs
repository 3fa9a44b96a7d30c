using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using Cluster.Fleet;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Gets the apps the Cluster host runs, with their instances.</summary>
    [Cmdlet(VerbsCommon.Get, "ClusterApp")]
    [OutputType(typeof(App))]
    public sealed class GetClusterAppCommand : ClusterCmdlet
    {
        /// <summary>Names of apps to get; wildcards are allowed. All apps when left out.</summary>
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(AppNameCompleter))]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[]? Name { get; set; }

        /// <summary>Get the apps of these machines (PSSession objects, from New-PSSession) instead of this one's; each app carries PSComputerName.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public PSSession[]? Session { get; set; }

        /// <summary>With -Session: how many machines are asked at once (default 32).</summary>
        [Parameter]
        [ValidateRange(1, 1000)]
        public int ThrottleLimit { get; set; } = 32;

        protected override void ProcessRecord()
        {
            if (Session is not null)
            {
                new FleetRunner(this).Read(Session, ThrottleLimit);
                return;
            }

            if (Name is null)
            {
                WriteApps(SendForApps(new Request { Command = CommandNames.List }));
                return;
            }

            List<App>? all = null;
            foreach (string name in Name)
            {
                if (!WildcardPattern.ContainsWildcardCharacters(name))
                {
                    WriteApps(SendForApps(new Request { Command = CommandNames.List, Name = name }));
                    continue;
                }

                all ??= SendForApps(new Request { Command = CommandNames.List }).ToList();
                var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
                WriteApps(all.Where(a => pattern.IsMatch(a.Name)));
            }
        }

        private void WriteApps(IEnumerable<App> apps)
        {
            foreach (App app in apps)
            {
                WriteObject(app);
            }
        }
    }
}
