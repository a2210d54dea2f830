"""Operating a live API: who is connected, sending, broadcasting, pruning, kicking.

These services join the registry (what the table says) with the management
API (what API Gateway says) through the fan-out engine. They act on one
target, local or AWS, the same way.
"""

import asyncio
import base64
import json
import sys
import time
from dataclasses import dataclass

from . import fanout
from .aws import describe, error_code
from .errors import UsageError, WsctlError
from .exitstatus import ExitStatus
from .fanout import serverside
from .fanout.policy import DELIVERED, GONE
from .fanout.report import Delivery, forbidden_line, from_engine, from_segments
from .fanout.transport import for_target
from .limits import MAX_MESSAGE_BYTES, MAX_TIMEOUT_S


# -- payloads ---------------------------------------------------------------------
def read_payload(message: str | None, file: str | None, stdin=None) -> bytes:
    """The payload exactly as given: MESSAGE, --file F, or '-' (MESSAGE or F) for stdin."""
    if message is not None and file is not None:
        raise UsageError("give the payload once: MESSAGE or --file, not both")
    if message is None and file is None:
        raise UsageError("no payload: give MESSAGE, --file FILE, or - to read stdin")
    if message == "-" or file == "-":
        data = (stdin or sys.stdin.buffer).read()
    elif file is not None:
        try:
            with open(file, "rb") as handle:
                data = handle.read(MAX_MESSAGE_BYTES + 1)
        except OSError as error:
            raise UsageError("cannot read %s: %s" % (file, error.strerror)) from None
    else:
        data = message.encode("utf-8")
    if not data:
        raise UsageError("the payload is empty: API Gateway delivers no empty messages")
    if len(data) > MAX_MESSAGE_BYTES:
        raise UsageError("the payload is over %d bytes (API Gateway's limit for one message); nothing was sent"
                         % MAX_MESSAGE_BYTES)
    return data


# -- recipients -----------------------------------------------------------------------
def recipients(target, connection: str | None = None, user: str | None = None, room: str | None = None) -> list[str]:
    chosen = [name for name, value in (("--connection", connection), ("--user", user), ("--room", room)) if value]
    if len(chosen) != 1:
        raise UsageError("choose exactly one of --connection, --user or --room%s"
                         % (" (got %s)" % " and ".join(chosen) if chosen else ""))
    if connection:
        return [connection]
    reader = target.reader()
    what, value = ("user", user) if user else ("room", room)
    try:
        ids = reader.ids_of_user(user) if user else reader.ids_of_room(room)
    except LookupError:
        raise UsageError(_no_lookup(reader.layout, what)) from None
    if not ids:
        raise WsctlError("%s %r has no live %s in the registry" % (what, value, "connection" if user else "member"),
                         ExitStatus.NOT_FOUND)
    return ids


def _no_lookup(layout, what: str) -> str:
    lookup = getattr(layout, what)
    has = ("keeps the %s in %s but has no index on it" % (what, lookup.attribute)) if lookup else \
        "has no index that finds a %s's connections" % what
    return ("--%s needs the registry to find a %s's connections: the table %s %s (describe one with "
            "--registry-%s INDEX:ATTR=TEMPLATE)" % (what, what, layout.table, has, what))


def all_connection_ids(target) -> list[str]:
    return target.reader().connection_ids()


# -- delivery ---------------------------------------------------------------------------
def prunes(target, prune: bool | None) -> bool:
    """Whether gone (410) ids leave the registry: by default only where wsctl owns the table; a
    table of the user's own design is changed only when they ask (--prune)."""
    if prune is False:
        return False
    if prune is None:
        return target.has_registry() and target.registry.owned
    target.registry  # noqa: B018 - --prune on a target without a registry says so
    return True


def remove_connections(target, connection_ids) -> int:
    """Delete every registry item of each connection; returns how many had any."""
    return target.reader().delete(connection_ids)


