"""Broadcast to N live connections on the emulator (DynamoDB Local backend): wsctl against the
seed article's pattern, each timed until the LAST client has received the frame.

N clients (default 10,000) connect to `wsctl local up --dynamodb-endpoint <DynamoDB Local>`
from several client processes and stay connected; each client records the arrival time of
every frame with time.time() (one machine, one clock) and reports over a pipe. Then, for
each of --repeat rounds, one broadcast of each pattern (a fresh payload each time):

  cli      `wsctl --local broadcast PAYLOAD` as a user runs it (the venv's console script in a
           subprocess): process start, imports, the parallel registry scan, the fan-out
           (wsctl's HTTP/1.1 sender, 256 in flight), exit.
  service  in this process: `ids = wsctl.ops.all_connection_ids(LocalTarget())`, then
           `asyncio.run(wsctl.ops.deliver(target, ids, payload))` (fresh Target each run).
  seq      the seed article: one boto3 `dynamodb` scan (paginated), then
           `apigatewaymanagementapi.post_to_connection` one after another, one boto3 client.
  pool32   the same with the posts in a thread pool of 32 (one boto3 client,
           max_pool_connections=32): boto3's CPU ceiling.

With --experiments, the same CLI command launched with one change in its own process (bench code,
not wsctl's; CLI_VARIANTS): `cli-aiohttp` with the sender it had before issue 22 (aiohttp's client,
bench/aiohttp_sender.py), the baseline measured in the same run; `cli-uvloop` on uvloop's event loop.

Each time runs from the start of the pattern to the last client's receipt of its frame. For
each run: how many clients received the frame (all, or it is a bug), the phases (setup /
scan / fan-out), the CPU used by the sender, the gateway, DynamoDB Local, the client
processes and other processes on the machine (/proc/PID/stat deltas).

    python bench/broadcast.py                        # 10,000 connections, JWT auth
    python bench/broadcast.py --connections 300      # CI size
    python bench/broadcast.py --profile /tmp/prof    # + py-spy of the CLI, the gateway, a client

Goals (10,000 connections): wsctl under 2 s, and at least 10 times faster than `seq`.
"""

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import (ROOT, CpuWatch, DynamoDBLocal, Emulator, PySpy, banner, clean_env, cpu_seconds,  # noqa: E402
                      median, mint, raise_nofile, verdict, wait_quiet, exit_on_sigterm)
from loadgen import stop_workers  # noqa: E402

GOAL_SECONDS, GOAL_RATIO = 2.0, 10.0
CTX = mp.get_context("fork")
PATTERNS = ("cli", "service", "seq", "pool32")
EXPERIMENTS = ("cli-aiohttp", "cli-uvloop")
LABELS = {"cli": "wsctl --local broadcast (CLI, subprocess)", "service": "wsctl ops.deliver (in process)",
          "seq": "seed: boto3 scan + sequential posts", "pool32": "seed + boto3 thread pool of 32",
          "cli-aiohttp": "CLI with its former aiohttp sender (before)", "cli-uvloop": "CLI on uvloop (experiment)"}
# The CLI launched with one change in its own process (bench code, not wsctl's): name -> (what runs before
# wsctl's main, label, prefix in broadcast_rtt.py's goals). Everything else is the CLI as shipped.
CLI_VARIANTS = {
    "aiohttp": ("sys.path.insert(0, %r); import aiohttp_sender; aiohttp_sender.install()" % os.path.dirname(
        os.path.abspath(__file__)), "CLI, aiohttp sender (before)", "[before] "),
    "uvloop": ("import uvloop; uvloop.install()", "CLI on uvloop", "[experiment] "),
}
LAUNCH = "import sys; %s; sys.argv[0] = 'wsctl'; from wsctl.cli import main; sys.exit(main())"


def cli_launcher(variant: str | None = None) -> list:
    """How to start wsctl's CLI: the console script, or Python running one of CLI_VARIANTS first."""
    return [sys.executable, "-c", LAUNCH % CLI_VARIANTS[variant][0]] if variant else [wsctl_script()]


