"""The delivery engine: one management call (POST, GET or DELETE) to many connections.

Bounded concurrency over a keep-alive pool sized to match; the payload is
given once as bytes and never re-serialised; each connection ends with one
outcome (delivered, gone, throttled, forbidden, failed, or skipped when a 403
stopped the run early). Throttling and transient failures are retried by
`policy`. Pruning of gone ids is the caller's (see wsctl.ops), so the engine
stays a pure sender.
"""

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from .policy import DELIVERED, FORBIDDEN, GONE, THROTTLED, Answer, RetryPolicy, outcome_of, retryable

SKIPPED = "skipped"
DEFAULT_CONCURRENCY = 64


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

    def counts(self) -> dict:
        counted = Counter(r.outcome for r in self.results)
        return {k: counted.get(k, 0) for k in (DELIVERED, GONE, THROTTLED, FORBIDDEN, "failed", SKIPPED)}

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


async def _attempts(transport, method: str, connection_id: str, data, policy: RetryPolicy, rng) -> Result:
    success = (200,) if method == "POST" else (200, 204)
    attempt = 0
    while True:
        attempt += 1
        answer = await transport.call(method, connection_id, data)
        outcome = outcome_of(answer, success)
        if outcome == DELIVERED or not retryable(answer) or attempt >= policy.max_attempts:
            if outcome == DELIVERED or outcome in (GONE, FORBIDDEN, THROTTLED):
                return Result(connection_id, outcome, attempt, answer)
            return Result(connection_id, "failed", attempt, answer)
        await asyncio.sleep(policy.delay(attempt, rng))


async def run(transport, method: str, connection_ids, data: bytes | None = None,
              concurrency: int = DEFAULT_CONCURRENCY, policy: RetryPolicy = RetryPolicy(),
              progress=None, stop_on_forbidden: bool = True, seed: int | None = None) -> Report:
    """Call `method` on every id with at most `concurrency` calls in flight."""
    ids = list(dict.fromkeys(connection_ids))  # each connection once, in order
    report = Report(method)
    started = time.perf_counter()
    rng = random.Random(seed)
    pending = iter(ids)
    results: dict[str, Result] = {}
    stop = asyncio.Event()

    async def worker():
        for connection_id in pending:
            if stop.is_set():
                return
            result = await _attempts(transport, method, connection_id, data, policy, rng)
            results[connection_id] = result
            if result.outcome == FORBIDDEN and stop_on_forbidden and not stop.is_set():
                report.stopped = result.answer.message or "HTTP 403 %s" % (result.answer.error_code or "")
                stop.set()
            if progress:
                progress(len(results), len(ids))

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(ids))))))
    report.results = [results.get(cid) or Result(cid, SKIPPED, 0, Answer(None)) for cid in ids]
    report.seconds = time.perf_counter() - started
    return report
