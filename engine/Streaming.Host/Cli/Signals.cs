using System.Runtime.InteropServices;

namespace Streaming.Host.Cli;

/// <summary>Turns SIGTERM and SIGINT into cancellation, so a verb can finish its work (a checkpoint) and exit 0.</summary>
public sealed class Signals : IDisposable
{
    private readonly CancellationTokenSource _cts;
    private readonly PosixSignalRegistration _term;
    private readonly PosixSignalRegistration _int;

    public Signals(CancellationToken linked)
    {
        _cts = CancellationTokenSource.CreateLinkedTokenSource(linked);
        _term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        _int = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
    }

    public CancellationToken Token => _cts.Token;

    public void Dispose()
    {
        _term.Dispose();
        _int.Dispose();
        _cts.Dispose();
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        _cts.Cancel();
    }
}
