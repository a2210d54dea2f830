"""Broadcast at a region's distance: the seed's sequential loop, wsctl's CLI, the deployed handler's
own fan-out (sendRoom) and the server-side fan-out, at 0, 20 and 80 ms of round-trip time, each timed
to the LAST client's receipt, each beside the floor of the same run.

The emulator runs on loopback (a PostToConnection costs next to nothing there); bench/latency_proxy.py
(a process of its own) sits between the senders and it and adds the RTT: each chunk in each direction
waits RTT/2 (+-5% jitter), a new connection's first bytes one RTT more (TCP's handshake).

  sender                      what goes through the proxy (at the set RTT)
  seq      the seed article   this process: one boto3 scan of the registry, then post_to_connection one
                              after another (one boto3 client). At RTT > 0 and more than --seq-sample
                              ids it posts to a sample of them and the total is EXTRAPOLATED linearly
                              (scan + fan-out x N / sample), clearly labelled.
  cli      wsctl's CLI        `wsctl --local -o json broadcast PAYLOAD` (a subprocess): its registry scan
                              (DynamoDB endpoint) and its posts (management endpoint) both go through
                              the proxy: it runs with a WSCTL_HOME of its own holding a copy of the
                              emulator's state file whose endpoints are the proxy's (wsctl's --local
                              target reads its endpoints from the state file only).
  room-M   sendRoom           a client (in region: not proxied) sends {"action": "sendRoom"} to a room of
                              M members; the bundled handler (lambda_src/app.py send_room -> delivery.
                              post_many: 16 boto3 threads) posts to them through the proxy: the emulator
                              runs with --env APIGW_MANAGEMENT_ENDPOINT=http://127.0.0.1:PROXY/dev.
  server   --server-side      `wsctl --local -o json broadcast PAYLOAD --server-side --segments 4`: the
                              CLI's Invoke calls go through the proxy (the Lambda endpoint of its state
                              copy is the proxy's); the function's scan and posts do not (they are in
                              region: the event's endpoint is the emulator's own).
  aiohttp  baseline           the same CLI command with the sender it had before issue 22 (aiohttp's client,
                              bench/aiohttp_sender.py) put in place of wsctl's in the CLI's own process
                              (bc.CLI_VARIANTS): the "before" of each figure, measured in the same run.
  uvloop   experiment         the same CLI command on uvloop's event loop (installed in the CLI's process):
                              whether the loop is worth adopting. Bench code, not wsctl's.

Before the emulator starts, two pure checks of wsctl's code: the fan-out engine alone (wsctl.fanout.run
with a null transport: CPU per post without and with the CLI's progress callback, at 2,000 and 10,000)
and the pacer (wsctl/fanout/pace.py) on a simulated throttled start (the rate it holds after the first
429, by how long after the start the first answer came). --no-engine-check skips both.

Sizes: --sizes 2000,10000 (default) connects 2,000 clients, measures cli (and its variants) and seq at --small-rtts
(0,20), then connects 8,000 more and measures everything at --rtts (0,20,80), plus one direct CLI
broadcast (no proxy: the 0 ms goal). Then a second emulator with --throttle 2000:500 and its own
--throttle-connections clients (default: the largest size): cli (and its variants) at --throttle-rtt (20 ms),
--repeat times each; --only-throttle runs that phase alone. Registry: DynamoDB Local for sizes over
2,000 (--backend), as bench/broadcast.py. --repeat 1 and --no-throttle shorten a run (how long each
takes here: bench/README.md).

Floors printed beside each figure: the network floor N x RTT / requests in flight (wsctl: 256; the
seed: 1; the handler: 16) and the CPU floor (the same sender through the proxy at 0 ms, same run);
"floor" is the larger of the two. CPU per run: the sender, the gateway, the functions' execution
environments, DynamoDB, the proxy, the clients, and other processes on the machine.

    python bench/broadcast_rtt.py                                    # full size
    python bench/broadcast_rtt.py --sizes 500 --rtts 0,20 --no-throttle --repeat 1   # quick
    python bench/broadcast_rtt.py --only-throttle --throttle 1000:250 --throttle-connections 6000
    python bench/broadcast_rtt.py --profile /tmp/prof                # + py-spy at 20 ms

Writes every figure to --json (default bench/.scratch/broadcast_rtt.json) for bench/broadcast_model.py.
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import (ROOT, SCRATCH, CpuWatch, DynamoDBLocal, Emulator, PySpy, banner, clean_env,  # noqa: E402
                      cpu_seconds, exit_on_sigterm, free_port, machine_busy_seconds, median, mint, raise_nofile,
                      verdict)
from loadgen import stop_workers  # noqa: E402
import broadcast as bc  # noqa: E402  (the seed's scan and post, the CLI's path, the profile readers)
from latency_proxy import ProxyProcess  # noqa: E402
from wsctl.limits import DEFAULT_CONCURRENCY as WSCTL_CONCURRENCY  # noqa: E402  (wsctl's default --concurrency)

CTX = mp.get_context("fork")
HANDLER_THREADS = 16  # lambda_src/delivery.py _executor
GOALS = {"x20": 100.0, "x80": 200.0, "x20_2000": 50.0, "floor": 1.5, "zero_s": 2.0, "rate": 0.90}


# -- the clients: bench/broadcast.py's fleet, counting a room message under its text ----------------
def _key(message: str) -> str:
    if message.startswith('{"type":"room"'):
        try:
            return json.loads(message).get("text") or message
        except ValueError:
            return message
    return message


async def _fleet_main(urls, inflight: int, timeout: float, pipe):
    from websockets.asyncio.client import connect

    arrivals = {}  # key -> list of arrival times (time.time())
    state = {"dups": 0, "closed": 0, "held": 0}
    semaphore = asyncio.Semaphore(inflight)
    errors = {}
    sockets = []

    def report(tag):
        times = arrivals.get(tag, [])
        return {"tag": tag, "count": len(times), "times": times, "dups": state["dups"], "closed": state["closed"],
                "held": state["held"]}

    async def read(ws):
        seen = set()
        try:
            async for message in ws:
                now = time.time()
                if message in seen:  # the same frame twice on one connection
                    state["dups"] += 1
                    continue
                seen.add(message)
                tag = _key(message)
                times = arrivals.setdefault(tag, [])
                times.append(now)
                if len(times) == state["held"]:
                    pipe.send(("done", report(tag)))
        except Exception:
            pass
        state["closed"] += 1

    async def one(url):
        async with semaphore:
            try:
                ws = await connect(url, ping_interval=None, open_timeout=timeout, close_timeout=1,
                                   compression=None, max_queue=None)
            except Exception as error:
                response = getattr(error, "response", None)
                kind = ("HTTP %s" % response.status_code) if response is not None else type(error).__name__
                errors[kind] = errors.get(kind, 0) + 1
                return
            sockets.append(ws)

    await asyncio.gather(*(one(url) for url in urls))
    state["held"] = len(sockets)
    state["readers"] = [asyncio.create_task(read(ws)) for ws in sockets]  # kept alive
    pipe.send(("opened", {"held": len(sockets), "errors": errors}))
    stop = asyncio.Event()

    def command():
        try:
            message = pipe.recv()
        except EOFError:
            stop.set()
            return
        if message[0] == "flush":
            pipe.send(("report", report(message[1])))
        elif message[0] == "forget":
            arrivals.pop(message[1], None)
        elif message[0] == "stop":
            stop.set()

    asyncio.get_running_loop().add_reader(pipe.fileno(), command)
    await stop.wait()


def _fleet_worker(close_fds, url, keyset, stack, start, size, inflight, timeout, go, pipe):
    for fd in close_fds:  # the latency proxy's control pipe: it must see EOF when the benchmark dies
        try:
            os.close(fd)
        except OSError:
            pass
    raise_nofile()
    urls = ["%s?token=%s" % (url, mint(keyset, stack, "rtt-%d" % i, 7200)) for i in range(start, start + size)]
    pipe.send(("ready", None))
    go.wait()
    asyncio.run(_fleet_main(urls, inflight, timeout, pipe))
    os._exit(0)


class Fleet:
    """Client connections in worker processes, added in batches; collects per-payload arrivals."""

    def __init__(self, emulator, close_fds=(), procs: int = 2, inflight: int = 256):
        self.emulator, self.close_fds, self.procs, self.inflight = emulator, list(close_fds), procs, inflight
        self.workers, self.pipes, self.held, self.next_user = [], [], 0, 0

    def add(self, count: int, timeout: float = 120.0) -> tuple:
        procs = max(1, min(self.procs, count))
        go = CTX.Event()
        share, extra = divmod(count, procs)
        new_pipes = []
        for index in range(procs):
            size = share + (1 if index < extra else 0)
            parent, child = CTX.Pipe()
            process = CTX.Process(target=_fleet_worker, daemon=True, args=(
                self.close_fds, self.emulator.url, self.emulator.state.keyset, self.emulator.stack,
                self.next_user, size, max(1, self.inflight // procs), timeout, go, child))
            process.start()
            self.workers.append(process)
            new_pipes.append(parent)
            self.next_user += size
        for pipe in new_pipes:
            if pipe.recv()[0] != "ready":
                raise RuntimeError("a client process failed to start")
        started = time.monotonic()
        go.set()
        held, errors = 0, Counter()
        for pipe in new_pipes:
            kind, report = pipe.recv()
            assert kind == "opened", kind
            held += report["held"]
            errors.update(report["errors"])
        self.pipes += new_pipes
        self.held += held
        return held, dict(errors), time.monotonic() - started

    def pids(self):
        return [w.pid for w in self.workers]

    def collect(self, tag: str, grace: float) -> dict:
        """Arrivals of `tag` from every process: at once from a process all of whose clients have it,
        else after `grace` seconds (a flush)."""
        deadline = time.monotonic() + grace
        reports = {}
        for index, pipe in enumerate(self.pipes):
            while index not in reports:
                left = deadline - time.monotonic()
                if left <= 0 or not pipe.poll(left):
                    pipe.send(("flush", tag))
                    while True:
                        kind, report = pipe.recv()
                        if report and report.get("tag") == tag and kind == "report":
                            reports[index] = report
                            break
                    break
                kind, report = pipe.recv()
                if report and report.get("tag") == tag:
                    reports[index] = report
        for pipe in self.pipes:
            pipe.send(("forget", tag))
        times = sorted(t for r in reports.values() for t in r["times"])
        return {"received": len(times), "times": times, "first": times[0] if times else None,
                "last": times[-1] if times else None, "dups": sum(r["dups"] for r in reports.values()),
                "closed": sum(r["closed"] for r in reports.values())}

    def close(self):
        stop_workers(self.pipes, self.workers, ("stop", None))


# -- one room sender (in region: straight to the emulator) -------------------------------------------
class RoomSender:
    def __init__(self, emulator, rooms):
        from websockets.sync.client import connect

        import warnings

        token = mint(emulator.state.keyset, emulator.stack, "rtt-room-sender", 7200)
        # websockets 17 prefers `with connect(...)` (it warns on first use otherwise); this one lives for the run
        warnings.filterwarnings("ignore", message=r"connect\(\) must be used as a context manager")
        self.ws = connect("%s?token=%s" % (emulator.url, token), compression=None, max_queue=None,
                          ping_interval=None, open_timeout=30)
        self.connection_id = self.ask({"action": "whoami"}, "whoami")["connectionId"]
        for room in rooms:
            self.ask({"action": "join", "room": room}, "joined")

    def drain(self) -> int:
        drained = 0
        while True:
            try:
                self.ws.recv(timeout=0)
            except TimeoutError:
                return drained
            drained += 1

    def ask(self, frame: dict, answer_type: str, timeout: float = 120.0) -> dict:
        self.ws.send(json.dumps(frame))
        deadline = time.monotonic() + timeout
        while True:
            message = self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            try:
                document = json.loads(message)
            except ValueError:
                continue
            if isinstance(document, dict) and document.get("type") in (answer_type, "error"):
                if document.get("type") == "error":
                    raise RuntimeError("the handler answered %s" % document)
                return document

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


# -- state files: the CLI's view of the emulator, through the proxy ---------------------------------
def state_copy(state, home: Path, **changes) -> Path:
    """A copy of the emulator's state file under another WSCTL_HOME with some endpoints replaced, so
    `WSCTL_HOME=home wsctl --local ...` talks to the proxy (wsctl/targets/emulator.py reads endpoints
    from the state file only; --endpoint-url is ignored with --local)."""
    from wsctl.targets.emulator import states, write_state

    path = write_state(replace(state, **changes), home)
    alive, _ = states(home)
    if not any(s.pid == state.pid and all(getattr(s, k) == v for k, v in changes.items()) for s in alive):
        raise RuntimeError("wsctl does not read the state copy at %s (has the state file layout changed? "
                           "see wsctl/targets/emulator.py)" % path)
    return path


def hostport(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return "%s:%d" % (parts.hostname, parts.port)


def via(url: str, port: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, "127.0.0.1:%d" % port, parts.path, "", ""))


# -- the senders ------------------------------------------------------------------------------------
def send_cli(ctx, payload: str, home: Path, extra=(), spy: str | None = None, variant: str | None = None) -> dict:
    launcher = bc.cli_launcher(variant)
    command = [*launcher, "--local", "-o", "json", "broadcast", payload, *extra]
    if spy:
        command = [str(Path(sys.executable).parent / "py-spy"), "record", "-o", spy, "-f", "raw", "-r", "250",
                   "--threads", "--nonblocking", "--gil", "--", *command]
    done = subprocess.run(command, env=clean_env(home), cwd=ROOT, capture_output=True, text=True)
    returned = time.time()
    report = {}
    if "{" in done.stdout:
        try:
            report = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{"):])[0]
        except ValueError:
            pass
    if done.returncode or not report:
        errors = sorted({str(seg.get("error")) for seg in report.get("segments") or () if seg.get("error")})
        print("   wsctl exited %d%s" % (done.returncode, ": segment errors %s" % errors if errors else
                                      ":\n%s%s" % (done.stdout[-1500:], done.stderr[-1500:])))
    counts = report.get("counts") or {}
    return {"returned": returned, "exit": done.returncode, "sent_to": report.get("recipients"),
            "ok": counts.get("delivered"), "outcomes": {k: v for k, v in counts.items() if v},
            "throttles": report.get("throttles"), "retries": report.get("retries"),
            "engine_seconds": report.get("seconds"), "segments": report.get("segments"), "posted": None}


def send_seq(ctx, payload: str, sample: int | None) -> dict:
    """The seed: boto3 scan, then one post after another (on a sample of ids when `sample`)."""
    t0 = time.time()
    seed_ctx = SimpleNamespace(state=ctx.proxied_state)
    dynamodb, api = bc._seed_clients(seed_ctx, None)
    t1 = time.time()
    ids = bc._seed_scan(seed_ctx, dynamodb)
    t2 = time.time()
    data, table = payload.encode(), ctx.state.table
    posted = [i for i in ids if i != ctx.sender_id] if ctx.sender_id else ids
    if sample:
        posted = posted[:sample]
    outcomes = Counter(bc._seed_post(api, dynamodb, table, cid, data) for cid in posted)
    t3 = time.time()
    return {"returned": t3, "setup": t1 - t0, "scan": t2 - t1, "fanout": t3 - t2, "sent_to": len(ids),
            "posted": len(posted), "ok": outcomes["delivered"], "outcomes": dict(outcomes)}


def send_room(ctx, payload: str, room: str) -> dict:
    ctx.sender.drain()
    t0 = time.time()
    ack = ctx.sender.ask({"action": "sendRoom", "room": room, "text": payload}, "sent")
    returned = time.time()
    outcomes = {k: v for k, v in ack.items() if k in ("delivered", "gone", "throttled", "forbidden", "failed")}
    return {"returned": returned, "ack": returned - t0, "sent_to": sum(outcomes.values()), "ok": ack.get("delivered"),
            "outcomes": outcomes, "posted": ctx.rooms[room]}


# -- one measured run -------------------------------------------------------------------------------
def quiet_wait(limit: float, timeout: float) -> float:
    """Wait (at most `timeout` s) until other processes use under `limit` of one core over 1 s."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        watch = CpuWatch()
        time.sleep(1.0)
        figures = watch.stop()
        if figures["foreign"] / figures["wall"] < limit:
            break
    return time.monotonic() - started


