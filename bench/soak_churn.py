"""Connection churn soak: does the registry stay exact when connections come and go by the
tens of thousands, and does the emulator give its memory back?

N connection lifetimes (default 50,000) run over C concurrent clients (default 500) against
`wsctl local up` with the bundled handler and JWT auth. Each lifetime connects (authorizer and
$connect: a conditional PutItem), asks `whoami`, joins a room in a share of cases, then ends one
of four ways, in proportions set by --mix:

- clean: the client sends a close frame (1000);
- drop:  the client's socket is aborted without a close frame (the server sees 1006); the
         emulator runs with `--fault disconnect-loss=SHARE`, so that share of drops never gets
         its $disconnect and leaves a stale registry entry, as AWS's best-effort $disconnect may;
- kick:  DeleteConnection through the management API (the server closes with 1000);
- idle:  the client says nothing until the emulator closes it after --idle-timeout (1001).

--keep-open K connections stay open through the run (each joins a room, and speaks often enough
not to be idle-closed). A warm-up of --warmup lifetimes runs first, so the gateway's RSS is read
at its working size. After the run:

1. stale entries before prune: registry entries of connections that are not live. Each must be a
   drop whose $disconnect was lost (lifetimes minus the $disconnect invocations in the log);
2. `wsctl --local prune` (as an operator would), then the registry must hold exactly the K live
   connections (connection items and room memberships), then 0 once they close;
3. no handler error in the emulator's log (no "Traceback", no `"outcome": "exception...`);
4. the gateway process's RSS back within 10 % of its level after the warm-up (VmRSS).

    python bench/soak_churn.py                                   # 50,000 over 500, embedded moto
    python bench/soak_churn.py --backend dynamodb-local          # the same on DynamoDB Local
    python bench/soak_churn.py --dynamodb-endpoint http://127.0.0.1:8000   # any DynamoDB you run
    python bench/soak_churn.py --lifetimes 300 --clients 30 --idle-timeout 1   # CI size

tests/test_reliability.py runs the CI size through run_churn().
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import banner, cpu_seconds, exit_on_sigterm, percentile, raise_nofile, rss_mb, verdict  # noqa: E402
from reliability import (LogTail, lean_transport, prune_until_checked, refusal_status, registry_ids,  # noqa: E402
                         run_on_stack, ws_options)

ENDINGS = ("clean", "drop", "kick", "idle")
EXPECTED_CODE = {"clean": 1000, "kick": 1000, "idle": 1001}
RSS_TOLERANCE = 0.10


@dataclass
class ChurnOptions:
    lifetimes: int = 50000
    clients: int = 500
    warmup: int | None = None  # None: 4 lifetimes per client, at most a tenth of the run
    mix: dict = field(default_factory=lambda: {"clean": 0.35, "drop": 0.25, "kick": 0.2, "idle": 0.2})
    disconnect_loss: float = 0.3
    idle_timeout: float = 20.0  # must exceed the emulator's answer time under the load, see main()
    hold: float = 0.2  # clean and drop lifetimes stay open a random 0..hold seconds
    room_share: float = 0.25
    rooms: int = 20
    keep_open: int = 10
    seed: int = 1
    quiet_for: float = 2.0  # no $connect/$disconnect for this long: the emulator has caught up
    backend: str = "moto"
    dynamodb_endpoint: str | None = None
    emulator_args: tuple = ()
    progress: bool = True

    def warmup_count(self) -> int:
        if self.warmup is not None:
            return self.warmup
        return min(self.clients * 4, self.lifetimes // 10)


def parse_mix(text: str) -> dict:
    mix = {}
    for part in text.split(","):
        name, _, share = part.partition("=")
        if name.strip() not in ENDINGS:
            raise argparse.ArgumentTypeError("--mix names %s, not %r" % ("/".join(ENDINGS), name))
        mix[name.strip()] = float(share)
    total = sum(mix.values())
    return {name: share / total for name, share in mix.items()}


def plan(count: int, mix: dict, rng: random.Random) -> list[str]:
    """`count` endings in the mix's proportions exactly (largest remainder), shuffled."""
    exact = {name: count * share for name, share in mix.items()}
    counts = {name: int(value) for name, value in exact.items()}
    for name in sorted(exact, key=lambda n: exact[n] - counts[n], reverse=True)[:count - sum(counts.values())]:
        counts[name] += 1
    endings = [name for name, n in counts.items() for _ in range(n)]
    rng.shuffle(endings)
    return endings


