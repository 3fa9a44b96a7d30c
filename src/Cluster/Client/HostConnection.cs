using System;
using System.IO;
using System.IO.Pipes;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Threading;
using Cluster.Protocol;

namespace Cluster.Client
{
    /// <summary>
    /// One request to the host and the frames of its reply, over the host's control endpoint. No read waits for
    /// ever: a host that sends nothing, not even its heartbeat, within the read timeout is given up on.
    /// </summary>
    internal sealed class HostConnection : IDisposable
    {
        // PipeOptions.CurrentUserOnly (.NET Core 2.1+): the client checks that the host runs as the same user.
        private const PipeOptions CurrentUserOnly = (PipeOptions)0x20000000;

        private readonly NamedPipeClientStream _pipe;
        private readonly StreamReader _reader;
        private readonly Timer _watchdog;
        private int _expired;

        private HostConnection(NamedPipeClientStream pipe)
        {
            _pipe = pipe;
            _reader = new StreamReader(pipe, new UTF8Encoding(false), false, 16 * 1024, leaveOpen: true);
            // A blocked read cannot time out by itself on every platform (a Unix socket pipe has no ReadTimeout):
            // when the timer fires, the pipe is closed under it, as Ctrl+C does.
            _watchdog = new Timer(_ => Expire(), null, Timeout.Infinite, Timeout.Infinite);
        }

        /// <summary>How long a read waits for the next frame (heartbeats count) before the host is given up on.</summary>
        public TimeSpan ReadTimeout { get; set; } = HostTimeout.Default;

        public static HostConnection? TryConnect(string endpoint, TimeSpan timeout)
        {
            var pipe = new NamedPipeClientStream(".", endpoint, PipeDirection.InOut, PipeOptionsForRuntime());
            try
            {
                pipe.Connect((int)timeout.TotalMilliseconds);
                return new HostConnection(pipe);
            }
            catch (Exception e) when (e is TimeoutException || e is IOException || e is UnauthorizedAccessException)
            {
                pipe.Dispose();
                return null;
            }
        }

        public void Send(Request request)
        {
            byte[] json = JsonSerializer.SerializeToUtf8Bytes(request, ProtocolJson.Default.Request);
            _pipe.Write(json, 0, json.Length);
            _pipe.WriteByte((byte)'\n');
            _pipe.Flush();
        }

        /// <summary>
        /// The next frame that is not a heartbeat, or null when the host closed the connection. Throws
        /// <see cref="HostNotRespondingException"/> when the host sends nothing within the read timeout, and
        /// <see cref="HostProtocolException"/> for a line that is not a frame.
        /// </summary>
        public Frame? Read()
        {
            while (true)
            {
                string? line = ReadLine();
                if (line is null)
                {
                    return null;
                }

                Frame frame = Parse(line);
                if (!frame.Heartbeat)
                {
                    return frame;
                }
            }
        }

        /// <summary>Breaks off the exchange (Ctrl+C): a blocked Read returns, and the host sees the client go.</summary>
        public void Dispose()
        {
            _watchdog.Dispose();
            _reader.Dispose();
            _pipe.Dispose();
        }

        internal static Frame Parse(string line)
        {
            Frame? frame;
            try
            {
                frame = JsonSerializer.Deserialize(line, ProtocolJson.Default.Frame);
            }
            catch (JsonException e)
            {
                throw new HostProtocolException(line, e);
            }

            return frame ?? throw new HostProtocolException(line, null);
        }

        private string? ReadLine()
        {
            _watchdog.Change(ReadTimeout, Timeout.InfiniteTimeSpan);
            string? line;
            try
            {
                line = _reader.ReadLine();
            }
            catch (Exception e) when ((e is IOException || e is ObjectDisposedException) && Volatile.Read(ref _expired) == 1)
            {
                throw new HostNotRespondingException(ReadTimeout, e);
            }
            finally
            {
                _watchdog.Change(Timeout.Infinite, Timeout.Infinite);
            }

            // The timer may have closed the pipe as the line came in: the connection is gone all the same.
            if (Volatile.Read(ref _expired) == 1)
            {
                throw new HostNotRespondingException(ReadTimeout, null);
            }

            return line;
        }

        private void Expire()
        {
            Interlocked.Exchange(ref _expired, 1);
            _pipe.Dispose();
        }

        private static PipeOptions PipeOptionsForRuntime() =>
            RuntimeInformation.FrameworkDescription.StartsWith(".NET Framework", StringComparison.Ordinal) ? PipeOptions.None : CurrentUserOnly;
    }

    /// <summary>The host sent nothing, not even a heartbeat, within the read timeout.</summary>
    internal sealed class HostNotRespondingException : TimeoutException
    {
        public HostNotRespondingException(TimeSpan timeout, Exception? inner)
            : base($"The Cluster host sent nothing within {timeout.TotalSeconds:0.###} seconds.", inner)
        {
            Timeout = timeout;
        }

        public TimeSpan Timeout { get; }
    }

    /// <summary>The host sent a line that is not a frame of the Cluster protocol.</summary>
    internal sealed class HostProtocolException : Exception
    {
        private const int Shown = 80;

        public HostProtocolException(string line, Exception? inner)
            : base("The Cluster host sent a line that is not a frame of the Cluster protocol: "
                + Printable(line), inner)
        {
        }

        private static string Printable(string line)
        {
            var text = new StringBuilder();
            foreach (char c in line.Length > Shown ? line.Substring(0, Shown) : line)
            {
                text.Append(char.IsControl(c) ? '?' : c);
            }

            return line.Length > Shown ? text.Append("...").ToString() : text.ToString();
        }
    }
}
