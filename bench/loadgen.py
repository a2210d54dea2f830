"""Client-side load for the benchmarks: worker processes that each open a share of
many idle WebSocket connections (websockets' asyncio client) and hold them, plus a
bare aiohttp WebSocket server used as the "client ceiling" baseline.

Workers report the CLOCK_MONOTONIC time of every completed handshake (the clock is
system-wide on Linux, so times from all workers can be merged), failures by kind,
and their own CPU time, so a run can show the client was not the bottleneck.
"""

import asyncio
import multiprocessing as mp
import os
import time
from collections import Counter

from backends import raise_nofile

CTX = mp.get_context("fork")


async def _open_many(urls, inflight: int, timeout: float):
    from websockets.asyncio.client import connect

    semaphore = asyncio.Semaphore(inflight)
    held, times, errors = [], [], Counter()

    async def one(url):
        async with semaphore:
            try:
                ws = await connect(url, ping_interval=None, open_timeout=timeout, close_timeout=1,
                                   compression=None, max_queue=4)
            except Exception as error:  # InvalidStatus (401/500/...), timeouts, resets
                response = getattr(error, "response", None)
                errors[("HTTP %s" % response.status_code) if response is not None else type(error).__name__] += 1
                return
            times.append(time.monotonic())
            held.append(ws)

    await asyncio.gather(*(one(url) for url in urls))
    return held, times, errors


def _worker(make_urls, args, inflight, timeout, go, pipe):
    raise_nofile()
    urls = make_urls(*args)  # tokens minted here, in parallel, before the start signal
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pipe.send("ready")
    go.wait()
    cpu0 = time.process_time()
    held, times, errors = loop.run_until_complete(_open_many(urls, inflight, timeout))
    pipe.send({"times": times, "errors": dict(errors), "cpu": time.process_time() - cpu0, "held": len(held)})
    # Hold the connections idle (the loop runs so the library answers control frames) until told to stop.
    reader = asyncio.Event()
    loop.add_reader(pipe.fileno(), reader.set)
    loop.run_until_complete(reader.wait())
    os._exit(0)  # the kernel closes every socket at once (the server sees them drop)


class ConnectionPool:
    """Open `count` connections from `procs` worker processes, `inflight` handshakes at a time in all."""

    def __init__(self, make_urls, count: int, procs: int, inflight: int, timeout: float = 60.0):
        self.count, self.procs = count, max(1, min(procs, count or 1))
        self.workers, self.pipes = [], []
        self.go = CTX.Event()
        share, extra = divmod(count, self.procs)
        start = 0
        for index in range(self.procs):
            size = share + (1 if index < extra else 0)
            parent, child = CTX.Pipe()
            process = CTX.Process(target=_worker, args=(make_urls, (start, size), max(1, inflight // self.procs),
                                                        timeout, self.go, child), daemon=True)
            process.start()
            self.workers.append(process)
            self.pipes.append(parent)
            start += size
        for pipe in self.pipes:
            if pipe.recv() != "ready":
                raise RuntimeError("a load worker failed to start")

    def run(self):
        """Start every worker at once; returns (t0, sorted completion times, errors, client cpu list, wall)."""
        t0 = time.monotonic()
        self.go.set()
        reports = [pipe.recv() for pipe in self.pipes]
        wall = time.monotonic() - t0
        times = sorted(t for report in reports for t in report["times"])
        errors = Counter()
        for report in reports:
            errors.update(report["errors"])
        return t0, times, dict(errors), [r["cpu"] for r in reports], wall

    def pids(self):
        return [w.pid for w in self.workers]

    def close(self):
        stop_workers(self.pipes, self.workers, "stop")


def stop_workers(pipes, workers, message) -> None:
    """Ask each client worker process to stop over its pipe; kill any still alive after 10 s."""
    for pipe in pipes:
        try:
            pipe.send(message)
        except (BrokenPipeError, OSError):
            pass
    for process in workers:
        process.join(10)
        if process.is_alive():
            process.kill()


def batch_rates(t0: float, times: list, batch: int) -> list:
    """Connections per second of each consecutive `batch` completions (the first batch from t0)."""
    rates, previous = [], t0
    for end in range(batch, len(times) + 1, batch):
        stop = times[end - 1]
        if stop > previous:
            rates.append(batch / (stop - previous))
        previous = stop
    return rates


# -- the baseline server ------------------------------------------------------------------------
def _bare_server(port: int, ready) -> None:
    from aiohttp import web

    raise_nofile()

    async def upgrade(request):
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for msg in ws:  # text frames come straight back: the floor of a round trip
            if msg.type == web.WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    async def post(request):  # the ceiling of a management-API client: read the body, answer 200
        await request.read()
        return web.Response(status=200)

    async def main():
        app = web.Application()
        app.router.add_route("GET", "/{stage}", upgrade)
        app.router.add_route("POST", "/{stage}/@connections/{id}", post)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


class BareServer:
    """An aiohttp server that upgrades every request, echoes text frames and answers POSTs with 200,
    doing nothing else: the ceiling (or floor) of what the client side can measure."""

    def __init__(self, port: int):
        self.port = port
        ready = CTX.Event()
        self.process = CTX.Process(target=_bare_server, args=(port, ready), daemon=True)
        self.process.start()
        if not ready.wait(30):
            raise RuntimeError("bare server did not start")
        self.url = "ws://127.0.0.1:%d/bare" % port

    @property
    def pid(self):
        return self.process.pid

    def stop(self):
        self.process.kill()
        self.process.join(5)
