using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>What plain and graceful reload share: the rolling replacement of every instance, one app at a time.</summary>
    public abstract class ReloadCmdlet : AppNameCmdlet
    {
        /// <summary>Milliseconds to wait for each new instance to listen or say 'online' before going on (default: PM2_GRACEFUL_LISTEN_TIMEOUT, else 3000).</summary>
        [Parameter]
        [ValidateRange(0, Limits.MaxTimeoutMilliseconds)]
        public int ListenTimeout { get; set; }

        /// <summary>How many instances are replaced at once (default 1).</summary>
        [Parameter]
        [ValidateRange(1, Limits.MaxInstances)]
        public int Parallel { get; set; } = 1;

        /// <summary>Only these instances (their NODE_APP_INSTANCE numbers); every instance when left out.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public int[]? Instance { get; set; }

        /// <summary>If the app is already being reloaded, wait for that reload to finish instead of failing.</summary>
        [Parameter]
        public SwitchParameter Wait { get; set; }

        internal abstract bool Graceful { get; }

        internal abstract void AddTimeouts(ReloadSpec spec);

        protected override void ProcessRecord()
        {
            foreach (string name in Names)
            {
                if (!ShouldProcess(name, Graceful ? "Reload every instance gracefully" : "Reload every instance"))
                {
                    continue;
                }

                var spec = new ReloadSpec
                {
                    Graceful = Graceful,
                    ListenTimeoutMs = Bound(nameof(ListenTimeout)),
                    Parallel = Parallel,
                    Wait = Wait,
                    Instances = Instance?.ToList(),
                    SessionEnvironment = SessionTimeoutVariables(),
                };
                AddTimeouts(spec);
                foreach (App app in SendForApps(new Request { Command = CommandNames.Reload, Name = name, Reload = spec }))
                {
                    WriteObject(app);
                }
            }
        }

        internal int? Bound(string parameter) =>
            MyInvocation.BoundParameters.TryGetValue(parameter, out object? value) ? (int)value : (int?)null;

        private static Dictionary<string, string> SessionTimeoutVariables()
        {
            var variables = new Dictionary<string, string>();
            foreach (string name in EnvironmentPolicy.TimeoutVariables)
            {
                if (System.Environment.GetEnvironmentVariable(name) is { } value)
                {
                    variables[name] = value;
                }
            }

            return variables;
        }
    }
}
