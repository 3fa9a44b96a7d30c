using System.Threading.Channels;
using Serilog;

namespace Cluster.Host;

/// <summary>
/// The one place where an app's state changes: a queue of work items run one at a time. It is the
/// synchronization context of everything it runs, so the continuations of the app's own awaits (a timer, a
/// worker becoming ready, the next step of a reload) come back to it too. Primary events, restart timers, the
/// memory watcher and every request are posted here; nothing else touches the app's slots and workers.
/// </summary>
internal sealed class AppLoop : SynchronizationContext
{
    [ThreadStatic]
    private static AppLoop? t_running;

    private readonly Channel<(SendOrPostCallback Callback, object? State)> _queue =
        Channel.CreateUnbounded<(SendOrPostCallback, object?)>(new UnboundedChannelOptions { SingleReader = true });

    private readonly ILogger _log;
    private readonly Task _pump;

    public AppLoop(ILogger log)
    {
        _log = log;
        _pump = Task.Run(PumpAsync);
    }

    /// <summary>Whether the caller runs on this loop now.</summary>
    public bool IsCurrent => ReferenceEquals(t_running, this);

    public override void Post(SendOrPostCallback d, object? state)
    {
        // After Complete, nothing of the app is left to change: late timers and events are dropped.
        _queue.Writer.TryWrite((d, state));
    }

    public override void Send(SendOrPostCallback d, object? state) =>
        throw new NotSupportedException("Work is posted to an app's loop, never run on it synchronously.");

    public override SynchronizationContext CreateCopy() => this;

    public void Post(Action action) => Post(static state => ((Action)state!)(), action);

    /// <summary>Runs the work on the loop and returns its outcome to the caller, wherever the caller runs.</summary>
    public Task<T> RunAsync<T>(Func<Task<T>> work)
    {
        var outcome = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite((_ => _ = CompleteAsync(work, outcome), null)))
        {
            outcome.SetException(new ObjectDisposedException(nameof(AppLoop), "The app is gone."));
        }

        return outcome.Task;
    }

    public Task<T> RunAsync<T>(Func<T> work) => RunAsync(() => Task.FromResult(work()));

    /// <summary>Takes no more work; what is queued still runs.</summary>
    public Task CompleteAsync()
    {
        _queue.Writer.TryComplete();
        return _pump;
    }

    private static async Task CompleteAsync<T>(Func<Task<T>> work, TaskCompletionSource<T> outcome)
    {
        try
        {
            outcome.TrySetResult(await work());
        }
        catch (OperationCanceledException e)
        {
            outcome.TrySetCanceled(e.CancellationToken);
        }
        catch (Exception e)
        {
            outcome.TrySetException(e);
        }
    }

    private async Task PumpAsync()
    {
        await foreach ((SendOrPostCallback callback, object? state) in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            SynchronizationContext? previous = Current;
            SetSynchronizationContext(this);
            t_running = this;
            try
            {
                callback(state);
            }
            catch (Exception e)
            {
                // One failing event must not stop the app's loop: every later event would be lost.
                _log.Error(e, "An event of the app failed; the app goes on");
            }
            finally
            {
                t_running = null;
                SetSynchronizationContext(previous);
            }
        }
    }
}
