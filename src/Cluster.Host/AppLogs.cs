using System.Text;
using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>Reads what an app's instances write to their logs from now on (Get-ClusterLog -Follow).</summary>
internal sealed class LogFollower
{
    private readonly HostPaths _paths;
    private readonly ManagedApp _app;
    private readonly int? _instance;
    private readonly Dictionary<string, long> _offsets = new();

    public LogFollower(HostPaths paths, ManagedApp app, int? instance)
    {
        _paths = paths;
        _app = app;
        _instance = instance;
        foreach (var (path, _, _) in Files())
        {
            _offsets[path] = LogTail.LengthOf(path);
        }
    }

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
            lines.AddRange(LogTail.SplitLines(text).Select(t => new LogLineInfo { App = _app.Name, Instance = instance, Stream = stream, Text = t }));
        }

        return lines;
    }

    private IEnumerable<(string Path, int Instance, string Stream)> Files()
    {
        foreach (Slot slot in _app.Slots.Where(s => _instance is null || s.Instance == _instance))
        {
            yield return (_paths.OutLog(_app.Name, slot.Instance), slot.Instance, "out");
            yield return (_paths.ErrorLog(_app.Name, slot.Instance), slot.Instance, "err");
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
