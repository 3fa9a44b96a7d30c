using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Cluster.Host;

/// <summary>How instance log files are rotated by default (the Node primary does the rotating).</summary>
internal static class LogRotation
{
    public const long DefaultMaxBytes = 10 * 1024 * 1024;
    public const int DefaultFileCount = 5;
}

/// <summary>One line of a log file and the offset just after it (after its newline, when it has one).</summary>
internal readonly record struct LogLine(string Text, long End);

/// <summary>
/// Reads log files in blocks: the last lines by reading back from the end (the cost is in what is returned, not in
/// the size of the file), and lines forward from an offset. Memory is one block plus the line being read.
/// </summary>
internal static class LogTail
{
    public const int BlockSize = 64 * 1024;

    /// <summary>
    /// A line longer than this (the primary writes none longer than 64 KiB; a file written by something else might
    /// hold one) is returned in pieces, so that no single line can take the host's memory.
    /// </summary>
    public const int MaxLineBytes = 1024 * 1024;

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

    /// <summary>Opens a log for reading, as its writer goes on writing, renaming or removing it; null when there is none.</summary>
    public static SafeFileHandle? OpenRead(string path)
    {
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or IOException)
        {
            return null;
        }
    }

    /// <summary>
    /// The last <paramref name="count"/> lines of the file, reading back from its end (or from <paramref name="to"/>)
    /// but not before <paramref name="from"/>.
    /// </summary>
    public static IReadOnlyList<string> Read(string path, int count, long from = 0, long? to = null)
    {
        if (count <= 0)
        {
            return Array.Empty<string>();
        }

        using SafeFileHandle? file = OpenRead(path);
        if (file is null)
        {
            return Array.Empty<string>();
        }

        long end = Math.Min(to ?? long.MaxValue, RandomAccess.GetLength(file));
        if (from > end)
        {
            from = 0; // the file was rotated since
        }

        long start = StartOfLastLines(file, count, from, end);
        var lines = new List<string>();
        foreach (LogLine line in ReadLines(file, start, end, withUnterminated: true))
        {
            lines.Add(line.Text);
        }

        // More only when a line was longer than MaxLineBytes and came in pieces.
        return lines.Count > count ? lines.GetRange(lines.Count - count, count) : lines;
    }

    /// <summary>
    /// Where the last <paramref name="count"/> lines before <paramref name="end"/> begin (not before
    /// <paramref name="from"/>): found by reading back block by block and counting newlines, so the cost is in
    /// the lines asked for, not in the size of the file. A last line without its newline counts as a line.
    /// </summary>
    public static long StartOfLastLines(SafeFileHandle file, int count, long from, long end)
    {
        if (count <= 0 || end <= from)
        {
            return end;
        }

        byte[] block = new byte[(int)Math.Min(BlockSize, end - from)];
        long position = end;
        int found = 0;
        bool last = true; // the newline that ends the file's last line begins no line
        while (position > from)
        {
            int size = (int)Math.Min(block.Length, position - from);
            position -= size;
            int read = ReadAt(file, block.AsSpan(0, size), position);
            for (int i = read - 1; i >= 0; i--)
            {
                if (block[i] != (byte)'\n')
                {
                    last = false;
                    continue;
                }

                if (last)
                {
                    last = false;
                    continue;
                }

                if (++found == count)
                {
                    return position + i + 1;
                }
            }
        }

        return from;
    }

    /// <summary>
    /// The lines from <paramref name="start"/> (the start of a line) to <paramref name="end"/>, read forward block by
    /// block, each with the offset after it. A last line without a newline is returned only when
    /// <paramref name="withUnterminated"/> (its writer may not have finished it). Ends early if the file shrinks.
    /// </summary>
    public static IEnumerable<LogLine> ReadLines(SafeFileHandle file, long start, long end, bool withUnterminated)
    {
        byte[] block = new byte[(int)Math.Clamp(end - start, 1, BlockSize)];
        var pending = new MemoryStream(); // the start of a line that began in an earlier block
        long position = start;
        while (position < end)
        {
            int read = ReadAt(file, block.AsSpan(0, (int)Math.Min(block.Length, end - position)), position);
            if (read == 0)
            {
                break;
            }

            int lineStart = 0;
            while (true)
            {
                int newline = Array.IndexOf(block, (byte)'\n', lineStart, read - lineStart);
                if (newline < 0)
                {
                    break;
                }

                long lineEnd = position + newline + 1;
                if (pending.Length == 0)
                {
                    yield return new LogLine(Decode(block, lineStart, newline - lineStart), lineEnd);
                }
                else
                {
                    pending.Write(block, lineStart, newline - lineStart);
                    yield return new LogLine(Decode(pending.GetBuffer(), 0, (int)pending.Length), lineEnd);
                    pending.SetLength(0);
                }

                lineStart = newline + 1;
            }

            pending.Write(block, lineStart, read - lineStart);
            position += read;
            while (pending.Length > MaxLineBytes)
            {
                byte[] buffer = pending.GetBuffer();
                int cut = CutPoint(buffer);
                long pieceEnd = position - pending.Length + cut;
                yield return new LogLine(Decode(buffer, 0, cut), pieceEnd);
                int rest = (int)pending.Length - cut;
                Buffer.BlockCopy(buffer, cut, buffer, 0, rest);
                pending.SetLength(rest);
            }
        }

        if (withUnterminated && pending.Length > 0)
        {
            yield return new LogLine(Decode(pending.GetBuffer(), 0, (int)pending.Length), position);
        }
    }

    private static int ReadAt(SafeFileHandle file, Span<byte> buffer, long offset)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int read = RandomAccess.Read(file, buffer[total..], offset + total);
            if (read == 0)
            {
                break;
            }

            total += read;
        }

        return total;
    }

    /// <summary>A line's text, without the carriage return of a CRLF ending.</summary>
    private static string Decode(byte[] bytes, int offset, int count)
    {
        if (count > 0 && bytes[offset + count - 1] == (byte)'\r')
        {
            count--;
        }

        return Encoding.UTF8.GetString(bytes, offset, count);
    }

    /// <summary>Where to cut a line that is too long: at most MaxLineBytes, never inside a UTF-8 character.</summary>
    private static int CutPoint(byte[] bytes)
    {
        int cut = MaxLineBytes;
        while (cut > 0 && (bytes[cut] & 0xC0) == 0x80)
        {
            cut--;
        }

        return cut > 0 ? cut : MaxLineBytes;
    }
}
