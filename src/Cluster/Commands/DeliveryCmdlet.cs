using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>
    /// A cmdlet that sends something (a signal, a message) to an app's running instances: every one, or those
    /// -Instance names. Apps bind by Name, and instances (Get-ClusterApp api | Select-Object -ExpandProperty Instances) by AppName and Instance.
    /// </summary>
    public abstract class DeliveryCmdlet : ClusterCmdlet
    {
        /// <summary>Names of the apps; wildcards are allowed.</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("AppName")]
        [ArgumentCompleter(typeof(AppNameCompleter))]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[] Name { get; set; } = new string[0];

        /// <summary>Only these instances (their NODE_APP_INSTANCE numbers); every running instance when left out.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [ValidateRange(0, Limits.MaxInstances)]
        public int[]? Instance { get; set; }

        /// <summary>Output the app afterwards.</summary>
        [Parameter]
        public SwitchParameter PassThru { get; set; }

        /// <summary>The command of the request (signal or message).</summary>
        internal abstract string Command { get; }

        /// <summary>What is sent, for -WhatIf and -Confirm.</summary>
        protected abstract string What { get; }

        /// <summary>The delivery for the request; null, after writing the error, when there is none to send.</summary>
        internal abstract DeliverySpec? Delivery();

        protected override void ProcessRecord()
        {
            List<int>? instances = MyInvocation.BoundParameters.ContainsKey(nameof(Instance)) && Instance is not null ? Instance.Distinct().ToList() : null;
            string which = instances is null ? "every running instance" : (instances.Count == 1 ? "instance " : "instances ") + string.Join(", ", instances);
            foreach (string name in ResolveNames(Name))
            {
                if (!ShouldProcess(name, $"Send {What} to {which}"))
                {
                    continue;
                }

                if (!(Delivery() is { } delivery))
                {
                    return;
                }

                delivery.Instances = instances;
                foreach (App app in SendForApps(new Request { Command = Command, Name = name, Deliver = delivery }))
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
