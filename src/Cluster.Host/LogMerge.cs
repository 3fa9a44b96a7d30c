using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>Merges the lines of several logs, each in the order it was written, into one sequence in time order.</summary>
internal static class LogMerge
{
    /// <summary>
    /// A k-way merge: one line of each source is held at a time, so memory is in the number of sources, not in their
    /// lines. Lines with the same time keep the order of their sources; lines without a stamp come first.
    /// </summary>
    public static IEnumerable<LogLineInfo> ByTime(IReadOnlyList<IEnumerable<LogLineInfo>> sources)
    {
        var heads = new PriorityQueue<IEnumerator<LogLineInfo>, (long Ticks, int Source)>();
        var enumerators = new List<IEnumerator<LogLineInfo>>();
        try
        {
            for (int i = 0; i < sources.Count; i++)
            {
                IEnumerator<LogLineInfo> source = sources[i].GetEnumerator();
                enumerators.Add(source);
                if (source.MoveNext())
                {
                    heads.Enqueue(source, (TicksOf(source.Current), i));
                }
            }

            while (heads.TryDequeue(out IEnumerator<LogLineInfo>? source, out (long Ticks, int Source) key))
            {
                yield return source.Current;
                if (source.MoveNext())
                {
                    heads.Enqueue(source, (TicksOf(source.Current), key.Source));
                }
            }
        }
        finally
        {
            enumerators.ForEach(e => e.Dispose());
        }
    }

    private static long TicksOf(LogLineInfo line) => line.Timestamp?.UtcTicks ?? long.MinValue;
}
