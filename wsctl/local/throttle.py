"""API Gateway's throttling of the management API, as a token bucket (pure; clock injected).

AWS throttles per account and region with a steady rate and a burst; past
them a call answers 429 LimitExceededException. `local up --throttle 2000:500`
makes that measurable and testable here.
"""

import time

from ..errors import UsageError


class TokenBucket:
    def __init__(self, rate: float, burst: float, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = burst
        self.last = clock()

    def take(self) -> bool:
        """One call: True if it may go through now."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def parse(value: str) -> TokenBucket:
    """RATE or RATE:BURST (calls per second; the burst defaults to one second's worth)."""
    rate_text, _, burst_text = value.partition(":")
    try:
        rate = float(rate_text)
        burst = float(burst_text) if burst_text else rate
    except ValueError:
        rate = burst = -1.0
    if not (rate > 0 and burst >= 1):
        raise UsageError("--throttle %r: use RATE or RATE:BURST, e.g. 2000:500 (calls per second, burst >= 1)"
                         % value)
    return TokenBucket(rate, burst)