async def send(target, payload: bytes, connection: str | None = None, user: str | None = None,
               room: str | None = None, concurrency: int = fanout.DEFAULT_CONCURRENCY, prune: bool | None = None,
               progress=None, max_rate: float | None = None) -> Delivery:
    """`send`: to one connection, every live connection of a user, or every member of a room."""
    ids = await asyncio.to_thread(recipients, target, connection, user, room)
    return await deliver(target, ids, payload, concurrency, prune, progress, max_rate, connection=connection)


async def deliver(target, connection_ids, payload: bytes, concurrency: int = fanout.DEFAULT_CONCURRENCY,
                  prune: bool | None = None, progress=None, max_rate: float | None = None,
                  connection: str | None = None) -> Delivery:
    """POST the payload to each id; gone ids leave the registry where `prunes` says."""
    async with for_target(target, concurrency) as sender:
        report = await fanout.run(sender, "POST", connection_ids, payload, concurrency, progress=progress,
                                  pacer=fanout.Pacer(max_rate))
    return _delivered(target, report, prune, connection)


async def broadcast(target, payload: bytes, concurrency: int = fanout.DEFAULT_CONCURRENCY,
                    prune: bool | None = None, progress=None, max_rate: float | None = None) -> Delivery:
    """POST to every live connection, starting with the first scan page."""
    reader = target.reader()  # the registry is found (or refused) before anything is sent
    async with for_target(target, concurrency) as sender:
        stream = fanout.IdStream()

        def scan():
            try:
                reader.connection_ids(on_page=stream.feed)
            finally:
                stream.close()

        scanning = asyncio.get_running_loop().run_in_executor(None, scan)
        report = await fanout.run(sender, "POST", stream, payload, concurrency, progress=progress,
                                  pacer=fanout.Pacer(max_rate))
        if report.interrupted:
            scanning.cancel()  # the scan thread finishes its page; nobody waits for the rest
        else:
            await scanning  # re-raises a failed scan (a missing table, no credentials)
    return _delivered(target, report, prune)


def _delivered(target, report, prune: bool | None, connection: str | None = None) -> Delivery:
    gone = report.ids(GONE)
    pruning = bool(gone) and prunes(target, prune)
    pruned = remove_connections(target, gone) if pruning else 0
    kept = bool(gone) and not pruning and prune is None and target.has_registry()
    where = target.forbidden_where() if report.stopped else ""  # only a refusal needs the API's ARN
    return from_engine(report, target.describe(), pruned, kept, where, connection)


# -- listing --------------------------------------------------------------------------------
def _row(layout, item: dict, rooms) -> dict:
    """A registry item as `connections list` shows it, whatever the table's design."""
    return {"connectionId": layout.connection_id(item), "userId": layout.user_of(item), "rooms": sorted(rooms),
            "connectedAt": layout.connected_at_of(item),
            "ttl": item.get(layout.ttl_attribute) if layout.ttl_attribute else None,
            "sourceIp": item.get("sourceIp"), "userAgent": item.get("userAgent"), "endpoint": item.get("endpoint")}


def _rows(layout, items: list[dict], memberships: dict) -> list[dict]:
    rows = [_row(layout, item, set(memberships.get(layout.connection_id(item), ())) |
                 ({layout.room_of(item)} - {None})) for item in items]
    return sorted(rows, key=lambda r: (render_order(r["connectedAt"]), r["connectionId"]))


def render_order(value) -> float:
    from .render import epoch

    return epoch(value) or 0.0


def gateway_view(target, limit: int | None = None) -> list[dict]:
    """The sockets the emulator holds, for a project with no registry wsctl can read."""
    rows = [{"connectionId": c["connectionId"], "userId": c.get("principalId") or "-", "rooms": [],
             "connectedAt": c["connectedAt"], "ttl": None, "sourceIp": c["sourceIp"],
             "lastActiveAt": c["lastActiveAt"], "view": "gateway"} for c in target.gateway_connections()]
    rows.sort(key=lambda r: r["connectedAt"])
    return rows[:limit] if limit else rows


