using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Text;
using Cluster.Protocol;
using Cluster.Settings;

namespace Cluster.Commands
{
    /// <summary>Writes apps' settings as a deployment file that Sync-ClusterApp applies; without -Path, outputs its text.</summary>
    [Cmdlet(VerbsData.Export, "ClusterApp", SupportsShouldProcess = true)]
    [OutputType(typeof(string), typeof(FileInfo))]
    public sealed class ExportClusterAppCommand : ClusterCmdlet
    {
        private readonly List<string> _names = new List<string>();

        /// <summary>Names of the apps to export; wildcards are allowed. Every app when left out.</summary>
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(AppNameCompleter))]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[] Name { get; set; } = { "*" };

        /// <summary>The .psd1 file to write. Without it, the file's text is output.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? Path { get; set; }

        /// <summary>Do not overwrite an existing file.</summary>
        [Parameter]
        public SwitchParameter NoClobber { get; set; }

        protected override void ProcessRecord() => _names.AddRange(ResolveNames(Name));

        protected override void EndProcessing()
        {
            List<StartSpec> all = Send(new Request { Command = CommandNames.Definitions })?.Specs ?? new List<StartSpec>();
            StartSpec[] chosen = all.Where(s => _names.Any(n => string.Equals(n, s.Name, System.StringComparison.OrdinalIgnoreCase))).ToArray();
            foreach (string missing in _names.Where(n => !all.Any(s => string.Equals(n, s.Name, System.StringComparison.OrdinalIgnoreCase))))
            {
                WriteError(NewError("AppNotFound", ErrorCategory.ObjectNotFound, $"There is no app named '{missing}'. Get-ClusterApp lists the apps there are.", missing));
            }

            string text = DataFileWriter.Write(chosen);
            if (Path is null)
            {
                WriteObject(text);
                return;
            }

            string file = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
            if (NoClobber && File.Exists(file))
            {
                WriteError(NewError("FileExists", ErrorCategory.ResourceExists, $"'{file}' exists, and -NoClobber was given. Choose another -Path, or leave out -NoClobber to overwrite it.", file));
                return;
            }

            if (ShouldProcess(file, $"Write the settings of {chosen.Length} apps"))
            {
                File.WriteAllText(file, text, new UTF8Encoding(false));
                WriteObject(new FileInfo(file));
            }
        }
    }
}
