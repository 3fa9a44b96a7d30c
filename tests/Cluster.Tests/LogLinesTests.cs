using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Xunit;

namespace Cluster.Tests;

/// <summary>The stamps the Node primary begins log lines with, the time-ordered merge of several logs, and the error line a start error quotes.</summary>
public sealed class LogLinesTests
{
    [Fact]
    public void LogStamp_reads_the_time_and_pid_and_leaves_the_text_as_written()
    {
        LogLineInfo line = LogStamp.Parse("2026-01-02T03:04:05.678Z 4242  indented text 2026-01-02T03:04:05.678Z 1 x", "api", 1, "err");

        Assert.Equal(new DateTimeOffset(2026, 1, 2, 3, 4, 5, 678, TimeSpan.Zero), line.Timestamp);
        Assert.Equal(4242, line.Pid);
        Assert.Equal(" indented text 2026-01-02T03:04:05.678Z 1 x", line.Text);
        Assert.Equal(("api", 1, "err"), (line.App, line.Instance, line.Stream));
    }

    [Theory]
    [InlineData("")]
    [InlineData("plain text written before lines were stamped")]
    [InlineData("2026-01-02T03:04:05.678Z")]
    [InlineData("2026-01-02T03:04:05.678Z 4242")]
    [InlineData("2026-01-02T03:04:05.678Z pid text")]
    [InlineData("2026-13-02T03:04:05.678Z 4242 a month that is not one")]
    [InlineData("2026-01-02 03:04:05.678Z 4242 no T")]
    public void LogStamp_reads_a_line_without_a_whole_stamp_as_text(string raw)
    {
        LogLineInfo line = LogStamp.Parse(raw, "api", 0, "out");

        Assert.Null(line.Timestamp);
        Assert.Null(line.Pid);
        Assert.Equal(raw, line.Text);
    }

    [Fact]
    public void LogStamp_of_an_unknown_writer_has_no_pid()
    {
        LogLineInfo line = LogStamp.Parse("2026-01-02T03:04:05.678Z 0 from a process that never started", "api", 0, "out");

        Assert.NotNull(line.Timestamp);
        Assert.Null(line.Pid);
        Assert.Equal("from a process that never started", line.Text);
    }

    [Fact]
    public void LogMerge_interleaves_sources_in_time_order_keeping_each_sources_order_for_equal_times()
    {
        var t = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero);
        LogLineInfo At(int ms, string text) => new() { Timestamp = t.AddMilliseconds(ms), Text = text };
        var first = new[] { At(0, "a0"), At(10, "a10"), At(10, "a10 again"), At(30, "a30") };
        var second = new[] { At(5, "b5"), At(10, "b10"), At(40, "b40") };
        var unstamped = new[] { new LogLineInfo { Text = "old" } };

        string[] merged = LogMerge.ByTime(new IEnumerable<LogLineInfo>[] { first, second, unstamped, Array.Empty<LogLineInfo>() }).Select(l => l.Text).ToArray();