# -- the clients ---------------------------------------------------------------------------
async def _client_main(urls, inflight: int, timeout: float, pipe):
    from websockets.asyncio.client import connect

    arrivals = {}  # payload -> [count, first, last]
    state = {"dups": 0, "closed": 0, "held": 0}
    semaphore = asyncio.Semaphore(inflight)
    errors = {}
    sockets = []

    def done(tag):
        count, first, last = arrivals.get(tag, (0, None, None))
        return {"tag": tag, "count": count, "first": first, "last": last, "dups": state["dups"],
                "closed": state["closed"], "held": state["held"]}

    async def read(ws):
        seen = set()
        try:
            async for message in ws:
                now = time.time()
                if message in seen:
                    state["dups"] += 1
                    continue
                seen.add(message)
                entry = arrivals.get(message)
                if entry is None:
                    arrivals[message] = entry = [0, now, now]
                entry[0] += 1
                entry[2] = now
                if entry[0] == state["held"]:
                    pipe.send(("done", done(message)))
        except Exception:  # the connection dropped: counted below, the frame will be missing
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
    readers = [asyncio.create_task(read(ws)) for ws in sockets]  # noqa: F841 (kept alive)
    pipe.send(("opened", {"held": len(sockets), "errors": errors}))
    stop = asyncio.Event()

    def command():
        try:
            message = pipe.recv()
        except EOFError:
            stop.set()
            return
        if message[0] == "flush":
            pipe.send(("report", done(message[1])))
        elif message[0] == "stop":
            stop.set()

    asyncio.get_running_loop().add_reader(pipe.fileno(), command)
    await stop.wait()


def _client_worker(auth, base, keyset, stack, start, size, inflight, timeout, go, pipe):
    raise_nofile()
    if auth == "jwt":
        urls = ["%s?token=%s" % (base, mint(keyset, stack, "bcast-%d" % i, 7200)) for i in range(start, start + size)]
    else:
        urls = [base] * size
    pipe.send(("ready", None))
    go.wait()
    asyncio.run(_client_main(urls, inflight, timeout, pipe))
    os._exit(0)  # the kernel closes every socket at once


