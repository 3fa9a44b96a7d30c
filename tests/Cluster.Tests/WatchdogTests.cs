extern alias client;

using System.IO.Pipes;
using System.Text;
using System.Text.Json;
using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Serilog;
using Xunit;
using ClientFrame = client::Cluster.Protocol.Frame;
using ClientRequest = client::Cluster.Protocol.Request;
using HostConnection = client::Cluster.Client.HostConnection;
using HostNotRespondingException = client::Cluster.Client.HostNotRespondingException;
using HostProtocolException = client::Cluster.Client.HostProtocolException;
using HostTimeout = client::Cluster.Client.HostTimeout;

namespace Cluster.Tests;

/// <summary>No cmdlet read waits for ever: the client's read timeout, the host's heartbeats, and frames that are not frames.</summary>
public sealed class WatchdogTests
{
    [Fact]
    public void A_heartbeat_frame_is_small_and_other_frames_do_not_mention_it()
    {
        string beat = JsonSerializer.Serialize(Frame.Beat(), ProtocolJson.Default.Frame);
        string final = JsonSerializer.Serialize(Frame.Final(), ProtocolJson.Default.Frame);

        Assert.Equal("{\"done\":false,\"heartbeat\":true}", beat);
        Assert.DoesNotContain("heartbeat", final);
        Assert.True(JsonSerializer.Deserialize(beat, ProtocolJson.Default.Frame)!.Heartbeat);
    }

