using System.Text;

namespace Cluster.Host;

/// <summary>How instance log files are rotated by default (the Node primary does the rotating).</summary>
internal static class LogRotation
{
    public const long DefaultMaxBytes = 10 * 1024 * 1024;
    public const int DefaultFileCount = 5;
}

/// <summary>Reads the last lines of a log file without reading the whole file.</summary>
internal static class LogTail
{
    private const int ChunkSize = 64 * 1024;

    public static long LengthOf(string path)
    {
        try
        {
            return new FileInfo(path).Exists ? new FileInfo(path).Length : 0;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    /// <summary>
    /// The last <paramref name="count"/> lines of the file, reading back from its end (or from <paramref name="to"/>)
    /// but not before <paramref name="from"/>.
    /// </summary>
    public static IReadOnlyList<string> Read(string path, int count, long from = 0, long? to = null)
    {
        if (count <= 0 || !File.Exists(path))
        {
            return Array.Empty<string>();
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        long end = Math.Min(to ?? stream.Length, stream.Length);
        if (from > end)
        {
            from = 0; // the file was rotated since
        }

        long start = Math.Max(from, end - ChunkSize);
        var lines = new List<string>();
        while (true)
        {
            stream.Position = start;
            var buffer = new byte[end - start];
            stream.ReadExactly(buffer);
            lines = SplitLines(Encoding.UTF8.GetString(buffer));
            bool cutMidLine = start > from;
            if (lines.Count > count || !cutMidLine)
            {
                break;
            }

            start = Math.Max(from, start - ChunkSize);
        }

        return lines.Count > count ? lines.GetRange(lines.Count - count, count) : lines;
    }

    public static List<string> SplitLines(string text)
    {
        var lines = new List<string>(text.Split('\n'));
        if (lines.Count > 0 && lines[^1].Length == 0)
        {
            lines.RemoveAt(lines.Count - 1);
        }

        for (int i = 0; i < lines.Count; i++)
        {
            lines[i] = lines[i].TrimEnd('\r');
        }

        return lines;
    }
}