class Clients:
    """N connections from `procs` processes; collects per-payload arrival reports."""

    def __init__(self, emulator, count: int, procs: int, inflight: int, auth: str, timeout: float = 120.0):
        self.procs = max(1, min(procs, count))
        self.workers, self.pipes, self.go = [], [], CTX.Event()
        share, extra = divmod(count, self.procs)
        start = 0
        keyset = emulator.state.keyset
        for index in range(self.procs):
            size = share + (1 if index < extra else 0)
            parent, child = CTX.Pipe()
            process = CTX.Process(target=_client_worker, daemon=True, args=(
                auth, emulator.url, keyset, emulator.stack, start, size, max(1, inflight // self.procs),
                timeout, self.go, child))
            process.start()
            self.workers.append(process)
            self.pipes.append(parent)
            start += size
        for pipe in self.pipes:
            if pipe.recv()[0] != "ready":
                raise RuntimeError("a client process failed to start")

    def open(self):
        t0 = time.monotonic()
        self.go.set()
        self.held, errors = 0, {}
        for pipe in self.pipes:
            kind, report = pipe.recv()
            assert kind == "opened", kind
            self.held += report["held"]
            for k, v in report["errors"].items():
                errors[k] = errors.get(k, 0) + v
        return self.held, errors, time.monotonic() - t0

    def pids(self):
        return [w.pid for w in self.workers]

    def collect(self, tag: str, grace: float) -> dict:
        """Each process's report for `tag`: at once if all its clients have it, else after `grace` s."""
        deadline = time.monotonic() + grace
        reports = {}
        for index, pipe in enumerate(self.pipes):
            while index not in reports:
                left = deadline - time.monotonic()
                if left <= 0 or not pipe.poll(left):
                    pipe.send(("flush", tag))
                    while True:
                        kind, report = pipe.recv()
                        if report and report.get("tag") == tag:
                            reports[index] = report
                            break
                    break
                kind, report = pipe.recv()
                if report and report.get("tag") == tag:
                    reports[index] = report
        parts = list(reports.values())
        firsts = [r["first"] for r in parts if r["first"]]
        lasts = [r["last"] for r in parts if r["last"]]
        return {"received": sum(r["count"] for r in parts), "held": sum(r["held"] for r in parts),
                "first": min(firsts) if firsts else None, "last": max(lasts) if lasts else None,
                "dups": sum(r["dups"] for r in parts), "closed": sum(r["closed"] for r in parts)}

    def close(self):
        stop_workers(self.pipes, self.workers, ("stop", None))


# -- the senders ------------------------------------------------------------------------------
def wsctl_script() -> str:
    path = Path(sys.executable).parent / "wsctl"
    if not path.exists():
        sys.exit("no wsctl console script next to %s: install the package (pip install -e .)" % sys.executable)
    return str(path)


def run_cli(ctx, payload: str, variant: str | None = None) -> dict:
    command = [*cli_launcher(variant), "--local", "broadcast", payload]
    if ctx.concurrency:
        command += ["--concurrency", str(ctx.concurrency)]
    if ctx.spy_cli:  # py-spy launches the command (profile run only)
        command = [ctx.spy_binary, "record", "-o", ctx.spy_cli, "-f", "raw", "-r", "250", "--threads",
                   "--nonblocking", "--gil", "--", *command]
    done = subprocess.run(command, env=ctx.cli_env, cwd=ROOT, capture_output=True, text=True)
    returned = time.time()
    if done.returncode:
        print("   wsctl exited %d:\n%s%s" % (done.returncode, done.stdout, done.stderr))
    title = re.search(r"(\d+) recipient\(s\) in ([\d.]+) s", done.stdout)
    delivered = re.search(r"delivered\D+(\d+)", done.stdout)
    return {"returned": returned, "exit": done.returncode, "sent_to": int(title.group(1)) if title else None,
            "fanout_reported": float(title.group(2)) if title else None,
            "ok": int(delivered.group(1)) if delivered else None}


def run_service(ctx, payload: str) -> dict:
    from wsctl import ops
    from wsctl.targets.local import LocalTarget

    t0 = time.time()
    target = LocalTarget()
    target.reader()  # the boto3 session and the dynamodb client the scan uses (cached on the target)
    t1 = time.time()
    ids = ops.all_connection_ids(target)
    t2 = time.time()
    kwargs = {"concurrency": ctx.concurrency} if ctx.concurrency else {}
    report = asyncio.run(ops.deliver(target, ids, payload.encode(), **kwargs))
    t3 = time.time()
    counts = report.counts
    return {"returned": t3, "setup": t1 - t0, "scan": t2 - t1, "fanout": t3 - t2, "sent_to": len(ids),
            "ok": counts["delivered"], "outcomes": {k: v for k, v in counts.items() if v}, "retries": report.retries,
            "pruned": report.pruned}


def _seed_clients(ctx, pool: int | None):
    import boto3
    from botocore.config import Config

    session = boto3.Session(region_name=ctx.state.region, aws_access_key_id="local",
                            aws_secret_access_key="local")
    dynamodb = session.client("dynamodb", endpoint_url=ctx.state.dynamodb_endpoint)
    config = Config(max_pool_connections=pool) if pool else None
    api = session.client("apigatewaymanagementapi", endpoint_url=ctx.state.management_endpoint, config=config)
    return dynamodb, api


def _seed_scan(ctx, dynamodb) -> list:
    ids = []
    for page in dynamodb.get_paginator("scan").paginate(
            TableName=ctx.state.table, ProjectionExpression="connectionId",
            FilterExpression="SK = :conn", ExpressionAttributeValues={":conn": {"S": "CONN"}}):
        ids += [item["connectionId"]["S"] for item in page["Items"]]
    return ids


def _seed_post(api, dynamodb, table, connection_id, data) -> str:
    try:
        api.post_to_connection(ConnectionId=connection_id, Data=data)
        return "delivered"
    except api.exceptions.GoneException:  # the article deletes stale connections
        dynamodb.delete_item(TableName=table, Key={"PK": {"S": "CONN#" + connection_id}, "SK": {"S": "CONN"}})
        return "gone"
    except Exception as error:
        return type(error).__name__


def run_seed(ctx, payload: str, pool: int | None = None) -> dict:
    t0 = time.time()
    dynamodb, api = _seed_clients(ctx, pool)
    t1 = time.time()
    ids = _seed_scan(ctx, dynamodb)
    t2 = time.time()
    data, table = payload.encode(), ctx.state.table
    if pool:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=pool) as executor:
            outcomes = Counter(executor.map(lambda cid: _seed_post(api, dynamodb, table, cid, data), ids))
    else:
        outcomes = Counter()
        for cid in ids:
            outcomes[_seed_post(api, dynamodb, table, cid, data)] += 1
    t3 = time.time()
    return {"returned": t3, "setup": t1 - t0, "scan": t2 - t1, "fanout": t3 - t2, "sent_to": len(ids),
            "ok": outcomes["delivered"], "outcomes": dict(outcomes)}


