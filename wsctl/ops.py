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
from concurrent.futures import ThreadPoolExecutor

from lambda_src import keys

from . import fanout
from .aws import describe, error_code
from .errors import UsageError, WsctlError
from .exitstatus import ExitStatus
from .fanout import serverside
from .fanout.policy import DELIVERED, GONE
from .fanout.transport import for_target
from .limits import MAX_MESSAGE_BYTES, MAX_TIMEOUT_S
from .names import partition
from .registry import live_connection_ids, registry_for, scan_all


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
    registry = registry_for(target)
    if user:
        ids = [item["connectionId"] for item in registry.connections_of_user(user)]
        if not ids:
            raise WsctlError("user %r has no live connection in the registry" % user,
                             ExitStatus.NOT_FOUND)
        return ids
    ids = [item["connectionId"] for item in registry.members_of_room(room)]
    if not ids:
        raise WsctlError("room %r has no live member in the registry" % room, ExitStatus.NOT_FOUND)
    return ids


def all_connection_ids(target) -> list[str]:
    return live_connection_ids(target)


# -- delivery ---------------------------------------------------------------------------
def remove_connections(target, connection_ids) -> int:
    """Delete every registry item of each connection (in parallel); returns how many had any."""
    ids = list(connection_ids)
    if not ids:
        return 0
    registry = registry_for(target)
    with ThreadPoolExecutor(max_workers=min(16, len(ids))) as pool:
        return sum(1 for deleted in pool.map(registry.delete_connection, ids) if deleted)


async def deliver(target, connection_ids, payload: bytes, concurrency: int = fanout.DEFAULT_CONCURRENCY,
                  prune: bool = True, progress=None, max_rate: float | None = None) -> tuple:
    """POST the payload to each id; gone ids leave the registry unless prune is False."""
    async with for_target(target, concurrency) as sender:
        report = await fanout.run(sender, "POST", connection_ids, payload, concurrency, progress=progress,
                                  pacer=fanout.Pacer(max_rate))
    pruned = remove_connections(target, report.ids(GONE)) if prune else 0
    return report, pruned


async def deliver_to_all(target, payload: bytes, concurrency: int = fanout.DEFAULT_CONCURRENCY,
                         prune: bool = True, progress=None, max_rate: float | None = None) -> tuple:
    """Broadcast: POST to every live connection, starting with the first scan page."""
    async with for_target(target, concurrency) as sender:
        stream = fanout.IdStream()

        def scan():
            try:
                live_connection_ids(target, on_page=stream.feed)
            finally:
                stream.close()

        scanning = asyncio.get_running_loop().run_in_executor(None, scan)
        report = await fanout.run(sender, "POST", stream, payload, concurrency, progress=progress,
                                  pacer=fanout.Pacer(max_rate))
        if report.interrupted:
            scanning.cancel()  # the scan thread finishes its page; nobody waits for the rest
        else:
            await scanning  # re-raises a failed scan (a missing table, no credentials)
    pruned = remove_connections(target, report.ids(GONE)) if prune else 0
    return report, pruned


def delivery_exit(report, connection: str | None = None, pruned: int = 0) -> ExitStatus:
    """The exit status of a delivery (send, broadcast). A send to one --connection that was gone
    raises NOT_FOUND (after its report has been shown)."""
    if report.interrupted:
        return ExitStatus.INTERRUPTED
    counts = report.counts()
    if connection is not None and counts[GONE]:
        raise WsctlError("connection %s is gone%s" % (connection, " (its registry entry was removed)" if pruned
                                                      else ""), ExitStatus.NOT_FOUND)
    if counts["forbidden"]:
        return ExitStatus.FORBIDDEN
    if not report.complete:
        return ExitStatus.INCOMPLETE
    return ExitStatus.OK


def forbidden_hint(target, report) -> str:
    where = "this stage" if target.local else "arn:%s:execute-api:%s:<account>:%s/%s/*/@connections/*" % (
        partition(target.region_name), target.region_name, target.api_id, target.stage)
    return ("forbidden: your AWS identity needs execute-api:ManageConnections on %s (AWS said: %s)"
            % (where, report.stopped or "403"))


