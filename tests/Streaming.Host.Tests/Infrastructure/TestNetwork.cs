using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Streaming.Host.Tests.Infrastructure;

/// <summary>
/// Hosts on separate addresses, made by the test with iproute2 (needs root): a bridge in the test's own network
/// namespace with the gateway address <c>10.X.Y.1/24</c>, and per host a network namespace joined to the bridge by a veth
/// pair, with the address <c>10.X.Y.(11 + i)</c>. The /24 is picked at random among those no interface uses. Servers that
/// listen on the test's loopback (the embedded broker, PostgreSQL) are reached from the hosts through relays: see
/// <see cref="Expose"/> and <see cref="TestHost.ReachLoopback"/>. <see cref="CutAsync"/> takes a host's link down: every
/// packet between it and the rest is dropped silently (a cable pulled, not a refusal), until <see cref="RestoreAsync"/>.
/// Everything is removed on disposal.
/// </summary>
public sealed class TestNetwork : IAsyncDisposable
{
    private readonly string _tag;
    private readonly List<TcpRelay> _relays = [];

    private TestNetwork(string tag, string prefix, IReadOnlyList<TestHost> hosts)
    {
        _tag = tag;
        Gateway = IPAddress.Parse(prefix + "1");
        Hosts = hosts;
    }

    /// <summary>The bridge's address in the test's namespace: what the hosts reach the test's servers at.</summary>
    public IPAddress Gateway { get; }

    /// <summary>The hosts, in the order made.</summary>
    public IReadOnlyList<TestHost> Hosts { get; }

    private string Bridge => "stb" + _tag;

    private string HostSide(int index) => $"st{_tag}{index}";

    /// <summary>Makes the bridge and <paramref name="hosts"/> namespaces.</summary>
    /// <exception cref="InvalidOperationException">An <c>ip</c> command failed (not root, or no iproute2): its error.</exception>
    public static async Task<TestNetwork> CreateAsync(int hosts)
    {
        var tag = Guid.NewGuid().ToString("N")[..6];
        var used = (await IpAsync("-4", "-o", "addr", "show")).Split('\n');
        string prefix;
        do
        {
            prefix = $"10.{Random.Shared.Next(100, 250)}.{Random.Shared.Next(1, 250)}.";
        }
        while (used.Any(l => l.Contains(" " + prefix, StringComparison.Ordinal)));

        var list = Enumerable.Range(0, hosts).Select(i => new TestHost($"st{tag}-{(char)('a' + i)}", IPAddress.Parse(prefix + (11 + i)))).ToList();
        var network = new TestNetwork(tag, prefix, list);
        try
        {
            await IpAsync("link", "add", network.Bridge, "type", "bridge");
            await IpAsync("addr", "add", prefix + "1/24", "dev", network.Bridge);
            await IpAsync("link", "set", network.Bridge, "up");
            for (var i = 0; i < hosts; i++)
            {
                var host = list[i];
                await IpAsync("netns", "add", host.Namespace);
                await IpAsync("link", "add", network.HostSide(i), "type", "veth", "peer", "name", "eth0", "netns", host.Namespace);
                await IpAsync("link", "set", network.HostSide(i), "master", network.Bridge);
                await IpAsync("link", "set", network.HostSide(i), "up");
                await IpAsync("-n", host.Namespace, "addr", "add", host.Address + "/24", "dev", "eth0");
                await IpAsync("-n", host.Namespace, "link", "set", "eth0", "up");
                await IpAsync("-n", host.Namespace, "link", "set", "lo", "up");
                host.Start();
            }
        }
        catch
        {
            await network.DisposeAsync();
            throw;
        }

        return network;
    }

    /// <summary>
    /// Makes the test's loopback server at <paramref name="loopbackPort"/> reachable at <see cref="Gateway"/> on the same
    /// port (a relay in the test's namespace).
    /// </summary>
    public void Expose(int loopbackPort)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(Gateway, loopbackPort));
        listener.Listen(64);
        _relays.Add(new TcpRelay(listener, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp), new IPEndPoint(IPAddress.Loopback, loopbackPort)));
    }

    /// <summary>Takes host <paramref name="index"/>'s link down (its side of the bridge).</summary>
    public Task CutAsync(int index) => IpAsync("link", "set", HostSide(index), "down");

    /// <summary>Brings host <paramref name="index"/>'s link up again.</summary>
    public Task RestoreAsync(int index) => IpAsync("link", "set", HostSide(index), "up");

    public async ValueTask DisposeAsync()
    {
        foreach (var relay in _relays)
        {
            relay.Dispose();
        }

        foreach (var host in Hosts)
        {
            host.Dispose();
            await IpQuietAsync("netns", "delete", host.Namespace);
        }

        await IpQuietAsync("link", "delete", Bridge);
    }

    /// <summary>Runs <c>ip</c> with <paramref name="args"/>; its standard output.</summary>
    /// <exception cref="InvalidOperationException">It exited with an error.</exception>
    internal static Task<string> IpAsync(params string[] args) =>
        Programs.RunCheckedAsync("ip", args, " (the network tests need root and iproute2)");

    private static async Task IpQuietAsync(params string[] args)
    {
        try
        {
            await IpAsync(args);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }
}

