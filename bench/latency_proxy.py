"""A TCP proxy on loopback that puts a region's distance between a sender and the emulator.

Every chunk read from either side is written to the other side RTT/2 later (with a little
jitter, +-5% by default), in order per connection and direction, so one request-response
exchange costs one round trip, and a keep-alive connection stays one connection (the proxy is
transparent to HTTP: it never parses or rewrites a byte). A new connection's first bytes wait
one more RTT (`--handshake-rtts 1`: TCP's SYN / SYN-ACK; TLS would add one or two more).
Several routes (listen port -> upstream) share one event loop, and the RTT can be changed
while it runs, so one emulator can be measured at 0, 20 and 80 ms in one run.

As a program (what bench/broadcast_rtt.py runs, in a process of its own so that its CPU is
apart from the sender's and the emulator's):

    python bench/latency_proxy.py --rtt 20 --route 0=127.0.0.1:8080
    python bench/latency_proxy.py --control        # routes and RTT from stdin, one command a line:
        add [LISTEN_PORT=]HOST:PORT   -> "port P"   (a new route; 0 or nothing: any free port)
        rtt MS [JITTER]               -> "ok"       (applies to chunks read from now on)
        stats                         -> one JSON line: per route connections, chunks, bytes each way,
                                                     HTTP status lines seen (200, 429, ...)
        reset                         -> "ok"       (zero the counters)
        quit                          -> exits (closing every connection)

Statuses are counted from the upstream's chunks that start with "HTTP/1.1 NNN " (a response
begins a chunk on these keep-alive exchanges: one request in flight per connection), so the
proxy can check a sender's own count of its 429s independently.

In process: `LatencyProxy(...)` with `await proxy.add_route(...)` in a running loop. There is no flow
control (each side's bytes are buffered until due): it is meant for request/response traffic of modest
size, not for bulk transfers.
"""

import argparse
import asyncio
import collections
import json
import os
import random
import re
import signal
import sys
import time

STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3}) ")


class _Direction:
    """One direction of one proxied connection: chunks queued with the time they are due, one
    timer pending at a time (for the head of the queue)."""

    __slots__ = ("proxy", "route", "out", "queue", "last_due", "not_before", "timer", "upstream")

    def __init__(self, proxy, route, upstream: bool):
        self.proxy, self.route = proxy, route
        self.out = None  # the transport written to (None until the upstream connection is made)
        self.queue = collections.deque()  # (due, bytes, or None: close after the chunks before it)
        self.last_due = 0.0
        self.not_before = 0.0  # a new connection's handshake: nothing is delivered before this
        self.timer = None
        self.upstream = upstream  # True: upstream -> client (responses)

    def push(self, data) -> None:
        loop = self.proxy.loop
        now = loop.time()
        half = self.proxy.rtt / 2.0
        delay = half * (1.0 + self.proxy.jitter * (2.0 * self.proxy.random() - 1.0)) if half else 0.0
        due = max(max(now, self.not_before) + delay, self.last_due)  # never overtakes an earlier chunk
        self.last_due = due
        if data is not None:
            route = self.route
            route.chunks += 1
            if self.upstream:
                route.bytes_down += len(data)
                if data[:5] == b"HTTP/":
                    match = STATUS.match(data)
                    if match:
                        route.statuses[match.group(1).decode()] += 1
            else:
                route.bytes_up += len(data)
        if due <= now and not self.queue and self.out is not None:
            self._write(data)
            return
        self.queue.append((due, data))
        if self.timer is None and self.out is not None:
            self.timer = loop.call_at(self.queue[0][0], self.flush)

    def flush(self) -> None:
        self.timer = None
        if self.out is None:  # the upstream connection is not made yet: _connect flushes
            return
        loop = self.proxy.loop
        now = loop.time()
        queue = self.queue
        while queue and queue[0][0] <= now:
            self._write(queue.popleft()[1])
        if queue:
            self.timer = loop.call_at(queue[0][0], self.flush)

    def _write(self, data) -> None:
        if self.out is None or self.out.is_closing():
            return
        if data is None:
            self.out.close()
        else:
            self.out.write(data)


class _Side(asyncio.Protocol):
    """The protocol on one socket; what it reads goes into `inbound` (the other side's writer)."""

    def __init__(self, inbound: _Direction, on_lost):
        self.inbound = inbound
        self.on_lost = on_lost
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.inbound.push(data)

    def eof_received(self):
        self.inbound.push(None)
        return False

    def connection_lost(self, exc):
        self.inbound.push(None)
        self.on_lost(self)


