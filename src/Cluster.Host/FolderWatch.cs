using System.Text.RegularExpressions;
using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>
/// Watches an app's folder (the folder of its script) for -Watch: every change to a file or folder under it that
/// no ignore pattern matches is reported, on the watcher's thread, for the app's loop to take. node_modules and
/// .git are always ignored; -WatchIgnore adds names or wildcard patterns (* and ?), matched against each part of
/// the changed path and against the whole path relative to the folder.
/// </summary>
internal sealed class FolderWatch : IDisposable
{
    public static readonly IReadOnlyList<string> AlwaysIgnored = new[] { "node_modules", ".git" };

    public static readonly TimeSpan DefaultDelay = TimeSpan.FromMilliseconds(1000);

    private readonly FileSystemWatcher _watcher;
    private readonly Regex[] _ignored;

    public FolderWatch(string folder, IEnumerable<string> ignored, Action<string> changed)
    {
        Folder = folder;
        _ignored = AlwaysIgnored.Concat(ignored).Select(Pattern).ToArray();
        _watcher = new FileSystemWatcher(folder)
        {
            IncludeSubdirectories = true,
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size,
        };
        FileSystemEventHandler onChange = (_, e) =>
        {
            if (!IsIgnored(Path.GetRelativePath(folder, e.FullPath)))
            {
                changed(e.FullPath);
            }
        };
        _watcher.Changed += onChange;
        _watcher.Created += onChange;
        _watcher.Deleted += onChange;
        _watcher.Renamed += (_, e) => onChange(_, e);
        _watcher.EnableRaisingEvents = true;
    }

    public string Folder { get; }

    /// <summary>The folder -Watch watches for an app: its script's.</summary>
    public static string FolderOf(StartSpec spec) => Path.GetDirectoryName(spec.Script) ?? spec.WorkingDirectory;

    /// <summary>What arms a watch: a different value means a new one.</summary>
    public static string? KeyOf(StartSpec spec) =>
        spec.Watch ? string.Join("\n", new[] { FolderOf(spec) }.Concat(spec.WatchIgnore ?? new List<string>())) : null;

    /// <summary>Whether a path relative to the watched folder is ignored: one of its parts, or the whole of it, matches a pattern.</summary>
    public bool IsIgnored(string relative)
    {
        string normalized = relative.Replace('\\', '/');
        string[] parts = normalized.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return _ignored.Any(pattern => pattern.IsMatch(normalized) || parts.Any(pattern.IsMatch));
    }

    public void Dispose() => _watcher.Dispose();

    private static Regex Pattern(string wildcard) =>
        new("^" + Regex.Escape(wildcard.Replace('\\', '/').TrimEnd('/')).Replace("\\*", ".*", StringComparison.Ordinal).Replace("\\?", ".", StringComparison.Ordinal) + "$",
            OperatingSystem.IsWindows() ? RegexOptions.IgnoreCase | RegexOptions.CultureInvariant : RegexOptions.CultureInvariant);
}
