"""The delivery engine's pure rules: what an answer means, and when to try again.

Outcome classification is lambda_src.delivery's, shared with the deployed
handler. Throttling (429) and transient failures (5xx, dropped connections)
are retried with exponential backoff and full jitter, as botocore's standard
retry mode does; a 5xx may already have delivered, so a retried message can
arrive twice: delivery is at least once, never silently at most once.
"""

import random
from dataclasses import dataclass

from lambda_src.delivery import DELIVERED, FAILED, FORBIDDEN, GONE, THROTTLED, classify

__all__ = ["Answer", "RetryPolicy", "outcome_of", "DELIVERED", "FAILED", "FORBIDDEN", "GONE", "THROTTLED"]


@dataclass(frozen=True)
class Answer:
    """One management API answer, transport-independent."""
    status: int | None  # None: no HTTP answer (connection error, timeout)
    error_code: str | None = None
    message: str = ""
    body: bytes = b""


def outcome_of(answer: Answer, success_statuses=(200, 204)) -> str:
    if answer.status in success_statuses:
        return DELIVERED
    if answer.status is None:
        return FAILED
    return classify(answer.status, answer.error_code)


def retryable(answer: Answer) -> bool:
    return answer.status is None or answer.status == 429 or answer.status >= 500 or \
        outcome_of(answer) == THROTTLED


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    # A 429 says "not so fast", not "broken": while the pacer slows the whole run down, a
    # throttled post is retried longer than a failed one (about 10 s of backoff in all).
    max_throttled_attempts: int = 10
    base: float = 0.05  # seconds
    cap: float = 2.0

    def delay(self, attempt: int, rng=random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)] (attempt counts from 1)."""
        return rng.uniform(0, min(self.cap, self.base * 2 ** attempt))