SENDERS = {"cli": run_cli, "service": run_service, "seq": run_seed, "pool32": lambda ctx, p: run_seed(ctx, p, 32),
           **{"cli-" + v: (lambda ctx, p, v=v: run_cli(ctx, p, v)) for v in CLI_VARIANTS}}


# -- one measured broadcast ------------------------------------------------------------------------
class Context:
    pass


def measure(ctx, pattern: str, label: str, quiet: bool = True) -> dict:
    if quiet:
        wait_quiet()
    payload = '{"bench":"%s","run":"%s"}' % (pattern, uuid.uuid4().hex[:12])
    watched = {"gateway": ctx.emulator.pid, "DynamoDB Local": ctx.ddb.pid}
    cpu0 = {k: cpu_seconds(p) for k, p in watched.items()}
    clients0 = sum(cpu_seconds(p) or 0 for p in ctx.clients.pids())
    own0, children0 = os.times(), resource.getrusage(resource.RUSAGE_CHILDREN)
    watch = CpuWatch()
    t0 = time.time()
    result = SENDERS[pattern](ctx, payload)
    got = ctx.clients.collect(payload, ctx.grace)
    machine = watch.stop()
    children1, own1 = resource.getrusage(resource.RUSAGE_CHILDREN), os.times()
    user, system = own1.user - own0.user, own1.system - own0.system
    if pattern.startswith("cli"):  # the CLI has exited: its CPU is in RUSAGE_CHILDREN, and CpuWatch counted it as foreign
        user, system = children1.ru_utime - children0.ru_utime, children1.ru_stime - children0.ru_stime
        machine["foreign"] = max(0.0, machine["foreign"] - user - system)
    sender = user + system
    result.update(pattern=pattern, label=label, t0=t0, got=got, machine=machine,
                  total=(got["last"] - t0) if got["last"] else float("nan"),
                  to_first=(got["first"] - t0) if got["first"] else float("nan"),
                  spread=(got["last"] - got["first"]) if got["first"] else float("nan"),
                  to_return=result["returned"] - t0,
                  cpu={"sender": sender, "sender_sys": system,
                       **{k: (cpu_seconds(p) or 0) - (cpu0[k] or 0) for k, p in watched.items()},
                       "clients": sum(cpu_seconds(p) or 0 for p in ctx.clients.pids()) - clients0,
                       "others": machine["foreign"]})
    print_run(result, ctx.expected)
    return result


def print_run(r: dict, expected: int) -> None:
    got = r["got"]
    lost = expected - got["received"]
    phases = ""
    if r["pattern"].startswith("cli"):
        phases = "start+scan to first frame %.3f s, first -> last frame %.3f s (wsctl's own fan-out figure %s s), " \
                 "command returned at %.3f s" % (r["to_first"], r["spread"], r.get("fanout_reported"), r["to_return"])
    else:
        phases = "setup %.3f s, scan %.3f s (%d ids), fan-out %.3f s, returned at %.3f s" % (
            r["setup"], r["scan"], r["sent_to"], r["fanout"], r["to_return"])
    print("  %-44s %7.3f s to the last frame | received %d/%d%s%s" % (
        r["label"] + ",", r["total"], got["received"], expected,
        "  LOST %d" % lost if lost else "", "  DUPLICATES %d" % got["dups"] if got["dups"] else ""))
    print("      %s" % phases)
    if r.get("outcomes") and set(r["outcomes"]) - {"delivered"}:
        print("      sender outcomes: %s" % r["outcomes"])
    if r["pattern"].startswith("cli") and r.get("exit"):
        print("      wsctl exit code %s" % r["exit"])
    cpu = r["cpu"]
    print("      CPU s: sender %.2f (%.0f us/post; system %.2f), gateway %.2f, DynamoDB Local %.2f, clients %.2f, "
          "other processes %.2f  (window %.2f s; 2 cores = %.2f CPU-s)%s" % (
              cpu["sender"], 1e6 * cpu["sender"] / max(1, expected), cpu["sender_sys"], cpu["gateway"],
              cpu["DynamoDB Local"], cpu["clients"], cpu["others"], r["machine"]["wall"], 2 * r["machine"]["wall"],
              "  WARNING: machine shared" if cpu["others"] / max(0.001, r["machine"]["wall"]) > 0.10 else ""))
    if got["closed"]:
        print("      WARNING: %d client connections were closed by the server" % got["closed"])
    sys.stdout.flush()