def measure(ctx, kind: str, rtt: float, size: int, sender, label: str, expected: int, cli_child: bool,
            grace: float = 10.0, extrapolate: int | None = None) -> dict:
    quiet_wait(0.15, ctx.args.quiet_wait)
    tag = "%s-%s" % (kind, uuid.uuid4().hex[:12])
    payload = tag  # sent as given (a room's members get it as the "text" of the handler's frame)
    emulator = ctx.emulator
    watched = {"gateway": [emulator.pid], "functions": emulator.environment_pids(), "DynamoDB": [ctx.ddb_pid()],
               "proxy": [ctx.proxy.pid], "clients": ctx.fleet.pids()}
    cpu0 = {k: sum(cpu_seconds(p) or 0 for p in pids if p) for k, pids in watched.items()}
    own0, children0 = os.times(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proxy0 = ctx.proxy.stats()
    watch = CpuWatch()
    t0 = time.time()
    result = sender(payload)
    got = ctx.fleet.collect(tag, grace if result.get("posted") is None else min(grace, 1.0))
    machine = watch.stop()
    proxy1 = ctx.proxy.stats()
    children1, own1 = resource.getrusage(resource.RUSAGE_CHILDREN), os.times()
    if cli_child:
        sender_cpu = (children1.ru_utime - children0.ru_utime) + (children1.ru_stime - children0.ru_stime)
        machine["foreign"] = max(0.0, machine["foreign"] - sender_cpu)
    else:
        sender_cpu = (own1.user - own0.user) + (own1.system - own0.system)
    watched["functions"] = sorted(set(watched["functions"]) | set(emulator.environment_pids()))
    cpu = {k: sum(cpu_seconds(p) or 0 for p in pids if p) - cpu0.get(k, 0) for k, pids in watched.items()}
    cpu["sender"] = sender_cpu
    cpu["others"] = machine["foreign"]
    total = (got["last"] - t0) if got["last"] else float("nan")
    record = {"kind": kind, "label": label, "rtt": rtt, "size": size, "expected": expected, "t0": t0,
              "total": total, "to_first": (got["first"] - t0) if got["first"] else float("nan"),
              "to_return": result["returned"] - t0, "received": got["received"], "dups": got["dups"],
              "closed": got["closed"], "cpu": cpu, "wall": machine["wall"], **{
                  k: v for k, v in result.items() if k != "returned"}}
    times = got["times"]
    if len(times) >= 10:
        at = lambda q: times[min(len(times) - 1, int(q * len(times)))] - t0  # noqa: E731
        record["p10"], record["p50"], record["p90"] = at(0.10), at(0.50), at(0.90)
    record["spread"] = (got["last"] - got["first"]) if got["first"] else float("nan")
    record["proxy_statuses"] = _status_delta(proxy0, proxy1)
    record["proxy_connections"] = _delta_sum(proxy0, proxy1, "connections")
    for r0, r1 in zip(proxy0["routes"], proxy1["routes"]):
        if r1["listen"] == ctx.mgmt_port:  # the management API's bytes each way (request and answer sizes)
            record["mgmt_bytes_up"] = r1["bytes_up"] - r0["bytes_up"]
            record["mgmt_bytes_down"] = r1["bytes_down"] - r0["bytes_down"]
    if extrapolate:
        # the seed on a sample: setup + scan measured, the fan-out scaled from the sample to every id
        record["sample_total"] = total
        record["total"] = result["setup"] + result["scan"] + result["fanout"] * extrapolate / max(1, result["posted"])
        record["extrapolated"] = True
    ctx.records.append(record)
    print_record(record)
    return record


def _status_delta(before: dict, after: dict) -> dict:
    out = Counter()
    for route0, route1 in zip(before["routes"], after["routes"]):
        for status, count in route1["statuses"].items():
            out["%s %s" % (route1["listen"], status)] += count - route0["statuses"].get(status, 0)
    return {k: v for k, v in out.items() if v}


def _delta_sum(before: dict, after: dict, key: str) -> int:
    return sum(r1[key] - r0[key] for r0, r1 in zip(before["routes"], after["routes"]))


def print_record(r: dict) -> None:
    lost = r["expected"] - r["received"]
    head = "  %-46s %8.3f s%s to the last receipt | received %d/%d%s%s" % (
        r["label"] + ",", r["total"], " (EXTRAPOLATED from %d posts: sample took %.3f s)" % (
            r["posted"], r["sample_total"]) if r.get("extrapolated") else "", r["received"], r["expected"],
        "  LOST %d" % lost if lost > 0 else "", "  DUPLICATES %d" % r["dups"] if r["dups"] else "")
    print(head)
    bits = []
    if "scan" in r:
        bits.append("setup %.3f s, scan %.3f s (%d ids), fan-out %.3f s" % (r["setup"], r["scan"], r["sent_to"],
                                                                           r["fanout"]))
    if r.get("engine_seconds") is not None:
        bits.append("wsctl's own figure %.3f s" % r["engine_seconds"])
    if "ack" in r:
        bits.append("sender's ack after %.3f s" % r["ack"])
    if "p50" in r:
        bits.append("receipts p10/p50/p90 at %.3f/%.3f/%.3f s" % (r["p10"], r["p50"], r["p90"]))
    bits.append("returned at %.3f s" % r["to_return"])
    print("      " + "; ".join(bits))
    if r.get("outcomes") and set(r["outcomes"]) - {"delivered"}:
        print("      sender outcomes: %s" % r["outcomes"])
    if r.get("throttles") or r.get("retries"):
        print("      throttled answers %s, retries %s (wsctl -o json); 429s seen by the proxy: %s" % (
            r.get("throttles"), r.get("retries"), {k: v for k, v in r["proxy_statuses"].items() if k.endswith("429")}
            or 0))
    if r.get("segments"):
        print("      segments: " + ", ".join("#%s %s ids in %.2f s%s" % (
            s.get("segment"), s.get("recipients"), s.get("seconds") or 0, " ERROR %s" % s["error"] if s.get("error")
            else "") for s in r["segments"]))
    cpu = r["cpu"]
    print("      CPU s: sender %.2f, gateway %.2f, functions %.2f, DynamoDB %.2f, proxy %.2f, clients %.2f, "
          "other processes %.2f (window %.1f s)%s" % (
              cpu["sender"], cpu["gateway"], cpu["functions"], cpu["DynamoDB"], cpu["proxy"], cpu["clients"],
              cpu["others"], r["wall"], "  WARNING: machine shared" if cpu["others"] / max(0.01, r["wall"]) > 0.10
              else ""))
    if r["closed"]:
        print("      WARNING: %d client connections were closed" % r["closed"])
    sys.stdout.flush()


# -- the phases -------------------------------------------------------------------------------------
class Context:
    pass


def set_rtt(ctx, rtt: float) -> None:
    ctx.proxy.set_rtt(rtt)
    print("\n-- RTT %g ms (each chunk each way RTT/2 +-5%%; new connections +1 RTT) --" % rtt)


def run_size(ctx, size: int, rtts, patterns, seq_sample: int, repeat: int) -> None:
    for rtt in rtts:
        set_rtt(ctx, rtt)
        for round_no in range(max(repeat, ctx.args.repeat_others)):
            if "cli" in patterns and round_no < repeat:
                measure(ctx, "cli", rtt, size, lambda p: send_cli(ctx, p, ctx.home_client),
                        "wsctl CLI broadcast @%g ms" % rtt, ctx.fleet.held, cli_child=True)
            for variant in [v for v in bc.CLI_VARIANTS if v in patterns and round_no < repeat]:
                measure(ctx, variant, rtt, size, lambda p, v=variant: send_cli(ctx, p, ctx.home_client, variant=v),
                        "%s @%g ms" % (bc.CLI_VARIANTS[variant][1], rtt), ctx.fleet.held, cli_child=True)
            if round_no >= ctx.args.repeat_others:
                continue
            if "server" in patterns:
                measure(ctx, "server", rtt, size, lambda p: send_cli(
                    ctx, p, ctx.home_server, ("--server-side", "--segments", str(ctx.args.segments))),
                    "server-side x%d @%g ms" % (ctx.args.segments, rtt), ctx.fleet.held, cli_child=True)
            for room in [r for r in ctx.rooms if "room" in patterns]:
                measure(ctx, "room%d" % ctx.rooms[room], rtt, size, lambda p, room=room: send_room(ctx, p, room),
                        "sendRoom to %d members @%g ms" % (ctx.rooms[room], rtt), ctx.rooms[room], cli_child=False)
        if "seq" in patterns:
            ids = ctx.fleet.held
            estimate = ids * (rtt / 1000.0 + 0.0012)
            sample = seq_sample if (rtt > 0 and estimate > ctx.args.seq_full_seconds and ids > seq_sample) else None
            measure(ctx, "seq", rtt, size, lambda p: send_seq(ctx, p, sample),
                    "seed: boto3 scan + sequential posts @%g ms" % rtt, sample or ids, cli_child=False,
                    extrapolate=ids if sample else None)


def setup_rooms(ctx, sizes) -> None:
    """Rooms of M members (fleet connections, written into the registry as the handler's join writes
    them), and one sender that joins each room through the handler."""
    import boto3

    from lambda_src.registry import Registry

    names = {"room-%d" % m: m for m in sizes}
    ctx.sender = RoomSender(ctx.emulator, list(names))
    ctx.sender_id = ctx.sender.connection_id
    client = boto3.client("dynamodb", endpoint_url=ctx.state.dynamodb_endpoint, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
    ids = [i for i in bc._seed_scan(SimpleNamespace(state=ctx.state), client) if i != ctx.sender_id]
    registry = Registry(client, ctx.state.table)
    now = time.time()
    jobs = [(cid, room) for room, m in names.items() for cid in ids[:m]]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda job: registry.join(job[0], job[1], ttl=int(now) + 7200, joined_at_ms=int(now * 1000)),
                      jobs))
    ctx.rooms = names
    print("rooms: %s (members written to the registry; the sender %s joined each through the handler)" % (
        ", ".join("%s: %d members + the sender" % kv for kv in names.items()), ctx.sender_id))