# -- listing --------------------------------------------------------------------------------
def _rows(connection_items: list[dict], memberships: dict) -> list[dict]:
    rows = []
    for item in connection_items:
        cid = item["connectionId"]
        rows.append({"connectionId": cid, "userId": item.get("userId"), "rooms": sorted(memberships.get(cid, [])),
                     "connectedAt": item.get("connectedAt"), "ttl": item.get("ttl"),
                     "sourceIp": item.get("sourceIp"), "userAgent": item.get("userAgent"),
                     "endpoint": item.get("endpoint")})
    return sorted(rows, key=lambda r: r["connectedAt"] or 0)


def gateway_view(target, limit: int | None = None) -> list[dict]:
    """The sockets the emulator holds, for a project whose registry is its own."""
    rows = [{"connectionId": c["connectionId"], "userId": c.get("principalId") or "-", "rooms": [],
             "connectedAt": c["connectedAt"], "ttl": None, "sourceIp": c["sourceIp"],
             "lastActiveAt": c["lastActiveAt"], "view": "gateway"} for c in target.local_view("connections")]
    rows.sort(key=lambda r: r["connectedAt"])
    return rows[:limit] if limit else rows


def list_connections(target, user: str | None = None, room: str | None = None, limit: int | None = None) -> list[dict]:
    if user and room:
        raise UsageError("choose --user or --room, not both")
    if not target.bundled:
        if user or room:
            raise UsageError("--user and --room read wsctl's registry; this emulator runs %s"
                             % target.local_state.get("origin", "another API"))
        return gateway_view(target, limit)
    registry = registry_for(target)
    if user or room:
        if user:
            items = registry.connections_of_user(user)
        else:
            ids = [m["connectionId"] for m in registry.members_of_room(room)]
            items = [i for i in (registry.get_connection(cid) for cid in ids) if i]
        items = items[:limit] if limit else items
        memberships = {i["connectionId"]: registry.rooms_of(i["connectionId"]) for i in items}
        return _rows(items, memberships)
    if limit:  # a plain scan that stops early, instead of reading the whole table
        items = []
        for item in registry.scan_connections():
            items.append(item)
            if len(items) >= limit:
                break
        memberships = {i["connectionId"]: registry.rooms_of(i["connectionId"]) for i in items}
        return _rows(items, memberships)
    everything = scan_all(target)
    memberships: dict = {}
    for item in everything:
        if item["SK"].startswith(keys.ROOM_PREFIX):
            memberships.setdefault(item["connectionId"], []).append(keys.room_of(item["SK"]))
    return _rows([i for i in everything if i["SK"] == keys.CONN_SK], memberships)


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
    items = registry_for(target).items_of(connection_id)
    live = (await liveness(target, [connection_id], 1))[connection_id]
    connection = next((i for i in items if i["SK"] == keys.CONN_SK), None)
    if connection is None and live["state"] != "live":
        raise WsctlError("no connection %s: not in the registry, and API Gateway says %s" % (
            connection_id, live["state"] if live["state"] != "unknown" else live.get("error")),
            ExitStatus.NOT_FOUND)
    rooms = sorted(keys.room_of(i["SK"]) for i in items if i["SK"].startswith(keys.ROOM_PREFIX))
    return {"connectionId": connection_id, "registry": connection, "rooms": rooms, "apiGateway": live}


# -- pruning and kicking ------------------------------------------------------------------------
async def prune(target, dry_run: bool = False, concurrency: int = fanout.DEFAULT_CONCURRENCY,
                progress=None) -> dict:
    """Reconcile the registry with API Gateway, sending nobody a message: remove entries whose
    ttl has passed, whose GetConnection answers 410, and memberships left without a connection."""
    now = time.time()
    connections, members = {}, set()
    for item in scan_all(target, include_expired=True):
        cid = keys.connection_id_of(item["PK"])
        if item["SK"] == keys.CONN_SK:
            connections[cid] = item
        else:
            members.add(cid)
    expired = sorted(cid for cid, item in connections.items()
                     if item.get(keys.TTL_ATTRIBUTE) is not None and item[keys.TTL_ATTRIBUTE] <= now)
    orphaned = sorted(members - set(connections))
    candidates = sorted(set(connections) - set(expired))
    async with for_target(target, concurrency) as sender:
        report = await fanout.run(sender, "GET", candidates, None, concurrency, progress=progress)
    if report.stopped:
        raise WsctlError(forbidden_hint(target, report), ExitStatus.FORBIDDEN)
    gone = sorted(report.ids(GONE))
    unknown = sorted(r.connection_id for r in report.results if r.outcome not in (DELIVERED, GONE))
    doomed = expired + gone + orphaned
    removed = 0 if dry_run else remove_connections(target, doomed)
    return {"dryRun": dry_run, "checked": len(connections), "live": len(report.ids(DELIVERED)),
            "expired": len(expired), "gone": len(gone), "orphaned": len(orphaned), "unknown": len(unknown),
            "removed": removed, "wouldRemove": len(doomed) if dry_run else 0,
            "removedIds": doomed, "unknownIds": unknown, "seconds": round(report.seconds, 3)}


