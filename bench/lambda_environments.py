"""Execution environments of `wsctl local up`: cold starts, and what a warm invocation costs
on top of the function itself.

One emulator (`wsctl local up --routes R`, embedded moto idle, START/END/REPORT kept in its
log) runs four functions, each in a code folder of its own (temporary copies):

- `py`, `node`: bench/trivial/probe.py and probe.mjs, trivial functions that only read the
  system-wide monotonic clock and return it (the goals are for these);
- `py-sdk`, `node-sdk`: a function that creates its AWS SDK client at init (boto3's
  apigatewaymanagementapi client; bench/trivial/handler.mjs with SDK v3): reported, no goal.

Cold starts: the script touches a function's code (a new mtime), waits for the emulator's
"code changed" line (the pool retires the idle environment; the watcher polls every 0.5 s),
lets the old process exit, then invokes once through Lambda's Invoke API: that invocation
starts a new environment. One at a time, so no cold start competes with another; the
functions take turns (py, node, py-sdk, node-sdk, py, ...), so load from elsewhere on a shared
machine falls on all of them alike.
Figures: Init Duration from the REPORT line (process spawn to the runtime's first /next,
handler module loaded), and the whole cold invocation measured by the client. Then where a
cold start's time goes, outside the emulator: the interpreter alone, wsctl's bootstrap with
Lambda's variables only, with NODE_PATH (Node: the ES-module resolve hook), and with the very
variables the emulator gave its environment of that function (read from /proc).

Warm invocations: sequential invocations of `py` and `node` (their environment stays warm),
(a) through the Invoke API (POST /2015-03-31/functions/F/invocations, keep-alive) and
(b) as text frames on a two-way WebSocket route (API Gateway sends the function's body back).
For each: the round trip measured by the client; the REPORT Duration (the emulator's clock
from handing the event to the environment to receiving its response: it covers the Runtime
API hop both ways, as Lambda's Duration covers its runtime client); the handler's own clock
reading, which splits the round trip into "to the handler" and "back". The overhead is shown
three ways: Duration - the handler's own time (issue 22's goal: gateway to environment and
back, the Runtime API hop), round trip - Duration (the front end, Invoke API or gateway, plus
the pool: this bench's goal before issue 22), and round trip - the bare transport's round trip
- the handler's own time (all that wsctl adds to a bare server). Baselines in the same run: the probe handler called in
process (Python; and Node in a node process); the bare aiohttp HTTP round trip and bare
aiohttp WebSocket echo on loopback with the same clients (what the transport alone costs); and
a minimal Invoke + Runtime API relay in aiohttp (about 30 lines: queue, /next, /response; no
pool, logs or checks) driving wsctl's own runtime bootstraps: the floor of the design, two
HTTP exchanges with the runtime per invocation plus the caller's.

    python bench/lambda_environments.py                                   # full size
    python bench/lambda_environments.py --cold-starts 5 --sdk-cold-starts 2 --warm 300 --warmup 50   # CI size
    python bench/lambda_environments.py --profile /tmp/prof               # + py-spy of the emulator
    python bench/lambda_environments.py --cold-starts 0 --sdk-cold-starts 0 --warm 0   # only the breakdown

Goals: cold start (Init Duration, median of >= 20) Python < 150 ms, Node < 200 ms; warm
invocation, gateway to environment and back, p50 < 0.3 ms and p99 < 1 ms (issue 22).
"""

import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import (BENCH, CpuWatch, Emulator, PySpy, banner, cpu_seconds, exit_on_sigterm, free_port,  # noqa: E402
                      median, percentile, raise_nofile, verdict, wait_quiet)
from loadgen import BareServer  # noqa: E402

TRIVIAL = BENCH / "trivial"
GOALS = {"cold_py": 150.0, "cold_node": 200.0, "overhead_p50": 0.3, "overhead_p99": 1.0}
REPORT = re.compile(r"^\[(?P<fn>[^\]]+)\] REPORT RequestId: (?P<id>\S+)\tDuration: (?P<duration>[\d.]+) ms"
                    r"(?:.*?\tInit Duration: (?P<init>[\d.]+) ms)?")
PY_SDK = '''import boto3

client = boto3.client("apigatewaymanagementapi")  # created at init, as most functions do


def handler(event, context):
    return {"statusCode": 200}
'''


# What every invocation gets: the shape of a $connect event (bench/trivial/handler.mjs answers it
# without calling anything; the probes ignore it).
EVENT = b'{"requestContext":{"routeKey":"$connect","eventType":"CONNECT","connectionId":"bench"}}'


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


