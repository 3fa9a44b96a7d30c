using System.Text;
using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Xunit;

namespace Cluster.Tests;

/// <summary>Reading instance logs: the last lines, read back from the end in blocks, and following across rotations.</summary>
public sealed class LogTailTests
{
    /// <summary>What the last lines are, by splitting the whole text: what the block reader must agree with.</summary>
    private static string[] Expected(string text, int count)
    {
        var lines = text.Split('\n').ToList();
        if (lines[^1].Length == 0)
        {
            lines.RemoveAt(lines.Count - 1); // the newline that ends the last line starts no line
        }

        return lines.Skip(Math.Max(0, lines.Count - count)).Select(l => l.TrimEnd('\r')).ToArray();
    }

    public static TheoryData<string, string> Contents() => new()
    {
        { "a trailing newline", string.Concat(Enumerable.Range(1, 500).Select(i => $"line {i}\n")) },
        { "no trailing newline", string.Concat(Enumerable.Range(1, 500).Select(i => $"line {i}\n")) + "unfinished" },
        { "CRLF endings", string.Concat(Enumerable.Range(1, 500).Select(i => $"line {i}\r\n")) },
        { "empty lines", "\n\nfirst\n\n\nsecond\n\n" },
        { "one line, no newline", "only" },
        { "only newlines", "\n\n\n" },
        {
            "lines longer than a block",
            string.Concat(Enumerable.Range(1, 12).Select(i => $"long {i} " + new string((char)('a' + i), (LogTail.BlockSize * (i % 4)) + 17) + "\n"))
        },
        {
            "lines longer than a block, no trailing newline",
            "short\n" + new string('x', (3 * LogTail.BlockSize) + 5) + "\nmiddle\n" + new string('y', (2 * LogTail.BlockSize) - 1)
        },
        { "a newline at each block boundary", string.Concat(Enumerable.Range(1, 6).Select(i => new string((char)('0' + i), LogTail.BlockSize - 1) + "\n")) },
        { "UTF-8 text", string.Concat(Enumerable.Range(1, 3000).Select(i => $"zeile {i}: grüße, 日本語, ✓\n")) },
    };

    [Theory]
    [MemberData(nameof(Contents))]
    public void LogTail_returns_exactly_the_last_lines(string label, string content)
    {
        using var folder = new TempFolder();
        string log = folder.WriteFile("app-0.out.log", content);
        int total = Expected(content, int.MaxValue).Length;

        foreach (int count in new[] { 1, 2, 3, 7, total - 1, total, total + 1, 100_000 }.Where(c => c > 0).Distinct())
        {
            Assert.True(Expected(content, count).SequenceEqual(LogTail.Read(log, count)), $"{label}: the last {count} lines differ");
        }
    }

    [Fact]
    public void LogTail_of_an_empty_or_missing_file_or_zero_lines_is_empty()
    {
        using var folder = new TempFolder();
        string empty = folder.WriteFile("empty.log", "");
        string some = folder.WriteFile("some.log", "a\nb\n");

        Assert.Empty(LogTail.Read(empty, 10));
        Assert.Empty(LogTail.Read(folder.Combine("missing.log"), 5));
        Assert.Empty(LogTail.Read(some, 0));
    }

    [Fact]
    public void LogTail_reads_back_across_blocks_of_a_large_file()
    {
        using var folder = new TempFolder();
        string log = folder.WriteFile("big.log", string.Concat(Enumerable.Range(1, 20_000).Select(i => $"line number {i:D6}\n")));

        IReadOnlyList<string> lines = LogTail.Read(log, 9_000);

        Assert.Equal(9_000, lines.Count);
        Assert.Equal("line number 011001", lines[0]);
        Assert.Equal("line number 020000", lines[^1]);
    }

    [Fact]
    public void LogTail_reads_nothing_before_its_from_offset()
    {
        using var folder = new TempFolder();
        string log = folder.WriteFile("app-0.err.log", "old 1\nold 2\n");
        long offset = LogTail.LengthOf(log);
        File.AppendAllText(log, "new 1\nnew 2\n");

        Assert.Equal(new[] { "new 1", "new 2" }, LogTail.Read(log, 20, offset));
        Assert.Equal(new[] { "new 2" }, LogTail.Read(log, 1, offset));
        Assert.Equal(4, LogTail.Read(log, 20).Count);
    }