def list_connections(target, user: str | None = None, room: str | None = None, limit: int | None = None) -> list[dict]:
    if user and room:
        raise UsageError("choose --user or --room, not both")
    if not target.has_registry() and target.gateway_connections() is not None:
        if user or room:
            raise UsageError("--user and --room read the registry; this emulator's API has none wsctl can read (%s)"
                             % (target.finding.missing or "no table"))
        return gateway_view(target, limit)
    reader = target.reader()
    layout = reader.layout
    if user or room:
        try:
            ids = reader.ids_of_user(user) if user else reader.ids_of_room(room)
        except LookupError:
            raise UsageError(_no_lookup(layout, "user" if user else "room")) from None
        items = [i for i in (reader.item(cid) for cid in (ids[:limit] if limit else ids)) if i]
        return _rows(layout, items, {layout.connection_id(i): reader.rooms_of(layout.connection_id(i), i)
                                     for i in items})
    if limit:  # a plain scan that stops early, instead of reading the whole table
        items = reader.first_connections(limit)
        return _rows(layout, items, {layout.connection_id(i): reader.rooms_of(layout.connection_id(i), i)
                                     for i in items})
    everything = reader.scan(live_only=True)
    memberships: dict = {}
    for item in everything:
        if layout.connection_id(item) is None and layout.room_of(item):
            memberships.setdefault(layout.owner_id(item), []).append(layout.room_of(item))
    return _rows(layout, [i for i in everything if layout.connection_id(i) is not None], memberships)


async def connections(target, user: str | None = None, room: str | None = None, limit: int | None = None,
                      live: bool = False, concurrency: int = fanout.DEFAULT_CONCURRENCY) -> list[dict]:
    """`connections list`: the registry's rows (list_connections), each joined with API Gateway's
    GetConnection answer (state, last activity) when `live`."""
    rows = list_connections(target, user, room, limit)
    if live and rows:
        states = await liveness(target, [row["connectionId"] for row in rows], concurrency)
        for row in rows:
            row.update(states.get(row["connectionId"], {}))
    return rows


async def liveness(target, connection_ids, concurrency: int = fanout.DEFAULT_CONCURRENCY) -> dict:
    """GetConnection for each id: {id: {"state": live|gone|unknown, "lastActiveAt": ...}}."""
    async with for_target(target, concurrency) as sender:
        report = await fanout.run(sender, "GET", connection_ids, None, concurrency)
    if report.stopped:
        raise WsctlError(forbidden_line(target.forbidden_where(), report.stopped), ExitStatus.FORBIDDEN)
    states = {}
    for result in report.results:
        state = {DELIVERED: "live", GONE: "gone"}.get(result.outcome, "unknown")
        info = {"state": state}
        if result.outcome == DELIVERED:
            try:
                document = json.loads(result.answer.body or b"{}")
            except ValueError:
                document = {}
            info.update(lastActiveAt=document.get("lastActiveAt"), connectedAtApi=document.get("connectedAt"),
                        identity=document.get("identity"))
        elif state == "unknown":
            info["error"] = result.answer.error_code or result.answer.message or result.outcome
        states[result.connection_id] = info
    return states


async def show(target, connection_id: str) -> dict:
    """One connection: API Gateway's GetConnection, and its registry items where there is a registry
    (a command that needs none works with the API and stage alone)."""
    live = (await liveness(target, [connection_id], 1))[connection_id]
    connection, rooms = None, []
    if target.has_registry():
        reader = target.reader()
        layout = reader.layout
        items = reader.items_of(connection_id)
        connection = next((i for i in items if layout.connection_id(i) is not None), None)
        rooms = sorted({layout.room_of(i) for i in items if layout.room_of(i)})
    if connection is None and live["state"] != "live":
        raise WsctlError("no connection %s: %sAPI Gateway says %s" % (
            connection_id, "not in the registry, and " if target.has_registry() else "",
            live["state"] if live["state"] != "unknown" else live.get("error")), ExitStatus.NOT_FOUND)
    return {"connectionId": connection_id, "registry": connection, "rooms": rooms, "apiGateway": live,
            "userId": target.registry.user_of(connection) if connection else None}