# -- the project ------------------------------------------------------------------------------------
def make_project(folder: Path) -> Path:
    """Four functions in code folders of their own (a code change retires only that function's
    environments) and a route file: action "py" / "node" go to the probes on two-way routes."""
    (folder / "py").mkdir()
    shutil.copy(TRIVIAL / "probe.py", folder / "py" / "probe.py")
    (folder / "node").mkdir()
    shutil.copy(TRIVIAL / "probe.mjs", folder / "node" / "probe.mjs")
    (folder / "py-sdk").mkdir()
    (folder / "py-sdk" / "app.py").write_text(PY_SDK)
    (folder / "node-sdk").mkdir()
    shutil.copy(TRIVIAL / "handler.mjs", folder / "node-sdk" / "handler.mjs")
    functions = {
        "py": {"runtime": "python3.11", "code": "py", "handler": "probe.handler"},
        "node": {"runtime": "nodejs20.x", "code": "node", "handler": "probe.handler"},
        "py-sdk": {"runtime": "python3.11", "code": "py-sdk", "handler": "app.handler"},
        "node-sdk": {"runtime": "nodejs20.x", "code": "node-sdk", "handler": "handler.handler"},
    }
    routes = {"routeSelectionExpression": "$request.body.action", "functions": functions,
              "routes": [{"key": "py", "function": "py", "twoWay": True},
                         {"key": "node", "function": "node", "twoWay": True}]}
    path = folder / "routes.json"
    path.write_text(json.dumps(routes, indent=1))
    return path


CODE_FILE = {"py": "py/probe.py", "node": "node/probe.mjs", "py-sdk": "py-sdk/app.py", "node-sdk": "node-sdk/handler.mjs"}


