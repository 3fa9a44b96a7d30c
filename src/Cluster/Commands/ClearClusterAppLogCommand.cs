using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>
    /// Empties the log files of apps' instances and removes their rotated files (pm2 flush). The apps go on running,
    /// and their next lines start the emptied files.
    /// </summary>
    [Cmdlet(VerbsCommon.Clear, "ClusterAppLog", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    public sealed class ClearClusterAppLogCommand : ClusterCmdlet
    {
        private bool _named;

        /// <summary>Names of the apps; wildcards are allowed. Every app when left out.</summary>
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(AppNameCompleter))]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[] Name { get; set; } = new string[0];

        protected override void ProcessRecord()
        {
            if (Name.Length == 0)
            {
                return;
            }

            _named = true;
            foreach (string name in ResolveNames(Name))
            {
                Clear(name);
            }
        }

        protected override void EndProcessing()
        {
            if (_named)
            {
                return;
            }

            IEnumerable<string> every = (Send(new Request { Command = CommandNames.List })?.Apps ?? new List<AppInfo>()).Select(a => a.Name);
            foreach (string name in every)
            {
                Clear(name);
            }
        }

        private void Clear(string name)
        {
            if (ShouldProcess(name, "Empty the app's log files and remove its rotated ones"))
            {
                Send(new Request { Command = CommandNames.ClearLogs, Logs = new LogQuery { Apps = new List<string> { name } } });
            }
        }
    }
}
