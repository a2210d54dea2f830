"""Fault injection: is anything lost without a word when the management API and the handler fail,
or when the registry's DynamoDB stops answering?

Part 1, delivery under faults. The emulator answers a share of @connections calls with 410, 429
or 500 (`--fault mgmt-410=...` etc.), fails or times out a share of handler invocations
(`--fault handler-error=... --fault handler-timeout=...`; on $connect that is a 502/504, on a
frame AWS's "Internal server error" / "Endpoint request timed out" frame), and loses the
$disconnect of every socket that drops (`--fault disconnect-loss=1`). Users with several
connections each sit in rooms. Each round some sockets drop (stale entries), and then, one after
another:

- `wsctl --local -o json broadcast` (the CLI: fan-out engine, lean transport, its own retries),
- `sendMessage` to a user with several connections (the handler: boto3 standard retries),
- `sendRoom` to each room.

Every client records each message it receives (duplicates counted apart: at-least-once allows
them). Before and after each send the registry is read, so each message is accounted for:

- expected: the live connections the registry lists as its recipients;
- missing: expected recipients that never received it;
- every missing recipient must be reported: by id in the CLI's `notDelivered`, or in the sender's
  ack counts (throttled/failed), or as "gone" with its registry entry removed (see below), or the
  sender's frame itself was refused (error frame after all its retries). Anything else is
  silently lost, and the run fails;
- every "gone" a sender reports is a registry entry removed, and every removed entry was reported.

An injected 410 on a live connection: AWS's semantics are that 410 means the connection is gone,
so the sender removes its registry entry, as it must. The suite counts those apart ("live entries
pruned by an injected 410"): the message is reported as not delivered (gone) to that connection,
the connection is still open but unreachable through the registry, and, like a client that
notices it hears nothing, it reconnects at the start of the next round. They are never counted as
silent losses, and never as delivered.

Senders resend a frame that got an error frame (the handler never ran); clients reconnect after a
502/504 on $connect. At the end: `wsctl --local prune` until every entry could be checked, then
the registry must be exactly the live connections (minus any live entry a prune's injected 410
removed), then empty once they close; and the handler must have raised nothing.

Part 2, DynamoDB outage (--outage). The emulator runs with --dynamodb-endpoint on a DynamoDB the
suite stops: "kill" stops the process (connections refused) and starts it again on the same port;
"freeze" stops it answering (SIGSTOP: connections accepted, never answered) and lets it go on.
While it is down: a new connection must be refused with 500 in bounded time (fail closed), a
relay gets an error frame, `wsctl --local connections list` prints one line starting "error:"
and exits non-zero. Once it is back, without restarting the emulator: connects, relays and the
CLI work, and a prune leaves the registry exactly the live connections.

    python bench/faults.py                                    # part 1 and part 2 (DynamoDB Local)
    python bench/faults.py --rounds 3 --users 8 --outage-backend moto   # smaller; no Java needed
    python bench/faults.py --no-outage / --outage-only

tests/test_reliability.py runs both at CI size through run_faults() and run_outage().
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import Emulator, banner, exit_on_sigterm, raise_nofile, verdict  # noqa: E402
from reliability import (ERROR_FRAMES, Client, LogTail, RestartableDynamoDBLocal, RestartableMoto,  # noqa: E402
                         prune_until_checked, refusal_status, registry_items, run_on_stack, wsctl,
                         wsctl_json, ws_options)

from lambda_src import keys  # noqa: E402


# == part 1: delivery under faults =====================================================================
@dataclass
class FaultOptions:
    users: int = 20
    per_user: int = 3
    rooms: int = 5
    rounds: int = 6
    drops: int = 4  # sockets dropped (stale entries) per round
    user_sends: int = 4  # sendMessage per round
    shares: dict = field(default_factory=lambda: {"mgmt-410": 0.05, "mgmt-429": 0.15, "mgmt-500": 0.10,
                                                  "handler-error": 0.05, "handler-timeout": 0.05})
    seed: int = 7
    backend: str = "moto"
    dynamodb_endpoint: str | None = None
    progress: bool = True

    def emulator_args(self) -> list[str]:
        args = ["--fault", "disconnect-loss=1", "--fault-seed", str(self.seed)]
        for kind, share in self.shares.items():
            args += ["--fault", "%s=%s" % (kind, share)]
        return args


class Snapshot:
    """The registry at one moment: connection ids and room memberships."""

    def __init__(self, emulator):
        items = registry_items(emulator)
        self.connections = {cid for cid, sk in items if sk == keys.CONN_SK}
        self.members: dict[str, set] = {}
        for cid, sk in items:
            if sk.startswith(keys.ROOM_PREFIX):
                self.members.setdefault(keys.room_of(sk), set()).add(cid)
        self.ids = {cid for cid, _ in items}


class Ledger:
    """Every message's accounting, and the totals."""

    def __init__(self):
        self.rows = []
        self.totals = Counter()

    def account(self, kind: str, mid: str, expected: set, targets_stale: set, before: Snapshot, after: Snapshot,
                clients: dict, reported_ids: set | None, reported_count: int, gone_reported: int | None,
                refused: str | None, answer=None) -> dict:
        received = {cid for cid in expected if clients[cid].received[mid] >= 1}
        duplicates = sum(clients[cid].received[mid] - 1 for cid in expected if clients[cid].received[mid] > 1)
        missing = expected - received
        vanished_live = (expected & before.connections) - after.connections
        vanished_stale = (targets_stale & before.connections) - after.connections
        if refused:  # the sender was told it failed (an error frame after its resends, or the handler's)
            unexplained = set()
        elif reported_ids is not None:  # the CLI names every connection it did not deliver to
            unexplained = missing - vanished_live - reported_ids
        else:  # the handler's ack counts them
            count = len(missing - vanished_live) - reported_count
            unexplained = set(sorted(missing - vanished_live)[:count]) if count > 0 else set()
        gone_mismatch = 0
        if gone_reported is not None and not refused:
            gone_mismatch = gone_reported - len(vanished_live) - len(vanished_stale)
        row = {"kind": kind, "mid": mid, "expected": len(expected), "received": len(received),
               "duplicates": duplicates, "missing": len(missing), "reported_not_delivered": reported_count,
               "live_pruned_by_410": len(vanished_live), "stale_pruned": len(vanished_stale),
               "stale_targeted": len(targets_stale), "silently_lost": len(unexplained),
               "live_pruned_but_received": len(vanished_live & received),
               "gone_mismatch": gone_mismatch, "refused": bool(refused)}
        if unexplained or gone_mismatch or (vanished_live & received):
            row["answer"] = answer
        self.rows.append(row)
        self.totals.update({k: v for k, v in row.items() if isinstance(v, int) and not isinstance(v, bool)})
        self.totals["messages"] += 1
        self.totals["messages " + kind] += 1
        self.totals["refused"] += int(bool(refused))
        if refused:
            self.totals["refused: %s" % refused] += 1
        return row


