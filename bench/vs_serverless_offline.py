"""wsctl's emulator against serverless-offline, on this machine, with a trivial handler.

Servers, each started fresh ("from cold") for its measurements:
- wsctl local up --auth none --source bench/trivial --handler handler.handler --routes bench/trivial/routes.json
  (the Python handler, bench/trivial/handler.py, in wsctl's Python execution environments)
- the same with --runtime nodejs20.x: the Node version (bench/trivial/handler.mjs, an ES module
  posting back with the AWS SDK v3 that wsctl installs for Node functions) in Node environments
- serverless-offline 13.10 (serverless 3, offline only: no credentials, no login) with the
  same Python handler (it runs handlers in python child processes, one per concurrent
  invocation); its function timeout is set to 29 s (API Gateway's limit) rather than its
  default 6 s, which a python process started in a burst can exceed on a shared machine
- serverless-offline with the Node version, --useInProcess
- baseline: a bare aiohttp server (upgrades, echoes frames itself, answers POSTs 200 without
  doing anything): the ceiling of the client side in the same run.

Every wsctl invocation crosses a process boundary (the gateway hands the event to a worker
process through the Lambda Runtime API, and the handler's PostToConnection comes back over
loopback HTTP), as serverless-offline's Python mode does; its Node mode runs the handler inside
its own process.

Figures: connects/s for the first 1,000 connections (median of per-batch rates; the
environments start on demand, as serverless-offline's Python processes do); RSS at 1,000
connections (wsctl: the gateway, its execution environments and the idle moto apart);
management POSTs/s from 64 concurrent aiohttp clients; round trip of a frame answered through
@connections (the `echo` route posts the frame back), p50/p99 over 2,000 sequential trips.

    python bench/vs_serverless_offline.py                        # full size
    python bench/vs_serverless_offline.py --connections 200 --round-trips 300 --post-seconds 2   # CI size
    python bench/vs_serverless_offline.py --rounds 3 --quiet-wait 5     # on a busy machine: medians of 3 rounds

serverless-offline and its dependencies are installed on first run into bench/.scratch/sls.
Goals: each wsctl flavour at or above serverless-offline's best on connects/s and on management
POSTs/s, and ahead of its best on round-trip p50 and p99. The absolute goals (>= 1,500
connects/s, >= 8,000 POSTs/s, p50 < 0.8 ms, p99 < 2 ms) are printed too, for the Python handler
(their history: bench/README.md).
"""

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import (BENCH, SCRATCH, CpuWatch, Emulator, PySpy, banner, descendants, free_port, median,  # noqa: E402
                      npm_install, percentile, raise_nofile, rss_mb, sigv4_header, verdict, wait_quiet, exit_on_sigterm,
                      group_cpu, group_cpu_per_op)
from loadgen import CTX, BareServer, ConnectionPool, batch_rates  # noqa: E402

SLS_PACKAGES = ("serverless@3.40.0", "serverless-offline@13.10.1", "@aws-sdk/client-apigatewaymanagementapi@3")
SLS_DIR = SCRATCH / "sls"
TRIVIAL = BENCH / "trivial"
GOALS = {"connects": 1500, "posts": 8000, "p50": 0.8, "p99": 2.0}  # the earlier absolute goals (Python handler)
WSCTL = ("wsctl", "wsctl-node")
SLS = ("sls-python", "sls-node")


# -- servers -------------------------------------------------------------------------------------
class WsctlServer:
    def __init__(self, kind: str, args):
        self.kind = kind  # "python" or "node"
        self.name = "wsctl local up, %s" % ("Python handler" if kind == "python" else "Node handler (ES module, SDK v3)")
        runtime = ("--runtime", "nodejs20.x") if kind == "node" else ()
        self.emulator = Emulator("--auth", "none", "--source", str(TRIVIAL), "--handler", "handler.handler", *runtime,
                                 "--routes", str(TRIVIAL / "routes.json"), *args.emulator_arg)

    def start(self):
        self.emulator.start(timeout=600)  # the first Node start installs the AWS SDK v3 (npm), once
        self.ws_url = self.emulator.url
        self.post_base = self.emulator.endpoint  # http://127.0.0.1:PORT/STAGE
        self.signed = True
        return self.emulator.ready_in

    def rss(self) -> dict:
        environments, count = self.emulator.environments_rss_mb()
        return {"gateway": rss_mb(self.emulator.pid), "%d environments" % count: environments,
                "moto (idle here)": rss_mb(self.emulator.moto_pid())}

    def main_rss(self):
        return rss_mb(self.emulator.pid)

    def pids(self) -> dict:
        return {"gateway": [self.emulator.pid], "environments": self.emulator.environment_pids()}

    def stop(self):
        self.emulator.stop(timeout=15)


