"""What happened in the emulator, for whoever watches it (the browser view, wsctl/local/view/).

A bounded in-memory journal: connections opened and closed, frames in (with the route they
selected) and out (replies tied to the frame they answer), invocations started and ended
(request id, duration, status, Init Duration) tied to the connection and frame that caused
them, and every function log line tied to its invocation.

The gateway and the Lambda service feed it through one-line calls at fixed points (the
hooks: Gateway.journal.opened/closed/frame_in/frame_out/invoking, and the Lambda service's
log sink wrapped by `Journal.sink`). Nobody watching, `on` is False and every hook returns
at its first line: the emulator does no other work per event. A watcher switches it on
(`watch`); the last one leaving switches it off after a grace period (a page reloading
keeps its history) and the journal forgets what it held.

An invocation finds its cause through a context variable: the gateway sets it in the task
that handles a frame (or a $connect, a $disconnect), and asyncio copies it into the tasks
that task starts, down to the Lambda service's START line.
"""

import asyncio
import contextvars
import re
import time
from collections import deque

# (connection id, route key, API Gateway request id) of the event being handled in this task.
CAUSE: contextvars.ContextVar = contextvars.ContextVar("wsctl_observe_cause", default=None)

CAPACITY = 20_000  # entries kept
BUDGET = 32 * 1024 * 1024  # characters of frames and log lines kept
KEPT = 16 * 1024  # characters kept of one frame or log line (the page shows no more)
GRACE_S = 15.0  # how long recording goes on after the last watcher left (a page reloading)

_DURATION = re.compile(r"\tDuration: ([\d.]+) ms")
_INIT = re.compile(r"\tInit Duration: ([\d.]+) ms")
_REPORT_STATUS = re.compile(r"\tStatus: ([^\t]+)")


def _kept(data) -> tuple[object, int]:
    """(what is kept of a frame or line, its full size in characters or bytes)."""
    size = len(data)
    return (data if size <= KEPT else data[:KEPT]), size


def invocation_status(invocation, report_line: str = "") -> str:
    """ok, timeout, or the error type, from the invocation's answered future (REPORT time)."""
    found = _REPORT_STATUS.search(report_line)
    if found and found.group(1).startswith("timeout"):
        return "timeout"
    future = getattr(invocation, "future", None)
    if future is None or not future.done():
        return "unanswered"
    if future.cancelled():
        return "timeout"
    error = future.exception()
    if error is None:
        return "ok"
    return getattr(error, "error_type", type(error).__name__)


def report_fields(line: str) -> dict:
    """Duration and Init Duration (ms) from a REPORT line, as CloudWatch shows it."""
    duration, init = _DURATION.search(line), _INIT.search(line)
    return {"ms": float(duration.group(1)) if duration else None, "init": float(init.group(1)) if init else None}


