using System;
using System.IO;
using System.Management.Automation;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Cluster
{
    /// <summary>
    /// On Windows PowerShell 5.1, loads the cmdlets' own dependencies (System.Text.Json and its helpers) from the
    /// module's Dependencies folder, answering only for assemblies that are there. PowerShell 7 ships newer
    /// copies of all of them, so there it does nothing.
    /// </summary>
    public sealed class ModuleInitializer : IModuleAssemblyInitializer, IModuleAssemblyCleanup
    {
        private static readonly string DependencyFolder =
            Path.Combine(Path.GetDirectoryName(typeof(ModuleInitializer).Assembly.Location) ?? ".", "Dependencies");

        private static bool IsWindowsPowerShell =>
            RuntimeInformation.FrameworkDescription.StartsWith(".NET Framework", StringComparison.Ordinal);

        public void OnImport()
        {
            if (IsWindowsPowerShell)
            {
                AppDomain.CurrentDomain.AssemblyResolve += ResolveDependency;
            }
        }

        public void OnRemove(PSModuleInfo module)
        {
            if (IsWindowsPowerShell)
            {
                AppDomain.CurrentDomain.AssemblyResolve -= ResolveDependency;
            }
        }

        private static Assembly? ResolveDependency(object? sender, ResolveEventArgs args)
        {
            string path = Path.Combine(DependencyFolder, new AssemblyName(args.Name).Name + ".dll");
            return File.Exists(path) ? Assembly.LoadFrom(path) : null;
        }
    }
}