def proxied(ctx, emulator) -> None:
    """Routes for an emulator (management, DynamoDB, Lambda) and the CLI's state copies."""
    state = emulator.state
    ctx.ddb_port = ctx.proxy.add(hostport(state.dynamodb_endpoint))
    ctx.lambda_port = ctx.proxy.add(hostport(state.lambda_endpoint))
    ctx.proxied_state = replace(state, management_endpoint=via(state.management_endpoint, ctx.mgmt_port),
                                dynamodb_endpoint=via(state.dynamodb_endpoint, ctx.ddb_port))
    base = Path(emulator.home)
    ctx.home_client = base / "via-proxy-client"
    ctx.home_server = base / "via-proxy-server"
    state_copy(state, ctx.home_client, management_endpoint=ctx.proxied_state.management_endpoint,
               dynamodb_endpoint=ctx.proxied_state.dynamodb_endpoint)
    state_copy(state, ctx.home_server, lambda_endpoint=via(state.lambda_endpoint, ctx.lambda_port))
    print("proxy (pid %d): management %s -> %s, DynamoDB 127.0.0.1:%d -> %s, Lambda 127.0.0.1:%d -> %s" % (
        ctx.proxy.pid, ctx.proxied_state.management_endpoint, state.management_endpoint, ctx.ddb_port,
        state.dynamodb_endpoint, ctx.lambda_port, state.lambda_endpoint))


