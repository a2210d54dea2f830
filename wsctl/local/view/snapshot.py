"""The page's rows, read off the running emulator (pure: values in, JSON-ready dicts out).

Who is connected comes from the gateway's own table of sockets, not from the journal, so
the list is right even for connections made before the page opened; the journal adds what
only it counts (frames in and out, errors, Init Durations seen). These functions read the
gateway's Connection (wsctl/local/sockets.py) and the Lambda service's pools and
environments (wsctl/local/functions/): the attributes they read are the view's whole
dependency on those classes.
"""

import base64

from ..functions.lifecycle import Phase
from ..status import function_routes

# Authorizer context keys that are API Gateway's own, not the authorizer's answer.
_GATEWAY_KEYS = ("principalId", "integrationLatency")


def connection_row(connection, counts) -> dict:
    origin = connection.origin
    authorizer = origin.authorizer or {}
    return {"id": connection.id, "user": authorizer.get("principalId"),
            "identity": {k: v for k, v in authorizer.items() if k not in _GATEWAY_KEYS},
            "userAgent": origin.user_agent, "sourceIp": origin.source_ip,
            "subprotocol": connection.ws.ws_protocol, "connectedAt": origin.connected_at,
            "lastActive": int(connection.last_active * 1000),
            "in": counts[0] if counts else None, "out": counts[1] if counts else None}


def connection_changes(connections: dict, counts: dict, sent: dict) -> tuple[list, list]:
    """(rows new since `sent` in full, and of the others what changed: id, last active, frames; ids gone).
    `sent` (id -> what was last sent) is updated."""
    changed = []
    for connection_id, connection in connections.items():
        count = counts.get(connection_id)
        # last active as the page shows it (to the second): a busy connection's row is sent at most
        # once a second for that, once per tick only when its frame counts moved
        mark = (int(connection.last_active), count[0] if count else None, count[1] if count else None)
        before = sent.get(connection_id)
        if before != mark:
            sent[connection_id] = mark
            changed.append(connection_row(connection, count) if before is None else
                           {"id": connection_id, "lastActive": int(connection.last_active * 1000),
                            "in": mark[1], "out": mark[2]})
    gone = [connection_id for connection_id in sent if connection_id not in connections]
    for connection_id in gone:
        del sent[connection_id]
    return changed, gone


def environment_state(environment) -> str:
    """cold (starting: its runtime has not asked for an event yet), busy (an invocation in hand, or
    answered and not yet back on /next), or warm (waiting on /next)."""
    phase = environment.life.phase
    if phase is Phase.STARTING:
        return "cold"
    return "busy" if environment.current is not None or phase in (Phase.BUSY, Phase.ANSWERED) else "warm"


def function_rows(pools: dict, routes: dict, authorizer: str | None, errors: dict, last_init: dict) -> list:
    rows = []
    for name, pool in pools.items():
        live = sorted((e for e in pool.environments if not e.dead), key=lambda e: e.started_at)
        keys = function_routes(name, routes, authorizer)
        started = [e for e in live if e.init_ms is not None]
        rows.append({"name": name, "runtime": pool.spec.runtime, "handler": pool.spec.handler, "routes": keys,
                     "environments": [{"id": e.id[:8], "state": environment_state(e), "invocations": e.invocations}
                                      for e in live],
                     "maxEnvironments": pool.spec.max_environments, "invocations": pool.invocations,
                     "coldStarts": pool.cold_starts, "errors": errors.get(name, 0),
                     "lastInit": started[-1].init_ms if started else last_init.get(name)})
    return rows


def entry_json(entry: dict) -> dict:
    """A journal entry for the page: binary frames as base64, the journal's own bookkeeping dropped."""
    shown = {k: v for k, v in entry.items() if k != "kept"}
    data = shown.get("data")
    if isinstance(data, (bytes, bytearray)):
        shown["data"] = base64.b64encode(data).decode()
        shown["binary"] = True
    return shown


def capped(entries: list, most: int, connection_id: str | None = None, function: str | None = None) -> list:
    """The newest `most` of a tick's entries for one choice (a connection, or a function), after a marker
    saying how many were left out: a page shows what a person can read; the emulator's log has them all."""
    if len(entries) <= most:
        return entries
    left_out = entries[:-most]
    marker = {"kind": "skipped", "count": len(left_out), "t": left_out[0]["t"], "seq": left_out[0]["seq"],
              "conn": connection_id, "fn": function}
    return [marker] + entries[-most:]


def history(entries, connection_id: str | None, function: str | None, conversation: int = 1000,
            log: int = 500) -> list:
    """What a page that has just chosen a connection and a function is sent of the past: the newest
    `conversation` entries of the connection and `log` of the function, oldest first (the page keeps
    no more: a busy function's log must not crowd out the conversation)."""
    kept, counted = [], {"connection": 0, "function": 0}
    for entry in reversed(entries):
        mine = connection_id is not None and entry.get("conn") == connection_id and counted["connection"] < conversation
        ours = function is not None and entry.get("fn") == function and counted["function"] < log
        if mine or ours:
            kept.append(entry)
            counted["connection"] += mine
            counted["function"] += ours
        if counted["connection"] >= conversation and counted["function"] >= log:
            break
    kept.reverse()
    return kept


__all__ = ["capped", "connection_changes", "connection_row", "entry_json", "environment_state", "function_rows", "history"]
