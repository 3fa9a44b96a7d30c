using System.Text;
using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>
/// The log files of an app's instances (all, or one): their last lines, then what is written to them from
/// then on (Get-ClusterLog -Follow). The tail ends where following starts, so no line is lost or repeated.
/// </summary>
internal sealed class AppLogs
{
    private readonly HostPaths _paths;
    private readonly string _app;
    private readonly IReadOnlyList<int> _instances;
    private readonly int? _instance;
    private readonly Dictionary<string, long> _offsets = new();

    /// <param name="instances">The app's instances, as its loop gave them.</param>
    public AppLogs(HostPaths paths, string app, IReadOnlyList<int> instances, int? instance)
    {
        if (instance is { } wanted && !instances.Contains(wanted))
        {
            throw new ClusterException(
                "InstanceNotFound",
                ErrorCategories.ObjectNotFound,
                $"'{app}' has no instance {wanted}. Its instances are 0 to {instances.Count - 1}.",
                wanted.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        _paths = paths;
        _app = app;
        _instances = instances;
        _instance = instance;
        foreach (var (path, _, _) in Files())
        {
            _offsets[path] = LogTail.LengthOf(path);
        }
    }

    /// <summary>The last lines of each stream of each instance, up to where following starts.</summary>
    public List<LogLineInfo> Tail(int count)
    {
        var lines = new List<LogLineInfo>();
        foreach (var (path, instance, stream) in Files())
        {
            lines.AddRange(LogTail.Read(path, count, to: _offsets.GetValueOrDefault(path)).Select(text => Line(instance, stream, text)));
        }

        return lines;
    }

    /// <summary>The whole lines written since the last call (or since this was made).</summary>
    public List<LogLineInfo> ReadNew()
    {
        var lines = new List<LogLineInfo>();
        foreach (var (path, instance, stream) in Files())
        {
            long length = LogTail.LengthOf(path);
            long from = _offsets.GetValueOrDefault(path);
            if (length < from)
            {
                from = 0; // rotated or truncated
            }

            if (length == from)
            {
                continue;
            }

            string text = ReadRange(path, from, length, out long consumed);
            _offsets[path] = from + consumed;
            lines.AddRange(LogTail.SplitLines(text).Select(t => Line(instance, stream, t)));
        }

        return lines;
    }

    private LogLineInfo Line(int instance, string stream, string text) =>
        new() { App = _app, Instance = instance, Stream = stream, Text = text };

    private IEnumerable<(string Path, int Instance, string Stream)> Files()
    {
        foreach (int instance in _instances.Where(i => _instance is null || i == _instance))
        {
            yield return (_paths.OutLog(_app, instance), instance, "out");
            yield return (_paths.ErrorLog(_app, instance), instance, "err");
        }
    }

    /// <summary>Reads whole lines only: a line still being written is left for the next read.</summary>
    private static string ReadRange(string path, long from, long to, out long consumed)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        stream.Position = from;
        var buffer = new byte[(int)Math.Min(to - from, 4 * 1024 * 1024)];
        int read = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        int lastNewline = Array.LastIndexOf(buffer, (byte)'\n', Math.Max(0, read - 1));
        consumed = lastNewline < 0 ? 0 : lastNewline + 1;
        return Encoding.UTF8.GetString(buffer, 0, (int)consumed);
    }
}