async def disconnect(target, connection_id: str) -> str:
    """DeleteConnection (kick). Returns 'disconnected'; on 410, 'gone' (the registry held it: its
    entry is removed), 'unknown' (the registry never had it either), or 'not connected' (an API
    whose registry is its own, so which of the two cannot be told)."""
    async with for_target(target, 1) as sender:
        report = await fanout.run(sender, "DELETE", [connection_id], None, 1)
    outcome = report.results[0].outcome
    if outcome == DELIVERED:
        return "disconnected"
    if outcome == GONE:
        if not target.bundled:
            return "not connected"
        return "gone" if remove_connections(target, [connection_id]) else "unknown"
    if report.stopped:
        raise WsctlError(forbidden_hint(target, report), ExitStatus.FORBIDDEN)
    answer = report.results[0].answer
    raise WsctlError("DeleteConnection failed for %s: %s %s" % (
        connection_id, answer.status or "no answer", answer.error_code or answer.message))


def prune_exit(document: dict) -> ExitStatus:
    """Connections that could not be checked (throttled or failing) leave the prune incomplete."""
    return ExitStatus.INCOMPLETE if document["unknown"] else ExitStatus.OK


_NOBODY_TO_KICK = {
    "gone": "connection %s was already gone (its registry entry was removed)",
    "unknown": "unknown connection %s: API Gateway does not know it and the registry has no entry for it",
    "not connected": "connection %s is not connected (API Gateway answered 410 Gone)",
}


def check_disconnected(connection_id: str, outcome: str) -> None:
    """A disconnect that found nobody to kick raises NOT_FOUND, saying which way (see disconnect)."""
    if outcome in _NOBODY_TO_KICK:
        raise WsctlError(_NOBODY_TO_KICK[outcome] % connection_id, ExitStatus.NOT_FOUND)


def route_keys(target) -> list[str]:
    """The API's route keys: the emulator's from its state; on AWS, API Gateway's (GetRoutes)."""
    if target.local:
        return list(target.local_state.get("routes") or {})
    found = []
    for page in target.client("apigatewayv2").get_paginator("get_routes").paginate(ApiId=target.api_id):
        found += [route["RouteKey"] for route in page.get("Items", [])]
    return found


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


def deliver_server_side(target, payload: bytes, segments: int, prune: bool = True, room: str | None = None,
                        progress=None):
    """Broadcast (or send to a room) from inside AWS: the deployed function fans out, `segments`
    copies at once, each over one segment of the registry (see wsctl.fanout.serverside)."""
    serverside.check_segments(segments)
    if not target.bundled:
        raise UsageError("--server-side runs wsctl's own function; this emulator runs %s"
                         % target.local_state.get("origin", "another API"))
    if len(payload) > MAX_MESSAGE_BYTES:
        raise UsageError("the payload is %d bytes; the management API takes at most %d" % (len(payload),
                                                                                            MAX_MESSAGE_BYTES))
    function = target.function_name
    client = target.client("lambda", read_timeout=MAX_TIMEOUT_S + 10, connect_timeout=10, retries={"max_attempts": 1},
                           max_pool_connections=max(10, segments))
    payloads = serverside.events(payload, target.management_endpoint, segments, prune, room)

    def invoke(event: dict):
        return client.invoke(FunctionName=function, Payload=json.dumps(event).encode())

    return serverside.run(invoke, function, payloads, progress)


def server_side_exit(report, room: str | None = None) -> ExitStatus:
    """The exit status of a server-side fan-out. A room found without a live member raises
    NOT_FOUND (after the report has been shown)."""
    if room is not None and not report.recipients and not report.failed_segments():
        raise WsctlError("room %r has no live member in the registry" % room, ExitStatus.NOT_FOUND)
    counts = report.counts()
    if counts["forbidden"]:
        return ExitStatus.FORBIDDEN
    if report.interrupted:
        return ExitStatus.INTERRUPTED
    return ExitStatus.OK if report.complete else ExitStatus.INCOMPLETE
