using System.IO.Pipes;
using System.Reflection;
using System.Text;
using Cluster.Host;
using Cluster.Tests.Support;
using Serilog;
using Xunit;

namespace Cluster.Tests;

/// <summary>
/// The control server over a real socket: what it holds for a connection must go with the connection, or the
/// host grows with every cmdlet ever run. The read that watches for a client going away used to stay registered
/// on the host's stop token after its connection closed (one registration, with its socket operation and frame
/// buffer, per connection ever served).
/// </summary>
public sealed class ControlServerMemoryTests
{
    private const int Connections = 200;

    /// <summary>The accept loop waits for the next connection with the stop token: that one registration stays.</summary>
    private const int AcceptLoopRegistrations = 1;

    [Fact]
    public async Task Connections_the_host_closes_leave_nothing_on_its_stop_token()
    {
        await ServeAsync(async endpoint =>
        {
            for (int i = 0; i < Connections; i++)
            {
                // As a cmdlet that keeps its end open until the host has answered and closed: the host closes first.
                await RequestAndWaitForCloseAsync(endpoint, i % 2 == 0 ? "ping" : "list");
            }
        });
    }

    [Fact]
    public async Task Clients_that_go_before_their_reply_leave_nothing_on_its_stop_token()
    {
        await ServeAsync(async endpoint =>
        {
            for (int i = 0; i < Connections; i++)
            {
                using NamedPipeClientStream pipe = await ConnectAsync(endpoint);
                await pipe.WriteAsync(Encoding.UTF8.GetBytes("{\"command\":\"ping\"}\n"));
                await pipe.FlushAsync();
            }
        });
    }

    private static async Task ServeAsync(Func<string, Task> connect)
    {
        using var harness = new SupervisorHarness();
        using var stop = new CancellationTokenSource();
        ILogger log = new LoggerConfiguration().CreateLogger();
        var server = new ControlServer(harness.Paths.Endpoint, new RequestHandler(harness.Supervisor, harness.Paths, log, () => { }), log);
        Task running = server.RunAsync(stop.Token);
        try
        {
            await connect(harness.Paths.Endpoint);

            // Waited for exactly: between two connections the accept loop holds none for a moment.
            await Wait.UntilAsync(
                () => server.ClientWatches == 0 && Registrations.On(stop) == AcceptLoopRegistrations,
                $"the {Connections} closed connections hold nothing (reads still watching: {server.ClientWatches}; registrations on the stop token: {Registrations.On(stop)})");
            Assert.Equal(0, server.ClientWatches);
            Assert.Equal(AcceptLoopRegistrations, Registrations.On(stop));
        }
        finally
        {
            await stop.CancelAsync();
            await running;
        }
    }

    private static async Task RequestAndWaitForCloseAsync(string endpoint, string command)
    {
        using NamedPipeClientStream pipe = await ConnectAsync(endpoint);
        await pipe.WriteAsync(Encoding.UTF8.GetBytes("{\"command\":\"" + command + "\"}\n"));
        await pipe.FlushAsync();
        var received = new StringBuilder();
        var buffer = new byte[4096];
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        int read;
        while ((read = await pipe.ReadAsync(buffer, bound.Token)) > 0)
        {
            received.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }

        Assert.Contains("\"done\":true", received.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    private static async Task<NamedPipeClientStream> ConnectAsync(string endpoint)
    {
        var pipe = new NamedPipeClientStream(".", endpoint, PipeDirection.InOut, PipeOptions.Asynchronous | PipeOptions.CurrentUserOnly);
        await pipe.ConnectAsync(15000);
        return pipe;
    }

    /// <summary>
    /// The callbacks registered on a token source and not yet unregistered. The runtime does not expose the count,
    /// so it is read from its private fields; a runtime whose source is shaped otherwise fails here, saying so.
    /// </summary>
    private static class Registrations
    {
        private const BindingFlags Private = BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Instance;

        public static int On(CancellationTokenSource source)
        {
            object? registrations = Field(source, "_registrations");
            int count = 0;
            for (object? node = registrations is null ? null : Field(registrations, "Callbacks"); node is not null; node = Field(node, "Next"))
            {
                count++;
            }

            return count;
        }

        private static object? Field(object owner, string name) =>
            (owner.GetType().GetField(name, Private)
                ?? throw new InvalidOperationException($"{owner.GetType()} has no field {name} in this runtime: update how the test counts registrations."))
            .GetValue(owner);
    }
}
