"""The fan-out's pacer (pure, on a simulated clock): unpaced until throttled, then just under
the rate the endpoint accepts; --max-rate caps it from the start."""

import heapq

import pytest

from wsctl.fanout.pace import Pacer


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def simulate(limit: float, burst: float, workers: int, rtt: float, posts: int, max_rate=None):
    """An endpoint with a token bucket (`limit`/s, `burst`), `workers` senders each waiting `rtt`
    for an answer; throttled posts are retried. Returns (seconds, accepted, throttled, pacer)."""
    clock = Clock()
    pacer = Pacer(max_rate, clock=clock)
    tokens, last = burst, 0.0
    events = [(0.0, worker) for worker in range(workers)]
    heapq.heapify(events)
    accepted = throttled = 0
    left = posts
    while left:
        now, worker = heapq.heappop(events)
        clock.now = now
        wait = pacer.delay()
        if wait:  # as the engine does: a short nap, then ask again
            heapq.heappush(events, (now + min(wait, 0.05), worker))
            continue
        tokens = min(burst, tokens + (now - last) * limit)
        last = now
        if tokens >= 1:
            tokens -= 1
            accepted += 1
            left -= 1
            was_throttled = False
        else:
            throttled += 1
            was_throttled = True
        clock.now = now + rtt
        pacer.answered(was_throttled)
        heapq.heappush(events, (now + rtt, worker))
    return clock.now, accepted, throttled, pacer


def test_nothing_is_paced_until_the_endpoint_throttles():
    pacer = Pacer(clock=Clock())
    assert [pacer.delay() for _ in range(1000)] == [0.0] * 1000
    assert pacer.current is None


def test_a_slow_start_is_not_mistaken_for_a_slow_endpoint():
    """The first answer may come long after the pacer was made (handshakes, the first scan page):
    the accepted rate is measured from the first answer, so the first 429 does not cut to the floor."""
    clock = Clock()
    pacer = Pacer(clock=clock)
    clock.now = 2.0  # two seconds of start-up
    for i in range(400):  # 400 answers in 0.2 s: 2,000/s accepted
        clock.now = 2.0 + i * 0.0005
        pacer.answered(False)
    pacer.answered(True)
    assert pacer.current > 1000


@pytest.mark.parametrize("workers, rtt", [(256, 0.020), (64, 0.020), (256, 0.0005)])
def test_a_throttled_run_holds_at_least_90_percent_of_the_allowed_rate(workers, rtt):
    seconds, accepted, throttled, pacer = simulate(2000, 500, workers, rtt, 20000)
    assert accepted == 20000  # nothing lost: every throttled post was retried
    assert (accepted - 500) / seconds >= 0.9 * 2000
    assert throttled > 0 and pacer.current is not None and pacer.current < 2600


def test_max_rate_caps_from_the_first_request():
    seconds, accepted, throttled, pacer = simulate(100000, 100000, 64, 0.001, 3000, max_rate=500)
    assert throttled == 0 and accepted / seconds <= 500 * 1.05
    assert pacer.current == 500


def test_a_rate_below_zero_is_refused():
    with pytest.raises(ValueError):
        Pacer(0)
