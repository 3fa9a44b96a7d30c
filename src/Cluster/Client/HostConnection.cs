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
    /// <summary>One request to the host and the frames of its reply, over the host's control endpoint.</summary>
    internal sealed class HostConnection : IDisposable
    {
        // PipeOptions.CurrentUserOnly (.NET Core 2.1+): the client checks that the host runs as the same user.
        private const PipeOptions CurrentUserOnly = (PipeOptions)0x20000000;

        private readonly NamedPipeClientStream _pipe;
        private readonly StreamReader _reader;

        private HostConnection(NamedPipeClientStream pipe)
        {
            _pipe = pipe;
            _reader = new StreamReader(pipe, new UTF8Encoding(false), false, 16 * 1024, leaveOpen: true);
        }

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

        public void Send(Request request) => Send(JsonSerializer.SerializeToUtf8Bytes(request, ProtocolJson.Default.Request));

        /// <summary>Sends one request, already serialized (ProtocolJson), as one line.</summary>
        public void Send(byte[] json)
        {
            _pipe.Write(json, 0, json.Length);
            _pipe.WriteByte((byte)'\n');
            _pipe.Flush();
        }

        /// <summary>The next frame, or null when the host closed the connection.</summary>
        public Frame? Read()
        {
            string? line = _reader.ReadLine();
            return line is null ? null : JsonSerializer.Deserialize(line, ProtocolJson.Default.Frame);
        }

        /// <summary>Breaks off the exchange (Ctrl+C): a blocked Read returns, and the host sees the client go.</summary>
        public void Dispose()
        {
            _reader.Dispose();
            _pipe.Dispose();
        }

        private static PipeOptions PipeOptionsForRuntime() =>
            RuntimeInformation.FrameworkDescription.StartsWith(".NET Framework", StringComparison.Ordinal) ? PipeOptions.None : CurrentUserOnly;
    }
}
