using Cluster.Protocol;

namespace Cluster
{
    /// <summary>A line an instance wrote to stdout or stderr.</summary>
    public sealed class LogLine
    {
        internal LogLine(LogLineInfo info)
        {
            AppName = info.App;
            Instance = info.Instance;
            Stream = Enums.Parse(info.Stream, LogStream.Out);
            Text = info.Text;
        }

        public string AppName { get; }

        public int Instance { get; }

        public LogStream Stream { get; }

        public string Text { get; }

        public override string ToString() => Text;
    }
}
