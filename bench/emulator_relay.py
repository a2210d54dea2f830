"""Relay latency of `wsctl local up`: sendMessage from one client to another while N
connections are registered.

The bundled handler answers sendMessage {targetUserId, text} with a GSI query for the
target's connections, then a PostToConnection through the management API (boto3,
from a handler thread back into the gateway). The sender stamps each frame with its
own perf_counter; the target (same process, same clock) computes send -> receipt.

Baseline, same run and same emulator: the same load with only the two clients
connected, before the N idle connections are opened.

    python bench/emulator_relay.py                         # 10k connections, DynamoDB Local
    python bench/emulator_relay.py --connections 200 --seconds 5   # CI size
    python bench/emulator_relay.py --backends ddblocal,moto        # moto too (slow: GSI queries scan)
    python bench/emulator_relay.py --management-http       # also: handler posts over http, not https

Goals (DynamoDB Local): p50 < 5 ms, p99 < 20 ms, no message lost.
"""

import argparse
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import (CpuWatch, DynamoDBLocal, Emulator, PySpy, banner, cpu_seconds, free_port, mint, percentile,  # noqa: E402
                      raise_nofile, rss_mb, verdict, wait_quiet, exit_on_sigterm)
from loadgen import ConnectionPool  # noqa: E402

GOAL_P50, GOAL_P99 = 5.0, 20.0


async def relay_run(url_of, rate: float, seconds: float, grace: float, warmup_seconds: float) -> dict:
    from websockets.asyncio.client import connect

    sender = await connect(url_of("relay-alice"), ping_interval=None, compression=None, max_queue=None)
    target = await connect(url_of("relay-bob"), ping_interval=None, compression=None, max_queue=None)
    sent_at, latencies, acks, ack_latency, problems = {}, {}, {}, [], []

    async def read_target():
        async for raw in target:
            now = time.perf_counter()
            frame = json.loads(raw)
            if frame.get("type") == "message":
                seq = int(frame["text"])
                if seq in sent_at and seq not in latencies:
                    latencies[seq] = (now - sent_at[seq]) * 1000

    async def read_sender():
        count = 0
        async for raw in sender:
            now = time.perf_counter()
            frame = json.loads(raw)
            if frame.get("type") == "sent":
                count += 1
                acks[count] = frame
                ack_latency.append(now)
            else:
                problems.append(frame)

    readers = [asyncio.create_task(read_target()), asyncio.create_task(read_sender())]
    # Warm-up at the same rate: the handler's boto3 clients and pools, and DynamoDB Local's JIT.
    for i in range(int(rate * warmup_seconds)):
        seq = -1 - i
        sent_at[seq] = time.perf_counter()
        await sender.send(json.dumps({"action": "sendMessage", "targetUserId": "relay-bob", "text": str(seq)}))
        await asyncio.sleep(1 / rate)
    await asyncio.sleep(0.5)
    for seq in [s for s in sent_at if s < 0]:
        sent_at.pop(seq)
        latencies.pop(seq, None)
    ack_latency.clear()

    total = int(rate * seconds)
    start = time.perf_counter()
    late = 0
    for seq in range(total):
        due = start + seq / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            late += 1
        sent_at[seq] = time.perf_counter()
        await sender.send('{"action":"sendMessage","targetUserId":"relay-bob","text":"%d"}' % seq)
    send_span = time.perf_counter() - start
    deadline = time.perf_counter() + grace
    while len(latencies) < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    for task in readers:
        task.cancel()
    await sender.close()
    await target.close()
    values = [latencies[s] for s in range(total) if s in latencies]
    return {"sent": total, "received": len(values), "lost": total - len(values), "late_sends": late,
            "achieved_rate": total / send_span if send_span else 0, "p50": percentile(values, 50),
            "p90": percentile(values, 90), "p99": percentile(values, 99), "max": max(values) if values else float("nan"),
            "mean": sum(values) / len(values) if values else float("nan"), "problems": problems[:3],
            "errors_seen": len(problems)}


def print_run(label: str, r: dict, cpu: dict, wall: float) -> None:
    print("\n-- %s --" % label)
    print("sent %d at %.0f/s (%d sends more than 5 ms late), received %d, lost %d" % (
        r["sent"], r["achieved_rate"], r["late_sends"], r["received"], r["lost"]))
    print("latency send -> receipt (ms): p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f" % (
        r["p50"], r["p90"], r["p99"], r["max"], r["mean"]))
    if r["errors_seen"]:
        print("error frames seen by the sender: %d, e.g. %s" % (r["errors_seen"], r["problems"][:1]))
    for name, seconds in cpu.items():
        if seconds is not None:
            print("  CPU %-26s %5.1f s (%3.0f%% of one core)" % (name, seconds, 100 * seconds / wall))
    print("  " + CpuWatch.describe(r["machine"]))
    sys.stdout.flush()


