using Cluster.Protocol;
using Microsoft.Win32.SafeHandles;

namespace Cluster.Host;

/// <summary>An app whose logs are read, and its instances (as its loop gave them, or as its log files on disk say).</summary>
internal sealed record LogSource(string App, IReadOnlyList<int> Instances);

/// <summary>
/// The log files of apps' instances (all, or one; both streams or one): their last lines, then what is written to
/// them from then on (Get-ClusterAppLog -Follow), merged in the time order of their stamps. The tail ends where
/// following starts, so no line is lost or repeated.
/// Each file is followed by its open handle, across rotations: when the path moves on to a new file, the old one
/// (and any rotated after it meanwhile) is read to its end before the new one is read from its start.
/// </summary>
internal sealed class AppLogs : IDisposable
{
    /// <summary>Lines go out in frames of about this many bytes of text, so that a large tail never sits whole in memory.</summary>
    public const int BatchBytes = 256 * 1024;

    /// <summary>At most this much of one file is read by one <see cref="ReadNew"/>; the rest is read by the next.</summary>
    private const long ReadBudgetBytes = 8 * 1024 * 1024;

    private readonly List<FollowedLog> _logs = new();
    private readonly DateTimeOffset? _since;

    public AppLogs(HostPaths paths, IReadOnlyList<LogSource> apps, int? instance, string? stream = null, DateTimeOffset? since = null)
    {
        if (instance is { } wanted && apps.Count > 0 && !apps.Any(a => a.Instances.Contains(wanted)))
        {
            LogSource first = apps[0];
            throw new ClusterException(
                "InstanceNotFound",
                ErrorCategories.ObjectNotFound,
                apps.Count == 1
                    ? $"'{first.App}' has no instance {wanted}. Its instances are 0 to {first.Instances.Count - 1}."
                    : $"None of the apps has an instance {wanted}.",
                wanted.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        _since = since;
        foreach (LogSource app in apps)
        {
            foreach (int i in app.Instances.Where(i => instance is null || i == instance))
            {
                if (stream is null or "out")
                {
                    _logs.Add(new FollowedLog(paths.OutLog(app.App, i), app.App, i, "out"));
                }

                if (stream is null or "err")
                {
                    _logs.Add(new FollowedLog(paths.ErrorLog(app.App, i), app.App, i, "err"));
                }
            }
        }
    }

    /// <summary>
    /// The last lines of each stream of each instance, up to where following starts, in time order, handed to
    /// <paramref name="write"/> in batches of about <see cref="BatchBytes"/>.
    /// </summary>
    public Task TailAsync(int count, Func<List<LogLineInfo>, Task> write, CancellationToken cancel) =>
        SendAsync(_logs.Select(log => log.Tail(count).Select(log.Parse)).ToList(), write, cancel);

    /// <summary>The whole lines written since the last call (or since this was made), in time order, handed over in batches.</summary>
    public Task ReadNewAsync(Func<List<LogLineInfo>, Task> write, CancellationToken cancel) =>
        SendAsync(_logs.Select(log => log.ReadNew(ReadBudgetBytes).Select(log.Parse)).ToList(), write, cancel);

    public void Dispose()
    {
        foreach (FollowedLog log in _logs)
        {
            log.Dispose();
        }
    }

    private async Task SendAsync(IReadOnlyList<IEnumerable<LogLineInfo>> sources, Func<List<LogLineInfo>, Task> write, CancellationToken cancel)
    {
        var batch = new List<LogLineInfo>();
        long bytes = 0;
        foreach (LogLineInfo line in LogMerge.ByTime(sources))
        {
            if (_since is { } since && (line.Timestamp is not { } time || time < since))
            {
                continue;
            }

            batch.Add(line);
            bytes += line.Text.Length + 64;
            if (bytes >= BatchBytes)
            {
                cancel.ThrowIfCancellationRequested();
                await write(batch).ConfigureAwait(false);
                batch = new List<LogLineInfo>();
                bytes = 0;
            }
        }

        if (batch.Count > 0)
        {
            cancel.ThrowIfCancellationRequested();
            await write(batch).ConfigureAwait(false);
        }
    }

    /// <summary>One log path, followed by handle: the file being read, and files rotated after it still to read.</summary>
    private sealed class FollowedLog : IDisposable
    {
        private readonly Queue<OpenFile> _rotated = new(); // newer than _current, oldest first; the last one is at the path
        private OpenFile? _current;

        public FollowedLog(string path, string app, int instance, string stream)
        {
            Path = path;
            App = app;
            Instance = instance;
            Stream = stream;
            _current = OpenFile.At(path);
            if (_current is { } file)
            {
                file.Offset = RandomAccess.GetLength(file.Handle);
            }
        }

        public string Path { get; }

        public string App { get; }

        public int Instance { get; }

        public string Stream { get; }

        public LogLineInfo Parse(string line) => LogStamp.Parse(line, App, Instance, Stream);

        /// <summary>The last lines before the offset following starts at.</summary>
        public IEnumerable<string> Tail(int count)
        {
            if (_current is not { } file || count <= 0)
            {
                yield break;
            }

            long start = LogTail.StartOfLastLines(file.Handle, count, 0, file.Offset);
            foreach (LogLine line in LogTail.ReadLines(file.Handle, start, file.Offset, withUnterminated: true))
            {
                yield return line.Text;
            }
        }

        /// <summary>Whole lines since the last call, at most about <paramref name="budget"/> bytes of them.</summary>
        public IEnumerable<string> ReadNew(long budget)
        {
            while (budget > 0)
            {
                if (_current is null)
                {
                    _current = OpenFile.At(Path);
                    if (_current is null)
                    {
                        yield break;
                    }
                }

                OpenFile file = _current;
                long length = RandomAccess.GetLength(file.Handle);
                if (length < file.Offset)
                {
                    file.Offset = 0; // emptied in place (a rotation that keeps no file)
                }

                long until = Math.Min(length, file.Offset + budget);
                long before = file.Offset;
                foreach (LogLine line in LogTail.ReadLines(file.Handle, file.Offset, until, withUnterminated: false))
                {
                    file.Offset = line.End;
                    yield return line.Text;
                }

                budget -= file.Offset - before;
                if (until < length && file.Offset > before)
                {
                    continue; // more whole lines than this step read
                }

                if (_rotated.Count == 0 && !FindRotation(file))
                {
                    yield break; // still the file at the path: what is left is a line being written
                }

                // The writer is done with this file: what is left of it is read, then the next file from its start.
                foreach (LogLine line in LogTail.ReadLines(file.Handle, file.Offset, long.MaxValue, withUnterminated: true))
                {
                    file.Offset = line.End;
                    budget -= line.Text.Length;
                    yield return line.Text;
                }

                file.Dispose();
                _current = _rotated.Dequeue();
            }
        }

        public void Dispose()
        {
            _current?.Dispose();
            while (_rotated.TryDequeue(out OpenFile? file))
            {
                file.Dispose();
            }
        }

        /// <summary>
        /// Whether the path has moved on from <paramref name="file"/>; if so, the files after it (the rotated
        /// path.N ... path.1 newer than it, then the file at the path) are opened, oldest first, into the queue.
        /// The primary rotates path.N-1 to path.N ... path to path.1, so <paramref name="file"/> is found by identity
        /// among the numbered ones; a rotation during the look (names shift) is seen, and the look is done again.
        /// </summary>
        private bool FindRotation(OpenFile file)
        {
            for (int attempt = 0; attempt < 5; attempt++)
            {
                FileIdentity? atPath = FileIdentity.OfPath(Path);
                if (atPath is null)
                {
                    return false; // between the rename and the new file: looked at again next time
                }

                if (atPath == file.Identity)
                {
                    return false;
                }

                // The numbered files newer than this one: path.1, path.2, ... up to the one that is this file.
                var newer = new List<(string Path, FileIdentity Identity)>();
                bool found = false;
                for (int n = 1; n <= 1001; n++)
                {
                    string numbered = $"{Path}.{n}";
                    FileIdentity? identity = FileIdentity.OfPath(numbered);
                    if (identity is null || identity == file.Identity)
                    {
                        found = identity is not null;
                        break;
                    }

                    newer.Add((numbered, identity.Value));
                }

                if (!found)
                {
                    // Removed (rotated past the files kept) before it was found: what came between is gone, so
                    // following goes on with the file at the path.
                    newer.Clear();
                }

                newer.Reverse();
                newer.Add((Path, atPath.Value));
                var opened = new List<OpenFile>();
                foreach ((string path, FileIdentity identity) in newer)
                {
                    OpenFile? next = OpenFile.At(path);
                    if (next is null || next.Identity != identity)
                    {
                        next?.Dispose();
                        break; // renamed meanwhile
                    }

                    opened.Add(next);
                }

                if (opened.Count == newer.Count)
                {
                    foreach (OpenFile next in opened)
                    {
                        _rotated.Enqueue(next);
                    }

                    return true;
                }

                opened.ForEach(o => o.Dispose());
            }

            return false;
        }
    }

    private sealed class OpenFile : IDisposable
    {
        private OpenFile(SafeFileHandle handle)
        {
            Handle = handle;
            Identity = FileIdentity.OfHandle(handle);
        }

        public SafeFileHandle Handle { get; }

        public FileIdentity Identity { get; }

        /// <summary>Where the next unread line begins.</summary>
        public long Offset { get; set; }

        public static OpenFile? At(string path) => LogTail.OpenRead(path) is { } handle ? new OpenFile(handle) : null;

        public void Dispose() => Handle.Dispose();
    }
}

/// <summary>What is done to an app's log files as files.</summary>
internal static class LogFiles
{
    /// <summary>
    /// Empties the current log files of the app's instances (those it runs and those whose files are still there) and
    /// removes their rotated files (pm2 flush). The Node primary appends to the current files, so its next line lands at
    /// the start of the emptied file; a reader following one starts again from its start. A link at a log path is
    /// left alone, never written through.
    /// </summary>
    /// <returns>How many files were emptied or removed.</returns>
    public static int Clear(HostPaths paths, LogSource app)
    {
        int count = 0;
        foreach (int instance in app.Instances.Union(paths.LoggedInstances(app.App)))
        {
            foreach (string log in new[] { paths.OutLog(app.App, instance), paths.ErrorLog(app.App, instance) })
            {
                foreach (string rotated in HostPaths.RotatedFiles(log))
                {
                    File.Delete(rotated);
                    count++;
                }

                var file = new FileInfo(log);
                if (!file.Exists || file.LinkTarget is not null)
                {
                    continue;
                }

                using SafeFileHandle handle = File.OpenHandle(log, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
                RandomAccess.SetLength(handle, 0);
                count++;
            }
        }

        return count;
    }
}