    [Fact]
    public void LogTail_reads_a_file_rotated_since_the_offset_from_its_start()
    {
        using var folder = new TempFolder();
        string log = folder.WriteFile("app-0.err.log", string.Concat(Enumerable.Range(1, 50).Select(i => $"before rotation {i}\n")));
        long offset = LogTail.LengthOf(log);
        File.WriteAllText(log, "after rotation\n");

        Assert.Equal(new[] { "after rotation" }, LogTail.Read(log, 20, offset));
    }

    [Fact]
    public void LogTail_returns_a_line_longer_than_its_limit_in_pieces_of_whole_characters()
    {
        using var folder = new TempFolder();
        string huge = new string('é', LogTail.MaxLineBytes); // two bytes each: twice the limit
        string log = folder.WriteFile("huge.log", "before\n" + huge + "\nafter\n");

        IReadOnlyList<string> lines = LogTail.Read(log, 10);

        Assert.Equal("before", lines[0]);
        Assert.Equal("after", lines[^1]);
        string[] pieces = lines.Skip(1).SkipLast(1).ToArray();
        Assert.Equal(2, pieces.Length);
        Assert.All(pieces, p => Assert.True(Encoding.UTF8.GetByteCount(p) <= LogTail.MaxLineBytes));
        Assert.Equal(huge, string.Concat(pieces));
    }

    [Fact]
    public void StartOfLastLines_reads_back_only_as_far_as_the_lines_asked_for()
    {
        using var folder = new TempFolder();
        string log = folder.WriteFile("big.log", string.Concat(Enumerable.Range(1, 100_000).Select(i => $"line {i:D7}\n")));
        using Microsoft.Win32.SafeHandles.SafeFileHandle file = LogTail.OpenRead(log)!;
        long length = RandomAccess.GetLength(file);

        long start = LogTail.StartOfLastLines(file, 10, 0, length);

        Assert.Equal(length - (10 * "line 0000001\n".Length), start);
    }

    [Fact]
    public async Task AppLogs_follows_a_log_across_rotations_reading_each_rotated_file_to_its_end()
    {
        using var folder = new TempFolder();
        var paths = new HostPaths(folder.Path, folder.Path);
        Directory.CreateDirectory(paths.Logs);
        var writer = new RotatingWriter(paths.OutLog("api", 0), keep: 3);
        writer.Write(1, 10);

        using var logs = new AppLogs(paths, new[] { new LogSource("api", new[] { 0 }) }, instance: null);
        var tail = new List<string>();
        await logs.TailAsync(5, lines => Collect(lines, tail), CancellationToken.None);
        Assert.Equal(Numbered(6, 10), tail);

        var followed = new List<string>();
        writer.Write(11, 20);
        await logs.ReadNewAsync(lines => Collect(lines, followed), CancellationToken.None);

        // Written to the old file after the last read, then rotated: still read, then the new file from its start.
        writer.Write(21, 30);
        writer.Rotate();
        writer.Write(31, 40);
        await logs.ReadNewAsync(lines => Collect(lines, followed), CancellationToken.None);

        // Two rotations between reads: the file in between (now path.1) is read too, in order.
        writer.Write(41, 50);
        writer.Rotate();
        writer.Write(51, 60);
        writer.Rotate();
        writer.Write(61, 70);
        await logs.ReadNewAsync(lines => Collect(lines, followed), CancellationToken.None);
        await logs.ReadNewAsync(lines => Collect(lines, followed), CancellationToken.None);

        Assert.Equal(Numbered(11, 70), followed);
    }