class Log:
    """The emulator's log, read incrementally: REPORT lines by request id and in order per function."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.reports = {}  # request id -> (function, duration ms, init ms | None)
        self.order = {}  # function -> [request id, ...]
        self.changed = {}  # function -> number of "code changed" lines
        self.partial = ""

    def poll(self) -> None:
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        text = self.partial + data.decode("utf-8", "replace")
        lines = text.split("\n")
        self.partial = lines.pop()
        for line in lines:
            match = REPORT.match(line)
            if match:
                init = float(match["init"]) if match["init"] else None
                self.reports[match["id"]] = (match["fn"], float(match["duration"]), init)
                self.order.setdefault(match["fn"], []).append(match["id"])
            elif "] code changed" in line:
                name = line[1:line.index("]")]
                self.changed[name] = self.changed.get(name, 0) + 1

    def wait(self, test, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if test():
                return True
            time.sleep(0.01)
        return False


class InvokeClient:
    """Sequential Invoke API calls on one keep-alive connection (http.client: the lightest client)."""

    def __init__(self, endpoint: str):
        host, port = endpoint.replace("http://", "").split(":")
        self.connection = http.client.HTTPConnection(host, int(port))

    def invoke(self, name: str, body: bytes = EVENT):
        """(round trip ms, request id, payload bytes, send time ns, receipt time ns)."""
        t0 = now_ns()
        self.connection.request("POST", "/2015-03-31/functions/%s/invocations" % name, body=body,
                                headers={"Content-Type": "application/json"})
        response = self.connection.getresponse()
        payload = response.read()
        t1 = now_ns()
        if response.status != 200 or response.getheader("X-Amz-Function-Error"):
            raise RuntimeError("invoke %s: HTTP %d %s %s" % (name, response.status,
                                                           response.getheader("X-Amz-Function-Error"), payload[:300]))
        return (t1 - t0) / 1e6, response.getheader("x-amzn-RequestId"), payload, t0, t1

    def close(self):
        self.connection.close()


# -- cold starts ---------------------------------------------------------------------------------------
def cold_starts(emulator: Emulator, log: Log, project: Path, plan: list) -> dict:
    """Cold starts of each (function, count) in `plan`, interleaved (py, node, py, node, ...) so that
    load from elsewhere on the machine falls on every function alike."""
    client = InvokeClient(emulator.state.lambda_endpoint)
    out = {name: {"init": [], "end_to_end": [], "duration": []} for name, _ in plan}
    try:
        for name, _ in plan:
            client.invoke(name)  # the first environment (its cold start is counted like the others below)
        for index in range(max(count for _, count in plan)):
            for name, count in plan:
                if index >= count:
                    continue
                log.poll()
                seen = log.changed.get(name, 0)
                stamp = time.time_ns()
                os.utime(project / CODE_FILE[name], ns=(stamp, stamp))
                if not log.wait(lambda: log.changed.get(name, 0) > seen, 5.0):
                    raise RuntimeError("the emulator did not notice the code change of %s" % name)
                time.sleep(0.3)  # the retired environment gets SIGTERM: let it exit before the next starts
                elapsed, request_id, _, _, _ = client.invoke(name)
                if not log.wait(lambda: request_id in log.reports, 5.0):
                    raise RuntimeError("no REPORT line for %s" % request_id)
                _, duration, init = log.reports[request_id]
                if init is None:
                    raise RuntimeError("invocation %s of %s was not a cold start (no Init Duration)" % (request_id, name))
                out[name]["init"].append(init)
                out[name]["end_to_end"].append(elapsed)
                out[name]["duration"].append(duration)
    finally:
        client.close()
    return out


# -- warm invocations -------------------------------------------------------------------------------
def warm_invoke(emulator: Emulator, log: Log, name: str, count: int, warmup: int) -> dict:
    client = InvokeClient(emulator.state.lambda_endpoint)
    samples = []
    try:
        for index in range(warmup + count):
            elapsed, request_id, payload, t0, t1 = client.invoke(name)
            if index >= warmup:
                handler_ns = int(json.loads(payload)["body"])
                samples.append((elapsed, request_id, (handler_ns - t0) / 1e6, (t1 - handler_ns) / 1e6))
    finally:
        client.close()
    ids = [s[1] for s in samples]
    if not log.wait(lambda: all(i in log.reports for i in ids), 10.0):
        raise RuntimeError("REPORT lines missing for %d invocations" % sum(1 for i in ids if i not in log.reports))
    return figures([s[0] for s in samples], [log.reports[s[1]][1] for s in samples],
                   [s[2] for s in samples], [s[3] for s in samples])


def warm_websocket(emulator: Emulator, log: Log, name: str, count: int, warmup: int) -> dict:
    from websockets.asyncio.client import connect

    log.poll()
    before = len(log.order.get(name, []))

    async def run():
        out = []
        async with connect(emulator.url, ping_interval=None, compression=None) as ws:
            frame = '{"action":"%s"}' % name
            for index in range(warmup + count):
                t0 = now_ns()
                await ws.send(frame)
                answer = await asyncio.wait_for(ws.recv(), 10)
                t1 = now_ns()
                if index >= warmup:
                    out.append(((t1 - t0) / 1e6, (int(answer) - t0) / 1e6, (t1 - int(answer)) / 1e6))
        return out

    samples = asyncio.run(run())
    total = before + warmup + count
    if not log.wait(lambda: len(log.order.get(name, [])) >= total, 10.0):
        raise RuntimeError("REPORT lines missing on the WebSocket route")
    ids = log.order[name][before + warmup:total]  # frames are sequential: REPORTs come in the same order
    return figures([s[0] for s in samples], [log.reports[i][1] for i in ids],
                   [s[1] for s in samples], [s[2] for s in samples])


def figures(rt, duration, inbound, outbound) -> dict:
    overhead = [r - d for r, d in zip(rt, duration)]
    return {"n": len(rt), "rt": rt, "duration": duration, "overhead": overhead, "inbound": inbound,
            "outbound": outbound}


# -- baselines --------------------------------------------------------------------------------------
def in_process_python(number: int = 200000) -> float:
    """Microseconds per call of the probe handler called directly in this process."""
    sys.path.insert(0, str(TRIVIAL))
    try:
        import probe
    finally:
        sys.path.pop(0)
    event = {"body": "{}"}
    return min(timeit.repeat(lambda: probe.handler(event, None), number=number, repeat=5)) / number * 1e6


def in_process_node(number: int = 200000) -> float | None:
    script = ("const {handler} = await import(%s); const e = {body: '{}'}; let best = Infinity;"
              "for (let r = 0; r < 5; r++) { const t = process.hrtime.bigint();"
              "for (let i = 0; i < %d; i++) await handler(e, {});"
              "best = Math.min(best, Number(process.hrtime.bigint() - t)); } console.log(best / %d / 1000)"
              % (json.dumps((TRIVIAL / "probe.mjs").as_uri()), number, number))
    try:
        out = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
        return float(out.stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _mini_lambda(invoke_port: int, runtime_port: int, ready) -> None:
    """The least a Lambda Invoke API + Runtime API relay can do in aiohttp: Invoke queues the event
    and waits; /next hands it out; /response resolves the waiting Invoke. One environment, no
    pool, no logs, no checks: what the transport and the two HTTP hops cost by themselves."""
    from aiohttp import web

    async def main():
        queue: asyncio.Queue = asyncio.Queue()
        current = {}

        async def invoke(request):
            body = await request.read()
            future = asyncio.get_running_loop().create_future()
            request_id = "%016x" % id(future)
            current[request_id] = future
            queue.put_nowait((request_id, body))
            payload = await future
            return web.Response(body=payload, headers={"x-amzn-RequestId": request_id,
                                                       "Content-Type": "application/json"})

        async def next_event(request):
            request_id, body = await queue.get()
            return web.Response(body=body, headers={
                "Lambda-Runtime-Aws-Request-Id": request_id, "Lambda-Runtime-Deadline-Ms": "9999999999999",
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:mini",
                "Content-Type": "application/json"})

        async def response(request):
            body = await request.read()
            current.pop(request.match_info["id"]).set_result(body)
            return web.json_response({"status": "OK"}, status=202)

        app = web.Application()
        app.router.add_post("/2015-03-31/functions/{name}/invocations", invoke)
        app.router.add_get("/2018-06-01/runtime/invocation/next", next_event)
        app.router.add_post("/2018-06-01/runtime/invocation/{id}/response", response)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        for port in (invoke_port, runtime_port):
            await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


class MiniLambda:
    """_mini_lambda in a process of its own, with wsctl's own runtime bootstrap for `language`
    (wsctl/local/functions/python/bootstrap.py or node/bootstrap.mjs, started as the emulator
    starts it) running the probe: the floor of the execution-environment design in aiohttp."""

    def __init__(self, language: str):
        from wsctl.apispec import FunctionSpec
        from wsctl.local.functions import runtimes
        from wsctl.local.procs import die_with_parent
        from loadgen import CTX

        self.invoke_port, runtime_port = free_port(), free_port()
        ready = CTX.Event()
        self.server = CTX.Process(target=_mini_lambda, args=(self.invoke_port, runtime_port, ready), daemon=True)
        self.server.start()
        self.runtime = None
        if not ready.wait(30):
            self.stop()
            raise RuntimeError("the minimal Lambda relay did not start")
        spec = FunctionSpec(name="mini-" + language, runtime="python3.11" if language == "py" else "nodejs20.x",
                            code_dir=TRIVIAL, handler="probe.handler")
        env = runtimes.variables(spec, runtime_api="127.0.0.1:%d" % runtime_port, region="us-east-1",
                                 log_stream="mini", account_id="123456789012", endpoints={}, credentials={},
                                 ca_bundle=None, sdk_path=None, host_env=os.environ)
        self.runtime = subprocess.Popen(runtimes.command(spec), env=env, cwd=str(TRIVIAL), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=die_with_parent)
        self.endpoint = "http://127.0.0.1:%d" % self.invoke_port

    @property
    def pids(self):
        return [p for p in (self.server.pid, self.runtime.pid if self.runtime else None) if p]

    def stop(self):
        if self.runtime is not None and self.runtime.poll() is None:
            self.runtime.kill()
            self.runtime.wait()
        if self.server.is_alive():
            self.server.kill()
            self.server.join(5)


def mini_invoke(mini: MiniLambda, count: int, warmup: int) -> dict:
    client = InvokeClient(mini.endpoint)
    rt, inbound, outbound = [], [], []
    try:
        deadline = time.monotonic() + 30
        while True:  # the runtime is starting
            try:
                client.invoke("mini")
                break
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise
                client.close()
                client = InvokeClient(mini.endpoint)
                time.sleep(0.05)
        for index in range(warmup + count):
            elapsed, _, payload, t0, t1 = client.invoke("mini")
            if index >= warmup:
                handler_ns = int(json.loads(payload)["body"])
                rt.append(elapsed)
                inbound.append((handler_ns - t0) / 1e6)
                outbound.append((t1 - handler_ns) / 1e6)
    finally:
        client.close()
    return {"rt": rt, "inbound": inbound, "outbound": outbound}


def init_breakdown(language: str, runs: int, node_path: str | None, emulator_env: dict | None) -> dict:
    """Where a cold start's time goes, outside the emulator: spawn to exit of the bare interpreter
    (`python -c pass`, `node -e 0`, with the flags wsctl uses), and spawn to the first GET /next of
    wsctl's own bootstrap with the probe (what Init Duration measures): with Lambda's variables
    only; for Node also with NODE_PATH (the bootstrap then registers its ES-module resolve hook,
    which Node 20 runs on a loader thread of its own); and with the very environment the
    emulator gave its own environment of that function (read from /proc: NODE_PATH, the CA
    bundle as AWS_CA_BUNDLE and NODE_EXTRA_CA_CERTS, the host map...). What remains between the
    last and Init Duration is the emulator's own part (spawning from the gateway process, its
    event loop). Medians of `runs` one-at-a-time starts, in ms."""
    import http.server
    import threading

    from wsctl.apispec import FunctionSpec
    from wsctl.local.functions import runtimes

    arrived = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            arrived.set()  # the runtime is initialised: that is all we wait for (it is killed next)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = "127.0.0.1:%d" % server.server_address[1]
    spec = FunctionSpec(name="init-" + language, runtime="python3.11" if language == "py" else "nodejs20.x",
                        code_dir=TRIVIAL, handler="probe.handler")
    command = runtimes.command(spec)
    bare = command[:-1] + (["-c", "pass"] if language == "py" else ["-e", "0"])

    def lambda_env(path):
        return runtimes.variables(spec, runtime_api=address, region="us-east-1", log_stream="init",
                                  account_id="123456789012", endpoints={}, credentials={}, ca_bundle=None,
                                  sdk_path=path, host_env=os.environ)

    variants = [("interpreter alone", bare, lambda_env(None), False),
                ("bootstrap to first /next, Lambda's variables only", command, lambda_env(None), True)]
    if language == "node" and node_path:
        variants.append(("  + NODE_PATH (the resolve hook is registered)", command, lambda_env(node_path), True))
    if emulator_env:
        variants.append(("  the emulator's own environment variables", command,
                         dict(emulator_env, AWS_LAMBDA_RUNTIME_API=address), True))
    times = {title: [] for title, *_ in variants}
    try:
        for _ in range(runs):
            for title, argv, env, wait_next in variants:  # in turn: load from elsewhere falls on all alike
                arrived.clear()
                started = time.perf_counter()
                child = subprocess.Popen(argv, env=env, cwd=str(TRIVIAL), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    if wait_next:
                        if not arrived.wait(10):
                            raise RuntimeError("%s: no /next within 10 s" % " ".join(argv))
                    else:
                        child.wait(10)
                    times[title].append((time.perf_counter() - started) * 1000)
                finally:
                    if child.poll() is None:
                        child.kill()
                    child.wait()
        out = {title: median(values) for title, values in times.items()}
    finally:
        server.shutdown()
        server.server_close()
    return out


def environment_of(emulator: Emulator, function: str) -> dict | None:
    """The environment variables of one live execution environment of `function` (from /proc)."""
    for pid in emulator.environment_pids():
        try:
            raw = Path("/proc/%d/environ" % pid).read_bytes()
        except OSError:
            continue
        env = dict(item.decode(errors="replace").partition("=")[::2] for item in raw.split(b"\0") if b"=" in item)
        if env.get("AWS_LAMBDA_FUNCTION_NAME") == function:
            return env
    return None


def bare_http(port: int, count: int, warmup: int) -> list:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    out = []
    try:
        for index in range(warmup + count):
            t0 = now_ns()
            connection.request("POST", "/bare/@connections/x", body=b"{}", headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if index >= warmup:
                out.append((now_ns() - t0) / 1e6)
    finally:
        connection.close()
    return out


def bare_websocket(url: str, count: int, warmup: int) -> list:
    from websockets.asyncio.client import connect

    async def run():
        out = []
        async with connect(url, ping_interval=None, compression=None) as ws:
            for index in range(warmup + count):
                t0 = now_ns()
                await ws.send('{"action":"py"}')
                await asyncio.wait_for(ws.recv(), 10)
                if index >= warmup:
                    out.append((now_ns() - t0) / 1e6)
        return out

    return asyncio.run(run())


# -- output -------------------------------------------------------------------------------------------
def stats(values) -> str:
    if not values:
        return "-"
    return "p50 %.3f  p99 %.3f  (min %.3f, max %.2f)" % (percentile(values, 50), percentile(values, 99),
                                                          min(values), max(values))


def main():
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-starts", type=int, default=20, help="cold starts of each trivial function (goal)")
    parser.add_argument("--sdk-cold-starts", type=int, default=10,
                        help="cold starts of each function that creates an SDK client at init (0: skip)")
    parser.add_argument("--breakdown-runs", type=int, default=20,
                        help="starts of each runtime outside the emulator, for the cold start breakdown (0: skip)")
    parser.add_argument("--warm", type=int, default=2000, help="warm invocations per function and path")
    parser.add_argument("--warmup", type=int, default=200, help="warm invocations not counted, first")
    parser.add_argument("--runtimes", default="py,node", help="comma list of py, node")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the emulator during the warm phases "
                        "(collapsed stacks go to DIR; needs `pip install py-spy`)")
    parser.add_argument("--profile-rate", type=int, default=1000)
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="before each phase, wait at most this many seconds for other processes to go quiet")
    parser.add_argument("--emulator-arg", action="append", default=[])
    args = parser.parse_args()
    raise_nofile()
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    banner("Lambda execution environments: cold starts and warm invocation overhead")
    project = Path(tempfile.mkdtemp(prefix="wsctl-bench-envs-"))
    routes = make_project(project)
    results = {"cold": {}, "invoke": {}, "ws": {}}
    emulator = Emulator("--auth", "none", "--routes", str(routes), *args.emulator_arg, quiet=False)
    bare = None
    try:
        # -- baselines (in process, bare transport) -----------------------------------------------
        wait_quiet(timeout=args.quiet_wait)
        results["py_call_us"] = in_process_python()
        results["node_call_us"] = in_process_node() if "node" in runtimes else None
        bare = BareServer(free_port())
        watch = CpuWatch()
        results["bare_http"] = bare_http(bare.port, args.warm, args.warmup)
        results["bare_ws"] = bare_websocket(bare.url, args.warm, args.warmup)
        results["bare_machine"] = watch.stop()
        bare.stop()
        bare = None
        print("\nbaselines: probe handler called in process: Python %.3f µs, Node %s per call" % (
            results["py_call_us"], "%.3f µs" % results["node_call_us"] if results["node_call_us"] else "-"))
        print("  bare aiohttp HTTP round trip (same http.client): %s ms" % stats(results["bare_http"]))
        print("  bare aiohttp WebSocket echo (same websockets client): %s ms" % stats(results["bare_ws"]))
        print("  " + CpuWatch.describe(results["bare_machine"]))
        results["mini"] = {}
        for name in runtimes if args.warm else ():
            wait_quiet(timeout=args.quiet_wait)
            mini = MiniLambda(name)
            try:
                cpu0 = {pid: cpu_seconds(pid) or 0 for pid in mini.pids}
                watch = CpuWatch()
                result = mini_invoke(mini, args.warm, args.warmup)
                result["machine"] = watch.stop()
                calls = args.warm + args.warmup
                result["cpu_server_ms"] = ((cpu_seconds(mini.server.pid) or 0) - cpu0[mini.server.pid]) / calls * 1000
                result["cpu_runtime_ms"] = ((cpu_seconds(mini.runtime.pid) or 0) - cpu0[mini.runtime.pid]) / calls * 1000
            finally:
                mini.stop()
            results["mini"][name] = result
            print("  minimal Invoke + Runtime API relay in aiohttp, wsctl's %s bootstrap, probe handler: round trip %s ms"
                  % (name, stats(result["rt"])))
            print("    to the handler p50 %.3f ms, back p50 %.3f ms; CPU per invocation: relay %.3f ms, runtime %.3f ms"
                  % (percentile(result["inbound"], 50), percentile(result["outbound"], 50), result["cpu_server_ms"],
                     result["cpu_runtime_ms"]))
            print("    " + CpuWatch.describe(result["machine"]))

        emulator.start(timeout=600)  # the first start with a Node function installs the AWS SDK v3 (npm)
        log = Log(emulator.log_path)
        print("\nemulator ready in %.2f s (pid %d, log %s)" % (emulator.ready_in, emulator.pid, emulator.log_path))

        # -- cold starts --------------------------------------------------------------------------------
        plan = [(r, args.cold_starts) for r in runtimes if args.cold_starts]
        if args.sdk_cold_starts:
            plan += [(r + "-sdk", args.sdk_cold_starts) for r in runtimes]
        if plan:
            wait_quiet(timeout=args.quiet_wait)
            watch = CpuWatch()
            results["cold"] = cold_starts(emulator, log, project, plan)
            machine = watch.stop()
        else:
            results["cold"], machine = {}, None
        if plan:
            print("\ncold starts, one at a time, each after a code change, the functions taken in turn:")
            print("  " + CpuWatch.describe(machine))
        for name, count in plan:
            result = results["cold"][name]
            print("\ncold starts of %s (%d):" % (name, count))
            print("  Init Duration (REPORT): median %.1f ms, min %.1f, max %.1f" % (
                median(result["init"]), min(result["init"]), max(result["init"])))
            print("  cold invocation end to end (Invoke API, client clock): median %.1f ms, min %.1f, max %.1f" % (
                median(result["end_to_end"]), min(result["end_to_end"]), max(result["end_to_end"])))
            print("  Duration of the cold invocation (REPORT): median %.2f ms" % median(result["duration"]))

        # -- where a cold start's time goes, outside the emulator ---------------------------------------
        results["breakdown"] = {}
        if args.breakdown_runs:
            wait_quiet(timeout=args.quiet_wait)
            from wsctl.local.functions import sdks

            node_sdk = str(sdks.ensure(emulator.env["WSCTL_SDK_CACHE"], sdks.NODE_V3, print))  # installed by now
            watch = CpuWatch()
            for name in runtimes:
                client = InvokeClient(emulator.state.lambda_endpoint)
                try:
                    client.invoke(name)  # a live environment to read the variables of
                finally:
                    client.close()
                results["breakdown"][name] = init_breakdown(name, args.breakdown_runs, node_sdk,
                                                            environment_of(emulator, name))
            machine = watch.stop()
            print("\ncold start breakdown outside the emulator (median of %d starts each, ms):" % args.breakdown_runs)
            for name, parts in results["breakdown"].items():
                for title, value in parts.items():
                    print("  %-5s %-55s %7.1f" % (name, title, value))
                if name in results["cold"]:
                    print("  %-5s %-55s %7.1f" % (name, "Init Duration in the emulator (median, above)",
                                                  median(results["cold"][name]["init"])))
            print("  " + CpuWatch.describe(machine))

        # -- warm invocations -----------------------------------------------------------------------------
        for path, runner in (("invoke", warm_invoke), ("ws", warm_websocket)) if args.warm else ():
            for name in runtimes:
                wait_quiet(timeout=args.quiet_wait)
                spy = None
                if args.profile:
                    seconds = max(2, args.warm * 0.0015)
                    spy = PySpy(emulator.pid, os.path.join(args.profile, "envs-%s-%s.txt" % (path, name)), seconds,
                                rate=args.profile_rate)
                env_pids = emulator.environment_pids()
                cpu0 = (cpu_seconds(emulator.pid), sum(cpu_seconds(p) or 0 for p in env_pids))
                watch = CpuWatch()
                result = runner(emulator, log, name, args.warm, args.warmup)
                result["machine"] = watch.stop()
                cpu1 = (cpu_seconds(emulator.pid), sum(cpu_seconds(p) or 0 for p in env_pids))
                calls = args.warm + args.warmup
                result["cpu_gateway_ms"] = (cpu1[0] - cpu0[0]) / calls * 1000
                result["cpu_envs_ms"] = (cpu1[1] - cpu0[1]) / calls * 1000
                results[path][name] = result
                title = "Invoke API" if path == "invoke" else "WebSocket frame, two-way route"
                print("\nwarm invocations of %s through the %s (%d sequential, after %d not counted), ms:" % (
                    name, title, args.warm, args.warmup))
                print("  round trip (client):                 %s" % stats(result["rt"]))
                print("  Duration (REPORT):                   %s" % stats(result["duration"]))
                print("  round trip - Duration:               %s" % stats(result["overhead"]))
                print("  client send -> handler runs:         %s" % stats(result["inbound"]))
                print("  handler returns -> client has it:    %s" % stats(result["outbound"]))
                print("  CPU per invocation: emulator %.3f ms, the environment %.3f ms" % (
                    result["cpu_gateway_ms"], result["cpu_envs_ms"]))
                print("  " + CpuWatch.describe(result["machine"]))
                if spy:
                    spy.finish("emulator during the warm %s invocations of %s" % (path, name))
    finally:
        if bare is not None:
            bare.stop()
        emulator.stop(timeout=15)
        shutil.rmtree(project, ignore_errors=True)

    # -- summary ------------------------------------------------------------------------------------------
    print("\n== summary ==")
    print("cold starts (one at a time, after a code change), ms: median Init Duration / median end to end")
    for name, result in results["cold"].items():
        print("  %-9s %7.1f / %7.1f   (%d cold starts)" % (name, median(result["init"]), median(result["end_to_end"]),
                                                          len(result["init"])))
    handler_us = {"py": results["py_call_us"], "node": results["node_call_us"] or 0.0}
    print("warm invocation, p50 ms (p99)      round trip      Duration   RT - Duration   RT - handler's own time")
    print("  %-30s %15s" % ("bare aiohttp HTTP round trip", "%.3f (%.3f)" % (
        percentile(results["bare_http"], 50), percentile(results["bare_http"], 99))))
    print("  %-30s %15s" % ("bare aiohttp WebSocket echo", "%.3f (%.3f)" % (
        percentile(results["bare_ws"], 50), percentile(results["bare_ws"], 99))))
    for name, r in results["mini"].items():
        print("  %-30s %15s %13s %15s %15s" % ("minimal relay, %s runtime" % name, "%.3f (%.3f)" % (
            percentile(r["rt"], 50), percentile(r["rt"], 99)), "-", "-", "%.3f (%.3f)" % (
            percentile(r["rt"], 50) - handler_us[name] / 1000, percentile(r["rt"], 99) - handler_us[name] / 1000)))
    for path in ("invoke", "ws"):
        for name, r in results[path].items():
            own = [x - handler_us[name] / 1000 for x in r["rt"]]
            print("  %-30s %15s %13s %15s %15s" % (
                "%s, %s" % (name, "Invoke API" if path == "invoke" else "WebSocket two-way"),
                "%.3f (%.3f)" % (percentile(r["rt"], 50), percentile(r["rt"], 99)),
                "%.3f" % percentile(r["duration"], 50),
                "%.3f (%.3f)" % (percentile(r["overhead"], 50), percentile(r["overhead"], 99)),
                "%.3f (%.3f)" % (percentile(own, 50), percentile(own, 99))))
    print("(Duration is the emulator's clock from handing the event to the environment to its response: it "
          "includes the Runtime API hop both ways.\n the handler's own time is the in-process call: Python %.2f µs, "
          "Node %s)" % (results["py_call_us"], "%.2f µs" % results["node_call_us"] if results["node_call_us"] else "-"))

    print("\ngoals:")
    for name, goal in (("py", GOALS["cold_py"]), ("node", GOALS["cold_node"])):
        if name in results["cold"]:
            value, count = median(results["cold"][name]["init"]), len(results["cold"][name]["init"])
            print("  %s cold start of the trivial %s function: median Init Duration %.1f ms < %.0f ms (%d cold starts)" % (
                verdict(value < goal) if count >= 20 else "n/a (fewer than 20 cold starts)", name, value, goal, count))
    # Issue 22's goal 3: the hop itself, gateway to environment and back (the emulator's Duration,
    # from handing the event over to holding the answer, less the handler's own time). The whole
    # of what wsctl adds to a bare server of the same protocol (its routing, event building,
    # logging, and the hop) is printed beside it, with no goal.
    for path in ("invoke", "ws"):
        bare = results["bare_http" if path == "invoke" else "bare_ws"]
        for name, r in results[path].items():
            own_ms = handler_us[name] / 1000
            hop50, hop99 = percentile(r["duration"], 50) - own_ms, percentile(r["duration"], 99) - own_ms
            print("  %s warm invocation, %s via %s, gateway to environment and back (Duration - handler's own "
                  "time): p50 %.3f ms < %.1f ms, p99 %.3f ms < %.1f ms" % (
                      verdict(hop50 < GOALS["overhead_p50"] and hop99 < GOALS["overhead_p99"]), name,
                      "Invoke API" if path == "invoke" else "WebSocket", hop50, GOALS["overhead_p50"], hop99,
                      GOALS["overhead_p99"]))
            front = percentile(r["overhead"], 50)
            print("       the earlier reading, the front end and the pool (round trip - Duration): p50 %.3f ms: %s"
                  % (front, verdict(front < GOALS["overhead_p50"])))
            added50 = percentile(r["rt"], 50) - percentile(bare, 50) - own_ms
            added99 = percentile(r["rt"], 99) - percentile(bare, 99) - own_ms
            print("       all wsctl adds to a bare aiohttp %s round trip (the hop, routing, the event, the "
                  "log): p50 %.3f ms, p99 %.3f ms (no goal)" % ("HTTP" if path == "invoke" else "WebSocket",
                                                               added50, added99))


if __name__ == "__main__":
    main()
