"""API Gateway's throttling of the management API, as a token bucket (pure; clock injected).

AWS throttles per account and region with a steady rate and a burst; past
them a call answers 429 LimitExceededException. `local up --throttle 2000:500`
makes that measurable and testable here.
"""

from ..errors import UsageError
from ..tokenbucket import TokenBucket


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