def cli_startup(runs: int = 3) -> float:
    code = "import wsctl.cli, wsctl.cli.ops, wsctl.ops, wsctl.targets, wsctl.fanout.transport, boto3"
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        times.append(time.perf_counter() - started)
    return median(times)


# -- main --------------------------------------------------------------------------------------------
def main():
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", "-n", type=int, default=10000, help="live client connections")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each pattern's time is the median")
    parser.add_argument("--patterns", default=",".join(PATTERNS),
                        help="comma list of " + ", ".join(PATTERNS + EXPERIMENTS))
    parser.add_argument("--experiments", action="store_true", help="also run " + ", ".join(EXPERIMENTS) +
                        " (the CLI with one change in its process; see CLI_VARIANTS)")
    parser.add_argument("--auth", choices=("jwt", "none"), default="jwt",
                        help="emulator --auth (jwt: a token per client, as deployed; none: faster set-up)")
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--inflight", type=int, default=256, help="handshakes in flight while connecting")
    parser.add_argument("--concurrency", type=int, default=None, help="wsctl --concurrency (default: wsctl's, 64)")
    parser.add_argument("--grace", type=float, default=10.0, help="wait this long after the sender returns for "
                        "frames still on their way (a missing frame after it counts as lost)")
    parser.add_argument("--ddb-heap", default=None)
    parser.add_argument("--profile", metavar="DIR", help="after the measured rounds: one CLI broadcast under "
                        "py-spy (the CLI, the gateway, one client process) and one seq broadcast (py-spy of this "
                        "process); raw stacks go to DIR")
    parser.add_argument("--emulator-arg", action="append", default=[], help="passed to `wsctl local up`")
    args = parser.parse_args()
    patterns = [p.strip() for p in args.patterns.split(",") if p.strip()]
    if args.experiments:
        patterns += [p for p in EXPERIMENTS if p not in patterns]
    for p in patterns:
        if p not in SENDERS:
            parser.error("unknown pattern %r" % p)
    limit = raise_nofile()
    banner("broadcast to %d live connections (emulator + DynamoDB Local, --auth %s; RLIMIT_NOFILE %d)" % (
        args.connections, args.auth, limit))
    for key in [k for k in os.environ if k.startswith(("AWS_", "WSCTL_"))]:
        del os.environ[key]  # this process acts as the CLI would: the same clean environment
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

    ctx = Context()
    ctx.concurrency = args.concurrency
    ctx.grace = args.grace
    ctx.spy_cli = None
    ctx.ddb = DynamoDBLocal(heap=args.ddb_heap)
    ctx.emulator = ctx.clients = None
    results = {p: [] for p in patterns}
    try:
        ctx.ddb.start()
        emulator_args = ["--auth", args.auth, "--idle-timeout", "7000", *args.emulator_arg]
        ctx.emulator = Emulator(*emulator_args, dynamodb_endpoint=ctx.ddb.endpoint)
        ctx.emulator.start()
        ctx.state = ctx.emulator.state
        ctx.cli_env = clean_env(ctx.emulator.home)
        os.environ["WSCTL_HOME"] = str(ctx.emulator.home)
        print("DynamoDB Local %s (pid %d, up in %.1f s); emulator %s, management %s (pid %d, up in %.1f s)" % (
            ctx.ddb.endpoint, ctx.ddb.pid, ctx.ddb.started_in, ctx.emulator.url, ctx.state.management_endpoint,
            ctx.emulator.pid, ctx.emulator.ready_in))

        ctx.clients = Clients(ctx.emulator, args.connections, args.procs, args.inflight, args.auth)
        held, errors, seconds = ctx.clients.open()
        ctx.expected = held
        print("opened %d/%d client connections from %d processes in %.1f s (%.0f/s); failures: %s" % (
            held, args.connections, ctx.clients.procs, seconds, held / seconds, errors or "none"))
        if held < args.connections:
            print("WARNING: fewer connections than asked; every figure below is for %d" % held)

        print("\nwarm-up (not counted): one in-process wsctl broadcast and one boto3 scan "
              "(DynamoDB Local's JIT, the gateway's POST path)")
        measure(ctx, "service", "warm-up: " + LABELS["service"], quiet=False)
        from wsctl.targets.local import LocalTarget  # noqa: F401  (imported before the rounds, as the CLI imports it)
        dynamodb, _ = _seed_clients(ctx, None)
        scanned = len(_seed_scan(ctx, dynamodb))
        print("  boto3 scan sees %d connection items (expected %d)" % (scanned, held))
        if "cli" in patterns:
            ctx.cli_start = cli_startup()
            print("  the CLI's process start + imports (python -c 'import wsctl.cli.ops, wsctl.ops, boto3', "
                  "measured apart): median %.3f s" % ctx.cli_start)

        for round_no in range(1, args.repeat + 1):
            print("\nround %d/%d" % (round_no, args.repeat))
            for pattern in patterns:
                results[pattern].append(measure(ctx, pattern, LABELS[pattern]))

        summary(ctx, results, args)

        if args.profile:
            profile_runs(ctx, args, results)
    finally:
        if ctx.clients:
            ctx.clients.close()
        if ctx.emulator:
            ctx.emulator.stop(timeout=30)
        ctx.ddb.stop()


