using System.Buffers;
using System.Text;
using System.Text.Json;
using Cluster.Protocol;

namespace Cluster.Host;

internal sealed class FrameTooLargeException : Exception
{
    public FrameTooLargeException(int limit)
        : base($"A request is larger than {limit} bytes, the most the host reads. Send less: a smaller -Environment, fewer or shorter arguments.")
    {
    }
}

/// <summary>Reads newline-terminated frames from a client, refusing any longer than the limit.</summary>
internal sealed class FrameReader
{
    private readonly Stream _stream;
    private readonly int _maxBytes;
    private readonly byte[] _buffer = new byte[16 * 1024];
    private readonly MemoryStream _line = new();
    private int _start;
    private int _end;

    public FrameReader(Stream stream, int maxBytes)
    {
        _stream = stream;
        _maxBytes = maxBytes;
    }

    /// <summary>The next frame without its newline, or null at the end of the stream.</summary>
    public async Task<string?> ReadLineAsync(CancellationToken cancel)
    {
        _line.SetLength(0);
        while (true)
        {
            int newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (newline >= 0)
            {
                Append(newline - _start);
                _start = newline + 1;
                return Encoding.UTF8.GetString(_line.GetBuffer(), 0, (int)_line.Length).TrimEnd('\r');
            }

            Append(_end - _start);
            _start = _end = 0;
            int read = await _stream.ReadAsync(_buffer.AsMemory(), cancel).ConfigureAwait(false);
            if (read == 0)
            {
                return null;
            }

            _end = read;
        }
    }

    /// <summary>
    /// Reads and drops the rest of the frame being read (after <see cref="FrameTooLargeException"/>), up to its newline
    /// or the end of the stream, at most <paramref name="maxBytes"/>: a client still writing a frame the host refused
    /// can finish its write and read the refusal, instead of finding the connection broken under it.
    /// </summary>
    /// <returns>False when the frame went on past <paramref name="maxBytes"/>.</returns>
    public async Task<bool> SkipFrameAsync(long maxBytes, CancellationToken cancel)
    {
        _line.SetLength(0);
        long skipped = 0;
        while (true)
        {
            int newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (newline >= 0)
            {
                _start = newline + 1;
                return true;
            }

            skipped += _end - _start;
            _start = _end = 0;
            if (skipped > maxBytes)
            {
                return false;
            }

            int read = await _stream.ReadAsync(_buffer.AsMemory(), cancel).ConfigureAwait(false);
            if (read == 0)
            {
                return true;
            }

            _end = read;
        }
    }

    private void Append(int count)
    {
        if (_line.Length + count > _maxBytes)
        {
            throw new FrameTooLargeException(_maxBytes);
        }

        _line.Write(_buffer, _start, count);
    }
}

/// <summary>Writes frames to a client. A client that has gone away is not an error: later writes are dropped.</summary>
internal sealed class FrameWriter
{
    private readonly Stream _stream;
    private readonly SemaphoreSlim _lock = new(1, 1);

    /// <summary>
    /// One buffer for every frame of the connection: a log tail sends frames of a few hundred kilobytes, and a new
    /// array for each would be a large-object allocation that only a full collection gives back.
    /// </summary>
    private readonly ArrayBufferWriter<byte> _buffer = new(4 * 1024);

    public FrameWriter(Stream stream) => _stream = stream;

    public bool ClientGone { get; private set; }

    /// <summary>The bytes of the frames written so far.</summary>
    public long BytesWritten { get; private set; }

    public async Task WriteAsync(Frame frame)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (ClientGone)
            {
                return;
            }

            _buffer.ResetWrittenCount();
            using (var json = new Utf8JsonWriter(_buffer))
            {
                JsonSerializer.Serialize(json, frame, ProtocolJson.Default.Frame);
            }

            _buffer.Write("\n"u8);
            await _stream.WriteAsync(_buffer.WrittenMemory).ConfigureAwait(false);
            await _stream.FlushAsync().ConfigureAwait(false);
            BytesWritten += _buffer.WrittenCount;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            ClientGone = true;
        }
        finally
        {
            _lock.Release();
        }
    }
}
