using System;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>
    /// Gets what apps' instances wrote to stdout and stderr, merged in time order; with -Follow, keeps streaming new
    /// lines until Ctrl+C. The apps named (or piped) are read together, so their lines interleave as they were written.
    /// </summary>
    [Cmdlet(VerbsCommon.Get, "ClusterAppLog")]
    [OutputType(typeof(LogLine))]
    public sealed class GetClusterAppLogCommand : ClusterCmdlet
    {
        private readonly List<string> _names = new List<string>();
        private bool _named;

        /// <summary>Names of the apps; wildcards are allowed. Every app when left out.</summary>
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(AppNameCompleter))]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[] Name { get; set; } = new string[0];

        /// <summary>Only this instance (its NODE_APP_INSTANCE); all instances when left out.</summary>
        [Parameter]
        [ValidateRange(0, int.MaxValue)]
        public int Instance { get; set; }

        /// <summary>How many of the last lines of each stream of each instance (default 20; with -Since, up to 100000).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTailLines)]
        public int Tail { get; set; } = 20;

        /// <summary>Only lines written at or after this time.</summary>
        [Parameter]
        public DateTime Since { get; set; }

        /// <summary>Only this stream: Out (stdout) or Err (stderr); both when left out.</summary>
        [Parameter]
        public LogStream Stream { get; set; }

        /// <summary>Keep writing new lines as the instances write them, until Ctrl+C.</summary>
        [Parameter]
        public SwitchParameter Follow { get; set; }

        protected override void ProcessRecord()
        {
            // Collected, not read one app at a time: the lines of every app named are merged in time order, and
            // -Follow follows them all at once.
            if (Name.Length > 0)
            {
                _named = true;
                _names.AddRange(ResolveNames(Name));
            }
        }

        protected override void EndProcessing()
        {
            if (_named && _names.Count == 0)
            {
                return; // wildcards that matched no app
            }

            bool since = MyInvocation.BoundParameters.ContainsKey(nameof(Since));
            var query = new LogQuery
            {
                Apps = _named ? _names.Distinct(StringComparer.OrdinalIgnoreCase).ToList() : null,
                Instance = Bound(nameof(Instance)),
                Tail = since && !MyInvocation.BoundParameters.ContainsKey(nameof(Tail)) ? Limits.MaxTailLines : Tail,
                Follow = Follow,
                Since = since ? new DateTimeOffset(Since.ToUniversalTime()) : (DateTimeOffset?)null,
                Stream = MyInvocation.BoundParameters.ContainsKey(nameof(Stream)) ? Stream.ToString().ToLowerInvariant() : null,
            };
            Send(new Request { Command = CommandNames.Logs, Logs = query }, frame =>
            {
                foreach (LogLineInfo line in frame.Lines ?? new List<LogLineInfo>())
                {
                    WriteObject(new LogLine(line));
                }
            });
        }
    }
}