# -- pruning and kicking ------------------------------------------------------------------------
@dataclass
class Pruned:
    """What `prune` found and removed (or, in a dry run, would remove)."""
    target: str
    table: str
    dry_run: bool
    checked: int
    live: int
    expired: list
    gone: list
    orphaned: list
    unknown: list  # could not be checked (throttled or failing)
    keys: list  # every item key removed, or that would be
    removed: int
    seconds: float

    def exit_status(self) -> ExitStatus:
        """Connections that could not be checked leave the prune incomplete."""
        return ExitStatus.INCOMPLETE if self.unknown else ExitStatus.OK

    def problem(self) -> str | None:
        if self.unknown:
            return "%d connection(s) could not be checked (throttled or failing); run prune again" % len(self.unknown)
        return None

    def document(self) -> dict:
        doomed = self.expired + self.gone + self.orphaned
        return {"target": self.target, "dryRun": self.dry_run, "table": self.table, "checked": self.checked,
                "live": self.live, "expired": len(self.expired), "gone": len(self.gone),
                "orphaned": len(self.orphaned), "unknown": len(self.unknown), "removed": self.removed,
                "wouldRemove": len(doomed) if self.dry_run else 0, "removedIds": doomed, "keys": self.keys,
                "unknownIds": self.unknown, "seconds": round(self.seconds, 3)}


async def prune(target, dry_run: bool = False, yes: bool = False, concurrency: int = fanout.DEFAULT_CONCURRENCY,
                progress=None) -> Pruned:
    """Reconcile the registry with API Gateway, sending nobody a message: remove entries whose
    ttl has passed, whose GetConnection answers 410, and (wsctl's own layout) memberships left
    without a connection. A table wsctl does not own is changed only with `yes`."""
    layout = target.registry
    if not (dry_run or yes or layout.owned):
        raise UsageError("prune would delete from %s, which wsctl did not make (%s): see every key it would delete "
                         "with --dry-run, then delete them with --yes" % (layout.table, target.describe()))
    reader = target.reader()
    now = time.time()
    connections, owners = {}, set()
    for item in reader.scan():
        cid = layout.connection_id(item)
        if cid is not None:
            connections[cid] = item
        elif layout.cascade:
            owners.add(layout.owner_id(item))
    expired = sorted(cid for cid, item in connections.items() if layout.expired(item, now))
    orphaned = sorted(owner for owner in owners - set(connections) if owner)
    candidates = sorted(set(connections) - set(expired))
    async with for_target(target, concurrency) as sender:
        report = await fanout.run(sender, "GET", candidates, None, concurrency, progress=progress)
    if report.stopped:
        raise WsctlError(forbidden_line(target.forbidden_where(), report.stopped), ExitStatus.FORBIDDEN)
    gone = sorted(report.ids(GONE))
    unknown = sorted(r.connection_id for r in report.results if r.outcome not in (DELIVERED, GONE))
    doomed = expired + gone + orphaned
    doomed_keys = reader.keys_of(doomed)
    removed = 0
    if not dry_run and doomed_keys:
        reader.delete_keys(doomed_keys)
        removed = len(doomed)
    return Pruned(target.describe(), layout.table, dry_run, len(connections), len(report.ids(DELIVERED)), expired,
                  gone, orphaned, unknown, doomed_keys, removed, report.seconds)


_NOBODY_TO_KICK = {
    "gone": "connection %s was already gone (its registry entry was removed)",
    "stale": "connection %s was already gone; its registry entry stays (the table is not wsctl's: "
             "`wsctl disconnect --prune` or `wsctl prune --yes` removes it)",
    "unknown": "unknown connection %s: API Gateway does not know it and the registry has no entry for it",
    "not connected": "connection %s is not connected (API Gateway answered 410 Gone)",
}