def warm_up(ctx, patterns) -> None:
    print("\nwarm-up at 0 ms (not counted): one CLI broadcast, one server-side broadcast, one room send, one scan")
    ctx.proxy.set_rtt(0)
    for kind, sender in (("cli", lambda p: send_cli(ctx, p, ctx.home_client)),
                         *((v, lambda p, v=v: send_cli(ctx, p, ctx.home_client, variant=v)) for v in bc.CLI_VARIANTS),
                         ("server", lambda p: send_cli(ctx, p, ctx.home_server,
                                                       ("--server-side", "--segments", str(ctx.args.segments)))),
                         ("room", lambda p: send_room(ctx, p, next(iter(ctx.rooms))) if ctx.rooms else None)):
        if kind in patterns and (kind != "room" or ctx.rooms):
            tag = "warm-%s-%s" % (kind, uuid.uuid4().hex[:8])
            sender(tag)
            ctx.fleet.collect(tag, 3.0)
    bc._seed_scan(SimpleNamespace(state=ctx.proxied_state), bc._seed_clients(
        SimpleNamespace(state=ctx.proxied_state), None)[0])


def throttle_phase(ctx, count: int, rtt: float, spec: str, repeat: int) -> None:
    print("\n== throttled: a second emulator with --throttle %s, %d clients, wsctl CLI broadcast at %g ms ==" % (
        spec, count, rtt))
    ctx.fleet.close()
    ctx.emulator.stop(timeout=30)
    port = free_port()
    ctx.mgmt_port = ctx.proxy.add("127.0.0.1:%d" % port)
    ctx.emulator = Emulator("--auth", "jwt", "--idle-timeout", "7000", "--throttle", spec, port=port,
                            dynamodb_endpoint=ctx.ddb.endpoint if ctx.ddb else None)
    ctx.emulator.start()
    ctx.state = ctx.emulator.state
    proxied(ctx, ctx.emulator)
    ctx.fleet = Fleet(ctx.emulator, ctx.close_fds, ctx.args.procs)
    held, errors, seconds = ctx.fleet.add(count)
    print("opened %d/%d clients in %.1f s; failures: %s" % (held, count, seconds, errors or "none"))
    ctx.rooms, ctx.sender_id = {}, None
    ctx.proxy.set_rtt(0)
    tag = "warm-t-%s" % uuid.uuid4().hex[:8]
    send_cli(ctx, tag, ctx.home_client)
    ctx.fleet.collect(tag, 5.0)
    time.sleep(1.0)  # the bucket refills
    set_rtt(ctx, rtt)
    for _ in range(repeat):
        for variant in [None] + [v for v in bc.CLI_VARIANTS if v in ctx.patterns]:
            time.sleep(0.5)  # the bucket refills (to its burst in burst / rate s)
            measure(ctx, "throttled" + ("-" + variant if variant else ""), rtt, count,
                    lambda p, v=variant: send_cli(ctx, p, ctx.home_client, variant=v),
                    "%s, throttled %s @%g ms" % (bc.CLI_VARIANTS[variant][1] if variant else "wsctl CLI broadcast",
                                                 spec, rtt), ctx.fleet.held, cli_child=True, grace=30)


