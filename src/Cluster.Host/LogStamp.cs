using System.Globalization;
using System.Text.RegularExpressions;
using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>
/// The stamp the Node primary puts at the start of every line it writes to an instance log, as it reads the line:
/// the time in UTC to the millisecond and the pid of the process that wrote it ('2026-01-02T03:04:05.678Z 4242 text').
/// Lines written before stamps existed (or by something else) have none, and are read as they are.
/// </summary>
internal static class LogStamp
{
    private const string TimeFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
    private const int TimeLength = 24;

    /// <summary>A line of an instance log as its parts: the time and pid are null when the line has no stamp.</summary>
    public static LogLineInfo Parse(string line, string app, int instance, string stream)
    {
        var info = new LogLineInfo { App = app, Instance = instance, Stream = stream, Text = line };
        if (line.Length < TimeLength + 3 || line[TimeLength] != ' ' || line[TimeLength - 1] != 'Z'
            || !DateTimeOffset.TryParseExact(line.AsSpan(0, TimeLength), TimeFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out DateTimeOffset time))
        {
            return info;
        }

        int pidEnd = line.IndexOf(' ', TimeLength + 1);
        if (pidEnd < 0 || !int.TryParse(line.AsSpan(TimeLength + 1, pidEnd - TimeLength - 1), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
        {
            return info;
        }

        info.Timestamp = time;
        info.Pid = pid == 0 ? null : pid;
        info.Text = line.Substring(pidEnd + 1);
        return info;
    }

    /// <summary>A line's text without its stamp.</summary>
    public static string TextOf(string line) => Parse(line, "", 0, "").Text;
}

/// <summary>Which line of what a failed process wrote says why it failed, for the one line an error message quotes.</summary>
internal static partial class ErrorOutput
{
    /// <summary>
    /// The first line that names an error ('Error: listen EADDRINUSE: address already in use 127.0.0.1:3000',
    /// 'TypeError: x is not a function'); failing that, the first line that is not part of a stack trace, a source
    /// excerpt, a warning or Node's version footer; null when there is none.
    /// </summary>
    public static string? FirstMeaningfulLine(IEnumerable<string> lines)
    {
        string? fallback = null;
        foreach (string raw in lines)
        {
            string line = raw.Trim();
            if (ErrorLine().IsMatch(line))
            {
                return line;
            }

            if (fallback is null && line.Length > 0 && !Noise().IsMatch(line))
            {
                fallback = line;
            }
        }

        return fallback;
    }

    // Error: ..., TypeError: ..., Error [ERR_MODULE_NOT_FOUND]: ..., Uncaught SomeException: ...
    [GeneratedRegex(@"^(?:Uncaught\s+)?(?:[A-Z][A-Za-z0-9_$]*)?(?:Error|Exception)(?:\s*\[[^\]]+\])?:\s*\S")]
    private static partial Regex ErrorLine();

    // '    at f (file:1:2)', '^^^', 'node:events:497' or '/app/server.js:12', '(node:42) Warning: ...', 'Node.js v20.11.0',
    // and the source line Node quotes under the file's name ('throw er; // Unhandled 'error' event').
    [GeneratedRegex(@"^(?:at\s.*|\^+|\S+:\d+|\(node:\d+\)\s.*|Node\.js v\d.*|throw\s.*|Emitted 'error' event.*|[{}].*)$")]
    private static partial Regex Noise();
}