def _ack_counts(answer: dict) -> tuple[int, int | None, str | None]:
    """(not delivered and reported, gone reported, why the send was refused) from a relay's answer."""
    if answer is None or answer.get("message") in ERROR_FRAMES:
        return 0, None, (answer or {}).get("message", "no answer")  # after all the sender's resends
    if answer.get("type") == "sent":
        return answer.get("throttled", 0) + answer.get("failed", 0) + answer.get("forbidden", 0), \
            answer.get("gone", 0), None
    # the handler's error frame, e.g. no_connection when every recipient answered 410
    return 0, None, "error %s" % answer.get("error")


class Population:
    def __init__(self, emulator, opts: FaultOptions, rng: random.Random):
        self.emulator, self.opts, self.rng = emulator, opts, rng
        self.clients: list[Client] = []
        self.rooms = ["room-%d" % r for r in range(opts.rooms)]
        self.counter = 0
        self.connect_refusals = Counter()
        self.error_frames = Counter()
        self.ids_of_user: dict[str, set] = {}  # every connection id a user had in the run, live or dropped

    def by_cid(self) -> dict:
        return {c.cid: c for c in self.clients}

    async def open(self, user: str, room: str) -> Client:
        self.counter += 1
        client = Client("c%d" % self.counter, user, room)
        await client.open("%s?token=%s" % (self.emulator.url, self.emulator.token(user)))
        self.connect_refusals.update(client.refusals)
        self.ids_of_user.setdefault(user, set()).add(client.cid)
        return client

    async def start(self):
        specs = [("user-%02d" % (i // self.opts.per_user), self.rooms[i % len(self.rooms)])
                 for i in range(self.opts.users * self.opts.per_user)]
        self.clients = list(await asyncio.gather(*(self.open(u, r) for u, r in specs)))

    async def replace(self, old: list[Client], drop: bool) -> None:
        for client in old:
            if drop:
                client.abort()
            else:
                await client.close()
            self.error_frames.update(client.error_frames)
            self.clients.remove(client)
        self.clients += list(await asyncio.gather(*(self.open(c.user, c.room) for c in old)))

    async def close_all(self):
        for client in self.clients:
            await client.close()
            self.error_frames.update(client.error_frames)


async def _settle_frames(seconds: float = 0.1):
    """The relay answers its sender after every post was queued on the recipients' sockets:
    a moment for the clients' readers to take them in."""
    await asyncio.sleep(seconds)


async def _round(emulator, pop: Population, ledger: Ledger, number: int, opts: FaultOptions, say) -> None:
    rng = pop.rng
    # live connections whose entry an injected 410 removed reconnect; some sockets drop (stale)
    registry = await asyncio.to_thread(Snapshot, emulator)
    orphans = [c for c in pop.clients if c.cid not in registry.connections]
    if orphans:
        await pop.replace(orphans, drop=False)
    await pop.replace(rng.sample(pop.clients, min(opts.drops, len(pop.clients))), drop=True)
    await asyncio.sleep(0.3)  # the emulator notices the dropped sockets

    # the CLI broadcast
    before = await asyncio.to_thread(Snapshot, emulator)
    clients = pop.by_cid()
    live = set(clients)
    mid = "b%d" % number
    code, report, stderr = await asyncio.to_thread(wsctl_json, emulator, "broadcast", json.dumps({"mid": mid}))
    await _settle_frames()
    after = await asyncio.to_thread(Snapshot, emulator)
    counts = report.get("counts", {})
    not_delivered = set(report.get("notDelivered", []))
    ledger.account("broadcast", mid, before.connections & live, before.connections - live, before, after,
                         clients, not_delivered & live, len(not_delivered), counts.get("gone", 0),
                         refused=None if "counts" in report else "wsctl exit %d: %s" % (code, stderr.strip()),
                         answer=report)
    if report.get("pruned") != counts.get("gone"):
        ledger.totals["cli_pruned_mismatch"] += 1
    ledger.totals["cli_exit_%d" % code] += 1
    if (code == 0) != (not not_delivered):
        ledger.totals["cli_exit_code_wrong"] += 1

    # sendMessage to users with several connections
    users = sorted({c.user for c in pop.clients})
    for k, user in enumerate(rng.sample(users, min(opts.user_sends, len(users)))):
        before = await asyncio.to_thread(Snapshot, emulator)
        clients = pop.by_cid()
        live = set(clients)
        sender = rng.choice([c for c in pop.clients if c.user != user and c.cid in before.connections])
        targets = pop.ids_of_user[user] & before.connections  # live ones, and stale ones of dropped sockets
        mid = "u%d-%d" % (number, k)
        answer = await sender.request({"action": "sendMessage", "targetUserId": user,
                                       "text": json.dumps({"mid": mid})})
        await _settle_frames()
        after = await asyncio.to_thread(Snapshot, emulator)
        reported, gone, refused = _ack_counts(answer)
        ledger.account("sendMessage", mid, targets & live, targets - live, before, after, clients, None,
                       reported, gone, refused, answer)

    # sendRoom to every room
    for k, room in enumerate(pop.rooms):
        before = await asyncio.to_thread(Snapshot, emulator)
        clients = pop.by_cid()
        live = set(clients)
        members = before.members.get(room, set())
        senders = [c for c in pop.clients if c.room == room and c.cid in members]
        if not senders:
            continue
        sender = rng.choice(senders)
        mid = "r%d-%d" % (number, k)
        answer = await sender.request({"action": "sendRoom", "room": room, "text": json.dumps({"mid": mid})})
        await _settle_frames()
        after = await asyncio.to_thread(Snapshot, emulator)
        reported, gone, refused = _ack_counts(answer)
        ledger.account("sendRoom", mid, (members & live) - {sender.cid}, members - live, before, after, clients,
                       None, reported, gone, refused, answer)
    say("  round %d: %d messages so far, %d expected deliveries, %d missing (%d reported, %d live pruned by an "
        "injected 410), %d silently lost" % (number, ledger.totals["messages"], ledger.totals["expected"],
                                             ledger.totals["missing"], ledger.totals["reported_not_delivered"],
                                             ledger.totals["live_pruned_by_410"], ledger.totals["silently_lost"]))


async def _faults(emulator, opts: FaultOptions, figures: dict) -> None:
    say = print if opts.progress else (lambda *a, **k: None)
    rng = random.Random(opts.seed)
    log = LogTail(emulator)
    pop = Population(emulator, opts, rng)
    started = time.monotonic()
    await pop.start()
    ledger = Ledger()
    for number in range(1, opts.rounds + 1):
        await _round(emulator, pop, ledger, number, opts, say)
    figures["wall_s"] = round(time.monotonic() - started, 1)

    # the end: a few more drops, prune until every entry was checked, the exact check
    await pop.replace(rng.sample(pop.clients, min(opts.drops, len(pop.clients))), drop=True)
    await asyncio.sleep(0.3)
    reports = await asyncio.to_thread(prune_until_checked, emulator)
    end = await asyncio.to_thread(Snapshot, emulator)
    live = set(pop.by_cid())
    pruned_live = live - end.connections  # a prune's GetConnection answered an injected 410
    figures["prune"] = {"runs": len(reports), "gone": sum(r["gone"] for r in reports),
                        "removed": sum(r["removed"] for r in reports),
                        "unknown_first_run": reports[0]["unknown"], "unknown_last_run": reports[-1]["unknown"],
                        "live_pruned_by_410": len(pruned_live)}
    figures["after_prune"] = {"registry": len(end.connections), "live": len(live),
                              "stale": len(end.connections - live),
                              "stray_items": len(end.ids - end.connections - live),
                              "live_unregistered": len(pruned_live)}
    expected = log.update().routes["$disconnect"] + len(pop.clients)
    await pop.close_all()
    deadline = time.monotonic() + 30
    while log.update().routes["$disconnect"] < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(prune_until_checked, emulator)
    final = await asyncio.to_thread(Snapshot, emulator)
    figures["after_close"] = {"item_ids": len(final.ids)}
    figures["ledger"] = dict(ledger.totals)
    figures["problems"] = [row for row in ledger.rows if row.get("answer") is not None]
    figures["connect_refusals_retried"] = {str(k): v for k, v in pop.connect_refusals.items()}
    figures["error_frames_resent"] = dict(pop.error_frames)
    figures["handler_errors"] = log.update().errors()
    figures["invocations"] = dict(log.routes)


def run_faults(opts: FaultOptions, home=None) -> dict:
    return run_on_stack(opts, opts.emulator_args(), "faults", home, _faults, fault_failures)


def fault_failures(f: dict) -> list[str]:
    found = []
    t = f["ledger"]
    if t.get("silently_lost"):
        found.append("%d deliveries silently lost: %s" % (t["silently_lost"], f["problems"]))
    if t.get("gone_mismatch"):
        found.append("gone reported != registry entries removed (%d): %s" % (t["gone_mismatch"], f["problems"]))
    if t.get("live_pruned_but_received"):
        found.append("a live entry pruned although it received the message: %s" % f["problems"])
    if t.get("cli_pruned_mismatch") or t.get("cli_exit_code_wrong"):
        found.append("wsctl broadcast's report or exit code is wrong: %s" % t)
    a = f["after_prune"]
    if a["stale"] or a["stray_items"] or a["registry"] != a["live"] - a["live_unregistered"]:
        found.append("after prune the registry is not exactly the live connections: %s" % a)
    if f["prune"]["unknown_last_run"]:
        found.append("prune could not check %d entries after %d runs" % (f["prune"]["unknown_last_run"],
                                                                         f["prune"]["runs"]))
    if f["after_close"]["item_ids"]:
        found.append("the registry holds %d ids after every connection closed" % f["after_close"]["item_ids"])
    if f["handler_errors"]["tracebacks"] or f["handler_errors"]["exceptions"]:
        found.append("handler errors: %s" % f["handler_errors"])
    return found


def print_fault_figures(f: dict) -> None:
    t = Counter(f["ledger"])
    shares = ", ".join("%s=%s" % kv for kv in f["options"]["shares"].items())
    rows = [
        ("backend, faults", "%s; %s, disconnect-loss=1, seed %d" % (f["backend"], shares, f["options"]["seed"])),
        ("connections, rounds", "%d users x %d, %d rooms, %d rounds (%.1f s)" % (
            f["options"]["users"], f["options"]["per_user"], f["options"]["rooms"], f["options"]["rounds"],
            f["wall_s"])),
        ("messages", "%d: broadcast (CLI) %d, sendMessage %d, sendRoom %d" % (
            t["messages"], t["messages broadcast"], t["messages sendMessage"], t["messages sendRoom"])),
        ("expected deliveries", t["expected"]),
        ("delivered at least once", "%d (%.2f%%)" % (t["received"], 100 * t["received"] / (t["expected"] or 1))),
        ("duplicates", t["duplicates"]),
        ("missing", t["missing"]),
        ("  reported by the sender", "%d (CLI notDelivered ids + ack throttled/failed counts)"
         % t["reported_not_delivered"]),
        ("  live entries pruned by an injected 410", "%d (reported as gone; the client reconnects)"
         % t["live_pruned_by_410"]),
        ("  the send itself refused (sender told)", "%d %s" % (t["refused"], ", ".join(
            "%s %d" % (k[9:], v) for k, v in sorted(t.items()) if k.startswith("refused: ")))),
        ("  silently lost", t["silently_lost"]),
        ("stale entries pruned by senders", "%d of %d targeted" % (t["stale_pruned"], t["stale_targeted"])),
        ("gone reported != entries removed", t["gone_mismatch"]),
        ("wsctl broadcast exit codes", ", ".join("%s %d" % (k[9:], v) for k, v in sorted(t.items())
                                                 if k.startswith("cli_exit_") and k != "cli_exit_code_wrong")),
        ("$connect refused and retried", f["connect_refusals_retried"] or "none"),
        ("error frames resent by senders", f["error_frames_resent"] or "none"),
        ("prune at the end", "%d run(s), gone %d, removed %d, could not check %d then %d, live pruned by 410 %d" % (
            f["prune"]["runs"], f["prune"]["gone"], f["prune"]["removed"], f["prune"]["unknown_first_run"],
            f["prune"]["unknown_last_run"], f["prune"]["live_pruned_by_410"])),
        ("registry after prune", "%(registry)d entries, %(live)d live, %(stale)d stale, %(stray_items)d stray "
         "items, %(live_unregistered)d live unregistered" % f["after_prune"]),
        ("registry after all closed", "%d ids" % f["after_close"]["item_ids"]),
        ("handler errors", "%d tracebacks, %d exceptions %s" % (
            f["handler_errors"]["tracebacks"], f["handler_errors"]["exceptions"],
            f["handler_errors"]["by_kind"] or "")),
    ]
    print()
    for key, value in rows:
        print("  %-42s %s" % (key, value))
    print()
    for problem in f["failures"]:
        print("  FAIL: %s" % problem)
    print("%s delivery under faults" % verdict(not f["failures"]))


# == part 2: DynamoDB outage ============================================================================
@dataclass
class OutageOptions:
    backend: str = "dynamodb-local"  # or moto (no Java)
    modes: tuple = ("kill", "freeze")
    cli_modes: tuple = ("kill", "freeze")  # outages during which `connections list` is tried
    connect_bound: float = 12.0  # seconds within which $connect must be refused
    progress: bool = True


async def _timed_connect(emulator, user: str) -> tuple[object, float, object]:
    """(status: 101 or the refusal's HTTP status or an exception name, seconds, the socket)."""
    from websockets.asyncio.client import connect

    started = time.monotonic()
    try:
        ws = await connect("%s?token=%s" % (emulator.url, emulator.token(user)), **ws_options(open_timeout=120))
        return 101, time.monotonic() - started, ws
    except Exception as error:
        return refusal_status(error) or type(error).__name__, time.monotonic() - started, None


async def _timed_cli(emulator, *args) -> dict:
    started = time.monotonic()
    done = await asyncio.to_thread(wsctl, emulator, *args)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return {"exit": done.returncode, "seconds": round(time.monotonic() - started, 2), "stderr_lines": len(lines),
            "line": lines[0] if lines else "", "traceback": "Traceback" in done.stderr + done.stdout}


async def _timed_request(client: Client, frame: dict) -> tuple[dict, float]:
    started = time.monotonic()
    answer = await client.request(frame, attempts=1, timeout=120)
    return answer, time.monotonic() - started


async def _outage(emulator, db, mode: str, opts: OutageOptions, say) -> dict:
    figures = {"mode": mode}
    log = LogTail(emulator).skip_to_end()
    alice1 = Client("alice1", "alice-%s" % mode)
    alice2 = Client("alice2", "alice-%s" % mode)
    bob = Client("bob", "bob-%s" % mode)
    for client in (alice1, alice2, bob):
        await client.open("%s?token=%s" % (emulator.url, emulator.token(client.user)))
    answer = await bob.request({"action": "sendMessage", "targetUserId": alice1.user, "text": '{"mid": "m0"}'})
    await asyncio.sleep(0.2)
    figures["before"] = {"relay": answer.get("delivered"), "received": alice1.received["m0"] + alice2.received["m0"]}

    # down
    if mode == "kill":
        db.stop()
    else:
        db.freeze()
    down_at = time.monotonic()
    say("  %s: DynamoDB down" % mode)
    tasks = {"connect": _timed_connect(emulator, "carol-%s" % mode),
             "relay": _timed_request(bob, {"action": "sendMessage", "targetUserId": alice1.user,
                                           "text": '{"mid": "m1"}'})}
    if mode in opts.cli_modes:
        tasks["cli"] = _timed_cli(emulator, "connections", "list")
    results = dict(zip(tasks, await asyncio.gather(*tasks.values())))
    status, seconds, ws = results["connect"]
    if ws is not None:
        await ws.close()
    figures["connect_down"] = {"status": status, "seconds": round(seconds, 2)}
    answer, seconds = results["relay"]
    figures["relay_down"] = {"answer": (answer or {}).get("message") or (answer or {}).get("type"),
                             "seconds": round(seconds, 2)}
    figures["cli_down"] = results.get("cli")
    closed_id = alice2.cid
    await alice2.close()  # its $disconnect cannot reach the registry: a stale entry (or none, if the data died)
    await asyncio.sleep(0.5)
    figures["down_s"] = round(time.monotonic() - down_at, 1)

    # back, on the same port, the emulator untouched
    if mode == "kill":
        db.start()
    else:
        db.thaw()
    up_at = time.monotonic()
    say("  %s: DynamoDB back after %.1f s" % (mode, figures["down_s"]))
    attempts = 0
    while True:
        attempts += 1
        status, _, ws = await _timed_connect(emulator, "dave-%s" % mode)
        if status == 101 or time.monotonic() - up_at > 60:
            break
        await asyncio.sleep(0.25)
    figures["first_connect_after"] = {"status": status, "seconds": round(time.monotonic() - up_at, 2),
                                      "attempts": attempts}
    if ws is not None:
        await ws.close()
    live_clients = [alice1, bob]
    survived = {cid for cid, sk in registry_items(emulator) if sk == keys.CONN_SK}
    figures["registry_survived"] = alice1.cid in survived and bob.cid in survived
    if not figures["registry_survived"]:  # the data died with the server: clients reconnect
        for old in (alice1, bob):
            await old.close()
        alice1, bob = Client("alice1b", alice1.user), Client("bobb", bob.user)
        for client in (alice1, bob):
            await client.open("%s?token=%s" % (emulator.url, emulator.token(client.user)))
        live_clients = [alice1, bob]
    answer = await bob.request({"action": "sendMessage", "targetUserId": alice1.user, "text": '{"mid": "m2"}'})
    await asyncio.sleep(0.2)
    figures["relay_after"] = {"ack": {k: v for k, v in (answer or {}).items() if k != "ts"},
                              "received": alice1.received["m2"]}
    figures["cli_after"] = await _timed_cli(emulator, "connections", "list")
    reports = await asyncio.to_thread(prune_until_checked, emulator)
    live = {c.cid for c in live_clients}
    items = registry_items(emulator)
    registered = {cid for cid, sk in items if sk == keys.CONN_SK}
    removed = {cid for r in reports for cid in r["removedIds"]}
    figures["prune_after"] = {"gone": sum(r["gone"] for r in reports), "removed": sum(r["removed"] for r in reports),
                              # closed while DynamoDB was down: its $disconnect could not delete it
                              "closed_during_outage": int(closed_id in removed),
                              # a $connect refused during the outage whose PutItem had reached the
                              # server and was applied when it answered again
                              "refused_but_written": len(removed - {closed_id}),
                              "registry": len(registered), "live": len(live),
                              "exact": registered == live and {cid for cid, _ in items} <= live}
    for client in live_clients:
        await client.close()
    errors = log.update().errors()
    figures["handler_exceptions_during"] = errors["by_kind"]
    return figures


async def _outages(emulator, db, opts: OutageOptions, say) -> list[dict]:
    return [await _outage(emulator, db, mode, opts, say) for mode in opts.modes]


def run_outage(opts: OutageOptions, home=None) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="wsctl-outage-"))
    if opts.backend == "moto":
        db = RestartableMoto(table="wsctl-outage-connections")
    else:
        db = RestartableDynamoDBLocal(scratch / "ddb")
    figures = {"backend": "moto server (tables recreated on restart)" if opts.backend == "moto"
               else "DynamoDB Local -dbPath (data kept across restarts)"}
    db.start()
    emulator = Emulator(dynamodb_endpoint=db.endpoint, stack="outage", home=home or scratch / "home", quiet=False)
    try:
        emulator.start()
        figures["modes"] = asyncio.run(_outages(emulator, db, opts, print if opts.progress else
                                                (lambda *a, **k: None)))
    finally:
        emulator.stop(timeout=30)
        db.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    figures["failures"] = outage_failures(figures, opts)
    return figures


