"""The page's actions, each the CLI command's own service (wsctl/ops.py) on a LocalTarget of this
emulator: send (`wsctl --local send --connection`), broadcast, disconnect, invoke, and the
registry as `connections list` reads it; a failure is the report's own error line (`problem`),
the line the CLI prints.

They run in a worker thread with an event loop of its own, as the CLI runs them in its own
process: the registry reads are blocking boto3 calls, and the management API and Lambda's
Invoke API they call are served by the emulator's loop, which must stay free to answer.
Each returns {"ok": bool, "message": one line, ...}.
"""

import asyncio
import json
import threading

from lambda_src.delivery import DELIVERED

from ... import ops
from ...errors import WsctlError
from ...fanout.report import OUTCOMES


class Actions:
    def __init__(self, name: str):
        self.name = name  # the emulator's name: LocalTarget finds it through its state file
        self._target = None
        self._lock = threading.Lock()

    def target(self):
        """This emulator as the CLI's --local target, made once (its registry found on first use)."""
        with self._lock:
            if self._target is None:
                from ...targets.local import LocalTarget

                target = LocalTarget(name=self.name)
                target.has_registry()  # discovery's DynamoDB calls, once
                self._target = target
            return self._target

    async def run(self, action, *args) -> dict:
        return await asyncio.to_thread(_answer, action, self, *args)

    # -- each runs in a worker thread ---------------------------------------------------------------
    def send(self, connection_id: str, message: str) -> dict:
        payload = ops.read_payload(message, None)
        return _delivered(asyncio.run(ops.send(self.target(), payload, connection=connection_id)))

    def broadcast(self, message: str) -> dict:
        payload = ops.read_payload(message, None)
        delivery = asyncio.run(ops.broadcast(self.target(), payload))
        if not delivery.recipients and not delivery.exit_status():
            return {"ok": True, "message": "No live connections in the registry: nothing to send."}
        return _delivered(delivery)

    def disconnect(self, connection_id: str) -> dict:
        kicked = asyncio.run(ops.disconnect(self.target(), connection_id))
        problem = kicked.problem()
        return {"ok": problem is None, "message": problem or "Disconnected %s." % connection_id}

    def invoke(self, function: str, event: str) -> dict:
        payload = (event or "{}").encode()
        try:
            json.loads(payload)
        except ValueError as error:
            return {"ok": False, "message": "the event is not JSON: %s" % error}
        result = ops.invoke_function(self.target(), function, payload, tail=True)
        answer = result["payload"].decode("utf-8", "replace")
        failed = result["functionError"]
        return {"ok": not failed, "message": ("the function failed (%s)" % failed) if failed else
                "%s answered (request %s)" % (function, result["requestId"]),
                "payload": answer, "log": result["log"], "requestId": result["requestId"]}

    def registry(self) -> dict:
        target = self.target()
        if not target.has_registry():
            return {"ok": True, "rows": None, "message": "no registry wsctl can read: %s"
                    % (target.finding.missing or "the API has no table")}
        rows = ops.list_connections(target)
        return {"ok": True, "rows": rows, "table": target.registry.table,
                "message": "%d row(s) in %s" % (len(rows), target.registry.table)}


def _answer(action, actions: Actions, *args) -> dict:
    try:
        return action(actions, *args)
    except WsctlError as error:  # UsageError too: the CLI's one line, never a traceback
        return {"ok": False, "message": str(error)}


def _delivered(delivery) -> dict:
    """A send's or a broadcast's answer: its error line, or what the CLI's table counts, on one line."""
    problem = delivery.problem()
    if problem:
        return {"ok": False, "message": problem}
    counts = delivery.counts
    parts = ["delivered to %d" % counts[DELIVERED]]
    parts += ["%d %s" % (counts[outcome], outcome) for outcome in OUTCOMES if outcome != DELIVERED and counts[outcome]]
    if delivery.pruned:
        parts.append("%d pruned from the registry" % delivery.pruned)
    return {"ok": True, "message": "%s of %d recipient(s)" % (", ".join(parts), delivery.recipients)}


__all__ = ["Actions"]