def summary(ctx, results: dict, args) -> None:
    n = ctx.expected
    print("\n== summary: %d connections, median of %d run(s), seconds from start to the last client's receipt ==" % (
        n, args.repeat))
    head = "%-42s %7s %7s %7s %7s %8s %7s %8s %7s %6s %7s %6s"
    print(head % ("pattern", "median", "min", "max", "scan", "fan-out", "sender", "sender", "gateway", "DDB",
                  "clients", "others"))
    print(head % ("", "s", "s", "s", "s", "s", "CPU s", "us/post", "CPU s", "CPU s", "CPU s", "CPU s"))
    medians = {}
    for pattern, runs in results.items():
        if not runs:
            continue
        totals = [r["total"] for r in runs]
        medians[pattern] = median(totals)
        scan = median(r["to_first"] if pattern.startswith("cli") else r["setup"] + r["scan"] for r in runs)
        fan = median(r["spread"] if pattern.startswith("cli") else r["fanout"] for r in runs)
        cpu = {k: median(r["cpu"][k] for r in runs) for k in ("sender", "gateway", "DynamoDB Local", "clients",
                                                              "others")}
        print("%-42s %7.3f %7.3f %7.3f %7.3f %8.3f %7.2f %8.0f %7.2f %6.2f %7.2f %6.2f" % (
            LABELS[pattern], medians[pattern], min(totals), max(totals), scan, fan, cpu["sender"],
            1e6 * cpu["sender"] / max(1, n), cpu["gateway"], cpu["DynamoDB Local"], cpu["clients"], cpu["others"]))
    print("(cli: 'scan' is process start, imports and scan until the first frame arrived (start + imports alone: "
          "%s s),\n 'fan-out' first -> last frame; the others: 'scan' includes creating the boto3 session and client, "
          "'fan-out' is the\n sending call until it returned; CPU is per broadcast, from /proc/PID/stat and rusage)" % (
              "%.2f" % ctx.cli_start if getattr(ctx, "cli_start", None) else "-"))
    lost = [(p, r["got"]["received"]) for p, runs in results.items() for r in runs if r["got"]["received"] != n]
    dups = sum(r["got"]["dups"] for runs in results.values() for r in runs)
    print("received: %s" % ("every client got every broadcast (%d clients x %d broadcasts)" % (
        n, sum(len(v) for v in results.values())) if not lost else "LOSS: " + ", ".join(
        "%s %d/%d" % (p, got, n) for p, got in lost)))
    if dups:
        print("DUPLICATE frames seen by clients: %d" % dups)
    if "seq" in medians:
        print("\nratio seq / pattern: " + ", ".join("%s %.2fx" % (p, medians["seq"] / medians[p])
                                                    for p in medians if p != "seq"))
    print("\ngoals at %d connections (the goals are stated for 10,000):" % n)
    for pattern in ("cli", "service", *EXPERIMENTS):
        if pattern in medians:
            print("  %s %s: %.3f s < %.1f s" % (verdict(medians[pattern] < GOAL_SECONDS), LABELS[pattern],
                                               medians[pattern], GOAL_SECONDS))
            if "seq" in medians:
                ratio = medians["seq"] / medians[pattern]
                print("  %s %s: %.2fx faster than the sequential pattern (>= %.0fx)" % (
                    verdict(ratio >= GOAL_RATIO), LABELS[pattern], ratio, GOAL_RATIO))
    print("  %s no client missed a broadcast" % verdict(not lost))