class Tally:
    """What the clients saw in one phase."""

    def __init__(self):
        self.ids = {name: [] for name in ENDINGS}
        self.errors: Counter = Counter()
        self.codes: Counter = Counter()  # "ending code" for unexpected close codes
        self.handshake_ms: list[float] = []
        self.done = 0
        self.unknown_ids = 0  # lifetimes that failed before the client learnt its id


async def _recv_json(ws, timeout: float = 60) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def lifetime(url: str, ending: str, room: str | None, transport, opts: ChurnOptions,
                   rng: random.Random, tally: Tally) -> None:
    from websockets.asyncio.client import connect

    started = time.perf_counter()
    try:
        ws = await connect(url, **ws_options())
    except Exception as error:
        status = refusal_status(error)
        tally.errors["handshake %s" % (status or type(error).__name__)] += 1
        return
    tally.handshake_ms.append((time.perf_counter() - started) * 1000)
    cid = None
    try:
        await ws.send('{"action": "whoami"}')
        cid = (await _recv_json(ws))["connectionId"]
        if room:
            await ws.send(json.dumps({"action": "join", "room": room}))
            answer = await _recv_json(ws)
            if answer.get("type") != "joined":
                tally.errors["join answered %s" % (answer.get("message") or answer.get("error"))] += 1
    except Exception as error:
        tally.errors["whoami/join %s" % type(error).__name__] += 1
        ws.transport.abort()
        if cid:
            tally.ids["drop"].append(cid)
        else:
            tally.unknown_ids += 1
        return
    tally.ids[ending].append(cid)
    try:
        if ending == "clean":
            await asyncio.sleep(rng.uniform(0, opts.hold))
            await ws.close()
        elif ending == "drop":
            await asyncio.sleep(rng.uniform(0, opts.hold))
            ws.transport.abort()
            return
        elif ending == "kick":
            answer = await transport.call("DELETE", cid)
            if answer.status != 204:
                tally.errors["kick answered %s %s" % (answer.status, answer.error_code or answer.message)] += 1
            await asyncio.wait_for(ws.wait_closed(), 60)
        else:  # idle: the server closes it
            await asyncio.wait_for(ws.wait_closed(), opts.idle_timeout * 4 + 60)
        if ws.close_code != EXPECTED_CODE[ending]:
            tally.codes["%s %s" % (ending, ws.close_code)] += 1
    except Exception as error:
        tally.errors["%s %s" % (ending, type(error).__name__)] += 1
        ws.transport.abort()


async def churn(emulator, endings: list[str], opts: ChurnOptions, tokens: list[str], rng: random.Random,
                label: str) -> tuple[Tally, float]:
    """Run every lifetime in `endings` over opts.clients concurrent client loops."""
    tally = Tally()
    pending = iter(enumerate(endings))
    rooms = ["churn-room-%d" % i for i in range(opts.rooms)]
    started = time.monotonic()

    async def client(k: int, transport):
        url = "%s?token=%s" % (emulator.url, tokens[k])
        local = random.Random(rng.random())
        for index, ending in pending:
            room = local.choice(rooms) if local.random() < opts.room_share else None
            await lifetime(url, ending, room, transport, opts, local, tally)
            tally.done += 1

    async def report():
        last = 0
        while True:
            await asyncio.sleep(10)
            elapsed = time.monotonic() - started
            print("  %s: %d/%d lifetimes in %.0f s (%.0f/s now, %.0f/s overall), gateway RSS %.0f MiB, "
                  "client errors %d" % (label, tally.done, len(endings), elapsed, (tally.done - last) / 10,
                                        tally.done / elapsed, rss_mb(emulator.pid) or 0,
                                        sum(tally.errors.values())), flush=True)
            last = tally.done

    async with lean_transport(emulator, 32) as transport:
        reporter = asyncio.create_task(report()) if opts.progress else None
        await asyncio.gather(*(client(k, transport) for k in range(min(opts.clients, len(endings)) or 1)))
        if reporter:
            reporter.cancel()
    return tally, time.monotonic() - started