def outage_failures(f: dict, opts: OutageOptions) -> list[str]:
    found = []
    for m in f["modes"]:
        mode = m["mode"]
        if m["connect_down"]["status"] != 500 or m["connect_down"]["seconds"] > opts.connect_bound:
            found.append("%s: $connect answered %s after %.1f s (want 500 within %.0f s)" % (
                mode, m["connect_down"]["status"], m["connect_down"]["seconds"], opts.connect_bound))
        if m["relay_down"]["answer"] not in ERROR_FRAMES:
            found.append("%s: a relay while DynamoDB is down answered %s" % (mode, m["relay_down"]))
        cli = m["cli_down"]
        if cli and (cli["exit"] == 0 or cli["stderr_lines"] != 1 or not cli["line"].startswith("error:")
                    or cli["traceback"]):
            found.append("%s: connections list while DynamoDB is down: %s" % (mode, cli))
        if m["first_connect_after"]["status"] != 101:
            found.append("%s: no connect after DynamoDB came back: %s" % (mode, m["first_connect_after"]))
        if m["relay_after"]["received"] != 1 or m["relay_after"]["ack"].get("delivered") != 1:
            found.append("%s: relay after recovery: %s" % (mode, m["relay_after"]))
        if m["cli_after"]["exit"] != 0:
            found.append("%s: connections list after recovery: %s" % (mode, m["cli_after"]))
        if not m["prune_after"]["exact"]:
            found.append("%s: after recovery and prune the registry is not the live connections: %s"
                         % (mode, m["prune_after"]))
    return found


