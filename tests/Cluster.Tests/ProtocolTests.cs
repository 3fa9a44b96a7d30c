using System.Text;
using System.Text.Json;
using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Xunit;

namespace Cluster.Tests;

public sealed class ProtocolTests
{
    [Fact]
    public void Request_round_trips_with_camelCase_names_and_no_nulls()
    {
        var request = new Request
        {
            Command = CommandNames.Start,
            Start = new StartSpec
            {
                Name = "api",
                Script = "/srv/api/app.js",
                Instances = -1,
                Arguments = { "--port", "8080" },
                Environment = { ["NODE_ENV"] = "production" },
                ListenTimeoutMs = 1500,
            },
        };

        string json = JsonSerializer.Serialize(request, ProtocolJson.Default.Request);
        Request back = JsonSerializer.Deserialize(json, ProtocolJson.Default.Request)!;

        Assert.Contains("\"command\":\"start\"", json);
        Assert.Contains("\"listenTimeoutMs\":1500", json);
        Assert.Contains("\"workingDirectory\":\"\"", json);
        Assert.DoesNotContain("\"reload\"", json);
        Assert.DoesNotContain("\"killTimeoutMs\"", json);
        Assert.DoesNotContain("null", json);
        Assert.Equal("start", back.Command);
        Assert.Null(back.Reload);
        Assert.Equal("api", back.Start!.Name);
        Assert.Equal(-1, back.Start.Instances);
        Assert.Equal(new[] { "--port", "8080" }, back.Start.Arguments);
        Assert.Equal("production", back.Start.Environment["NODE_ENV"]);
        Assert.Equal(1500, back.Start.ListenTimeoutMs);
        Assert.Null(back.Start.KillTimeoutMs);
    }

    [Fact]
    public void Frame_round_trips_an_error_and_apps()
    {
        var frame = new Frame
        {
            Done = true,
            Error = new ErrorInfo { Code = "NewInstanceExited", Category = "InvalidResult", Message = "it exited", Target = "api" },
            Apps = new List<AppInfo>
            {
                new() { Name = "api", Status = "online", Instances = { new InstanceInfo { Instance = 0, Pid = 42, Status = "online", Restarts = 2 } } },
            },
        };

        string json = JsonSerializer.Serialize(frame, ProtocolJson.Default.Frame);
        Frame back = JsonSerializer.Deserialize(json, ProtocolJson.Default.Frame)!;

        Assert.StartsWith("{\"done\":true,", json);
        Assert.DoesNotContain("\"warning\"", json);
        Assert.DoesNotContain("\"progress\"", json);
        Assert.DoesNotContain("\"lastExitCode\"", json);
        Assert.True(back.Done);
        Assert.Equal("NewInstanceExited", back.Error!.Code);
        Assert.Equal("InvalidResult", back.Error.Category);
        Assert.Equal("api", back.Error.Target);
        InstanceInfo instance = back.Apps!.Single().Instances.Single();
        Assert.Equal(42, instance.Pid);
        Assert.Equal(2, instance.Restarts);
        Assert.Null(back.Lines);
    }

    [Fact]
    public async Task FrameReader_returns_each_line_without_its_line_ending()
    {
        var reader = new FrameReader(new MemoryStream(Encoding.UTF8.GetBytes("{\"a\":1}\n{\"b\":2}\r\n\nlast\n")), 1024);

        Assert.Equal("{\"a\":1}", await reader.ReadLineAsync(CancellationToken.None));
        Assert.Equal("{\"b\":2}", await reader.ReadLineAsync(CancellationToken.None));
        Assert.Equal("", await reader.ReadLineAsync(CancellationToken.None));
        Assert.Equal("last", await reader.ReadLineAsync(CancellationToken.None));
        Assert.Null(await reader.ReadLineAsync(CancellationToken.None));
    }

    [Fact]
    public async Task FrameReader_joins_a_line_that_arrives_a_byte_at_a_time_and_spans_buffers()
    {
        string text = string.Concat(Enumerable.Repeat("héllo wörld ", 3000));
        byte[] bytes = Encoding.UTF8.GetBytes(text + "\n" + "next\n");
        var reader = new FrameReader(new TrickleStream(bytes, chunk: 1), 64 * 1024);

        Assert.Equal(text, await reader.ReadLineAsync(CancellationToken.None));
        Assert.Equal("next", await reader.ReadLineAsync(CancellationToken.None));
    }

    [Fact]
    public async Task FrameReader_throws_FrameTooLarge_past_its_limit()
    {
        byte[] fits = Encoding.UTF8.GetBytes(new string('x', 100) + "\n");
        byte[] tooLong = Encoding.UTF8.GetBytes(new string('x', 101) + "\n");

        Assert.Equal(100, (await new FrameReader(new MemoryStream(fits), 100).ReadLineAsync(CancellationToken.None))!.Length);
        await Assert.ThrowsAsync<FrameTooLargeException>(() => new FrameReader(new MemoryStream(tooLong), 100).ReadLineAsync(CancellationToken.None));
    }

    [Fact]
    public async Task FrameReader_refuses_an_endless_line_without_reading_it_all()
    {
        var endless = new TrickleStream(Encoding.ASCII.GetBytes(new string('x', 10 * 1024 * 1024)), chunk: 8192);

        await Assert.ThrowsAsync<FrameTooLargeException>(() => new FrameReader(endless, 64 * 1024).ReadLineAsync(CancellationToken.None));
        Assert.True(endless.Position < 1024 * 1024, $"The reader read {endless.Position} bytes before it refused the frame.");
    }

    /// <summary>A stream that hands out its bytes a few at a time, as a socket may.</summary>
    private sealed class TrickleStream : Stream
    {
        private readonly byte[] _bytes;
        private readonly int _chunk;
        private int _position;

        public TrickleStream(byte[] bytes, int chunk)
        {
            _bytes = bytes;
            _chunk = chunk;
        }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => _bytes.Length;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = Math.Min(Math.Min(count, _chunk), _bytes.Length - _position);
            Array.Copy(_bytes, _position, buffer, offset, n);
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
