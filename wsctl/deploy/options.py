"""deploy's option values, checked before any AWS call: one line saying what is wrong."""

from .. import limits
from ..errors import UsageError

UNRESERVED = 0  # StackConfig.reserved_concurrency: remove the reservation (`--reserved-concurrency off`)


def check_log_retention(days: int) -> int:
    """`--log-retention-days`: one of the periods CloudWatch accepts."""
    if days not in limits.LOG_RETENTION_DAYS:
        raise UsageError("--log-retention-days must be one CloudWatch accepts: %s"
                         % ", ".join(str(d) for d in limits.LOG_RETENTION_DAYS))
    return days


def parse_throttle(text: str | None) -> tuple[float, int]:
    """`--throttle RATE[:BURST]` -> (requests a second, burst); the default without one; a rate
    alone gets a burst in AWS's own proportion."""
    if text is None:
        return limits.STAGE_THROTTLE
    rate_text, _, burst_text = text.partition(":")
    try:
        rate = float(rate_text)
        burst = int(burst_text) if burst_text else max(1, round(rate * limits.ACCOUNT_BURST / limits.ACCOUNT_RATE))
    except ValueError:
        rate = burst = -1
    if not (0 < rate <= limits.ACCOUNT_RATE * 100 and 0 < burst <= limits.ACCOUNT_BURST * 100):
        raise UsageError("--throttle %r: give RATE[:BURST], requests a second and a whole burst above 0, e.g. "
                         "--throttle %d:%d" % (text, limits.STAGE_RATE, limits.STAGE_BURST))
    return rate, burst


def parse_reserved_concurrency(text: str | None) -> int | None:
    """`--reserved-concurrency N|off` -> N, UNRESERVED, or None (leave it as it is)."""
    if text is None:
        return None
    if text.lower() == "off":
        return UNRESERVED
    if not text.isdigit() or int(text) < 1:
        raise UsageError("--reserved-concurrency %r: give a number of concurrent executions (1 or more), or off to "
                         "remove the reservation (0 would stop the function)" % text)
    return int(text)