        Assert.Equal(new[] { "old", "a0", "b5", "a10", "a10 again", "b10", "a30", "b40" }, merged);
    }

    [Fact]
    public void LogMerge_reads_each_source_one_line_ahead_only()
    {
        int read = 0;
        IEnumerable<LogLineInfo> Counted(int offset)
        {
            for (int i = 0; i < 1000; i++)
            {
                read++;
                yield return new LogLineInfo { Timestamp = DateTimeOffset.UnixEpoch.AddMilliseconds((2 * i) + offset), Text = $"{offset}:{i}" };
            }
        }

        using IEnumerator<LogLineInfo> merged = LogMerge.ByTime(new[] { Counted(0), Counted(1) }).GetEnumerator();
        for (int i = 0; i < 10; i++)
        {
            Assert.True(merged.MoveNext());
        }

        Assert.True(read <= 12, $"10 lines out of two sources read {read} lines");
    }

    [Fact]
    public async Task AppLogs_merges_the_tails_of_two_instances_and_both_streams_by_their_stamps()
    {
        using var folder = new TempFolder();
        var paths = new HostPaths(folder.Path, folder.Path);
        Directory.CreateDirectory(paths.Logs);
        File.WriteAllText(paths.OutLog("api", 0), "2026-01-02T03:04:05.000Z 10 zero one\n2026-01-02T03:04:05.300Z 10 zero four\n");
        File.WriteAllText(paths.ErrorLog("api", 0), "2026-01-02T03:04:05.200Z 10 zero three\n");
        File.WriteAllText(paths.OutLog("api", 1), "2026-01-02T03:04:05.100Z 11 one two\n2026-01-02T03:04:05.400Z 11 one five\n");
        using var logs = new AppLogs(paths, new[] { new LogSource("api", new[] { 0, 1 }) }, instance: null);
        var lines = new List<LogLineInfo>();

        await logs.TailAsync(20, batch => { lines.AddRange(batch); return Task.CompletedTask; }, CancellationToken.None);

        Assert.Equal(new[] { "zero one", "one two", "zero three", "zero four", "one five" }, lines.Select(l => l.Text));
        Assert.Equal(new int?[] { 10, 11, 10, 10, 11 }, lines.Select(l => l.Pid));
        Assert.Equal(new[] { "out", "out", "err", "out", "out" }, lines.Select(l => l.Stream));
    }

    [Fact]
    public async Task AppLogs_with_a_stream_and_a_time_reads_only_those_lines()
    {
        using var folder = new TempFolder();
        var paths = new HostPaths(folder.Path, folder.Path);
        Directory.CreateDirectory(paths.Logs);
        File.WriteAllText(paths.OutLog("api", 0), "2026-01-02T03:04:05.000Z 10 early\n2026-01-02T03:04:06.000Z 10 late\nunstamped\n");
        File.WriteAllText(paths.ErrorLog("api", 0), "2026-01-02T03:04:07.000Z 10 an error\n");
        var since = new DateTimeOffset(2026, 1, 2, 3, 4, 6, TimeSpan.Zero);
        using var outOnly = new AppLogs(paths, new[] { new LogSource("api", new[] { 0 }) }, instance: null, stream: "out", since: since);
        var lines = new List<LogLineInfo>();

        await outOnly.TailAsync(20, batch => { lines.AddRange(batch); return Task.CompletedTask; }, CancellationToken.None);

        Assert.Equal(new[] { "late" }, lines.Select(l => l.Text));
    }

    [Fact]
    public void ErrorOutput_quotes_the_error_of_a_Node_stack_trace_not_its_tail()
    {
        string[] stderr =
        {
            "node:events:497",
            "      throw er; // Unhandled 'error' event",
            "      ^",
            "",
            "Error: listen EADDRINUSE: address already in use 127.0.0.1:3000",
            "    at Server.setupListenHandle [as _listen2] (node:net:1908:16)",
            "    at listenInCluster (node:net:1965:12)",
            "Emitted 'error' event on Server instance at:",
            "    at emitErrorNT (node:net:1944:8)",
            "{",
            "  code: 'EADDRINUSE',",
            "}",
            "",
            "Node.js v20.11.0",
        };

        Assert.Equal(new[] { "Error: listen EADDRINUSE: address already in use 127.0.0.1:3000" }, ErrorOutput.MeaningfulLines(stderr));
    }

    [Theory]
    [InlineData("TypeError: app.listen is not a function", "/srv/app.js:3|app.listen(3000);|    ^|TypeError: app.listen is not a function|    at Object.<anonymous> (/srv/app.js:3:5)")]
    [InlineData("Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'express'", "(node:42) Warning: something old|Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'express'")]
    [InlineData("refusing to start: no DATABASE_URL", "|refusing to start: no DATABASE_URL|    at somewhere")]
    [InlineData("sh: 1: nothere: not found", "sh: 1: nothere: not found")]
    [InlineData("broken: flag present|Error: broken version", "broken: flag present|/srv/app.js:9|  throw new Error('broken version');|  ^||Error: broken version|    at Object.<anonymous> (/srv/app.js:9:9)||Node.js v20.11.0")]
    public void ErrorOutput_quotes_what_the_app_said_and_the_error_it_ended_with(string expected, string output)
    {
        Assert.Equal(expected.Split('|'), ErrorOutput.MeaningfulLines(output.Split('|')));
    }

    [Fact]
    public void ErrorOutput_of_nothing_said_is_null()
    {
        Assert.Empty(ErrorOutput.MeaningfulLines(new[] { "", "   ", "Node.js v20.11.0" }));
    }
}