class Keepers:
    """K connections held open through the run: each joins a room and sends a frame often enough
    that the idle timeout never closes it."""

    def __init__(self, emulator, count: int, token: str, interval: float):
        self.emulator, self.count, self.token, self.interval = emulator, count, token, interval
        self.sockets, self.ids, self.tasks = [], [], []
        self.errors: Counter = Counter()

    async def open(self):
        from websockets.asyncio.client import connect

        for k in range(self.count):
            ws = await connect("%s?token=%s" % (self.emulator.url, self.token), **ws_options())
            await ws.send('{"action": "whoami"}')
            self.ids.append((await _recv_json(ws))["connectionId"])
            await ws.send(json.dumps({"action": "join", "room": "keepers"}))
            await _recv_json(ws)
            self.sockets.append(ws)
            self.tasks += [asyncio.create_task(self._keep(ws)), asyncio.create_task(self._drain(ws))]

    async def _keep(self, ws):
        """A frame every `interval` seconds, whether or not the answers keep up (a busy emulator
        answers late, and only the client's frames count as activity)."""
        try:
            while True:
                await asyncio.sleep(self.interval)
                await ws.send('{"action": "whoami"}')
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.errors["keeper %s" % type(error).__name__] += 1

    async def _drain(self, ws):
        try:
            async for _ in ws:
                pass
        except Exception:
            pass

    def open_count(self) -> int:
        return sum(1 for ws in self.sockets if ws.close_code is None)

    async def close(self):
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for ws in self.sockets:
            await ws.close()
            if ws.close_code != 1000:
                self.errors["keeper closed with %s" % ws.close_code] += 1


async def settle(emulator, log: LogTail, quiet_for: float = 2.0, timeout: float = 600) -> float:
    """Wait until no $connect or $disconnect has run for `quiet_for` seconds (pending $disconnect
    invocations are done; the kept connections' frames do not count); returns the seconds waited."""
    started = time.monotonic()
    last, since = None, time.monotonic()
    while time.monotonic() - started < timeout:
        await asyncio.sleep(0.25)
        routes = log.update().routes
        seen = routes["$connect"] + routes["$disconnect"]
        if seen != last:
            last, since = seen, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            break
    return time.monotonic() - started


def _drift(emulator, live: set) -> dict:
    connections, anything = registry_ids(emulator)
    return {"entries": len(connections), "items_ids": len(anything), "live": len(live),
            "stale": sorted(connections - live), "orphan_items": sorted(anything - connections - live),
            "missing": sorted(live - connections)}


async def _run(emulator, opts: ChurnOptions, figures: dict) -> None:
    rng = random.Random(opts.seed)
    log = LogTail(emulator)
    tokens = [emulator.token("churn-%d" % k, 86400) for k in range(opts.clients)]
    say = print if opts.progress else (lambda *a, **k: None)

    warmup = opts.warmup_count()
    warm = Tally()
    if warmup:
        say("warm-up: %d lifetimes over %d clients ..." % (warmup, opts.clients), flush=True)
        warm, _ = await churn(emulator, plan(warmup, opts.mix, rng), opts, tokens, rng, "warm-up")
        await settle(emulator, log, opts.quiet_for)
    figures["rss_before"] = rss_mb(emulator.pid)
    moto = emulator.moto_pid()
    figures["moto_rss_before"] = rss_mb(moto) if emulator.state.backend == "moto" else None
    cpu0 = {"gateway": cpu_seconds(emulator.pid), "moto": cpu_seconds(moto)}

    keepers = Keepers(emulator, opts.keep_open, emulator.token("keeper", 86400),
                      max(0.2, opts.idle_timeout / 3))
    await keepers.open()
    peak = {"rss": figures["rss_before"] or 0}

    async def sample():
        while True:
            peak["rss"] = max(peak["rss"], rss_mb(emulator.pid) or 0)
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample())
    say("run: %d lifetimes over %d clients, %d kept open ..." % (opts.lifetimes, opts.clients, opts.keep_open),
        flush=True)
    endings = plan(opts.lifetimes, opts.mix, rng)
    main, wall = await churn(emulator, endings, opts, tokens, rng, "run")
    figures["settle_s"] = round(await settle(emulator, log, opts.quiet_for), 2)
    sampler.cancel()
    figures["cpu_s"] = {name: round((cpu_seconds(pid) or 0) - (cpu0[name] or 0), 1)
                        for name, pid in (("gateway", emulator.pid), ("moto", moto)) if pid}

    total = warmup + opts.lifetimes + opts.keep_open
    figures.update({
        "lifetimes": opts.lifetimes, "warmup": warmup, "clients": opts.clients, "keep_open": opts.keep_open,
        "wall_s": round(wall, 1), "lifetimes_per_s": round(opts.lifetimes / wall, 1),
        "handshake_ms_p50": round(percentile(main.handshake_ms, 50), 1),
        "handshake_ms_p99": round(percentile(main.handshake_ms, 99), 1),
        "endings": {name: len(main.ids[name]) for name in ENDINGS},
        "client_errors": dict(warm.errors + main.errors + keepers.errors),
        "unexpected_close_codes": dict(warm.codes + main.codes),
        "peak_rss": round(peak["rss"], 1),
    })
    routes = log.update().routes
    figures["invocations"] = {"connect": log.outcomes["$connect connected"], "disconnect": routes["$disconnect"],
                              "expected_connects": total}
    # every connection that ended (the kept ones are still open) had a $disconnect, or lost it
    figures["disconnect_lost"] = log.outcomes["$connect connected"] - keepers.open_count() - routes["$disconnect"]

    # 1. drift before prune
    live = set(keepers.ids)
    drift = await asyncio.to_thread(_drift, emulator, live)
    kind_of = {cid: name for tally in (warm, main) for name, ids in tally.ids.items() for cid in ids}
    stale_by_kind = Counter(kind_of.get(cid, "unknown") for cid in drift["stale"])
    figures["before_prune"] = {"registry": drift["entries"], "live": len(live), "drift": len(drift["stale"]),
                               "stale_by_ending": dict(stale_by_kind), "missing_live": len(drift["missing"]),
                               "orphan_items": len(drift["orphan_items"])}

    # 2. prune, then the exact check with the K kept open, then with none
    started = time.monotonic()
    reports = await asyncio.to_thread(prune_until_checked, emulator)
    figures["prune"] = dict(reports[-1], runs=len(reports), wall_s=round(time.monotonic() - started, 1))
    figures["prune"].pop("removedIds", None)
    drift = await asyncio.to_thread(_drift, emulator, live)
    figures["after_prune"] = {"registry": drift["entries"], "live": len(live), "drift": len(drift["stale"]),
                              "missing_live": len(drift["missing"]), "orphan_items": len(drift["orphan_items"]),
                              "item_ids": drift["items_ids"]}
    await keepers.close()
    await settle(emulator, log, opts.quiet_for)
    drift = await asyncio.to_thread(_drift, emulator, set())
    figures["after_close"] = {"registry": drift["entries"], "item_ids": drift["items_ids"]}

    # 3. handler errors; 4. RSS
    figures["handler_errors"] = log.update().errors()
    figures["rss_after"] = rss_mb(emulator.pid)
    figures["moto_rss_after"] = rss_mb(moto) if figures["moto_rss_before"] else None