def print_outage_figures(f: dict) -> None:
    print("\n  DynamoDB outage, %s" % f["backend"])
    for m in f["modes"]:
        cli = m["cli_down"]
        print("  -- %s (%s) --" % (m["mode"], "process stopped, same port restarted" if m["mode"] == "kill"
                                   else "SIGSTOP: accepts, never answers; then SIGCONT"))
        print("    new $connect while down          %s after %.2f s" % (m["connect_down"]["status"],
                                                                       m["connect_down"]["seconds"]))
        print("    sendMessage while down           %r after %.2f s" % (m["relay_down"]["answer"],
                                                                       m["relay_down"]["seconds"]))
        if cli:
            print("    connections list while down      exit %d after %.2f s, %d stderr line(s): %s" % (
                cli["exit"], cli["seconds"], cli["stderr_lines"], cli["line"]))
        print("    first connect once back          %s after %.2f s (%d attempt(s))" % (
            m["first_connect_after"]["status"], m["first_connect_after"]["seconds"],
            m["first_connect_after"]["attempts"]))
        print("    registry survived the outage     %s" % ("yes" if m["registry_survived"] else
                                                           "no (clients reconnected)"))
        print("    sendMessage once back            ack %s, received %d" % (m["relay_after"]["ack"],
                                                                          m["relay_after"]["received"]))
        print("    connections list once back       exit %d in %.2f s" % (m["cli_after"]["exit"],
                                                                          m["cli_after"]["seconds"]))
        print("    prune once back                  gone %(gone)d, removed %(removed)d (closed during the outage "
              "%(closed_during_outage)d, refused but written late %(refused_but_written)d); registry "
              "%(registry)d == live %(live)d: %(exact)s" % m["prune_after"])
        print("    handler exceptions (all during the outage)  %s" % (m["handler_exceptions_during"] or "none"))
    print()
    for problem in f["failures"]:
        print("  FAIL: %s" % problem)
    print("%s DynamoDB outage" % verdict(not f["failures"]))


