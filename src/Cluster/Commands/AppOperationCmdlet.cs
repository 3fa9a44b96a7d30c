using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>A state-changing cmdlet that sends one request per app and, with -PassThru, outputs the app after it.</summary>
    public abstract class AppOperationCmdlet : AppNameCmdlet
    {
        /// <summary>Output the app as it is afterwards.</summary>
        [Parameter]
        public SwitchParameter PassThru { get; set; }

        /// <summary>What the operation does, for -WhatIf and -Confirm.</summary>
        protected abstract string Action { get; }

        /// <summary>The request for one app; null, after writing the error, when there is none to send.</summary>
        internal abstract Request? RequestFor(string name);

        protected override void ProcessRecord()
        {
            foreach (string name in Names)
            {
                if (!ShouldProcess(name, Action))
                {
                    continue;
                }

                if (!(RequestFor(name) is { } request))
                {
                    continue;
                }

                foreach (App app in SendForApps(request))
                {
                    if (PassThru)
                    {
                        WriteObject(app);
                    }
                }
            }
        }
    }
}
