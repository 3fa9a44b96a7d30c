using System;
using Cluster.Protocol;

namespace Cluster
{
    /// <summary>A line an instance wrote to stdout or stderr, with when its Node primary read it and which process wrote it.</summary>
    public sealed class LogLine
    {
        internal LogLine(LogLineInfo info)
        {
            Timestamp = info.Timestamp?.LocalDateTime;
            App = info.App;
            Instance = info.Instance;
            Pid = info.Pid;
            Stream = Enums.Parse(info.Stream, LogStream.Out);
            Text = info.Text;
        }

        /// <summary>When the line was read, in local time; null for a line written before lines were stamped.</summary>
        public DateTime? Timestamp { get; }

        /// <summary>The app's name.</summary>
        public string App { get; }

        public int Instance { get; }

        /// <summary>The process that wrote the line; null when unknown.</summary>
        public int? Pid { get; }

        public LogStream Stream { get; }

        public string Text { get; }

        public override string ToString() => Text;
    }
}