    [Fact]
    public async Task AppLogs_leaves_a_line_being_written_for_the_next_read()
    {
        using var folder = new TempFolder();
        var paths = new HostPaths(folder.Path, folder.Path);
        Directory.CreateDirectory(paths.Logs);
        string log = paths.OutLog("api", 0);
        File.WriteAllText(log, "");
        using var logs = new AppLogs(paths, new[] { new LogSource("api", new[] { 0 }) }, instance: null);
        var followed = new List<string>();

        File.AppendAllText(log, "first\nsec");
        await logs.ReadNewAsync(lines => Collect(lines, followed), CancellationToken.None);
        Assert.Equal(new[] { "first" }, followed);

        File.AppendAllText(log, "ond\n");
        await logs.ReadNewAsync(lines => Collect(lines, followed), CancellationToken.None);
        Assert.Equal(new[] { "first", "second" }, followed);
    }

    [Fact]
    public async Task AppLogs_starts_over_when_a_log_is_emptied_in_place()
    {
        using var folder = new TempFolder();
        var paths = new HostPaths(folder.Path, folder.Path);
        Directory.CreateDirectory(paths.Logs);
        string log = paths.OutLog("api", 0);
        File.WriteAllText(log, string.Concat(Numbered(1, 50).Select(l => l + "\n")));
        using var logs = new AppLogs(paths, new[] { new LogSource("api", new[] { 0 }) }, instance: null);
        var followed = new List<string>();

        using (var stream = new FileStream(log, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            stream.SetLength(0);
        }

        File.AppendAllText(log, "after\n");
        await logs.ReadNewAsync(lines => Collect(lines, followed), CancellationToken.None);

        Assert.Equal(new[] { "after" }, followed);
    }

    [Fact]
    public async Task AppLogs_hands_out_a_large_tail_in_bounded_batches()
    {
        using var folder = new TempFolder();
        var paths = new HostPaths(folder.Path, folder.Path);
        Directory.CreateDirectory(paths.Logs);
        File.WriteAllText(paths.OutLog("api", 0), string.Concat(Enumerable.Range(1, 50_000).Select(i => $"line {i} " + new string('x', 90) + "\n")));
        using var logs = new AppLogs(paths, new[] { new LogSource("api", new[] { 0 }) }, instance: null);
        var batches = new List<List<LogLineInfo>>();

        await logs.TailAsync(40_000, lines =>
        {
            batches.Add(lines);
            return Task.CompletedTask;
        }, CancellationToken.None);

        Assert.True(batches.Count > 1, "a tail of 4 MB goes out in more than one frame");
        Assert.All(batches, b => Assert.True(b.Sum(l => l.Text.Length) <= AppLogs.BatchBytes, "a batch holds about BatchBytes of text at most"));
        List<string> all = batches.SelectMany(b => b).Select(l => l.Text).ToList();
        Assert.Equal(40_000, all.Count);
        Assert.StartsWith("line 10001 ", all[0], StringComparison.Ordinal);
        Assert.StartsWith("line 50000 ", all[^1], StringComparison.Ordinal);
        Assert.All(batches.SelectMany(b => b), l => Assert.Equal("out", l.Stream));
    }

    private static Task Collect(List<LogLineInfo> lines, List<string> into)
    {
        into.AddRange(lines.Select(l => l.Text));
        return Task.CompletedTask;
    }

    private static List<string> Numbered(int first, int last) => Enumerable.Range(first, last - first + 1).Select(i => $"line {i}").ToList();

    /// <summary>Appends numbered lines and rotates the way the Node primary does (path.N-1 to path.N ... path to path.1).</summary>
    private sealed class RotatingWriter
    {
        private readonly string _path;
        private readonly int _keep;

        public RotatingWriter(string path, int keep)
        {
            _path = path;
            _keep = keep;
        }

        public void Write(int first, int last) => File.AppendAllText(_path, string.Concat(Numbered(first, last).Select(l => l + "\n")));

        public void Rotate()
        {
            for (int i = _keep - 1; i >= 1; i--)
            {
                if (File.Exists($"{_path}.{i}"))
                {
                    File.Move($"{_path}.{i}", $"{_path}.{i + 1}", overwrite: true);
                }
            }

            File.Move(_path, $"{_path}.1", overwrite: true);
            File.WriteAllText(_path, "");
        }
    }
}