def run_backend(backend: str, args, management_http: bool) -> dict:
    ddb = None
    extra = {}
    if backend == "ddblocal":
        ddb = DynamoDBLocal(heap=args.ddb_heap)
        ddb.start()
        extra["dynamodb_endpoint"] = ddb.endpoint
    emulator_args = list(args.emulator_arg)
    port = 0
    if management_http:
        port = free_port()
        emulator_args += ["--env", "APIGW_MANAGEMENT_ENDPOINT=http://127.0.0.1:%d/%s" % (port, args.stage)]
    emulator = Emulator(*emulator_args, port=port, switch_interval=args.switch_interval, **extra)
    emulator.start()
    name = "%s, posts over %s" % ("DynamoDB Local" if ddb else "moto", "http" if management_http else "https")
    if args.switch_interval:
        name += ", switch interval %g s" % args.switch_interval
    pool = None
    try:
        keyset, stack, base = emulator.state.keyset, emulator.stack, emulator.url

        def url_of(user):
            return "%s?token=%s" % (base, mint(keyset, stack, user, 7200))

        pids = {"gateway": emulator.pid, "DynamoDB Local" if ddb else "moto": ddb.pid if ddb else emulator.moto_pid()}
        out = {"name": name}

        def phase(label, profile=None):
            wait_quiet()
            spy = PySpy(emulator.pid, profile, args.warmup + args.seconds, gil=True) if profile else None
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            t0 = time.monotonic()
            watch = CpuWatch()
            r = asyncio.run(relay_run(url_of, args.rate, args.seconds, args.grace, args.warmup))
            r["machine"] = watch.stop()
            wall = time.monotonic() - t0
            cpu = {k: (cpu_seconds(p) - cpu0[k]) if cpu0[k] is not None else None for k, p in pids.items()}
            print_run(label, r, cpu, wall)
            if spy:
                spy.finish("gateway while relaying (GIL holder samples; warm-up included), " + label)
            return r

        out["base"] = phase("baseline: %s, 2 connections" % name)
        if args.connections > 2:
            def urls(start, size):
                return [url_of("idle-%d" % i) for i in range(start, start + size)]

            started = time.monotonic()
            pool = ConnectionPool(urls, args.connections - 2, args.procs, args.inflight)
            _, times, errors, _, _ = pool.run()
            print("\nopened %d idle connections in %.1f s (failures: %s); gateway RSS %.0f MiB, %s RSS %.0f MiB" % (
                len(times), time.monotonic() - started, errors or "none", rss_mb(emulator.pid) or 0,
                list(pids)[1], rss_mb(list(pids.values())[1]) or 0))
            time.sleep(args.settle)
            profile = os.path.join(args.profile, "relay-%s-%s.txt" % (backend, "http" if management_http else "https")) \
                if args.profile else None
            out["full"] = phase("%s, %d connections" % (name, len(times) + 2), profile)
            out["opened"] = len(times) + 2
        return out
    finally:
        if pool:
            pool.close()
        emulator.stop(timeout=15)
        if ddb:
            ddb.stop()


def main():
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", "-n", type=int, default=10000, help="connections registered in all")
    parser.add_argument("--backends", default="ddblocal", help="comma list of ddblocal, moto")
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--grace", type=float, default=5.0, help="wait this long for late messages")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of unmeasured traffic first, each phase")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--inflight", type=int, default=256)
    parser.add_argument("--settle", type=float, default=2.0, help="pause after opening the idle connections")
    parser.add_argument("--stage", default="dev", help="the emulator's stage (wsctl's default)")
    parser.add_argument("--management-http", action="store_true",
                        help="also run with the handler posting over plain http (isolates the TLS cost)")
    parser.add_argument("--ddb-heap", default=None)
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="experiment: run the emulator with sys.setswitchinterval(S) (Python's default 0.005)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the gateway (GIL holder) during the N-connection "
                        "phase; collapsed stacks go to DIR (needs `pip install py-spy`)")
    parser.add_argument("--emulator-arg", action="append", default=[])
    args = parser.parse_args()
    limit = raise_nofile()
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    banner("emulator relay: sendMessage at %.0f/s for %.0f s with %d connections (RLIMIT_NOFILE %d)" % (
        args.rate, args.seconds, args.connections, limit))
    runs = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        runs.append((backend, run_backend(backend, args, False)))
        if args.management_http:
            runs.append((backend, run_backend(backend, args, True)))

    print("\n== summary: latency send -> receipt at the target, ms ==")
    print("(https: the handler's default endpoint https://{domainName}/{stage}, TLS back into the gateway;\n"
          " http: --env APIGW_MANAGEMENT_ENDPOINT=http://127.0.0.1:PORT/STAGE)")
    print("%-52s %7s %7s %8s %6s %9s" % ("run", "p50", "p99", "max", "lost", "p50 vs 2"))
    for backend, out in runs:
        base = out["base"]
        print("%-52s %7.2f %7.2f %8.1f %6d %9s" % (out["name"] + ", 2 connections (baseline)", base["p50"],
                                                   base["p99"], base["max"], base["lost"], "1.00x"))
        if "full" in out:
            full = out["full"]
            print("%-52s %7.2f %7.2f %8.1f %6d %8.2fx" % (out["name"] + ", %d connections" % out["opened"],
                                                          full["p50"], full["p99"], full["max"], full["lost"],
                                                          full["p50"] / base["p50"]))
    print("\ngoals (DynamoDB Local, default https management endpoint, at %d connections):" % args.connections)
    for backend, out in runs:
        if backend == "ddblocal" and "https" in out["name"]:
            r = out.get("full") or out["base"]
            print("  %s p50 %.2f ms < %.0f ms" % (verdict(r["p50"] < GOAL_P50), r["p50"], GOAL_P50))
            print("  %s p99 %.2f ms < %.0f ms" % (verdict(r["p99"] < GOAL_P99), r["p99"], GOAL_P99))
            print("  %s messages lost: %d" % (verdict(r["lost"] == 0), r["lost"]))


if __name__ == "__main__":
    main()