class SlsServer:
    def __init__(self, kind: str, args):
        self.kind = kind  # "python" or "node"
        self.name = "serverless-offline, %s" % ("Python handler" if kind == "python" else "Node handler, in process")
        self.args = args
        self.process = None

    def _service(self, port: int) -> Path:
        folder = SLS_DIR / ("svc-" + self.kind)
        folder.mkdir(parents=True, exist_ok=True)
        if self.kind == "python":
            shutil.copy(TRIVIAL / "handler.py", folder / "handler.py")
            runtime = "python3.11"
        else:
            shutil.copy(TRIVIAL / "handler.mjs", folder / "handler.mjs")
            runtime = "nodejs20.x"
        (folder / "serverless.yml").write_text("""\
service: wsbench-%(kind)s
frameworkVersion: "3"
provider:
  name: aws
  runtime: %(runtime)s
  region: us-east-1
  stage: local
  timeout: 29
  environment:
    ECHO_MANAGEMENT_ENDPOINT: http://127.0.0.1:%(port)d
    AWS_ACCESS_KEY_ID: local
    AWS_SECRET_ACCESS_KEY: local
    AWS_REGION: us-east-1
plugins:
  - serverless-offline
custom:
  serverless-offline:
    host: 127.0.0.1
    websocketPort: %(port)d
    httpPort: %(http)d
    lambdaPort: %(lambda)d
functions:
  ws:
    handler: handler.handler
    events:
      - websocket:
          route: $connect
      - websocket:
          route: echo
      - websocket:
          route: $default
""" % {"kind": self.kind, "runtime": runtime, "port": port, "http": free_port(), "lambda": free_port()})
        return folder

    def start(self):
        ensure_serverless_offline()
        port = free_port()
        folder = self._service(port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(SLS_TELEMETRY_DISABLED="1", SLS_NOTIFICATIONS_MODE="off", SLS_DEPRECATION_DISABLE="*",
                   SERVERLESS_PLATFORM_STAGE="", AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
                   AWS_EC2_METADATA_DISABLED="true", PATH=os.path.dirname(sys.executable) + os.pathsep + env["PATH"])
        command = ["node", str(SLS_DIR / "node_modules/serverless/bin/serverless.js"), "offline", "start"]
        if self.kind == "node":
            command.append("--useInProcess")
        self.log_path = folder / "offline.log"
        log = open(self.log_path, "wb")
        started = time.monotonic()
        self.process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = started + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("serverless offline exited (%s):\n%s" % (
                    self.process.returncode, self.log_path.read_text(errors="replace")[-3000:]))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("serverless offline did not listen on %d within 120 s:\n%s" % (
                port, self.log_path.read_text(errors="replace")[-3000:]))
        self.ws_url = "ws://127.0.0.1:%d" % port
        self.post_base = "http://127.0.0.1:%d" % port  # @connections without the stage (docs/apigw-websocket.md#serverless-offline)
        self.signed = False
        return time.monotonic() - started

    def rss(self) -> dict:
        kids = descendants(self.process.pid)
        node = [p for p in [self.process.pid, *kids] if _comm(p) == "node"]
        python = [p for p in kids if _comm(p).startswith("python")]
        out = {"node": sum(rss_mb(p) or 0 for p in node)}
        if python:
            out["%d python children" % len(python)] = sum(rss_mb(p) or 0 for p in python)
        return out

    def main_rss(self):
        return rss_mb(self.process.pid)

    def pids(self) -> dict:
        kids = descendants(self.process.pid)
        return {"node": [p for p in [self.process.pid, *kids] if _comm(p) == "node"],
                "python children": [p for p in kids if _comm(p).startswith("python")]}

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class BaselineServer:
    name = "baseline: bare aiohttp (client limit)"

    def __init__(self, args):
        self.server = None

    def start(self):
        started = time.monotonic()
        self.server = BareServer(free_port())
        self.ws_url = self.server.url
        self.post_base = self.server.url.replace("ws://", "http://")
        self.signed = False
        self.baseline = True
        return time.monotonic() - started

    def rss(self):
        return {"aiohttp": rss_mb(self.server.pid)}

    def pids(self) -> dict:
        return {"aiohttp": [self.server.pid]}

    def stop(self):
        self.server.stop()


def _comm(pid: int) -> str:
    try:
        return Path("/proc/%d/comm" % pid).read_text().strip()
    except OSError:
        return ""


def ensure_serverless_offline() -> None:
    needed = [SLS_DIR / "node_modules/serverless-offline/package.json",
              SLS_DIR / "node_modules/serverless/bin/serverless.js",
              SLS_DIR / "node_modules/@aws-sdk/client-apigatewaymanagementapi/package.json"]
    if not all(p.exists() for p in needed):
        npm_install(SLS_DIR, *SLS_PACKAGES)


# -- measurements ------------------------------------------------------------------------------
async def _round_trips(url: str, count: int, warmup: int, baseline: bool) -> list:
    from websockets.asyncio.client import connect

    async with connect(url, ping_interval=None, compression=None) as ws:
        latencies = []
        for i in range(warmup + count):
            frame = '{"action":"echo","n":%d}' % i
            started = time.perf_counter()
            await ws.send(frame)
            answer = await asyncio.wait_for(ws.recv(), 10)
            elapsed = (time.perf_counter() - started) * 1000
            if answer != frame:
                raise RuntimeError("round trip %d: sent %r, got %r" % (i, frame, answer))
            if i >= warmup:
                latencies.append(elapsed)
        return latencies


def _receiver(url: str, count: int, baseline: bool, pipe) -> None:
    """Open `count` connections, learn their ids (via $default), report them, then count frames."""
    raise_nofile()

    async def main():
        import json

        from websockets.asyncio.client import connect

        sockets = [await connect(url, ping_interval=None, compression=None, max_queue=None) for _ in range(count)]
        ids = []
        for index, ws in enumerate(sockets):
            if baseline:
                ids.append("bare%d" % index)
                continue
            await ws.send('{"hello":1}')  # no action: the $default route posts back the connection id
            ids.append(json.loads(await asyncio.wait_for(ws.recv(), 10))["connectionId"])
        pipe.send(ids)
        received = 0
        stop = asyncio.Event()
        asyncio.get_running_loop().add_reader(pipe.fileno(), stop.set)

        async def drain(ws):
            nonlocal received
            async for _ in ws:
                received += 1

        tasks = [asyncio.create_task(drain(ws)) for ws in sockets]
        await stop.wait()
        await asyncio.sleep(0.5)
        for task in tasks:
            task.cancel()
        pipe.recv()
        pipe.send(received)

    asyncio.run(main())


def _poster(base: str, ids: list, signed: bool, concurrency: int, seconds: float, warmup: float, pipe) -> None:
    async def main():
        import aiohttp

        urls = ["%s/@connections/%s" % (base, cid.replace("=", "%3D")) for cid in ids]
        body = b'{"type":"message","text":"hello"}'
        headers = [sigv4_header(url, body) if signed else {} for url in urls]  # valid-looking for 15 min
        connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
        statuses = {}
        measuring = [False]

        async with aiohttp.ClientSession(connector=connector, skip_auto_headers=("Content-Type",)) as session:
            async def client(index):
                n = index
                while True:
                    target = n % len(urls)
                    n += concurrency
                    async with session.post(urls[target], data=body, headers=headers[target]) as response:
                        await response.read()
                        if measuring[0]:
                            statuses[response.status] = statuses.get(response.status, 0) + 1

            tasks = [asyncio.create_task(client(i)) for i in range(concurrency)]
            await asyncio.sleep(warmup)
            measuring[0] = True
            started = time.perf_counter()
            await asyncio.sleep(seconds)
            measuring[0] = False
            elapsed = time.perf_counter() - started
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        cpu = time.process_time()
        pipe.send({"statuses": statuses, "elapsed": elapsed, "cpu": cpu})
        pipe.recv()  # stay alive until the parent has read the CPU counters

    asyncio.run(main())


def post_rate(server, args) -> dict:
    baseline = getattr(server, "baseline", False)
    parent, child = CTX.Pipe()
    receiver = CTX.Process(target=_receiver, args=(server.ws_url, args.post_targets, baseline, child), daemon=True)
    receiver.start()
    ids = parent.recv()
    pipes, posters = [], []
    per = max(1, args.post_clients // args.post_procs)
    watch = CpuWatch()
    for index in range(args.post_procs):
        a, b = CTX.Pipe()
        proc = CTX.Process(target=_poster, args=(server.post_base, ids, server.signed, per, args.post_seconds, 1.0, b),
                           daemon=True)
        proc.start()
        pipes.append(a)
        posters.append(proc)
    reports = [p.recv() for p in pipes]
    machine = watch.stop()
    for pipe in pipes:
        pipe.send("bye")
    for proc in posters:
        proc.join(5)
    parent.send("stop")
    parent.send("report")
    delivered = parent.recv() if parent.poll(10) else None
    receiver.join(5)
    if receiver.is_alive():
        receiver.kill()
    statuses = {}
    for report in reports:
        for status, n in report["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)  # AWS: 200; serverless-offline: 204
    elapsed = max(r["elapsed"] for r in reports)
    return {"rate": ok / elapsed, "statuses": statuses, "delivered": delivered, "client_cpu": sum(r["cpu"] for r in reports),
            "machine": machine}


def _spy(server, args, what, seconds):
    if not args.profile or not isinstance(server, WsctlServer):
        return None
    return PySpy(server.emulator.pid, os.path.join(args.profile, "vs-wsctl-%s-%s.txt" % (server.kind, what)), seconds,
                 gil=True)


def measure(server, args) -> dict:
    out = {"name": server.name}
    out["start"] = server.start()
    try:
        time.sleep(args.pause)
        wait_quiet(timeout=args.quiet_wait)
        # 1. connects/s from cold
        def urls(start, size):
            return [server.ws_url] * size

        watch = CpuWatch()
        pool = ConnectionPool(urls, args.connections, args.procs, args.inflight, timeout=60)
        cpu0 = group_cpu(server.pids())
        t0, times, errors, client_cpu, wall = pool.run()
        out["connect_machine"] = watch.stop()
        out["connect_cpu"] = group_cpu_per_op(server.pids(), cpu0, len(times))
        rates = batch_rates(t0, times, max(50, args.connections // 10))
        out.update(connects_median=median(rates), connects_overall=len(times) / (times[-1] - t0) if times else 0,
                   connect_errors=errors, opened=len(times), rates=rates)
        time.sleep(1.0)
        out["rss"] = server.rss()
        # 2. round trip through @connections (the 1,000 idle connections still open)
        wait_quiet(timeout=args.quiet_wait)
        spy = _spy(server, args, "roundtrip", 4)
        cpu0 = group_cpu(server.pids())
        latencies = asyncio.run(_round_trips(server.ws_url, args.round_trips, args.rt_warmup,
                                             getattr(server, "baseline", False)))
        out["rt_cpu"] = group_cpu_per_op(server.pids(), cpu0, args.round_trips + args.rt_warmup)
        out.update(rt_p50=percentile(latencies, 50), rt_p99=percentile(latencies, 99), rt_max=max(latencies))
        if spy:
            spy.finish("wsctl gateway during the round trips (GIL holder samples)")
        # 3. management POSTs/s
        wait_quiet(timeout=args.quiet_wait)
        spy = _spy(server, args, "posts", args.post_seconds)
        cpu0 = group_cpu(server.pids())
        posts = post_rate(server, args)
        out["post_cpu"] = group_cpu_per_op(server.pids(), cpu0, sum(posts["statuses"].values()))
        if spy:
            spy.finish("wsctl gateway during the management POSTs (GIL holder samples)")
        out.update(posts=posts["rate"], post_statuses=posts["statuses"], post_delivered=posts["delivered"],
                   post_client_cpu=posts["client_cpu"], post_machine=posts["machine"])
        pool.close()
    finally:
        server.stop()
    print_one(out, args)
    return out


def combine(outs: list) -> dict:
    """One server's figures over several rounds: the median of each number (and of each RSS part)."""
    if len(outs) == 1:
        return outs[0]
    out = dict(outs[-1])
    for field in ("connects_median", "connects_overall", "posts", "rt_p50", "rt_p99", "rt_max"):
        out[field] = median([o[field] for o in outs])
    out["rss_total_median"] = median([sum(v or 0 for v in o["rss"].values()) for o in outs])  # parts: last round
    out["rounds"] = len(outs)
    return out


def _cpu_text(figures: dict) -> str:
    return ", ".join("%s %.3f" % (k, v) for k, v in figures.items())


def print_one(out, args) -> None:
    print("\n-- %s (ready in %.2f s) --" % (out["name"], out["start"]))
    print("connects: %d of %d opened (failures %s); median of per-batch rates %.0f/s, overall %.0f/s" % (
        out["opened"], args.connections, out["connect_errors"] or "none", out["connects_median"],
        out["connects_overall"]))
    print("  per-batch rates: %s" % " ".join("%.0f" % r for r in out["rates"]))
    print("  " + CpuWatch.describe(out["connect_machine"]))
    print("  server CPU per connect (ms): %s" % _cpu_text(out["connect_cpu"]))
    print("RSS at %d connections: %s MiB" % (out["opened"], ", ".join(
        "%s %.0f" % (k, v or 0) for k, v in out["rss"].items())))
    print("round trip through @connections (%d sequential): p50 %.3f ms, p99 %.3f ms, max %.2f ms" % (
        args.round_trips, out["rt_p50"], out["rt_p99"], out["rt_max"]))
    print("  server CPU per round trip (ms): %s" % _cpu_text(out["rt_cpu"]))
    print("management POSTs: %.0f/s with %d concurrent clients (statuses %s; frames received %s; client CPU %.1f s)" % (
        out["posts"], args.post_clients, out["post_statuses"], out["post_delivered"], out["post_client_cpu"]))
    print("  server CPU per counted POST (ms; the 1 s warm-up's CPU included): %s" % _cpu_text(out["post_cpu"]))
    print("  " + CpuWatch.describe(out["post_machine"]))


def main():
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", "-n", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=2, help="client processes opening connections")
    parser.add_argument("--inflight", type=int, default=64, help="handshakes in flight, all clients together")
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--rt-warmup", type=int, default=200)
    parser.add_argument("--post-clients", type=int, default=64, help="concurrent management API clients")
    parser.add_argument("--post-procs", type=int, default=1, help="processes the POST clients are spread over")
    parser.add_argument("--post-targets", type=int, default=64, help="connections the POSTs go to")
    parser.add_argument("--post-seconds", type=float, default=5.0)
    parser.add_argument("--pause", type=float, default=0.5, help="pause after start-up before connecting")
    parser.add_argument("--servers", default="baseline,wsctl,wsctl-node,sls-python,sls-node",
                        help="comma list of baseline, wsctl (Python handler), wsctl-node, sls-python, sls-node")
    parser.add_argument("--rounds", type=int, default=1, help="measure every server this many times, in "
                        "rotating order, and report the medians (a shared machine's load comes and goes)")
    parser.add_argument("--quiet-wait", type=float, default=180.0,
                        help="before each phase, wait at most this many seconds for other processes to go quiet")
    parser.add_argument("--emulator-arg", action="append", default=[])
    parser.add_argument("--profile", metavar="DIR", help="py-spy wsctl's gateway (GIL holder) during the round "
                        "trips and the POSTs; collapsed stacks go to DIR (needs `pip install py-spy`)")
    args = parser.parse_args()
    limit = raise_nofile()
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    banner("wsctl local up vs serverless-offline 13.10, trivial handler (RLIMIT_NOFILE %d)" % limit)
    results, failures = {}, {}
    makers = {"baseline": lambda: BaselineServer(args), "wsctl": lambda: WsctlServer("python", args),
              "wsctl-node": lambda: WsctlServer("node", args),
              "sls-python": lambda: SlsServer("python", args), "sls-node": lambda: SlsServer("node", args)}
    keys = [s.strip() for s in args.servers.split(",") if s.strip()]
    rounds: dict = {key: [] for key in keys}
    for number in range(args.rounds):
        order = keys[number % len(keys):] + keys[:number % len(keys)]  # each server first once in a while
        if args.rounds > 1:
            print("\n==== round %d of %d: %s ====" % (number + 1, args.rounds, ", ".join(order)))
        for key in order:
            try:
                rounds[key].append(measure(makers[key](), args))
            except Exception as error:  # report and go on: wsctl's figures still print
                failures[key] = "%s: %s" % (type(error).__name__, error)
                print("\n-- %s: could not be measured --\n%s" % (key, failures[key]))
    for key, outs in rounds.items():
        if outs:
            results[key] = combine(outs)
            if len(outs) > 1:
                failures.pop(key, None)  # measured in other rounds
                print("%s: median of %d rounds; connects/s per round %s, POSTs/s %s, round trip p50 %s ms" % (
                    key, len(outs), " ".join("%.0f" % o["connects_median"] for o in outs),
                    " ".join("%.0f" % o["posts"] for o in outs), " ".join("%.3f" % o["rt_p50"] for o in outs)))

    print("\n== summary: %d connections, %d POST clients, %d round trips%s ==" % (
        args.connections, args.post_clients, args.round_trips,
        ", medians of %d rounds" % args.rounds if args.rounds > 1 else ""))
    columns = [k for k in ("baseline", "wsctl", "wsctl-node", "sls-python", "sls-node") if k in results]
    titles = {"baseline": "bare aiohttp", "wsctl": "wsctl py", "wsctl-node": "wsctl node", "sls-python": "sls-offl py",
              "sls-node": "sls-offl node"}
    mine = [k for k in columns if k in WSCTL]
    theirs = [k for k in columns if k in SLS]
    pairs = [(w, o) for w in mine for o in theirs]
    print("%-32s" % "" + "".join("%14s" % titles[k] for k in columns)
          + "".join("%14s" % ("%s/%s" % (titles[w].replace("wsctl ", "w."), titles[o].replace("sls-offl ", "s.")))
                    for w, o in pairs))
    rows = [("connects/s (median of batches)", "connects_median", "%.0f"),
            ("connects/s (overall)", "connects_overall", "%.0f"),
            ("RSS at N connections, MiB", "rss_total", "%.0f"),
            ("management POSTs/s", "posts", "%.0f"),
            ("round trip p50, ms", "rt_p50", "%.3f"),
            ("round trip p99, ms", "rt_p99", "%.3f")]
    for key in columns:
        results[key]["rss_total"] = results[key].get("rss_total_median") or sum(
            v or 0 for v in results[key]["rss"].values())
    for title, field, fmt in rows:
        line = "%-32s" % title + "".join("%14s" % (fmt % results[k][field]) for k in columns)
        for w, o in pairs:
            line += "%13.2fx" % (results[w][field] / results[o][field] if results[o][field] else float("nan"))
        print(line)
    print("(ratios: wsctl's figure divided by the other's; for RSS and latency lower is better, so < 1 favours wsctl)")
    for key in mine:
        print("RSS of %s: %s MiB" % (titles[key], ", ".join("%s %.0f" % (k, v or 0)
                                                           for k, v in results[key]["rss"].items())))
    for key, why in failures.items():
        print("NOT MEASURED %s: %s" % (key, why.splitlines()[0][:300]))
    if mine and theirs:
        best = {"connects_median": max(results[k]["connects_median"] for k in theirs),
                "posts": max(results[k]["posts"] for k in theirs),
                "rt_p50": min(results[k]["rt_p50"] for k in theirs),
                "rt_p99": min(results[k]["rt_p99"] for k in theirs)}
        best_of = {f: min(theirs, key=lambda k: -results[k][f] if f in ("connects_median", "posts") else results[k][f])
                   for f in best}
        print("\ngoals: wsctl against serverless-offline's best in this run (%s)" % ", ".join(titles[k] for k in theirs))
        for key in mine:
            w = results[key]
            print("  %s %s: connects/s %.0f >= %.0f (%s)" % (
                verdict(w["connects_median"] >= best["connects_median"]), titles[key], w["connects_median"],
                best["connects_median"], titles[best_of["connects_median"]]))
            print("  %s %s: management POSTs/s %.0f >= %.0f (%s)" % (
                verdict(w["posts"] >= best["posts"]), titles[key], w["posts"], best["posts"], titles[best_of["posts"]]))
            print("  %s %s: round trip p50 %.3f ms < %.3f ms (%s)" % (
                verdict(w["rt_p50"] < best["rt_p50"]), titles[key], w["rt_p50"], best["rt_p50"],
                titles[best_of["rt_p50"]]))
            print("  %s %s: round trip p99 %.3f ms < %.3f ms (%s)" % (
                verdict(w["rt_p99"] < best["rt_p99"]), titles[key], w["rt_p99"], best["rt_p99"],
                titles[best_of["rt_p99"]]))
    elif mine:
        print("\n(no serverless-offline figures in this run: the relative goals are not judged)")
    if "wsctl" in results:
        w = results["wsctl"]
        print("\nearlier absolute goals (Python handler; set before execution environments):")
        print("  %s connects/s from cold %.0f (median of batches) >= %d" % (
            verdict(w["connects_median"] >= GOALS["connects"]), w["connects_median"], GOALS["connects"]))
        print("  %s management POSTs/s %.0f >= %d" % (verdict(w["posts"] >= GOALS["posts"]), w["posts"], GOALS["posts"]))
        print("  %s round trip p50 %.3f ms < %.1f ms" % (verdict(w["rt_p50"] < GOALS["p50"]), w["rt_p50"], GOALS["p50"]))
        print("  %s round trip p99 %.3f ms < %.1f ms" % (verdict(w["rt_p99"] < GOALS["p99"]), w["rt_p99"], GOALS["p99"]))


if __name__ == "__main__":
    main()