@dataclass
class Kicked:
    """What `disconnect` did: 'disconnected'; on 410, 'gone' (the registry held it: its entry is
    removed), 'stale' (a table wsctl leaves alone without --prune holds it), 'unknown' (the registry
    never had it either), or 'not connected' (no registry to ask)."""
    connection_id: str
    outcome: str

    def exit_status(self) -> ExitStatus:
        return ExitStatus.NOT_FOUND if self.outcome in _NOBODY_TO_KICK else ExitStatus.OK

    def problem(self) -> str | None:
        words = _NOBODY_TO_KICK.get(self.outcome)
        return words % self.connection_id if words else None


async def disconnect(target, connection_id: str, prune: bool | None = None) -> Kicked:
    """DeleteConnection (kick): API Gateway closes it with 1000 and runs $disconnect."""
    async with for_target(target, 1) as sender:
        report = await fanout.run(sender, "DELETE", [connection_id], None, 1)
    outcome = report.results[0].outcome
    if outcome == DELIVERED:
        return Kicked(connection_id, "disconnected")
    if outcome == GONE:
        if not target.has_registry():
            return Kicked(connection_id, "not connected")
        if prunes(target, prune):
            return Kicked(connection_id, "gone" if remove_connections(target, [connection_id]) else "unknown")
        return Kicked(connection_id, "stale" if target.reader().item(connection_id) else "unknown")
    if report.stopped:
        raise WsctlError(forbidden_line(target.forbidden_where(), report.stopped), ExitStatus.FORBIDDEN)
    answer = report.results[0].answer
    raise WsctlError("DeleteConnection failed for %s: %s %s" % (
        connection_id, answer.status or "no answer", answer.error_code or answer.message))


def invoke_function(target, name: str, payload: bytes, tail: bool = False) -> dict:
    """Lambda Invoke (RequestResponse), like `aws lambda invoke`: the emulator's functions with
    --local, the account's on AWS. Returns payload, function error and log tail."""
    client = target.client("lambda", retries={"max_attempts": 1}, read_timeout=MAX_TIMEOUT_S + 10)
    try:
        answer = client.invoke(FunctionName=name, Payload=payload, LogType="Tail" if tail else "None")
    except Exception as error:  # botocore's ClientError and connection errors alike
        if error_code(error) == "ResourceNotFoundException":
            raise WsctlError("function %r does not exist on %s" % (name, target.describe()),
                             ExitStatus.NOT_FOUND) from None
        raise WsctlError("cannot invoke %s: %s" % (name, describe(error) or error)) from None
    return {"payload": answer["Payload"].read(), "functionError": answer.get("FunctionError"),
            "log": base64.b64decode(answer["LogResult"]).decode("utf-8", "replace") if answer.get("LogResult") else None,
            "requestId": answer.get("ResponseMetadata", {}).get("RequestId")}


def send_server_side(target, payload: bytes, segments: int, prune: bool = True, room: str | None = None,
                     progress=None) -> Delivery:
    """Broadcast (or send to a room) from inside AWS: the deployed function fans out, `segments`
    copies at once, each over one segment of the registry (see wsctl.fanout.serverside)."""
    serverside.check_segments(segments)
    if len(payload) > MAX_MESSAGE_BYTES:
        raise UsageError("the payload is %d bytes; the management API takes at most %d" % (len(payload),
                                                                                            MAX_MESSAGE_BYTES))
    function = target.function_name
    client = target.client("lambda", read_timeout=MAX_TIMEOUT_S + 10, connect_timeout=10, retries={"max_attempts": 1},
                           max_pool_connections=max(10, segments))
    serverside.check_capacity(target, client, function, segments)
    payloads = serverside.events(payload, target.management_endpoint, segments, prune, room)

    def invoke(event: dict):
        return client.invoke(FunctionName=function, Payload=json.dumps(event).encode())

    report = serverside.run(invoke, function, payloads, progress)
    refused = any(((s.report or {}).get("counts") or {}).get("forbidden") for s in report.segments)
    return from_segments(report, target.describe(), target.forbidden_where() if refused else "", room)
