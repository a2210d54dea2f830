"""The emulator's management API throttle (`local up --throttle RATE:BURST`) and the fan-out
engine against it: throttled posts are retried and counted, nothing is lost."""

import json
from contextlib import ExitStack

import pytest
from websockets.sync.client import connect

from support.emulator_fixtures import Emulator, unique
from support.live_support import drain, whoami, wsctl
from wsctl.errors import UsageError
from wsctl.local.throttle import TokenBucket, parse


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def test_the_bucket_allows_the_burst_then_the_rate():
    clock = Clock()
    bucket = TokenBucket(10, 3, clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now = 0.1  # one more token
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now = 100.0  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 3


@pytest.mark.parametrize("value", ["", "x", "0", "-5:10", "10:0", "10:x"])
def test_a_bad_throttle_is_a_usage_error(value):
    with pytest.raises(UsageError, match="RATE or RATE:BURST"):
        parse(value)


@pytest.fixture(scope="module")
def throttled(tmp_path_factory):
    instance = Emulator(tmp_path_factory.mktemp("throttled"), ["--quiet", "--throttle", "40:5"])
    yield instance
    instance.stop()


def test_a_broadcast_against_a_throttled_endpoint_retries_until_everyone_has_it(throttled):
    assert "management API: 40 calls/s, burst 5" in throttled.output()
    with ExitStack() as stack:
        sockets = []
        for _ in range(30):
            ws = stack.enter_context(connect(throttled.url_for(unique("t"))))
            ws.cid = whoami(ws)
            sockets.append(ws)
        result = wsctl(throttled, "broadcast", "paced", "-o", "json")
        assert result.exit_code == 0, (result.stdout, result.stderr)
        document = json.loads(result.stdout)
        assert document["counts"]["delivered"] == 30 and document["notDelivered"] == []
        assert document["throttles"] > 0 and document["retries"] >= document["throttles"]
        assert [drain(ws, 0.5 if ws is sockets[0] else 0) for ws in sockets] == [[b"paced"]] * 30  # once each


def test_ctrl_c_during_a_broadcast_prints_the_partial_report_and_exits_130(tmp_path_factory):
    import signal
    import subprocess
    import sys
    import time

    from support.emulator_fixtures import ROOT

    slow = Emulator(tmp_path_factory.mktemp("slow"), ["--quiet", "--throttle", "4:1"])
    try:
        with ExitStack() as stack:
            for _ in range(20):
                ws = stack.enter_context(connect(slow.url_for(unique("c"))))
                whoami(ws)
            process = subprocess.Popen([sys.executable, "-m", "wsctl", "--local", "broadcast", "hello"], cwd=ROOT,
                                       env=slow.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(2.5)  # a few posts through (4 per second), most still throttled
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
        assert process.returncode == 130, (out, err)
        assert "Traceback" not in err
        assert "interrupted: sent to" in err and "recipient(s) found so far" in err
        assert "delivered" in out  # the partial report's table, by outcome
    finally:
        slow.stop()