def run_churn(opts: ChurnOptions, home=None) -> dict:
    """Start the emulator (and backend), run the soak, stop them; returns the figures, with
    `failures` listing every check that did not hold."""
    args = ["--idle-timeout", str(opts.idle_timeout), "--fault", "disconnect-loss=%s" % opts.disconnect_loss,
            "--fault-seed", str(opts.seed), *opts.emulator_args]
    return run_on_stack(opts, args, "churn", home, _run, failures)


def failures(f: dict) -> list[str]:
    found = []
    if f["client_errors"]:
        found.append("client errors: %s" % f["client_errors"])
    if f["unexpected_close_codes"]:
        found.append("unexpected close codes: %s" % f["unexpected_close_codes"])
    if f["invocations"]["connect"] != f["invocations"]["expected_connects"]:
        found.append("$connect registered %d connections, expected %d" % (
            f["invocations"]["connect"], f["invocations"]["expected_connects"]))
    before = f["before_prune"]
    if set(before["stale_by_ending"]) - {"drop"}:
        found.append("stale entries after endings other than a drop: %s" % before["stale_by_ending"])
    if before["drift"] != f["disconnect_lost"]:
        found.append("stale entries before prune (%d) != $disconnects lost (%d)" % (before["drift"],
                                                                                 f["disconnect_lost"]))
    if before["missing_live"]:
        found.append("%d live connections missing from the registry" % before["missing_live"])
    after = f["after_prune"]
    if after["drift"] or after["missing_live"] or after["orphan_items"] or after["registry"] != f["keep_open"]:
        found.append("after prune the registry is not exactly the live connections: %s" % after)
    if f["after_close"]["item_ids"]:
        found.append("after every connection closed the registry still holds %d ids" % f["after_close"]["item_ids"])
    if f["handler_errors"]["tracebacks"] or f["handler_errors"]["exceptions"]:
        found.append("handler errors: %s" % f["handler_errors"])
    if f["rss_before"] and f["rss_after"] > f["rss_before"] * (1 + RSS_TOLERANCE):
        found.append("gateway RSS %.0f -> %.0f MiB (more than %d%% above)" % (
            f["rss_before"], f["rss_after"], RSS_TOLERANCE * 100))
    return found