# -- the engine alone: wsctl.fanout.run with a transport that answers at once ------------------------
def engine_check(sizes=(2000, 10000)) -> dict:
    """CPU of wsctl's fan-out engine per post with a null transport (no network, no emulator), without a
    progress callback and with the CLI's own (render.DelayedProgress, disabled as under -o json or off a
    terminal): what the engine itself adds per post, and whether that grows with N."""
    from wsctl import fanout
    from wsctl.fanout.policy import Answer
    from wsctl.render import DelayedProgress

    class Null:
        async def call(self, method, connection_id, data=None):
            await asyncio.sleep(0)
            return Answer(200, None, "", b"")

    def cpu(n, progress):
        ids = ["c%09d" % i for i in range(n)]
        started = time.process_time()
        asyncio.run(fanout.run(Null(), "POST", ids, b"x", WSCTL_CONCURRENCY, progress=progress))
        return time.process_time() - started

    out = {"sizes": list(sizes), "plain": [], "cli_progress": []}
    print("\nwsctl's fan-out engine alone (wsctl.fanout.run, null transport, %d in flight; CPU of this process):"
          % WSCTL_CONCURRENCY)
    for n in sizes:
        plain, with_progress = cpu(n, None), cpu(n, DelayedProgress("sending", enabled=False))
        out["plain"].append(plain)
        out["cli_progress"].append(with_progress)
        print("  N=%6d: no progress callback %.3f CPU-s (%.0f us/post); the CLI's progress callback (disabled) "
              "%.3f CPU-s (%.0f us/post)" % (n, plain, 1e6 * plain / n, with_progress, 1e6 * with_progress / n))
    n = sizes[-1]
    extra = out["cli_progress"][-1] - out["plain"][-1]
    out["quadratic_s"] = max(0.0, 2 * extra / n ** 2)  # extra CPU = k x N^2 / 2 (one sum over the results per post)
    print("  extra CPU with the CLI's callback at N=%d: %.3f s (as k x N^2/2: k = %.1f ns; 0.5 ns before d0b1655, when"
          " _detail() summed over every result after every post)" % (n, extra, 1e9 * out["quadratic_s"]))
    return out


def pacer_check(rate: float = 2000.0, burst: int = 500, rtt: float = 0.02) -> list:
    """wsctl's pacer (wsctl/fanout/pace.py) on a simulated start: the bucket's burst is accepted, then the first
    429 comes one RTT later; how fast may it send after that, depending on how long after the Pacer was made
    (the scan, new connections: several RTTs from afar) the first answer arrived? Pure: an injected clock."""
    from wsctl.fanout.pace import Pacer

    rows = []
    for first in (0.1, 0.2, 0.3, 0.5, 1.0):
        now = [0.0]
        pacer = Pacer(clock=lambda: now[0])
        now[0] = first
        for _ in range(burst):
            pacer.answered(False)
        now[0] = first + rtt
        pacer.answered(True)
        after = pacer.rate
        # every worker (C of them) asks for its next slot right after the cut: slots are reserved at the rate
        # of the moment (pace.py delay(): next_slot += 1 / rate) and not re-spaced when the rate grows again
        probe = Pacer(clock=lambda: now[0])
        probe.rate, probe.next_slot = after, now[0]
        longest = max(probe.delay() for _ in range(WSCTL_CONCURRENCY))
        # how long until it may send at the bucket's rate again, every answer accepted from here (one every 10 ms)
        recovered, step = None, 0.0
        while step < 120:
            step += 0.01
            now[0] = first + rtt + step
            pacer.answered(False)
            if pacer.rate >= rate:
                recovered = step
                break
        rows.append({"first_answer_s": first, "rate_after_429": after, "recovered_s": recovered,
                     "longest_wait_s": longest})
    print("\nwsctl's pacer on a simulated start (a %d-request burst accepted, the first 429 one RTT = %g ms later):"
          % (burst, 1000 * rtt))
    for row in rows:
        print("  first answer %.1f s after the Pacer was made: rate after the first 429 %5.0f/s; the %d workers' next "
              "slots reach %.1f s ahead; the rate is back to %d/s after %s" % (
                  row["first_answer_s"], row["rate_after_429"], WSCTL_CONCURRENCY, row["longest_wait_s"], rate,
                  "%.1f s" % row["recovered_s"] if row["recovered_s"] is not None else "> 120 s"))
    print("  (before d0b1655 the first window started when the Pacer was made, so a late first answer read as a slow "
          "endpoint and the first 429 cut to MIN_RATE, and slots reserved ahead stalled the workers for up to 25 s)")
    return rows