def _shares(text: str) -> dict:
    shares = {}
    for part in text.split(","):
        kind, _, share = part.partition("=")
        shares[kind.strip()] = float(share)
    return shares


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=FaultOptions.users)
    parser.add_argument("--per-user", type=int, default=FaultOptions.per_user, help="connections per user")
    parser.add_argument("--rooms", type=int, default=FaultOptions.rooms)
    parser.add_argument("--rounds", type=int, default=FaultOptions.rounds)
    parser.add_argument("--drops", type=int, default=FaultOptions.drops, help="sockets dropped per round")
    parser.add_argument("--user-sends", type=int, default=FaultOptions.user_sends, help="sendMessage per round")
    parser.add_argument("--shares", type=_shares, default=FaultOptions().shares,
                        help="fault shares, e.g. mgmt-410=0.05,mgmt-429=0.15,mgmt-500=0.1,handler-error=0.05,"
                             "handler-timeout=0.05")
    parser.add_argument("--seed", type=int, default=FaultOptions.seed, help="the emulator's --fault-seed")
    parser.add_argument("--backend", choices=("moto", "dynamodb-local"), default="moto",
                        help="the registry for part 1")
    parser.add_argument("--dynamodb-endpoint", help="an external DynamoDB for part 1")
    parser.add_argument("--outage-backend", choices=("moto", "dynamodb-local"), default="dynamodb-local",
                        help="the DynamoDB that part 2 stops and starts")
    parser.add_argument("--outage-modes", default="kill,freeze")
    parser.add_argument("--no-outage", action="store_true")
    parser.add_argument("--outage-only", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()
    raise_nofile()
    exit_on_sigterm()
    banner("fault injection: delivery under management/handler faults; DynamoDB outage")
    results, failed = {}, False
    if not args.outage_only:
        opts = FaultOptions(users=args.users, per_user=args.per_user, rooms=args.rooms, rounds=args.rounds,
                            drops=args.drops, user_sends=args.user_sends, shares=args.shares, seed=args.seed,
                            backend=args.backend, dynamodb_endpoint=args.dynamodb_endpoint)
        results["faults"] = run_faults(opts)
        print_fault_figures(results["faults"])
        failed |= bool(results["faults"]["failures"])
    if not args.no_outage:
        modes = tuple(m.strip() for m in args.outage_modes.split(",") if m.strip())
        results["outage"] = run_outage(OutageOptions(backend=args.outage_backend, modes=modes, cli_modes=modes))
        print_outage_figures(results["outage"])
        failed |= bool(results["outage"]["failures"])
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2, default=str)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