class _Client(_Side):
    """The accepted socket: opens the upstream connection, holds what arrives meanwhile."""

    def __init__(self, proxy, route):
        self.proxy, self.route = proxy, route
        self.to_upstream = _Direction(proxy, route, upstream=False)
        self.to_client = _Direction(proxy, route, upstream=True)
        super().__init__(self.to_upstream, self._lost)
        self.upstream = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self.route.connections += 1
        self.route.open += 1
        self.to_client.out = transport
        # the handshake: the first bytes reach the server handshake_rtts x RTT later than on a warm connection
        self.to_upstream.not_before = self.proxy.loop.time() + self.proxy.rtt * self.proxy.handshake_rtts
        self.proxy.loop.create_task(self._connect())

    async def _connect(self):
        try:
            _, self.upstream = await self.proxy.loop.create_connection(
                lambda: _Side(self.to_client, lambda side: None), self.route.host, self.route.port)
        except OSError:
            self.route.refused += 1
            self.transport.close()
            return
        self.to_upstream.out = self.upstream.transport
        self.to_upstream.flush()

    def _lost(self, side):
        self.route.open -= 1


class Route:
    def __init__(self, listen_port: int, host: str, port: int):
        self.listen_port, self.host, self.port = listen_port, host, port
        self.server = None
        self.reset()

    def reset(self):
        self.connections = self.chunks = self.bytes_up = self.bytes_down = self.refused = 0
        self.open = getattr(self, "open", 0)
        self.statuses = collections.Counter()

    def stats(self) -> dict:
        return {"listen": self.listen_port, "upstream": "%s:%d" % (self.host, self.port),
                "connections": self.connections, "open": self.open, "chunks": self.chunks, "bytes_up": self.bytes_up, "bytes_down": self.bytes_down,
                "refused": self.refused, "statuses": dict(self.statuses)}


class LatencyProxy:
    def __init__(self, rtt: float = 0.0, jitter: float = 0.05, handshake_rtts: float = 1.0,
                 listen_host: str = "127.0.0.1", seed: int | None = None):
        self.rtt, self.jitter, self.handshake_rtts = rtt, jitter, handshake_rtts
        self.listen_host = listen_host
        self.random = random.Random(seed).random
        self.routes: list[Route] = []
        self.loop = None

    async def add_route(self, upstream: str, listen_port: int = 0) -> Route:
        """Listen on listen_port (0: any free one) and forward to upstream "HOST:PORT"."""
        self.loop = asyncio.get_running_loop()
        host, _, port = upstream.rpartition(":")
        route = Route(listen_port, host or "127.0.0.1", int(port))
        route.server = await self.loop.create_server(lambda: _Client(self, route), self.listen_host, listen_port,
                                                     reuse_address=True, backlog=4096)
        route.listen_port = route.server.sockets[0].getsockname()[1]
        self.routes.append(route)
        return route

    def set_rtt(self, rtt: float, jitter: float | None = None) -> None:
        self.rtt = max(0.0, rtt)
        if jitter is not None:
            self.jitter = jitter

    def stats(self) -> dict:
        return {"rtt_ms": self.rtt * 1000, "jitter": self.jitter, "routes": [r.stats() for r in self.routes]}

    async def close(self) -> None:
        for route in self.routes:
            route.server.close()