/// <summary>
/// One host of a <see cref="TestNetwork"/>: a network namespace with an address on the bridge. A thread of the test
/// process that entered the namespace (<c>setns</c>) opens the sockets that must live there.
/// </summary>
public sealed class TestHost : IDisposable
{
    private const int CloneNewNet = 0x40000000;

    private readonly BlockingCollection<Action> _work = [];
    private readonly List<TcpRelay> _relays = [];
    private Thread? _thread;

    internal TestHost(string ns, IPAddress address)
    {
        Namespace = ns;
        Address = address;
    }

    /// <summary>The namespace's name (<c>ip netns</c>).</summary>
    public string Namespace { get; }

    /// <summary>The host's address on the bridge.</summary>
    public IPAddress Address { get; }

    /// <summary>The command that runs a process on this host: <c>ip netns exec NAME</c>.</summary>
    public IReadOnlyList<string> Launcher => ["ip", "netns", "exec", Namespace];

    /// <summary>
    /// Makes <paramref name="port"/> on the host's own loopback lead to <paramref name="gateway"/> on the same port, over
    /// the host's link: for servers that give clients their loopback address (the embedded broker's metadata names
    /// 127.0.0.1).
    /// </summary>
    public void ReachLoopback(int port, IPAddress gateway)
    {
        var listener = InNamespace(() =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            socket.Listen(64);
            return socket;
        });
        _relays.Add(new TcpRelay(listener, NewSocket, new IPEndPoint(gateway, port)));
    }

    /// <summary>
    /// A port on the test's loopback that leads to <paramref name="port"/> on the host's loopback, whatever the state of
    /// the host's link (the test's own way in, as a console cable would be).
    /// </summary>
    public Uri Backdoor(int port)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(64);
        _relays.Add(new TcpRelay(listener, NewSocket, new IPEndPoint(IPAddress.Loopback, port)));
        return new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndPoint!).Port}");
    }

    /// <summary>A TCP socket of the host's namespace.</summary>
    public Socket NewSocket() => InNamespace(() => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));

    internal void Start()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _thread = new Thread(() =>
        {
            // This thread alone moves into the namespace, for good: the sockets it opens belong there.
            using (var handle = File.OpenHandle("/var/run/netns/" + Namespace, FileMode.Open, FileAccess.Read))
            {
                if (SetNamespace(handle.DangerousGetHandle().ToInt32(), CloneNewNet) != 0)
                {
                    entered.SetException(new InvalidOperationException($"setns({Namespace}) failed with errno {Marshal.GetLastPInvokeError()}"));
                    return;
                }
            }

            entered.SetResult();
            foreach (var work in _work.GetConsumingEnumerable())
            {
                work();
            }
        })
        { IsBackground = true, Name = "netns " + Namespace };
        _thread.Start();
        entered.Task.GetAwaiter().GetResult();
    }

    private T InNamespace<T>(Func<T> make)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _work.Add(() =>
        {
            try
            {
                result.SetResult(make());
            }
            catch (Exception e)
            {
                result.SetException(e);
            }
        });
        return result.Task.GetAwaiter().GetResult();
    }

    public void Dispose()
    {
        foreach (var relay in _relays)
        {
            relay.Dispose();
        }

        _work.CompleteAdding();
        _thread?.Join(TimeSpan.FromSeconds(5));
    }

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNamespace(int fd, int nstype);
}

/// <summary>
/// Accepts connections on a listening socket and joins each to a new connection to <c>target</c>, opened with a socket
/// from <c>connect</c> (so that it may belong to another network namespace), copying bytes both ways until either side
/// closes.
/// </summary>
internal sealed class TcpRelay : IDisposable
{
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();

    public TcpRelay(Socket listener, Func<Socket> connect, IPEndPoint target)
    {
        _listener = listener;
        _ = AcceptAsync(connect, target);
    }

    private async Task AcceptAsync(Func<Socket> connect, IPEndPoint target)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket inbound;
            try
            {
                inbound = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = JoinAsync(inbound, connect(), target);
        }
    }

    private async Task JoinAsync(Socket inbound, Socket outbound, IPEndPoint target)
    {
        using (inbound)
        using (outbound)
        {
            try
            {
                inbound.NoDelay = outbound.NoDelay = true;
                await outbound.ConnectAsync(target, _stop.Token);
                using var a = new NetworkStream(inbound, ownsSocket: false);
                using var b = new NetworkStream(outbound, ownsSocket: false);
                await Task.WhenAll(CopyAsync(a, b, outbound), CopyAsync(b, a, inbound));
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException or IOException)
            {
                // One side went away (or the relay stopped): both are closed.
            }
        }
    }

    private async Task CopyAsync(NetworkStream from, NetworkStream to, Socket toSocket)
    {
        try
        {
            await from.CopyToAsync(to, _stop.Token);
            toSocket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException or IOException)
        {
            // Closed by the other copy or the relay's stop.
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
    }
}