class Journal:
    def __init__(self, capacity: int = CAPACITY, budget: int = BUDGET, grace: float = GRACE_S):
        self.on = False
        self.capacity, self.budget, self.grace = capacity, budget, grace
        self.watchers = 0
        self._off_at = None  # the loop's handle that switches recording off after the grace period
        self._reset()

    def _reset(self) -> None:
        self.entries: deque = deque()
        self.stored = 0  # characters of data held by entries
        self.seq = 0
        self.since = None  # epoch ms when recording began
        self.counts: dict = {}  # connection id -> [frames in, frames out] since recording began
        self.errors: dict = {}  # function -> failed invocations seen
        self.last_init: dict = {}  # function -> Init Duration (ms) of its last cold start seen
        self.causes: dict = {}  # Lambda request id -> (connection id, route, API request id), START to REPORT

    # -- watchers ------------------------------------------------------------------------------
    def watch(self) -> None:
        """A watcher arrives: recording starts (or goes on)."""
        self.watchers += 1
        if self._off_at is not None:
            self._off_at.cancel()
            self._off_at = None
        if not self.on:
            self._reset()
            self.since = int(time.time() * 1000)
            self.on = True

    def unwatch(self) -> None:
        """A watcher leaves (in the event loop); the last one switches recording off after the grace period."""
        self.watchers -= 1
        if self.watchers <= 0 and self.on and self._off_at is None:
            self._off_at = asyncio.get_running_loop().call_later(self.grace, self._stop)

    def _stop(self) -> None:
        self._off_at = None
        if self.watchers <= 0:
            self.on = False
            self._reset()

    # -- reading -------------------------------------------------------------------------------
    def after(self, seq: int) -> list:
        """The entries recorded after `seq`, oldest first."""
        newer = []
        for entry in reversed(self.entries):
            if entry["seq"] <= seq:
                break
            newer.append(entry)
        newer.reverse()
        return newer

    def _add(self, entry: dict, size: int = 0) -> dict:
        self.seq += 1
        entry["seq"] = self.seq
        entry["t"] = int(time.time() * 1000)
        entries = self.entries
        entries.append(entry)
        self.stored += size
        while len(entries) > self.capacity or self.stored > self.budget:
            self.stored -= entries.popleft().get("kept", 0)
        return entry

    def _data(self, entry: dict, data) -> dict:
        kept, size = _kept(data)
        entry["data"], entry["size"], entry["kept"] = kept, size, len(kept)
        return self._add(entry, len(kept))

    def _count(self, connection_id: str, direction: int) -> None:
        counts = self.counts.get(connection_id)
        if counts is None:
            counts = self.counts[connection_id] = [0, 0]
        counts[direction] += 1

    # -- the gateway's hooks -----------------------------------------------------------------------
    def opened(self, connection) -> None:
        if not self.on:
            return
        self.counts[connection.id] = [0, 0]
        self._add({"kind": "open", "conn": connection.id})

    def closed(self, connection, code: int, reason: str) -> None:
        if not self.on:
            return
        self._add({"kind": "close", "conn": connection.id, "code": code, "reason": reason})
        self.counts.pop(connection.id, None)

    def frame_in(self, connection, data, route: str | None, request_id: str) -> None:
        """A frame from a client and the route it selected (None: no route, answered Forbidden)."""
        if not self.on:
            return
        CAUSE.set((connection.id, route, request_id))
        self._count(connection.id, 0)
        self._data({"kind": "in", "conn": connection.id, "route": route, "rid": request_id}, data)

    def frame_out(self, connection, data) -> None:
        """A frame to a client: a reply to the frame handled in this task, or a management POST."""
        if not self.on:
            return
        cause = CAUSE.get()
        self._count(connection.id, 1)
        self._data({"kind": "out", "conn": connection.id,
                    "rid": cause[2] if cause is not None and cause[0] == connection.id else None}, data)

    def invoking(self, event: dict) -> None:
        """The gateway is about to invoke a route's integration, or the authorizer, with `event`."""
        if not self.on:
            return
        context = event.get("requestContext") or {}
        route = "$connect(authorizer)" if event.get("type") == "REQUEST" else context.get("routeKey")
        CAUSE.set((context.get("connectionId"), route, context.get("requestId")))

    # -- the Lambda service's log lines ------------------------------------------------------------
    def sink(self, inner):
        """The Lambda service's sink(function, line, invocation), recording each line while on."""
        def sink(function: str, line: str, invocation) -> None:
            inner(function, line, invocation)
            if self.on:
                self.line(function, line, invocation)
        return sink

    def line(self, function: str, line: str, invocation) -> None:
        request_id = invocation.request_id if invocation is not None else None
        if line.startswith("START RequestId:"):
            cause = CAUSE.get() or (None, None, None)
            self.causes[request_id] = cause
            kind = "start"
        else:
            cause = self.causes.get(request_id) or (None, None, None)
            kind = "log"
        entry = {"kind": kind, "fn": function, "req": request_id, "conn": cause[0], "route": cause[1],
                 "rid": cause[2]}
        if line.startswith("REPORT RequestId:") and invocation is not None:
            self.causes.pop(request_id, None)
            entry.update(report_fields(line), kind="end", status=invocation_status(invocation, line))
            if entry["status"] != "ok":
                self.errors[function] = self.errors.get(function, 0) + 1
            if entry["init"] is not None:
                self.last_init[function] = entry["init"]
        self._data(entry, line)


# The journal of a gateway nobody watches (tests and benchmarks that build a Gateway themselves).
UNWATCHED = Journal(capacity=0, budget=0)

__all__ = ["CAUSE", "Journal", "UNWATCHED", "invocation_status", "report_fields"]