# -- the program -------------------------------------------------------------------------------
async def _control(proxy: LatencyProxy, routes: list[str]) -> None:
    for spec in routes:
        listen, _, upstream = spec.rpartition("=")
        route = await proxy.add_route(upstream, int(listen or 0))
        print("port %d -> %s" % (route.listen_port, upstream), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        words = line.decode().split()
        if not words:
            continue
        try:
            if words[0] == "add":
                listen, _, upstream = words[1].rpartition("=")
                route = await proxy.add_route(upstream, int(listen or 0))
                answer = "port %d" % route.listen_port
            elif words[0] == "rtt":
                proxy.set_rtt(float(words[1]) / 1000.0, float(words[2]) if len(words) > 2 else None)
                answer = "ok"
            elif words[0] == "stats":
                answer = json.dumps(proxy.stats())
            elif words[0] == "reset":
                for route in proxy.routes:
                    route.reset()
                answer = "ok"
            elif words[0] == "quit":
                return
            else:
                answer = "error unknown command %r" % words[0]
        except (IndexError, ValueError, OSError) as error:
            answer = "error %s" % error
        sys.stdout.write(answer + "\n")
        sys.stdout.flush()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rtt", type=float, default=0.0, help="round-trip time to add, in ms")
    parser.add_argument("--jitter", type=float, default=0.05, help="+- this share of RTT/2 per chunk (0.05: 5%%)")
    parser.add_argument("--handshake-rtts", type=float, default=1.0,
                        help="extra RTTs before a new connection's first bytes reach the server (TCP: 1)")
    parser.add_argument("--route", action="append", default=[], metavar="[LISTEN=]HOST:PORT")
    parser.add_argument("--control", action="store_true", help="read commands from stdin (see above)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if not args.route and not args.control:
        parser.error("give --route or --control")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    proxy = LatencyProxy(args.rtt / 1000.0, args.jitter, args.handshake_rtts, seed=args.seed)

    async def run():
        if args.control:
            await _control(proxy, args.route)
            return
        for spec in args.route:
            listen, _, upstream = spec.rpartition("=")
            route = await proxy.add_route(upstream, int(listen or 0))
            print("127.0.0.1:%d -> %s, RTT %.1f ms" % (route.listen_port, upstream, args.rtt), flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    os._exit(0)  # every socket closes with the process


# -- the control side, for benchmarks --------------------------------------------------------------
class ProxyProcess:
    """`python bench/latency_proxy.py --control` as a child process (its CPU apart from ours)."""

    def __init__(self, jitter: float = 0.05, handshake_rtts: float = 1.0, seed: int | None = 1):
        import subprocess

        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--control", "--jitter", str(jitter),
             "--handshake-rtts", str(handshake_rtts), *(["--seed", str(seed)] if seed is not None else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, start_new_session=True)

    def _ask(self, line: str) -> str:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if not answer or answer.startswith("error"):
            raise RuntimeError("latency proxy: %r -> %r" % (line, answer))
        return answer

    def add(self, upstream: str, listen_port: int = 0) -> int:
        return int(self._ask("add %d=%s" % (listen_port, upstream)).split()[1])

    def set_rtt(self, rtt_ms: float) -> None:
        self._ask("rtt %g" % rtt_ms)

    def stats(self) -> dict:
        return json.loads(self._ask("stats"))

    def reset(self) -> None:
        self._ask("reset")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(5)
            except Exception:
                pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except Exception:
                self.process.kill()
                self.process.wait()


def _selftest() -> None:
    """A quick check of the RTT and keep-alive: an aiohttp server behind the proxy, 20 requests on one
    keep-alive connection at 0 / 20 / 80 ms (python bench/latency_proxy.py --selftest)."""
    import http.client
    import threading

    from aiohttp import web

    async def hello(request):
        return web.Response(text="ok" * int(request.query.get("n", "1")))

    ready = threading.Event()
    box = {}

    def serve():
        async def go():
            runner = web.AppRunner(web.Application(handler_args={}, client_max_size=1 << 20))
            runner.app.router.add_get("/", hello)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            box["port"] = site._server.sockets[0].getsockname()[1]
            ready.set()
            await asyncio.Event().wait()
        asyncio.run(go())

    threading.Thread(target=serve, daemon=True).start()
    ready.wait()
    proxy = ProxyProcess()
    try:
        port = proxy.add("127.0.0.1:%d" % box["port"])
        for rtt in (0, 20, 80):
            proxy.set_rtt(rtt)
            proxy.reset()
            connection = http.client.HTTPConnection("127.0.0.1", port)
            times = []
            for i in range(20):
                started = time.perf_counter()
                connection.request("GET", "/?n=%d" % (1 + 5000 * (i % 2)))
                body = connection.getresponse().read()
                assert body.startswith(b"okok" if i % 2 else b"ok"), body[:20]
                times.append(time.perf_counter() - started)
            connection.close()
            stats = proxy.stats()["routes"][0]
            first, rest = times[0], sorted(times[1:])
            print("RTT %3d ms: first exchange %.1f ms (handshake + 1 RTT), the other 19: median %.1f ms, "
                  "min %.1f, max %.1f; connections through the proxy %d for 20 requests, statuses %s" % (
                      rtt, 1000 * first, 1000 * rest[len(rest) // 2], 1000 * rest[0], 1000 * rest[-1],
                      stats["connections"], stats["statuses"]))
    finally:
        proxy.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["--selftest"]:
        _selftest()
    else:
        main()
