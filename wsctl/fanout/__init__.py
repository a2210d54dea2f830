"""The delivery engine: one management call (POST, GET or DELETE) to many connections.

Bounded concurrency over a keep-alive pool sized to match; the payload is
given once as bytes and never re-serialised; each connection ends with one
outcome (delivered, gone, throttled, forbidden, failed, or skipped when a 403
stopped the run early, or the run was interrupted). Throttling and transient
failures are retried by `policy`; a `pace.Pacer` finds the rate the endpoint
accepts and holds just under it. Pruning of gone ids is the caller's (see
wsctl.ops), so the engine stays a pure sender.
"""

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from ..limits import DEFAULT_CONCURRENCY
from .pace import Pacer
from .policy import DELIVERED, FORBIDDEN, GONE, THROTTLED, Answer, RetryPolicy, outcome_of, retryable

SKIPPED = "skipped"
OUTCOMES = (DELIVERED, GONE, THROTTLED, FORBIDDEN, "failed", SKIPPED)  # every outcome a result can have


@dataclass
class Result:
    connection_id: str
    outcome: str
    attempts: int
    answer: Answer


@dataclass
class Report:
    method: str
    results: list = field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None  # why the run stopped early (a 403)
    throttles: int = 0  # 429 answers, each retried
    retried: int = 0  # retries so far (a running count: the progress line reads it per post)
    interrupted: bool = False  # Ctrl-C: the results so far, the rest skipped

    def counts(self) -> dict:
        counted = Counter(r.outcome for r in self.results)
        return {k: counted.get(k, 0) for k in OUTCOMES}

    def ids(self, outcome: str) -> list[str]:
        return [r.connection_id for r in self.results if r.outcome == outcome]

    @property
    def retries(self) -> int:
        return sum(r.attempts - 1 for r in self.results)

    @property
    def complete(self) -> bool:
        """Every connection that is still live got the call."""
        counts = self.counts()
        return not (counts[THROTTLED] or counts["failed"] or counts[FORBIDDEN] or counts[SKIPPED])


async def _attempts(transport, method: str, connection_id: str, data, policy: RetryPolicy, rng,
                    pacer: Pacer | None = None, report: Report | None = None) -> Result:
    success = (200,) if method == "POST" else (200, 204)
    attempt = 0
    while True:
        attempt += 1
        if pacer is not None:
            wait = pacer.delay()
            while wait:  # short naps: a rate that changes meanwhile applies at once
                await asyncio.sleep(min(wait, 0.05))
                wait = pacer.delay()
        answer = await transport.call(method, connection_id, data)
        outcome = outcome_of(answer, success)
        throttled = outcome == THROTTLED
        if pacer is not None:
            pacer.answered(throttled)
        if throttled and report is not None:
            report.throttles += 1
        limit = policy.max_throttled_attempts if throttled else policy.max_attempts
        if outcome == DELIVERED or not retryable(answer) or attempt >= limit:
            if outcome == DELIVERED or outcome in (GONE, FORBIDDEN, THROTTLED):
                return Result(connection_id, outcome, attempt, answer)
            return Result(connection_id, "failed", attempt, answer)
        if report is not None:
            report.retried += 1
        await asyncio.sleep(policy.delay(attempt, rng))


class IdStream:
    """Connection ids that arrive while the fan-out runs (a registry scan's pages), so the
    first posts go out before the scan has finished. Thread-safe to feed; close() when done."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.closed = False

    def feed(self, ids) -> None:
        """From any thread: more ids."""
        self.loop.call_soon_threadsafe(self._put, list(ids))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._put, None)

    def _put(self, batch) -> None:
        self.queue.put_nowait(batch)


async def run(transport, method: str, connection_ids, data: bytes | None = None,
              concurrency: int = DEFAULT_CONCURRENCY, policy: RetryPolicy = RetryPolicy(),
              progress=None, stop_on_forbidden: bool = True, seed: int | None = None,
              pacer: Pacer | None = None) -> Report:
    """Call `method` on every id (a list, or an IdStream) with at most `concurrency` calls in flight.
    Each connection is called once, in the order the ids arrive. `progress(done, total)`, or
    `progress(done, total, detail)` when it has `wants_detail` (rate held, retries).
    Cancelled (Ctrl-C), it returns what it has, the rest skipped and `interrupted` set."""
    report = Report(method)
    pacer = pacer if pacer is not None else Pacer()
    detailed = getattr(progress, "wants_detail", False)
    started = time.perf_counter()
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    ready: list[str] = []  # ids waiting for a worker, consumed from the front
    position = 0
    more = asyncio.Event()
    finished = not isinstance(connection_ids, IdStream)
    if finished:
        ready = list(dict.fromkeys(connection_ids))
        seen = dict.fromkeys(ready)
    results: dict[str, Result] = {}
    stop = asyncio.Event()

    async def pump():
        nonlocal finished
        while True:
            batch = await connection_ids.queue.get()
            if batch is None:
                finished = True
                more.set()
                return
            for cid in batch:
                if cid not in seen:
                    seen[cid] = None
                    ready.append(cid)
            more.set()

    async def worker():
        nonlocal position
        while not stop.is_set():
            if position >= len(ready):
                if finished:
                    return
                more.clear()
                await more.wait()
                continue
            connection_id = ready[position]
            position += 1
            result = await _attempts(transport, method, connection_id, data, policy, rng, pacer, report)
            results[connection_id] = result
            if result.outcome == FORBIDDEN and stop_on_forbidden and not stop.is_set():
                report.stopped = result.answer.message or "HTTP 403 %s" % (result.answer.error_code or "")
                stop.set()
                more.set()
            if progress:
                if detailed:
                    progress(len(results), len(seen), _detail(pacer, report))
                else:
                    progress(len(results), len(seen))

    pumping = None if finished else asyncio.create_task(pump())
    workers = max(1, concurrency if pumping else min(concurrency, len(ready)))
    gathered = asyncio.gather(*(worker() for _ in range(workers)))
    try:
        await gathered
    except asyncio.CancelledError:
        gathered.cancel()
        report.interrupted = True
    if pumping is not None:
        pumping.cancel()
    report.results = [results.get(cid) or Result(cid, SKIPPED, 0, Answer(None)) for cid in seen]
    report.seconds = time.perf_counter() - started
    return report


def _detail(pacer: Pacer, report: Report) -> str:
    """O(1): called after every post (a sum over the results here made a broadcast O(N^2))."""
    rate = "%d/s held" % pacer.current if pacer.current is not None else "unpaced"
    return "%s, %d throttled, %d retries" % (rate, report.throttles, report.retried)
