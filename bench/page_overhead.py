"""What the live page costs the emulator: relay throughput with N connections relaying, with the
page closed and open, in one run and on one emulator.

N clients of the bundled handler (JWT authorizer, DynamoDB Local by default) hold a connection
each and relay in pairs: each sends sendMessage to its partner and waits for the route's answer
("sent") before sending the next, for the whole phase (a closed loop: the emulator runs as fast
as it can). Throughput is relays answered per second in the measured window.

First the clients relay unmeasured for --prime seconds (DynamoDB Local's JIT, the environments'
first invocations). Then phases, interleaved round by round (the order alternates, against drift):
- closed: no page open (the journal records nothing: wsctl/local/observe.py), the baseline;
- open: the page in a real Chromium (headless, tests/support/browser.py), live, listing the N
  connections and the function;
- watching: the page open with a connection and the function chosen: the conversation and
  the function's log stream (every invocation's lines) flow to the page as well.
Before a closed phase the page is navigated away and the journal's grace period waited out.

    python bench/page_overhead.py                                  # 1,000 connections, 3 rounds
    python bench/page_overhead.py --connections 100 --seconds 4 --warmup 2 --rounds 1   # CI size
    python bench/page_overhead.py --backend moto                   # the embedded moto instead

Goal (issue 23): with the page open, throughput at most 10% lower than with it closed. On a shared
machine throughput moves with other people's work; the CPU each part spends per relay (printed per
phase, medians in the summary) moves much less, and what the page adds to it is its real cost: on a
machine whose cores the relay keeps busy, throughput falls by about that share.
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import (ROOT, CpuWatch, DynamoDBLocal, Emulator, banner, cpu_seconds, descendants, median, mint,  # noqa: E402
                      raise_nofile, verdict, wait_quiet, exit_on_sigterm)
from loadgen import stop_workers  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from support.browser import chromium, page_url, wait_until  # noqa: E402

from wsctl.local.observe import GRACE_S, Journal  # noqa: E402

CTX = mp.get_context("fork")
GOAL = 0.10  # at most 10% fewer relays per second with the page open


# -- the clients: worker processes, each holding a share of the connections ------------------------
async def _open(urls, inflight: int):
    from websockets.asyncio.client import connect

    semaphore = asyncio.Semaphore(inflight)

    async def one(url):
        async with semaphore:
            return await connect(url, ping_interval=None, open_timeout=120, close_timeout=1, compression=None,
                                 max_queue=None)

    return await asyncio.gather(*(one(url) for url in urls))


async def _relay(connections, partners, warmup: float, seconds: float) -> dict:
    """Each connection sends sendMessage to its partner and waits for its answer, until the end;
    answers in the measured window count."""
    begin = time.monotonic() + warmup
    end = begin + seconds
    counts = {"relays": 0, "received": 0, "errors": 0, "all": 0}  # all: answers, warm-up included

    async def loop(ws, partner):
        while time.monotonic() < end:
            await ws.send('{"action":"sendMessage","targetUserId":"%s","text":"x"}' % partner)
            while True:
                frame = json.loads(await ws.recv())
                kind = frame.get("type")
                if kind == "message":
                    counts["received"] += 1
                    continue
                counts["all"] += kind == "sent"
                if time.monotonic() >= begin:
                    counts["relays" if kind == "sent" else "errors"] += 1
                break

    await asyncio.gather(*(loop(ws, partner) for ws, partner in zip(connections, partners)))
    return counts


def _worker(urls, partners, inflight, pipe):
    raise_nofile()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    connections = loop.run_until_complete(_open(urls, inflight))
    pipe.send("open")
    while True:
        order = pipe.recv()
        if order == "stop":
            os._exit(0)  # the kernel closes every socket at once
        cpu = time.process_time()
        counts = loop.run_until_complete(_relay(connections, partners, *order))
        counts["cpu"] = time.process_time() - cpu
        pipe.send(counts)


class Clients:
    def __init__(self, emulator, count: int, procs: int, inflight: int):
        keyset, stack, base = emulator.state.keyset, emulator.stack, emulator.url
        users = ["relay-%d" % i for i in range(count)]
        partners = [users[i ^ 1] if (i ^ 1) < count else users[i] for i in range(count)]
        urls = ["%s?token=%s" % (base, mint(keyset, stack, user, 7200)) for user in users]
        self.pipes, self.workers = [], []
        for index in range(procs):
            parent, child = CTX.Pipe()
            share = slice(index, count, procs)
            process = CTX.Process(target=_worker, args=(urls[share], partners[share], max(1, inflight // procs), child),
                                  daemon=True)
            process.start()
            self.pipes.append(parent)
            self.workers.append(process)
        for pipe in self.pipes:
            if pipe.recv() != "open":
                raise RuntimeError("a client worker failed to open its connections")

    def run(self, warmup: float, seconds: float) -> dict:
        for pipe in self.pipes:
            pipe.send((warmup, seconds))
        reports = [pipe.recv() for pipe in self.pipes]
        return {key: sum(r[key] for r in reports) for key in reports[0]}

    def pids(self):
        return [w.pid for w in self.workers]

    def close(self):
        stop_workers(self.pipes, self.workers, "stop")


# -- the page --------------------------------------------------------------------------------------
def show_page(driver, url: str, count: int, watching: bool) -> None:
    driver.get(url)
    wait_until(driver, lambda d: d.find_element("id", "status").text.startswith("live"), 60, "the live status")
    wait_until(driver, lambda d: d.find_element("id", "connection-count").text == "(%d)" % count, 60,
               "all %d connections" % count)
    if watching:
        driver.find_element("css selector", "#connection-table tbody tr button").click()
        driver.find_element("css selector", "#function-table tbody tr button").click()


def close_page(driver) -> None:
    driver.get("about:blank")
    time.sleep(GRACE_S + 1)  # the journal records on for its grace period after the last page left


# -- what a hook costs with nobody watching ---------------------------------------------------------------
HOOKS_PER_RELAY = 8  # frame_in, invoking, frame_out twice (the answer, the relayed message), 4 log lines (sink)


def hook_cost(calls: int = 1_000_000) -> tuple[float, float]:
    """(ns per journal hook call with the page closed, ns per call of a method that does nothing), in
    this process: the one check a closed page costs each event, beside the bare call it sits in."""
    import timeit

    class Nothing:
        def frame_in(self, connection, data, route, request_id):
            return None

    journal, nothing, connection = Journal(), Nothing(), object()
    hook = min(timeit.repeat(lambda: journal.frame_in(connection, "{}", "sendMessage", "id"), number=calls, repeat=5))
    bare = min(timeit.repeat(lambda: nothing.frame_in(connection, "{}", "sendMessage", "id"), number=calls, repeat=5))
    return hook / calls * 1e9, bare / calls * 1e9


# -- the run ----------------------------------------------------------------------------------------------
def main():
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", "-n", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--prime", type=float, default=30.0, help="unmeasured seconds of relaying before round 1")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds of relaying first, each phase")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=("ddblocal", "moto"), default="ddblocal")
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--inflight", type=int, default=64, help="handshakes in flight while opening")
    parser.add_argument("--emulator-arg", action="append", default=[])
    args = parser.parse_args()
    limit = raise_nofile()
    banner("the live page's cost: %d connections relaying, page closed and open, %d round(s) of %.0f s "
           "(RLIMIT_NOFILE %d)" % (args.connections, args.rounds, args.seconds, limit))
    ddb = None
    extra = {}
    if args.backend == "ddblocal":
        ddb = DynamoDBLocal()
        ddb.start()
        extra["dynamodb_endpoint"] = ddb.endpoint
    emulator = Emulator(*args.emulator_arg, **extra)
    emulator.start()
    clients = None
    results = {"closed": [], "open": [], "watching": []}
    per_relay = {mode: [] for mode in results}  # each phase's CPU per relay (ms) by part
    try:
        started = time.monotonic()
        clients = Clients(emulator, args.connections, args.procs, args.inflight)
        print("opened %d connections in %.1f s (%s)" % (args.connections, time.monotonic() - started,
                                                       "DynamoDB Local" if ddb else "embedded moto"))
        url = page_url(emulator)
        clients.run(0.0, args.prime)
        print("primed: %.0f s of relaying, unmeasured" % args.prime)
        with chromium(emulator.home / "chromium-profile") as driver:
            browser_root = driver.service.process.pid
            pids = {"gateway": [emulator.pid], "environments": emulator.environment_pids(),
                    "DynamoDB": [ddb.pid if ddb else emulator.moto_pid()], "clients": clients.pids()}
            for number in range(args.rounds):
                order = ["closed", "open", "watching"] if number % 2 == 0 else ["watching", "open", "closed"]
                for mode in order:
                    if mode == "closed":
                        close_page(driver)
                    else:
                        show_page(driver, url, args.connections, mode == "watching")
                    wait_quiet()
                    groups = dict(pids, environments=emulator.environment_pids(),
                                  browser=descendants(browser_root) + [browser_root])
                    before = {name: sum(cpu_seconds(p) or 0 for p in group) for name, group in groups.items()}
                    watch = CpuWatch()
                    counts = clients.run(args.warmup, args.seconds)
                    machine = watch.stop()
                    used = {name: sum(cpu_seconds(p) or 0 for p in group) - before[name]
                            for name, group in groups.items()}
                    rate = counts["relays"] / args.seconds
                    results[mode].append(rate)
                    # the phase's CPU (warm-up included) over every relay answered in it
                    per_relay[mode].append({name: seconds / max(1, counts["all"]) * 1000
                                            for name, seconds in used.items()})
                    wall = machine["wall"]
                    print("\n-- round %d, page %s --" % (number + 1, mode))
                    print("relays answered: %d in %.0f s = %.1f/s (errors %d, relayed messages received %d)" % (
                        counts["relays"], args.seconds, rate, counts["errors"], counts["received"]))
                    print("  CPU over the phase (warm-up included, %.0f s): %s" % (wall, ", ".join(
                        "%s %.1f s (%.0f%% of a core)" % (name, seconds, 100 * seconds / wall)
                        for name, seconds in used.items())))
                    print("  " + CpuWatch.describe(machine))
        print("\n== summary: relays answered per second, %d connections, median of %d round(s) ==" % (
            args.connections, args.rounds))
        base = median(results["closed"])
        print("%-46s %9s %9s %8s" % ("page", "median", "rounds", "vs closed"))
        for mode, label in (("closed", "closed (baseline)"), ("open", "open: connections and functions listed"),
                            ("watching", "open, a connection and the function chosen")):
            value = median(results[mode])
            print("%-46s %9.1f %9s %7.2fx" % (label, value, "/".join("%.0f" % r for r in results[mode]), value / base))
        for mode in ("open", "watching"):
            drop = 1 - median(results[mode]) / base
            print("%s page %s: throughput %.1f%% lower than closed (goal: at most %.0f%%)" % (
                verdict(drop <= GOAL), mode, 100 * drop, 100 * GOAL))
        parts = list(per_relay["closed"][0])
        print("\nCPU per relay, ms (median of the rounds; each phase's CPU, warm-up included, over its relays):")
        print("%-10s %s %9s" % ("page", " ".join("%12s" % name for name in parts), "all"))
        totals = {}
        for mode in ("closed", "open", "watching"):
            values = {name: median(phase[name] for phase in per_relay[mode]) for name in parts}
            totals[mode] = sum(values.values())
            print("%-10s %s %9.2f" % (mode, " ".join("%12.3f" % values[name] for name in parts), totals[mode]))
        closed = {name: median(phase[name] for phase in per_relay["closed"]) for name in parts}
        for mode in ("open", "watching"):
            # what the page adds: the gateway's extra work and the browser's (the environments and
            # DynamoDB do the same work either way; their CPU per relay moves with their warmth and the load)
            gateway = median(phase["gateway"] for phase in per_relay[mode]) - closed["gateway"]
            browser = median(phase["browser"] for phase in per_relay[mode])
            print("page %s: the gateway %+.3f ms and the browser %.3f ms of CPU per relay = %.3f ms, %.1f%% of the "
                  "%.2f ms a relay takes in all with the page closed (on a machine the relay saturates, about that "
                  "share less throughput)" % (mode, gateway, browser, gateway + browser,
                                             100 * (gateway + browser) / totals["closed"], totals["closed"]))
        hook, bare = hook_cost()
        gateway = median(phase["gateway"] for phase in per_relay["closed"])
        print("\nwith the page closed, a hook costs %.0f ns (a method that does nothing: %.0f ns, %.2fx); %d hooks "
              "per relay = %.2f us, %.3f%% of the gateway's %.2f ms of CPU per relay" % (
                  hook, bare, hook / bare, HOOKS_PER_RELAY, hook * HOOKS_PER_RELAY / 1000,
                  100 * hook * HOOKS_PER_RELAY / 1e6 / gateway, gateway))
    finally:
        if clients:
            clients.close()
        emulator.stop(timeout=30)
        if ddb:
            ddb.stop()


if __name__ == "__main__":
    main()
