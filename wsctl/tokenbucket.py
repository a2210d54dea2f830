"""A token bucket (pure; the clock is injected): a steady rate and a burst.

Two users: the emulator's management API throttles as API Gateway does (wsctl.local.throttle,
`local up --throttle RATE:BURST`), and the fan-out's pacer holds its sending rate with one whose
rate it moves (wsctl.fanout.pace).
"""

import time


class TokenBucket:
    def __init__(self, rate: float, burst: float, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = burst
        self.last = clock()

    def _fill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def take(self) -> bool:
        """One call: True if it may go through now (a token is taken)."""
        return self.wait() == 0.0

    def wait(self) -> float:
        """0.0: go now (a token is taken); else the seconds until the next token. Nothing is
        reserved: a caller waits a little and asks again, so a change of rate applies at once."""
        self._fill()
        if self.tokens >= 1 - 1e-9:  # float dust must not turn into an endless 1e-18 s wait
            self.tokens -= 1
            return 0.0
        return max(1e-4, (1 - self.tokens) / self.rate)


__all__ = ["TokenBucket"]