    [Theory]
    [InlineData(null, 10.0)]
    [InlineData("", 10.0)]
    [InlineData("2", 2.0)]
    [InlineData(" 30 ", 30.0)]
    [InlineData("0.5", 0.5)]
    [InlineData("86400", 86400.0)]
    public void HostTimeout_reads_CLUSTER_TIMEOUT_SECONDS(string? text, double seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), HostTimeout.Parse(text));

    [Theory]
    [InlineData("abc")]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("1e3")]
    [InlineData("86401")]
    [InlineData("1,5")]
    public void HostTimeout_refuses_what_is_not_a_number_of_seconds(string text)
    {
        var e = Assert.Throws<FormatException>(() => HostTimeout.Parse(text));
        Assert.Contains("CLUSTER_TIMEOUT_SECONDS", e.Message);
        Assert.Contains($"'{text}'", e.Message);
    }

    [Fact]
    public async Task A_read_outlasts_its_timeout_while_heartbeats_come_and_skips_them()
    {
        using var server = new FakeHostEndpoint();
        Task serving = server.ServeAsync(async writer =>
        {
            // 4 s of heartbeats, 100 ms apart, against a timeout of 3 s: each gap is far inside the timeout
            // even on a loaded machine, the whole read well past it.
            for (int i = 0; i < 40; i++)
            {
                await writer.WriteLineAsync("{\"done\":false,\"heartbeat\":true}");
                await Task.Delay(100);
            }

            await writer.WriteLineAsync("{\"done\":true,\"warning\":\"last\"}");
        });
        using HostConnection connection = server.Connect(TimeSpan.FromSeconds(3));

        ClientFrame? frame = await Task.Run(connection.Read);

        Assert.NotNull(frame);
        Assert.True(frame!.Done);
        Assert.Equal("last", frame.Warning);
        await serving;
    }

    [Fact]
    public async Task A_read_gives_up_on_a_host_that_sends_nothing_within_the_timeout()
    {
        using var server = new FakeHostEndpoint();
        var release = new TaskCompletionSource();
        Task serving = server.ServeAsync(_ => release.Task);
        using HostConnection connection = server.Connect(TimeSpan.FromMilliseconds(300));

        var e = await Assert.ThrowsAsync<HostNotRespondingException>(() => Task.Run(connection.Read));

        Assert.Equal(TimeSpan.FromMilliseconds(300), e.Timeout);
        release.SetResult();
        await serving;
    }

    [Theory]
    [InlineData("this is not json")]
    [InlineData("{\"done\": tru")]
    [InlineData("null")]
    [InlineData("[1,2]")]
    [InlineData("{\"done\":\"yes\"}")]
    public async Task A_line_that_is_not_a_frame_is_a_HostProtocolException(string line)
    {
        using var server = new FakeHostEndpoint();
        Task serving = server.ServeAsync(writer => writer.WriteLineAsync(line));
        using HostConnection connection = server.Connect(TimeSpan.FromSeconds(10));

        var e = await Assert.ThrowsAsync<HostProtocolException>(() => Task.Run(connection.Read));

        Assert.Contains("not a frame of the Cluster protocol", e.Message);
        await serving;
    }

    [Fact]
    public async Task RequestHandler_sends_heartbeats_while_a_request_runs_and_none_after_its_last_frame()
    {
        using var harness = new SupervisorHarness();
        await harness.StartAsync("api", 1);
        harness.Launcher.OnFork = _ => ForkScript.Hold; // the new worker never gets ready: the reload waits
        var handler = new RequestHandler(harness.Supervisor, harness.Paths, new LoggerConfiguration().CreateLogger(), () => { });
        var output = new RecordingStream();
        var request = new Request { Command = CommandNames.Reload, Name = "api", Reload = new ReloadSpec { ListenTimeoutMs = 5000 } };

        Task handling = handler.HandleAsync(request, new FrameWriter(output), new TaskCompletionSource().Task);
        await Wait.UntilAsync(() => output.Lines().Count(IsHeartbeat) >= 2, "two heartbeats have come while the reload waits");
        Assert.False(handling.IsCompleted);
        harness.Time.Advance(TimeSpan.FromSeconds(6)); // the listen timeout passes: the reload goes on and ends
        await handling.WaitAsync(TimeSpan.FromSeconds(20));
        await Task.Delay(RequestHandler.HeartbeatInterval * 1.5);

        IReadOnlyList<string> lines = output.Lines();
        Frame last = JsonSerializer.Deserialize(lines[^1], ProtocolJson.Default.Frame)!;
        Assert.True(last.Done);
        Assert.Null(last.Error);
        Assert.All(lines.Take(lines.Count - 1), line => Assert.False(JsonSerializer.Deserialize(line, ProtocolJson.Default.Frame)!.Done));
    }

    private static bool IsHeartbeat(string line) => JsonSerializer.Deserialize(line, ProtocolJson.Default.Frame)!.Heartbeat;

    /// <summary>Stands in for the host on a control endpoint of its own: reads one request, then does as told.</summary>
    private sealed class FakeHostEndpoint : IDisposable
    {
        private readonly string _endpoint = OperatingSystem.IsWindows()
            ? "cluster-test-" + Guid.NewGuid().ToString("n")
            : Path.Combine(Path.GetTempPath(), "cl-" + Guid.NewGuid().ToString("n")[..10] + ".sock");

        private readonly NamedPipeServerStream _server;

        public FakeHostEndpoint() =>
            _server = new NamedPipeServerStream(_endpoint, PipeDirection.InOut, 1, PipeTransmissionMode.Byte, PipeOptions.Asynchronous);

        public async Task ServeAsync(Func<StreamWriter, Task> answer)
        {
            await _server.WaitForConnectionAsync();
            using var reader = new StreamReader(_server, new UTF8Encoding(false), false, 1024, leaveOpen: true);
            await using var writer = new StreamWriter(_server, new UTF8Encoding(false), 1024, leaveOpen: true) { AutoFlush = true, NewLine = "\n" };
            await reader.ReadLineAsync();
            try
            {
                await answer(writer);
            }
            catch (IOException)
            {
                // The client gave up and went.
            }
        }

        public HostConnection Connect(TimeSpan readTimeout)
        {
            HostConnection connection = HostConnection.TryConnect(_endpoint, TimeSpan.FromSeconds(10)) ?? throw new InvalidOperationException("Could not connect to the fake host.");
            connection.ReadTimeout = readTimeout;
            connection.Send(new ClientRequest { Command = "list" });
            return connection;
        }

        public void Dispose()
        {
            _server.Dispose();
            if (!OperatingSystem.IsWindows())
            {
                File.Delete(_endpoint);
            }
        }
    }

    /// <summary>A stream that keeps what is written to it, safe to read while it is written.</summary>
    private sealed class RecordingStream : Stream
    {
        private readonly StringBuilder _text = new();

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        /// <summary>The complete lines written so far.</summary>
        public IReadOnlyList<string> Lines()
        {
            lock (_text)
            {
                string text = _text.ToString();
                return text[..(text.LastIndexOf('\n') + 1)].Split('\n', StringSplitOptions.RemoveEmptyEntries);
            }
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            lock (_text)
            {
                _text.Append(Encoding.UTF8.GetString(buffer, offset, count));
            }
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
