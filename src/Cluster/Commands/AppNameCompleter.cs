using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using Cluster.Client;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Completes -Name with the apps of a running host (it never starts one just to complete a name).</summary>
    public sealed class AppNameCompleter : IArgumentCompleter
    {
        /// <summary>Tab completion must not keep the prompt waiting on a host that does not answer.</summary>
        private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(2);

        public IEnumerable<CompletionResult> CompleteArgument(
            string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            var pattern = new WildcardPattern((wordToComplete ?? "").Trim('\'', '"') + "*", WildcardOptions.IgnoreCase);
            return AppNames().Where(pattern.IsMatch).Select(name => new CompletionResult(name, name, CompletionResultType.ParameterValue, name));
        }

        private static IEnumerable<string> AppNames()
        {
            try
            {
                using HostConnection? connection = HostLauncher.TryConnect();
                if (connection is null)
                {
                    return Array.Empty<string>();
                }

                connection.ReadTimeout = ReadTimeout;
                connection.Send(new Request { Command = CommandNames.List });
                Frame? frame = connection.Read();
                return frame?.Apps?.Select(a => a.Name).ToArray() ?? Array.Empty<string>();
            }
            catch (Exception e) when (e is System.IO.IOException || e is ObjectDisposedException || e is HostNotRespondingException || e is HostProtocolException)
            {
                return Array.Empty<string>();
            }
        }
    }
}