# -- profiles ------------------------------------------------------------------------------------------
# Each GIL sample goes to one part: the innermost frame (leaf first) that matches a rule; anything under
# an import goes to "imports". Waits (select, idle executor threads) are dropped.
IDLE_LEAVES = ("select (selectors.py", "_worker (concurrent/futures/thread.py", "wait (threading.py",
               "_wait_for_tstate_lock", "get (queue.py")
SOCKET = ("socket I/O (asyncio transport reads/writes, socket calls)", ("_SelectorSocketTransport", "socket.py",
                                                                         "SocketIO", "ssl.py"))
SENDER_PARTS = (
    SOCKET,
    ("aiohttp trust_env=True: ~/.netrc and proxy-variable lookups (worker threads)", (
        "netrc", "getproxies", "get_env_proxy_for_url", "proxy_bypass", "_Environ")),
    ("thread hand-offs (executor submit, self-pipe wake-ups, future chaining)", (
        "ThreadPoolExecutor.submit", "call_soon_threadsafe", "_write_to_self", "_read_from_self", "_chain_future",
        "_copy_future_state", "run_in_executor", "to_thread", "_WorkItem.run")),
    ("SigV4 signing (botocore SigV4Auth + AWSRequest, or wsctl's ManagementSigner)", (
        "botocore/auth.py", "botocore/awsrequest.py", "LeanTransport._signed", "ManagementSigner", "wsctl/sigv4.py",
        "hmac.py")),
    ("aiohttp client (request building, response reading)", ("aiohttp/", "yarl/", "multidict/")),
    ("wsctl's HTTP/1.1 sender (request bytes, keep-alive pool, answers through httptools)", (
        "wsctl/fanout/pool.py", "wsctl/fanout/http1.py", "LeanTransport", "answer_of", "httptools")),
    ("botocore/urllib3 call machinery (scan pages; the seed's post_to_connection)", (
        "botocore/", "boto3/", "urllib3/", "http/client.py", "email/", "json/")),
    ("wsctl (fan-out engine, registry decode, ops)", ("wsctl/", "lambda_src/")),
    ("asyncio event loop (scheduling, tasks, futures)", ("asyncio/",)),
)
GATEWAY_PARTS = (
    SOCKET,
    ("SigV4 check (wsctl/sigv4.py)", ("sigv4.py",)),
    ("WebSocket frame to the client (aiohttp ws writer)", ("web_ws.py", "http_websocket", "_websocket/",
                                                           "Gateway._send")),
    ("management handler's own code (wsctl/local/gateway.py)", ("gateway.py",)),
    ("aiohttp HTTP server (parse the request, route, write the answer)", ("aiohttp/", "yarl/", "multidict/")),
    ("asyncio event loop (scheduling, tasks, futures)", ("asyncio/",)),
)
CLIENT_PARTS = (
    SOCKET,
    ("websockets (frame parsing, message assembly)", ("websockets/",)),
    ("the bench's reader (records the arrival)", ("broadcast.py",)),
    ("asyncio event loop (scheduling, tasks, futures)", ("asyncio/",)),
)


