"""How fast to send: find the rate the endpoint accepts and hold just under it (pure; the
clock is injected).

API Gateway throttles the management API per account and region (429,
LimitExceededException). Until the first throttle nothing is paced: concurrency
alone bounds the run. A throttle cuts the rate to 85% of what the endpoint was
accepting (multiplicative decrease, at most once per 200 ms, so one burst of
429s counts once); every 100 ms without one adds 3% (additive increase). The
result saws just under the limit: most requests are accepted first time, and
the few throttled ones are retried. `max_rate` caps the rate from the start.
"""

import math
import time

from ..tokenbucket import TokenBucket

CUT = 0.85
CUT_EVERY = 0.2  # seconds: one decrease per burst of throttles
GROW_EVERY = 0.1  # seconds between increases
GROWTH = 0.03  # of the current rate, each increase (at least MIN_STEP requests/s)
MIN_STEP = 5.0
MIN_RATE = 10.0  # a few connections throttled for their own reasons must not stall the run
WINDOW = 0.25  # seconds over which the accepted rate is measured


class Pacer:
    def __init__(self, max_rate: float | None = None, clock=time.monotonic):
        if max_rate is not None and max_rate <= 0:
            raise ValueError("max_rate must be positive")
        self.max_rate = max_rate
        self.rate: float | None = max_rate  # None: not paced
        self.clock = clock
        now = clock()
        # holds `rate` once paced; its burst is 50 ms of sending, so waiting workers do not line up
        self.bucket = TokenBucket(max_rate or 1.0, 1.0, clock)
        self.last_cut = -math.inf
        self.last_grow = now
        self.window_start: float | None = None  # from the first answer: start-up is not "slow"
        self.window_ok = 0
        self.accepted: float | None = None  # requests/s the endpoint accepted lately
        self.throttles = 0

    def delay(self) -> float:
        """0: send now (a token is taken); else seconds until the next token. Nothing is reserved:
        a caller waits a little and asks again, so a change of rate applies at once."""
        if self.rate is None:
            return 0.0
        self.bucket.rate, self.bucket.burst = self.rate, max(1.0, self.rate * 0.05)
        return self.bucket.wait()

    def answered(self, throttled: bool) -> None:
        now = self.clock()
        self._measure(now, throttled)
        if throttled:
            self.throttles += 1
            if now - self.last_cut >= CUT_EVERY:
                accepted = self.accepted
                if accepted is None:  # throttled within the first window: what it accepted so far
                    accepted = self.window_ok / max(now - self.window_start, 0.05)
                if self.rate is None:  # paced from now on, starting with an empty bucket
                    self.bucket.tokens, self.bucket.last = 0.0, now
                base = min(x for x in (self.rate, accepted) if x is not None)
                self.rate = max(MIN_RATE, base * CUT)
                if self.max_rate is not None:
                    self.rate = min(self.rate, self.max_rate)
                self.last_cut = now
                self.last_grow = now
            return
        if self.rate is not None and now - self.last_grow >= GROW_EVERY:
            steps = int((now - self.last_grow) / GROW_EVERY)
            self.rate += steps * max(MIN_STEP, self.rate * GROWTH)
            if self.max_rate is not None:
                self.rate = min(self.rate, self.max_rate)
            self.last_grow += steps * GROW_EVERY

    def _measure(self, now: float, throttled: bool) -> None:
        if self.window_start is None:
            self.window_start = now
        if not throttled:
            self.window_ok += 1
        elapsed = now - self.window_start
        if elapsed >= WINDOW:
            measured = self.window_ok / elapsed
            self.accepted = measured if self.accepted is None else 0.5 * self.accepted + 0.5 * measured
            self.window_start, self.window_ok = now, 0

    @property
    def current(self) -> float | None:
        """The rate being held (None: not paced), for the progress line."""
        return self.rate
