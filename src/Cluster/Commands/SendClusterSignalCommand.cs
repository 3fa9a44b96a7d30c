using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Sends a signal (SIGUSR2, SIGHUP, ...) to the running instances of an app, each process alone.</summary>
    [Cmdlet(VerbsCommunications.Send, "ClusterSignal", SupportsShouldProcess = true)]
    [OutputType(typeof(App))]
    public sealed class SendClusterSignalCommand : DeliveryCmdlet
    {
        /// <summary>The signal, by name: SIGUSR2, USR2 and usr2 are the same.</summary>
        [Parameter(Mandatory = true, Position = 1)]
        [ArgumentCompleter(typeof(SignalCompleter))]
        [ValidateNotNullOrEmpty]
        public string Signal { get; set; } = "";

        internal override string Command => CommandNames.Signal;

        protected override string What => Signals.Normalize(Signal) ?? Signal;

        internal override DeliverySpec? Delivery()
        {
            if (Signals.Normalize(Signal) is { } signal)
            {
                return new DeliverySpec { Signal = signal };
            }

            ThrowTerminatingError(NewError(
                "InvalidSignal",
                ErrorCategory.InvalidArgument,
                $"'{Signal}' is not a signal. Give one of {string.Join(", ", Signals.Names)}.",
                Signal));
            return null;
        }
    }
}

namespace Cluster.Commands
{
    /// <summary>Completes -Signal with the names of the signals.</summary>
    public sealed class SignalCompleter : System.Management.Automation.IArgumentCompleter
    {
        public System.Collections.Generic.IEnumerable<System.Management.Automation.CompletionResult> CompleteArgument(
            string commandName, string parameterName, string wordToComplete, System.Management.Automation.Language.CommandAst commandAst, System.Collections.IDictionary fakeBoundParameters)
        {
            string typed = (wordToComplete ?? "").Trim('\'', '"').ToUpperInvariant();
            foreach (string name in Cluster.Protocol.Signals.Names)
            {
                if (name.StartsWith(typed, System.StringComparison.Ordinal) || name.Substring(3).StartsWith(typed, System.StringComparison.Ordinal))
                {
                    yield return new System.Management.Automation.CompletionResult(name, name, System.Management.Automation.CompletionResultType.ParameterValue, name);
                }
            }
        }
    }
}
