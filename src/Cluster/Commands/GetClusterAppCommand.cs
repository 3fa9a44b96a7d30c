using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
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

        protected override void ProcessRecord()
        {
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
