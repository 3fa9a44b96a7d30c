using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Gets what an app's instances wrote to stdout and stderr; with -Follow, keeps streaming new lines until Ctrl+C.</summary>
    [Cmdlet(VerbsCommon.Get, "ClusterAppLog")]
    [OutputType(typeof(LogLine))]
    public sealed class GetClusterAppLogCommand : ClusterCmdlet
    {
        /// <summary>The app's name.</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(AppNameCompleter))]
        [ValidateNotNullOrEmpty]
        public string Name { get; set; } = "";

        /// <summary>Only this instance (its NODE_APP_INSTANCE); all instances when left out.</summary>
        [Parameter]
        [ValidateRange(0, int.MaxValue)]
        public int Instance { get; set; }

        /// <summary>How many of the last lines of each stream of each instance (default 20).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTailLines)]
        public int Tail { get; set; } = 20;

        /// <summary>Keep writing new lines as the instances write them, until Ctrl+C.</summary>
        [Parameter]
        public SwitchParameter Follow { get; set; }

        protected override void ProcessRecord()
        {
            var query = new LogQuery
            {
                Instance = MyInvocation.BoundParameters.ContainsKey(nameof(Instance)) ? Instance : (int?)null,
                Tail = Tail,
                Follow = Follow,
            };
            Send(new Request { Command = CommandNames.Logs, Name = Name, Logs = query }, frame =>
            {
                foreach (LogLineInfo line in frame.Lines ?? new System.Collections.Generic.List<LogLineInfo>())
                {
                    WriteObject(new LogLine(line));
                }
            });
        }
    }
}