# -- the summary --------------------------------------------------------------------------------------
def pick(records, kind, size, rtt):
    runs = [r for r in records if r["kind"] == kind and r["size"] == size and r["rtt"] == rtt]
    if not runs:
        return None
    runs.sort(key=lambda r: r["total"])
    return runs[len(runs) // 2]  # the median run (its own CPU figures)


def summary(ctx) -> dict:
    records = ctx.records
    print("\n== summary: seconds to the last client's receipt (median of runs), each beside its floor ==")
    print("floor = max(network floor N x RTT / in flight, CPU floor = the same sender at 0 ms through the proxy)")
    head = "%-7s %-34s %9s %9s %9s %7s %8s %8s %8s %8s"
    print(head % ("N", "sender @RTT", "time s", "net fl s", "CPU fl s", "/floor", "sender", "gateway", "funcs",
                  "proxy"))
    print(head % ("", "", "", "", "", "", "CPU s", "CPU s", "CPU s", "CPU s"))
    sizes = sorted({r["size"] for r in records if not r["kind"].startswith(("throttled", "profiled"))})
    table = []
    for size in sizes:
        rooms = sorted({r["kind"] for r in records if r["kind"].startswith("room")}, key=lambda k: int(k[4:]))
        for kind, inflight in (("seq", 1), ("cli", WSCTL_CONCURRENCY), *((v, WSCTL_CONCURRENCY) for v in bc.CLI_VARIANTS),
                               ("server", None),
                               *((room, HANDLER_THREADS) for room in rooms), ("direct", WSCTL_CONCURRENCY)):
            for rtt in sorted({r["rtt"] for r in records}):
                r = pick(records, kind, size, rtt)
                if r is None:
                    continue
                n = r["expected"] if kind.startswith("room") else r.get("sent_to") or r["expected"]
                if kind == "seq" and r.get("extrapolated"):
                    n = r["sent_to"]
                zero = pick(records, kind, size, 0)
                net = n * rtt / 1000.0 / inflight if inflight else float("nan")
                cpu_floor = zero["total"] if zero else float("nan")
                floor = max(x for x in (net, cpu_floor) if x == x) if (net == net or cpu_floor == cpu_floor) else None
                ratio = r["total"] / floor if floor else float("nan")
                label = {"seq": "seed sequential", "cli": "wsctl CLI", **{v: bc.CLI_VARIANTS[v][1] for v in bc.CLI_VARIANTS},
                         "server": "server-side x%d" % ctx.args.segments,
                         "direct": "wsctl CLI, no proxy"}.get(kind) or "sendRoom %s" % kind[4:]
                label += " @%g ms" % rtt
                if r.get("extrapolated"):
                    label += " (extrap.)"
                print("%-7d %-34s %9.3f %9.3f %9.3f %7.2f %8.2f %8.2f %8.2f %8.2f" % (
                    size, label, r["total"], net, cpu_floor, ratio, r["cpu"]["sender"], r["cpu"]["gateway"],
                    r["cpu"]["functions"], r["cpu"]["proxy"]))
                table.append({"size": size, "kind": kind, "rtt": rtt, "total": r["total"], "net_floor": net,
                              "cpu_floor": cpu_floor, "ratio_to_floor": ratio})
    lost = [r for r in records if r["received"] != r["expected"] or r["dups"]]
    print("\nreceipts: %s" % ("every client got every message it was sent, exactly once (%d runs)" % len(records)
                              if not lost else "PROBLEMS: " + "; ".join(
                                  "%s @%g ms: %d/%d, %d dups" % (r["label"], r["rtt"], r["received"], r["expected"],
                                                                 r["dups"]) for r in lost)))

    print("\n== goals (wsctl's CLI as shipped; [before] the CLI with its former aiohttp sender, [experiment] on "
          "uvloop: each where measured, same run) ==")
    goals = {}
    big = max(sizes) if sizes else None
    variants = [("cli", "wsctl CLI", "")] + [(v, label, prefix) for v, (_, label, prefix) in bc.CLI_VARIANTS.items()]
    for name, size, rtt, want in (("x20", 10000, 20, GOALS["x20"]), ("x80", 10000, 80, GOALS["x80"]),
                                  ("x20_2000", 2000, 20, GOALS["x20_2000"])):
        seq = pick(records, "seq", size, rtt) if size in sizes else None
        if seq is None:
            print("  (not measured) %d connections at %g ms: wsctl >= %gx the sequential loop" % (size, rtt, want))
            continue
        for kind, label, prefix in variants:
            cli = pick(records, kind, size, rtt)
            if cli is None:
                continue
            x = seq["total"] / cli["total"]
            ok = x >= want
            # conservative: the seed at N x (RTT + its own time per post at 0 ms), without the proxy's own delays
            seq0 = pick(records, "seq", size, 0)
            ideal = seq0["total"] + (seq.get("sent_to") or size) * rtt / 1000.0 if seq0 else float("nan")
            print("  %s%s %d connections at %g ms: %s %.3f s vs sequential %.1f s%s = %.0fx (goal >= %gx; against "
                  "the seed's ideal N x (RTT + its 0 ms time per post) = %.1f s: %.0fx)" % (
                      prefix, verdict(ok), size, rtt, label, cli["total"], seq["total"],
                      " (extrapolated)" if seq.get("extrapolated") else "", x, want, ideal, ideal / cli["total"]))
            goals[name + ("" if kind == "cli" else "_" + kind)] = {"ok": ok, "ratio": x, "cli": cli["total"],
                                                                   "seq": seq["total"]}
            if name == "x20":
                zero = pick(records, kind, size, 0)
                net = (cli.get("sent_to") or cli["expected"]) * rtt / 1000.0 / WSCTL_CONCURRENCY
                floor = max(net, zero["total"]) if zero else net
                within = cli["total"] / floor
                goals["floor20" + ("" if kind == "cli" else "_" + kind)] = {
                    "ok": within <= GOALS["floor"], "ratio": within, "floor": floor, "net": net,
                    "cpu": zero["total"] if zero else None}
                print("  %s%s 10,000 at 20 ms: %s %.3f s is %.2fx its floor %.3f s = max(N x RTT / %d = %.3f s, the "
                      "same sender at 0 ms = %s s) (goal <= %.1fx)" % (
                          prefix, verdict(within <= GOALS["floor"]), label, cli["total"], within, floor,
                          WSCTL_CONCURRENCY, net, "%.3f" % zero["total"] if zero else "-", GOALS["floor"]))
    if big:
        direct = pick(records, "direct", big, 0)
        for kind, label, prefix in variants:
            zero = pick(records, kind, big, 0)
            if kind == "cli" and direct:
                ok = big >= 10000 and direct["total"] < GOALS["zero_s"]
                print("  %s %d connections at 0 ms (no proxy): wsctl CLI %.3f s (goal < %.0f s at 10,000; through "
                      "the proxy at 0 ms: %s s)" % (verdict(ok) if big >= 10000 else "(size %d)" % big, big,
                                                   direct["total"], GOALS["zero_s"],
                                                   "%.3f" % zero["total"] if zero else "-"))
                goals["zero"] = {"ok": ok, "seconds": direct["total"], "proxied": zero["total"] if zero else None}
            elif kind != "cli" and zero:
                ok = big >= 10000 and zero["total"] < GOALS["zero_s"]
                print("  %s%s %d connections at 0 ms (through the proxy): %s %.3f s (goal < %.0f s at 10,000)" % (
                    prefix, verdict(ok) if big >= 10000 else "(size %d)" % big, big, label, zero["total"],
                    GOALS["zero_s"]))
                goals["zero_" + kind] = {"ok": ok, "seconds": zero["total"]}
    for kind, label, prefix in [("throttled", "wsctl CLI", "")] + [
            ("throttled-" + v, label, prefix) for v, (_, label, prefix) in bc.CLI_VARIANTS.items()]:
        throttled = [r for r in records if r["kind"] == kind]
        if not throttled:
            continue
        rate, burst = ctx.throttle_rate, ctx.throttle_burst
        runs = []
        print("  %s%s, throttled %d:%d at %g ms, %d connections (each run; the goal holds when it holds for every "
              "run):" % (prefix, label, rate, burst, throttled[0]["rtt"], throttled[0]["expected"]))
        for r in throttled:
            window = r["spread"]  # first receipt -> last receipt: the fan-out itself
            delivered = r.get("ok") or 0
            allowed = (burst + rate * window) / window if window else float("nan")
            achieved = delivered / window if window else 0.0
            steady = (0.8 * r["received"] / (r["p90"] - r["p10"])) if "p90" in r and r["p90"] > r["p10"] \
                else float("nan")
            seen429 = sum(v for k, v in r["proxy_statuses"].items() if k.endswith(" 429"))
            complete = r["received"] == r["expected"] and not r["dups"] and not r.get("outcomes", {}).get(
                "throttled") and not r.get("outcomes", {}).get("failed")
            counted = (r.get("throttles") or 0) == seen429 and (r.get("retries") or 0) >= seen429
            runs.append({"steady": steady, "rate": achieved, "allowed": allowed, "seen429": seen429,
                         "throttles": r.get("throttles"), "retries": r.get("retries"), "complete": complete,
                         "counted": counted, "total": r["total"], "p10": r.get("p10"), "window": window})
            print("    %.3f s to the last receipt; p10-p90 receipts %.0f/s = %.0f%% of %d/s; first to last %.0f/s = "
                  "%.0f%% of what the bucket allowed ((burst + rate x T) / T = %.0f/s); 10%% received after %.2f s; "
                  "429s: wsctl %s (retries %s), the proxy %d; received %d/%d, %d duplicates" % (
                      r["total"], steady, 100 * steady / rate, rate, achieved, 100 * achieved / allowed, allowed,
                      r.get("p10") or float("nan"), r.get("throttles"), r.get("retries"), seen429, r["received"],
                      r["expected"], r["dups"]))
        ok_rate = all(x["steady"] >= GOALS["rate"] * rate for x in runs)
        complete = all(x["complete"] for x in runs)
        exercised = any(x["seen429"] for x in runs)
        counted = all(x["counted"] for x in runs)
        worst = min(x["steady"] for x in runs)
        print("  %s%s %s throttled: p10-p90 rate >= %.0f%% of %d/s in every run (worst %.0f/s = %.0f%%)" % (
            prefix, verdict(ok_rate), label, 100 * GOALS["rate"], rate, worst, 100 * worst / rate))
        print("  %s%s %s throttled: nothing lost, every client got it exactly once, in every run" % (
            prefix, verdict(complete), label))
        print("  %s%s %s throttled: every 429 retried and counted (wsctl's throttles = the 429s the proxy saw, "
              "retries >= throttles)%s" % (prefix, verdict(counted) if exercised else "(not exercised)", label,
                                           "" if exercised else ": no 429 in any run, the sender never went faster "
                                           "than the bucket"))
        goals[kind] = {"ok": ok_rate and complete and counted and exercised, "rate_ok": ok_rate,
                       "complete": complete, "counted": counted, "exercised": exercised, "runs": runs,
                       "steady": worst, "seen429": sum(x["seen429"] for x in runs)}
    if big:
        for rtt in sorted({r["rtt"] for r in records if r["kind"] == "server"}):
            s, c = pick(records, "server", big, rtt), pick(records, "cli", big, rtt)
            if not s:
                continue
            once = s["received"] == s["expected"] and not s["dups"]
            segs = s.get("segments") or []
            print("  %s server-side x%d @%g ms: every live connection exactly one copy (%d/%d, %d dups, segments "
                  "reached %s); %.3f s, CPU: CLI %.2f s, functions %.2f s, gateway %.2f s  |  client-side same run: "
                  "%s" % (verdict(once), ctx.args.segments, rtt, s["received"], s["expected"], s["dups"],
                          sum(x.get("recipients") or 0 for x in segs), s["total"], s["cpu"]["sender"],
                          s["cpu"]["functions"], s["cpu"]["gateway"],
                          "%.3f s, CPU: CLI %.2f s, gateway %.2f s" % (c["total"], c["cpu"]["sender"],
                                                                       c["cpu"]["gateway"]) if c else "-"))
            goals.setdefault("server", {"ok": True, "runs": []})
            goals["server"]["ok"] &= once
            goals["server"]["runs"].append({"rtt": rtt, "total": s["total"], "once": once})
    return {"table": table, "goals": goals}


def model_inputs(ctx) -> dict:
    """What bench/broadcast_model.py needs, from this run's records."""
    records = ctx.records
    sizes = sorted({r["size"] for r in records if not r["kind"].startswith(("throttled", "profiled"))})
    big = max(sizes) if sizes else None
    out = {"concurrency": WSCTL_CONCURRENCY, "handler_threads": HANDLER_THREADS, "segments": ctx.args.segments,
           "engine": ctx.engine, "pacer": ctx.pacer}
    small = [x for x in sizes if x < big] if big else []
    for kind in ("cli", *bc.CLI_VARIANTS):
        zero = pick(records, kind, big, 0) if big else None
        if not zero:
            continue
        n = zero.get("sent_to") or zero["expected"]
        entry = {"n": n, "seconds_0ms": zero["total"], "cpu_s": zero["cpu"]["sender"],
                 "cpu_per_post_s": zero["cpu"]["sender"] / n, "to_first_s": zero["to_first"],
                 "gateway_cpu_per_post_s": zero["cpu"]["gateway"] / n}
        low = pick(records, kind, small[-1], 0) if small else None
        if low:  # two sizes at 0 ms: what is fixed (start-up) and what scales with N
            n0 = low.get("sent_to") or low["expected"]
            if n > n0:
                entry["marginal_seconds_per_post"] = (zero["total"] - low["total"]) / (n - n0)
                entry["marginal_cpu_per_post_s"] = (zero["cpu"]["sender"] - low["cpu"]["sender"]) / (n - n0)
                entry["low"] = {"n": n0, "seconds_0ms": low["total"], "cpu_s": low["cpu"]["sender"]}
        out[kind] = entry
        if zero.get("mgmt_bytes_up") and kind == "cli":
            out["bytes_per_post_up"] = zero["mgmt_bytes_up"] / n
            out["bytes_per_post_down"] = zero["mgmt_bytes_down"] / n
    server = pick(records, "server", big, 0) if big else None
    if server:
        segs = [s for s in server.get("segments") or () if s.get("seconds") and s.get("recipients") is not None]
        posts = server["received"]
        entry = {"n": posts, "seconds_0ms": server["total"], "to_first_s": server["to_first"],
                 "spread_s": server["spread"], "function_cpu_per_post_s": server["cpu"]["functions"] / max(1, posts),
                 "cli_cpu_s": server["cpu"]["sender"],
                 # the segments run at once: per segment, the receipts' rate over the spread / segments
                 "segment_rate_per_s": posts / server["spread"] / ctx.args.segments if server["spread"] else None,
                 "segment_rate_from": "receipts (first -> last) / segments"}
        if segs:  # the function's own reports, when the CLI could read them
            entry["segment_rate_per_s"] = median(s["recipients"] / s["seconds"] for s in segs)
            entry["segment_rate_from"] = "the function's reports"
            entry["segment_seconds"] = [s["seconds"] for s in segs]
        out["server"] = entry
    room = pick(records, "room1000", big, 0) if big else None
    if room:
        out["handler"] = {"posts": room["expected"], "seconds_0ms": room["total"],
                          "cpu_per_post_s": room["cpu"]["functions"] / room["expected"]}
    out["measured"] = [{"kind": r["kind"], "size": r["size"], "rtt": r["rtt"], "total": r["total"],
                        "n": r.get("sent_to") if r["kind"] in ("cli", *bc.CLI_VARIANTS, "seq", "server", "direct")
                        else r["expected"],
                        "extrapolated": bool(r.get("extrapolated"))} for r in records]
    return out


# -- profiles ------------------------------------------------------------------------------------------
def profile_runs(ctx, rtt: float) -> None:
    folder = Path(ctx.args.profile)
    folder.mkdir(parents=True, exist_ok=True)
    set_rtt(ctx, rtt)
    print("\n== profiles at %g ms (py-spy --gil, 250/s; not counted above) ==" % rtt)
    for kind, variant, name in [("cli", None, "wsctl CLI")] + [(v, v, bc.CLI_VARIANTS[v][1]) for v in bc.CLI_VARIANTS]:
        if kind not in ctx.patterns:
            continue
        cli = pick(ctx.records, kind, ctx.fleet_size, rtt)
        seconds = (cli["total"] if cli else 5) + 3
        spies = [(PySpy(ctx.emulator.pid, folder / ("rtt-%s-gateway.txt" % kind), seconds, 250, gil=True), "gateway",
                  bc.GATEWAY_PARTS),
                 (PySpy(ctx.proxy.pid, folder / ("rtt-%s-proxy.txt" % kind), seconds, 250, gil=True), "latency proxy",
                  ())]
        time.sleep(0.5)
        spy_path = str(folder / ("rtt-%s.txt" % kind))
        measure(ctx, "profiled", rtt, ctx.fleet_size,
                lambda p: send_cli(ctx, p, ctx.home_client, spy=spy_path, variant=variant),
                "profiled: %s @%g ms" % (name, rtt), ctx.fleet.held, cli_child=True)
        bc.busy_profile(Path(spy_path), "the %s process at %g ms, start to exit" % (name, rtt), bc.SENDER_PARTS)
        for spy, title, parts in spies:
            if spy.process:
                spy.process.wait(60)
                bc.busy_profile(spy.path, "%s during the %s broadcast" % (title, name), parts,
                                main_only=title == "gateway")
    if ctx.rooms:
        room = max(ctx.rooms, key=ctx.rooms.get)
        pids = ctx.emulator.environment_pids()
        spies = [PySpy(pid, folder / ("rtt-env-%d.txt" % pid), 8, 250, gil=True) for pid in pids]
        time.sleep(0.5)
        measure(ctx, "profiled", rtt, ctx.fleet_size, lambda p: send_room(ctx, p, room),
                "profiled: sendRoom %d @%g ms" % (ctx.rooms[room], rtt), ctx.rooms[room], cli_child=False)
        merged = folder / "rtt-functions.txt"
        with open(merged, "w") as out:
            for spy in spies:
                if spy.process:
                    spy.process.wait(60)
                if spy.path.exists():
                    out.write(spy.path.read_text(errors="replace"))
        bc.busy_profile(merged, "the function's execution environments during sendRoom (%d processes merged)"
                        % len(spies), bc.SENDER_PARTS)


# -- main ----------------------------------------------------------------------------------------------
def main():
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,10000", help="connection counts, ascending; clients are added "
                        "between sizes (the last size gets --rtts and every pattern, the others --small-rtts)")
    parser.add_argument("--connections", "-n", type=int, default=None, help="shorthand for --sizes N")
    parser.add_argument("--rtts", default="0,20,80", help="RTTs in ms for the largest size")
    parser.add_argument("--small-rtts", default="0,20", help="RTTs in ms for the smaller sizes (cli and seq)")
    parser.add_argument("--patterns", default="cli,aiohttp,seq,server,room",
                        help="for the largest size: any of cli, aiohttp (the CLI with its former sender: the "
                             "baseline), uvloop (the CLI on uvloop: an experiment), seq, server, room")
    parser.add_argument("--rooms", default="100,1000", help="room sizes for sendRoom")
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2, help="runs of the CLI (and its variants) per RTT; "
                        "the summary takes the median (of 2: the slower)")
    parser.add_argument("--repeat-others", type=int, default=1, help="runs of server-side and sendRoom per RTT")
    parser.add_argument("--seq-sample", type=int, default=300, help="posts the seed sends when it would take long")
    parser.add_argument("--seq-full-seconds", type=float, default=15.0,
                        help="measure the seed fully when N x (RTT + 1.2 ms) is under this")
    parser.add_argument("--throttle", default="2000:500", help="RATE:BURST of the throttled emulator")
    parser.add_argument("--throttle-rtt", type=float, default=20.0)
    parser.add_argument("--throttle-connections", type=int, default=None, help="default: the largest size")
    parser.add_argument("--no-throttle", action="store_true")
    parser.add_argument("--only-throttle", action="store_true", help="only the throttled phase (its own emulator)")
    parser.add_argument("--backend", choices=("auto", "moto", "dynamodb-local"), default="auto",
                        help="auto: DynamoDB Local above 2,000 connections")
    parser.add_argument("--procs", type=int, default=2, help="client processes per batch")
    parser.add_argument("--quiet-wait", type=float, default=3.0,
                        help="before each run, wait at most this long for other processes to go quiet")
    parser.add_argument("--profile", metavar="DIR", help="after the runs: py-spy the CLI, the gateway, the proxy "
                        "and a function environment at --profile-rtt")
    parser.add_argument("--profile-rtt", type=float, default=20.0)
    parser.add_argument("--json", default=str(SCRATCH / "broadcast_rtt.json"), help="write every figure here")
    parser.add_argument("--no-engine-check", action="store_true", help="skip the engine-alone CPU check")
    args = parser.parse_args()
    sizes = [args.connections] if args.connections else [int(x) for x in args.sizes.split(",") if x.strip()]
    if sizes != sorted(sizes):
        parser.error("--sizes must ascend")
    rtts = [float(x) for x in args.rtts.split(",") if x.strip()]
    small_rtts = [float(x) for x in args.small_rtts.split(",") if x.strip()]
    if 0.0 not in small_rtts:
        small_rtts.insert(0, 0.0)
    patterns = {p.strip() for p in args.patterns.split(",") if p.strip()}
    if 0.0 not in rtts:
        rtts.insert(0, 0.0)  # the CPU floor
    limit = raise_nofile()
    banner("broadcast at a distance: %s connections, RTT %s ms (RLIMIT_NOFILE %d)" % (
        ",".join(map(str, sizes)), ",".join("%g" % r for r in rtts), limit))
    for key in [k for k in os.environ if k.startswith(("AWS_", "WSCTL_"))]:
        del os.environ[key]
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    busy0, wall0 = machine_busy_seconds(), time.monotonic()

    ctx = Context()
    ctx.args, ctx.records, ctx.rooms, ctx.sender, ctx.sender_id = args, [], {}, None, None
    ctx.patterns = patterns
    ctx.fleet = ctx.emulator = ctx.ddb = ctx.proxy = None
    rate, _, burst = args.throttle.partition(":")
    ctx.throttle_rate, ctx.throttle_burst = float(rate), float(burst or rate)
    backend = args.backend if args.backend != "auto" else ("dynamodb-local" if max(sizes) > 2000 else "moto")
    ctx.engine = None if args.no_engine_check else engine_check()
    ctx.pacer = None if args.no_engine_check else pacer_check(ctx.throttle_rate, int(ctx.throttle_burst),
                                                               args.throttle_rtt / 1000.0)
    try:
        ctx.proxy = ProxyProcess()
        ctx.close_fds = [ctx.proxy.process.stdin.fileno(), ctx.proxy.process.stdout.fileno()]
        if backend == "dynamodb-local":
            ctx.ddb = DynamoDBLocal()
            ctx.ddb.start()
            print("DynamoDB Local %s (pid %d, up in %.1f s)" % (ctx.ddb.endpoint, ctx.ddb.pid, ctx.ddb.started_in))
        ctx.ddb_pid = lambda: ctx.ddb.pid if ctx.ddb else (ctx.emulator.moto_pid() if ctx.emulator else None)
        port = free_port()
        ctx.mgmt_port = ctx.proxy.add("127.0.0.1:%d" % port)
        ctx.emulator = Emulator("--auth", "jwt", "--idle-timeout", "7000", "--env",
                                "APIGW_MANAGEMENT_ENDPOINT=http://127.0.0.1:%d/dev" % ctx.mgmt_port, port=port,
                                dynamodb_endpoint=ctx.ddb.endpoint if ctx.ddb else None)
        ctx.emulator.start()
        ctx.state = ctx.emulator.state
        assert ctx.state.stage == "dev", ctx.state.stage
        print("emulator %s, management %s (pid %d, up in %.1f s, backend %s); functions post via the proxy "
              "(APIGW_MANAGEMENT_ENDPOINT)" % (ctx.emulator.url, ctx.state.management_endpoint, ctx.emulator.pid,
                                               ctx.emulator.ready_in, backend))
        proxied(ctx, ctx.emulator)
        ctx.fleet = Fleet(ctx.emulator, ctx.close_fds, args.procs)
        for index, size in enumerate([] if args.only_throttle else sizes):
            last = index == len(sizes) - 1
            held, errors, seconds = ctx.fleet.add(size - ctx.fleet.held)
            ctx.fleet_size = size
            print("\n== %d connections: opened %d more in %.1f s (%.0f/s), %d held; failures: %s ==" % (
                size, held, seconds, held / max(seconds, 0.001), ctx.fleet.held, errors or "none"))
            if ctx.fleet.held < size:
                print("WARNING: fewer connections than asked; the figures below are for %d" % ctx.fleet.held)
            if last and "room" in patterns:
                setup_rooms(ctx, [int(x) for x in args.rooms.split(",") if x.strip()])
            warm_up(ctx, patterns if last else patterns & {"cli", *bc.CLI_VARIANTS})
            run_size(ctx, size, rtts if last else small_rtts,
                     patterns if last else patterns & {"cli", *bc.CLI_VARIANTS, "seq"},
                     args.seq_sample, args.repeat)
            if last and "cli" in patterns:
                print("\n-- no proxy: the CLI straight to the emulator (0 ms) --")
                for _ in range(args.repeat_others):
                    measure(ctx, "direct", 0.0, size, lambda p: send_cli(ctx, p, ctx.emulator.home),
                            "wsctl CLI broadcast, no proxy", ctx.fleet.held, cli_child=True)
        if args.profile:
            profile_runs(ctx, args.profile_rtt)
        if ctx.sender:
            ctx.sender.close()
            ctx.sender = None
        if not args.no_throttle or args.only_throttle:
            throttle_phase(ctx, args.throttle_connections or max(sizes), args.throttle_rtt, args.throttle, args.repeat)
        verdicts = summary(ctx)
        busy = machine_busy_seconds() - busy0
        wall = time.monotonic() - wall0
        others = sum(r["cpu"]["others"] for r in ctx.records)
        measured_wall = sum(r["wall"] for r in ctx.records)
        print("\nmachine: %.0f%% of 2 cores busy over the whole run (%.0f s); during the measured windows other "
              "processes used %.1f CPU-s in %.1f s (%.0f%% of one core)%s" % (
                  100 * busy / wall / (os.cpu_count() or 1), wall, others, measured_wall,
                  100 * others / max(measured_wall, 0.01),
                  "  WARNING: the machine was shared" if others / max(measured_wall, 0.01) > 0.10 else ""))
        out = {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "cores": os.cpu_count(), "backend": backend, "throttle": args.throttle, "records": ctx.records,
               "summary": verdicts, "model_inputs": model_inputs(ctx),
               "others_share": others / max(measured_wall, 0.01)}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
        print("figures written to %s (python bench/broadcast_model.py --from %s)" % (args.json, args.json))
    finally:
        if ctx.sender:
            ctx.sender.close()
        if ctx.fleet:
            ctx.fleet.close()
        if ctx.emulator:
            ctx.emulator.stop(timeout=30)
        if ctx.ddb:
            ctx.ddb.stop()
        if ctx.proxy:
            ctx.proxy.stop()


if __name__ == "__main__":
    main()
