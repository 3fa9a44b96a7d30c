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

/// <summary>Which lines of what a failed process wrote say why it failed, for the error message to quote.</summary>
internal static partial class ErrorOutput
{
    /// <summary>
    /// The first line that is not part of a stack trace, a quoted source line, a warning or Node's version footer
    /// (what the app said: 'refusing to start: no DATABASE_URL', or Node's 'Error: listen EADDRINUSE: address already
    /// in use 127.0.0.1:3000'), and after it the first line that names an error ('TypeError: x is not a function'),
    /// when that is another one. Empty when there is none.
    /// </summary>
    public static IReadOnlyList<string> MeaningfulLines(IEnumerable<string> lines)
    {
        string? first = null;
        bool excerpt = false; // Node quotes the source line under a 'file:line' header
        foreach (string raw in lines)
        {
            string line = raw.Trim();
            bool quoted = excerpt;
            excerpt = Location().IsMatch(line);
            if (line.Length == 0 || quoted || excerpt || (Noise().IsMatch(line) && !ErrorLine().IsMatch(line)))
            {
                continue;
            }

            if (first is null)
            {
                first = line;
                if (ErrorLine().IsMatch(line))
                {
                    return new[] { line };
                }
            }
            else if (ErrorLine().IsMatch(line))
            {
                return new[] { first, line };
            }
        }

        return first is null ? Array.Empty<string>() : new[] { first };
    }

    // Error: ..., TypeError: ..., Error [ERR_MODULE_NOT_FOUND]: ..., Uncaught SomeException: ...
    [GeneratedRegex(@"^(?:Uncaught\s+)?(?:[A-Z][A-Za-z0-9_$]*)?(?:Error|Exception)(?:\s*\[[^\]]+\])?:\s*\S")]
    private static partial Regex ErrorLine();

    // 'node:events:497', '/app/server.js:12', 'file:///app/server.mjs:12': what Node writes above the source line it quotes.
    [GeneratedRegex(@"^\S+:\d+$")]
    private static partial Regex Location();

    // '    at f (file:1:2)', '^^^', '(node:42) Warning: ...', 'Node.js v20.11.0', 'Emitted 'error' event ...', and the
    // braces and fields of the error object Node prints.
    [GeneratedRegex(@"^(?:at\s.*|\^+|\(node:\d+\)\s.*|Node\.js v\d.*|Emitted 'error' event.*|[{}].*|\w+: .*,|\[\w+\]: .*)$")]
    private static partial Regex Noise();
}
