"""How many idle connections `wsctl local up` holds, and how fast it registers them.

N connections (default 10,000) go through the JWT authorizer and $connect of the
bundled handler (a conditional PutItem into the registry), once per backend:
embedded moto, then DynamoDB Local. A bare aiohttp WebSocket server measured with
the same client in the same run is the baseline: the ceiling of the client side.

    python bench/emulator_capacity.py                      # 10k, both backends
    python bench/emulator_capacity.py --connections 200    # CI size

Goals: gateway RSS < 600 MB at 10k; >= 800 connects/s with DynamoDB Local.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import (CpuWatch, DynamoDBLocal, PySpy, Emulator, banner, cpu_seconds, free_port, median, mint, raise_nofile,  # noqa: E402
                      rss_mb, verdict, wait_quiet, exit_on_sigterm)
from loadgen import BareServer, ConnectionPool, batch_rates  # noqa: E402

GOAL_RSS_MB = 600
GOAL_CONNECTS = 800


def measure(label, url_of, count, args, pids, extra_before=None):
    """Open `count` connections; returns a dict of figures. `pids` names processes to watch."""
    wait_quiet()
    rss_before = {name: rss_mb(pid) for name, pid in pids.items()}
    pool = ConnectionPool(url_of, count, args.procs, args.inflight, timeout=args.timeout)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    spies = []
    if args.profile:
        for name, pid in pids.items():
            if pid and ("gateway" in name or "moto (DynamoDB" in name):
                path = os.path.join(args.profile, "capacity-%s-%s.txt" % (label.split(",")[1].strip().replace(" ", "-"),
                                                                        name.split()[0]))
                spies.append((name, PySpy(pid, path, args.profile_seconds, gil=args.profile_mode == "gil")))
    watch = CpuWatch()
    t0, times, errors, client_cpu, wall = pool.run()
    machine = watch.stop()
    cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(args.settle)  # let late allocations land before reading RSS
    rss_after = {name: rss_mb(pid) for name, pid in pids.items()}
    batch = args.batch or max(50, count // 20)
    rates = batch_rates(t0, times, batch)
    elapsed = (times[-1] - t0) if times else float("nan")
    result = {
        "label": label, "opened": len(times), "errors": errors, "elapsed": elapsed,
        "overall": len(times) / elapsed if times else 0.0, "median_batch": median(rates), "batch": batch,
        "rates": rates, "rss_before": rss_before, "rss_after": rss_after,
        "cpu": {name: (cpu_after[name] - cpu_before[name]) if cpu_after[name] is not None and
                cpu_before[name] is not None else None for name in pids},
        "client_cpu": sum(client_cpu), "client_procs": len(client_cpu), "wall": wall, "machine": machine,
    }
    result["pool"] = pool
    result["spies"] = spies
    return result


def report(result):
    print("\n-- %s --" % result["label"])
    print("opened %d connections in %.2f s; failures: %s" % (result["opened"], result["elapsed"],
                                                            result["errors"] or "none"))
    print("connect rate: median of per-batch rates %.0f/s (batches of %d: %s), overall %.0f/s" % (
        result["median_batch"], result["batch"],
        " ".join("%.0f" % r for r in result["rates"][:25]) + (" ..." if len(result["rates"]) > 25 else ""),
        result["overall"]))
    for name in result["rss_after"]:
        before, after, cpu = result["rss_before"][name], result["rss_after"][name], result["cpu"][name]
        print("  %-26s RSS %7s -> %7s MiB   CPU during connects %6s s (%s of one core)" % (
            name, "%.0f" % before if before else "-", "%.0f" % after if after else "-",
            "%.1f" % cpu if cpu is not None else "-",
            "%.0f%%" % (100 * cpu / result["wall"]) if cpu is not None and result["wall"] else "-"))
    print("  %-26s CPU %.1f s over %d processes (%.0f%% of one core; the client is not the limit when "
          "the baseline is much faster)" % ("clients", result["client_cpu"], result["client_procs"],
                                            100 * result["client_cpu"] / result["wall"] if result["wall"] else 0))
    print("  " + CpuWatch.describe(result["machine"]))
    sys.stdout.flush()


def run_emulator(backend, args):
    ddb = None
    extra = {}
    if backend == "ddblocal":
        ddb = DynamoDBLocal(heap=args.ddb_heap)
        ddb.start()
        extra["dynamodb_endpoint"] = ddb.endpoint
    emulator = Emulator(*args.emulator_arg, **extra)
    emulator.start()
    try:
        keyset, stack, base = emulator.state.keyset, emulator.stack, emulator.url

        def urls(start, size):
            return ["%s?token=%s" % (base, mint(keyset, stack, "cap-%d" % i, 7200)) for i in range(start, start + size)]

        pids = {"gateway (wsctl local up)": emulator.pid}
        if ddb:
            pids["DynamoDB Local (java)"] = ddb.pid
            pids["moto (SSM only here)"] = emulator.moto_pid()
        else:
            pids["moto (DynamoDB + SSM)"] = emulator.moto_pid()
        label = "wsctl local up, %s backend, JWT auth, bundled handler, %d connections" % (
            "DynamoDB Local" if ddb else "embedded moto", args.connections)
        result = measure(label, urls, args.connections, args, pids)
        result["pool"].close()
        for name, spy in result.pop("spies"):
            spy.finish("%s during the connects, %s" % (name, label.split(",")[1].strip()))
        if ddb:
            result["ddb_start"] = ddb.started_in
        result["ready_in"] = emulator.ready_in
        report(result)
        return result
    finally:
        emulator.stop(timeout=15)
        if ddb:
            ddb.stop()


def run_baseline(args):
    server = BareServer(free_port())
    try:
        def urls(start, size):
            return [server.url] * size

        result = measure("baseline: bare aiohttp WebSocket server (no auth, no handler), same client, %d connections"
                         % args.connections, urls, args.connections, args, {"bare aiohttp server": server.pid})
        result["pool"].close()
        result.pop("spies")
        report(result)
        return result
    finally:
        server.stop()


def main():
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", "-n", type=int, default=10000)
    parser.add_argument("--backends", default="moto,ddblocal", help="comma list of moto, ddblocal")
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--inflight", type=int, default=256, help="handshakes in flight, all clients together")
    parser.add_argument("--batch", type=int, default=0, help="connections per batch for the per-batch rates")
    parser.add_argument("--timeout", type=float, default=60.0, help="handshake timeout (s)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to wait before reading RSS")
    parser.add_argument("--ddb-heap", default=None, help="-Xmx for DynamoDB Local (default: the JVM's)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the gateway (and moto) during the connects; "
                        "collapsed stacks go to DIR (needs `pip install py-spy`)")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--profile-mode", choices=("gil", "wall"), default="gil",
                        help="gil: sample only the thread holding the GIL (where the CPU goes); wall: every "
                             "non-idle thread (where threads wait)")
    parser.add_argument("--emulator-arg", action="append", default=[],
                        help="extra argument for `wsctl local up` (repeatable), e.g. --emulator-arg=--workers=16")
    args = parser.parse_args()
    limit = raise_nofile()
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    banner("emulator capacity: %d idle connections through JWT auth + $connect (RLIMIT_NOFILE %d)"
           % (args.connections, limit))
    results = {}
    if not args.no_baseline:
        results["baseline"] = run_baseline(args)
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        results[backend] = run_emulator(backend, args)

    print("\n== summary (%d connections, %d client processes, %d handshakes in flight) ==" % (
        args.connections, args.procs, args.inflight))
    base = results.get("baseline")
    print("%-40s %10s %10s %8s %12s %12s %10s" % ("server", "median/s", "overall/s", "vs base", "gateway MiB",
                                                  "DynamoDB MiB", "failures"))
    for key, result in results.items():
        names = list(result["rss_after"])
        db_rss = next((result["rss_after"][n] for n in names if "DynamoDB Local" in n or "DynamoDB +" in n), None)
        ratio = result["median_batch"] / base["median_batch"] if base and base["median_batch"] else float("nan")
        print("%-40s %10.0f %10.0f %7.2fx %12s %12s %10d" % (
            {"baseline": "bare aiohttp (client ceiling)", "moto": "wsctl + embedded moto",
             "ddblocal": "wsctl + DynamoDB Local"}[key], result["median_batch"], result["overall"], ratio,
            "%.0f" % result["rss_after"][names[0]] if key != "baseline" else "-",
            "%.0f" % db_rss if db_rss else "-", sum(result["errors"].values())))
    print("\ngoals (stated for 10,000 connections):")
    for key in ("moto", "ddblocal"):
        if key in results:
            gateway = results[key]["rss_after"][list(results[key]["rss_after"])[0]]
            print("  %s gateway RSS %.0f MiB < %d MB at %d connections" % (
                verdict(gateway is not None and gateway * 1.048576 < GOAL_RSS_MB and
                        results[key]["opened"] == args.connections), gateway or 0, GOAL_RSS_MB, args.connections)
                + ("" if key == "ddblocal" else "   [moto backend]"))
    if "ddblocal" in results:
        r = results["ddblocal"]
        print("  %s connect rate with DynamoDB Local: median %.0f/s, overall %.0f/s >= %d/s" % (
            verdict(r["median_batch"] >= GOAL_CONNECTS and r["opened"] == args.connections), r["median_batch"],
            r["overall"], GOAL_CONNECTS))


if __name__ == "__main__":
    main()