def print_figures(f: dict) -> None:
    rss_change = (f["rss_after"] / f["rss_before"] - 1) * 100 if f["rss_before"] else float("nan")
    before, after, prune = f["before_prune"], f["after_prune"], f["prune"]
    rows = [
        ("backend", f["backend"]),
        ("lifetimes (after a warm-up of)", "%d over %d clients (%d), %d kept open" % (
            f["lifetimes"], f["clients"], f["warmup"], f["keep_open"])),
        ("endings", ", ".join("%s %d" % kv for kv in f["endings"].items())),
        ("wall, lifetimes per second", "%.1f s, %.1f/s (handshake p50 %.1f ms, p99 %.1f ms)" % (
            f["wall_s"], f["lifetimes_per_s"], f["handshake_ms_p50"], f["handshake_ms_p99"])),
        ("CPU during the run", ", ".join("%s %.1f s" % kv for kv in f["cpu_s"].items())),
        ("$disconnect lost (injected)", f["disconnect_lost"]),
        ("drift before prune", "%d stale (%s); registry %d, live %d, live missing %d" % (
            before["drift"], ", ".join("%s %d" % kv for kv in before["stale_by_ending"].items()) or "-",
            before["registry"], before["live"], before["missing_live"])),
        ("prune", "checked %d, gone %d, removed %d, orphaned memberships %d, in %.1f s (%d run%s)" % (
            prune["checked"], prune["gone"], prune["removed"], prune["orphaned"], prune["wall_s"], prune["runs"],
            "" if prune["runs"] == 1 else "s")),
        ("drift after prune", "%d (registry %d == live %d; live missing %d, stray items %d)" % (
            after["drift"], after["registry"], after["live"], after["missing_live"], after["orphan_items"])),
        ("registry after closing the kept ones", "%d ids" % f["after_close"]["item_ids"]),
        ("handler errors", "%d tracebacks, %d exceptions %s" % (
            f["handler_errors"]["tracebacks"], f["handler_errors"]["exceptions"],
            f["handler_errors"]["by_kind"] or "")),
        ("client errors", f["client_errors"] or "none"),
        ("unexpected close codes", f["unexpected_close_codes"] or "none"),
        ("gateway RSS", "%.1f MiB after warm-up -> %.1f MiB after (%+.1f%%), peak %.1f" % (
            f["rss_before"], f["rss_after"], rss_change, f["peak_rss"])),
    ]
    if f.get("moto_rss_before"):
        rows.append(("moto RSS", "%.1f -> %.1f MiB" % (f["moto_rss_before"], f["moto_rss_after"])))
    print()
    for key, value in rows:
        print("  %-38s %s" % (key, value))
    print()
    for problem in f["failures"]:
        print("  FAIL: %s" % problem)
    print("%s churn soak" % verdict(not f["failures"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lifetimes", "-n", type=int, default=50000)
    parser.add_argument("--clients", "-c", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=None, help="lifetimes before the RSS baseline "
                        "(default: 4 per client, at most a tenth of --lifetimes)")
    parser.add_argument("--mix", type=parse_mix, default=ChurnOptions().mix,
                        help="shares of the endings, e.g. clean=0.35,drop=0.25,kick=0.2,idle=0.2")
    parser.add_argument("--disconnect-loss", type=float, default=0.3,
                        help="share of drops whose $disconnect the emulator loses")
    parser.add_argument("--idle-timeout", type=float, default=ChurnOptions.idle_timeout,
                        help="the emulator's --idle-timeout (s). Only the client's frames count as activity, so "
                        "it must exceed the time the emulator takes to answer a frame under the load, or "
                        "lifetimes are idle-closed half-way (500 clients on moto: answers take ~10 s)")
    parser.add_argument("--keep-open", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1, help="the client plan's and the emulator's --fault-seed")
    parser.add_argument("--backend", choices=("moto", "dynamodb-local"), default="moto")
    parser.add_argument("--dynamodb-endpoint", help="an external DynamoDB (overrides --backend)")
    parser.add_argument("--emulator-arg", action="append", default=[], help="more `wsctl local up` arguments")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()
    raise_nofile()
    exit_on_sigterm()
    banner("churn soak: %d lifetimes over %d clients" % (args.lifetimes, args.clients))
    opts = ChurnOptions(lifetimes=args.lifetimes, clients=args.clients, warmup=args.warmup, mix=args.mix,
                        disconnect_loss=args.disconnect_loss, idle_timeout=args.idle_timeout,
                        keep_open=args.keep_open, seed=args.seed, backend=args.backend,
                        dynamodb_endpoint=args.dynamodb_endpoint, emulator_args=tuple(args.emulator_arg))
    figures = run_churn(opts)
    print_figures(figures)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    sys.exit(1 if figures["failures"] else 0)


if __name__ == "__main__":
    main()
