using System.Collections.Generic;
using System.Management.Automation;

namespace Cluster.Commands
{
    /// <summary>A cmdlet that acts on apps by name: Get-ClusterApp | Stop-ClusterApp binds by the Name property.</summary>
    public abstract class AppNameCmdlet : ClusterCmdlet
    {
        /// <summary>Names of the apps; wildcards are allowed.</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(AppNameCompleter))]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[] Name { get; set; } = new string[0];

        /// <summary>The apps named, with wildcards expanded.</summary>
        protected IEnumerable<string> Names => ResolveNames(Name);
    }
}