def busy_profile(path: Path, title: str, parts, top: int = 10, main_only: bool = False) -> None:
    from collections import Counter

    total = idle = 0
    shares, leaves, threads = Counter(), Counter(), Counter()
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        print("   (no profile at %s)" % path)
        return
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack:
            continue
        count = int(count)
        frames = [f for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        thread = "main thread" if "MainThread" in frames[0] or not frames[0].startswith(("thread (", "Thread.")) \
            else "other threads"
        if frames[0].startswith("thread ("):
            frames = frames[1:]
        if not frames or (main_only and thread != "main thread"):
            continue
        if any(leaf in frames[-1] for leaf in IDLE_LEAVES):
            idle += count
            continue
        total += count
        threads[thread] += count
        name, _, where = frames[-1].partition(" (")
        leaves["%s (%s)" % (name, where.split(":")[0].rsplit("/", 1)[-1])] += count
        part = "imports (module loading)" if any("_find_and_load" in f for f in frames) else None
        for frame in reversed(frames):
            if part:
                break
            for label, needles in parts:
                if any(needle in frame for needle in needles):
                    part = label
                    break
        shares[part or "other"] += count
    if not total:
        print("   (no busy samples in %s)" % path)
        return
    print("\n   %s: %d GIL samples (%d waiting samples dropped; %s)" % (
        title, total, idle, ", ".join("%s %.0f%%" % (k, 100 * v / total) for k, v in threads.most_common())))
    for label, count in shares.most_common():
        print("     %5.1f%%  %s" % (100 * count / total, label))
    print("     top functions by own time:")
    for name, count in leaves.most_common(top):
        print("     %5.1f%%  %s" % (100 * count / total, name))
    sys.stdout.flush()


def profile_runs(ctx, args, results) -> None:
    folder = Path(args.profile)
    folder.mkdir(parents=True, exist_ok=True)
    rate = 250
    print("\n== profiles (py-spy --gil: samples of the thread holding the GIL, %d/s, --nonblocking; these runs are "
          "not counted above; py-spy itself takes CPU) ==" % rate)
    ctx.spy_binary = str(Path(sys.executable).parent / "py-spy")
    if "cli" in results:
        seconds = median(r["total"] for r in results["cli"]) + 3
        ctx.spy_cli = str(folder / "broadcast-cli.txt")
        spies = [(PySpy(ctx.emulator.pid, folder / "broadcast-gateway.txt", seconds, rate, gil=True),
                  "gateway (event loop thread)", GATEWAY_PARTS),
                 (PySpy(ctx.clients.pids()[0], folder / "broadcast-client.txt", seconds, rate, gil=True),
                  "one client process (of %d)" % ctx.clients.procs, CLIENT_PARTS)]
        time.sleep(0.5)  # py-spy attaches
        measure(ctx, "cli", "profiled: " + LABELS["cli"], quiet=False)
        ctx.spy_cli = None
        busy_profile(folder / "broadcast-cli.txt", "the wsctl CLI process, start to exit", SENDER_PARTS)
        for spy, title, parts in spies:
            if spy.process:
                spy.process.wait(60)
                busy_profile(spy.path, title + " during the CLI broadcast", parts, main_only="gateway" in title)
    for pattern in ("service", "seq"):
        if pattern not in results:
            continue
        seconds = median(r["total"] for r in results[pattern]) + 2
        spy = PySpy(os.getpid(), folder / ("broadcast-%s.txt" % pattern), seconds, rate, gil=True)
        gate = PySpy(ctx.emulator.pid, folder / ("broadcast-%s-gateway.txt" % pattern), seconds, rate, gil=True)
        time.sleep(0.5)
        measure(ctx, pattern, "profiled: " + LABELS[pattern], quiet=False)
        for one in (spy, gate):
            if one.process:
                one.process.wait(60)
        busy_profile(spy.path, "this process (the sender) during " + LABELS[pattern], SENDER_PARTS)
        busy_profile(gate.path, "gateway (event loop thread) during " + LABELS[pattern], GATEWAY_PARTS,
                     main_only=True)


if __name__ == "__main__":
    main()
