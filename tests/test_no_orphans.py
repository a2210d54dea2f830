"""However wsctl ends, every process it started is gone: `wsctl demo`, `wsctl local up` and the
benchmarks' emulator wrapper, each ended by a closed pipe (SIGPIPE), SIGTERM, SIGHUP, Ctrl-C (SIGINT
to the terminal's process group), an exception, and SIGKILL where the kernel can help.

Each case runs the real command in a session of its own, watches its process tree from /proc while
it runs (tests/support/proc_watch.py), ends it, and checks that nothing it started is left.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from support.emulator_fixtures import ROOT, _clean_env
from support.proc_watch import Watch
from wsctl.targets.emulator import find_state, states


def start(args: list[str], home, **popen) -> tuple[subprocess.Popen, Watch]:
    env = _clean_env(home)
    popen.setdefault("stdout", subprocess.PIPE)
    process = subprocess.Popen([sys.executable, "-m", "wsctl", *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True, **popen)
    return process, Watch(process.pid)


def wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def read_until(process, text: str, timeout: float = 60.0) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, "ended before %r:\n%s\n%s" % (text, b"".join(seen).decode(), process.stderr.read().decode())
        seen.append(line)
        if text.encode() in line:
            return b"".join(seen).decode()
    raise AssertionError("no %r within %s s" % (text, timeout))


def finish(process, watch: Watch, timeout: float = 30.0) -> tuple[int, list[str], str]:
    """Wait for the command to end; (exit status, processes it left, stderr)."""
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        code = None
    survivors = watch.survivors(timeout=10)
    watch.stop()
    watch.kill_survivors()
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    return code, survivors, stderr


# -- wsctl demo ---------------------------------------------------------------------------------------------
DEMO_ENDINGS = {
    "pipe": (None, 141),  # the reader goes away: `wsctl demo | head -3`
    "SIGTERM": (signal.SIGTERM, 128 + signal.SIGTERM),
    "SIGHUP": (signal.SIGHUP, 128 + signal.SIGHUP),  # the terminal closed
    "Ctrl-C": (signal.SIGINT, 130),  # to the whole foreground process group, as a terminal sends it
}


@pytest.mark.parametrize("ending", list(DEMO_ENDINGS))
def test_demo_leaves_no_process_behind(tmp_path, ending):
    signum, expected = DEMO_ENDINGS[ending]
    process, watch = start(["demo"], tmp_path)
    # Step 2 connects the clients: by then the emulator, moto and the function's environments run.
    read_until(process, "2.")
    wait_for(lambda: watch.matching("motoserver") and watch.matching("bootstrap"), what="moto and a function")
    if signum is None:
        process.stdout.close()
    elif signum == signal.SIGINT:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signum)
    code, survivors, stderr = finish(process, watch)
    assert survivors == [], survivors
    assert code == expected, stderr
    assert "Traceback" not in stderr
    if ending == "pipe":
        assert stderr.strip() == ""  # a closed pipe is the reader's choice: nothing to say


# -- wsctl local up ---------------------------------------------------------------------------------------------
def _running_emulator(tmp_path, *args: str):
    process, watch = start(["local", "up", "--port", "0", "--auth", "none", *args], tmp_path)
    wait_for(lambda: process.poll() is not None or find_state(process.pid, tmp_path), what="the emulator")
    assert process.poll() is None, process.stderr.read().decode()
    wait_for(lambda: watch.matching("motoserver"), what="moto")
    state = find_state(process.pid, tmp_path)
    # one invocation, so that a function's execution environment runs too
    from websockets.sync.client import connect

    with connect(state.ws_url, open_timeout=10) as ws:
        ws.send("hello")
        ws.recv(timeout=10)
    wait_for(lambda: watch.matching("bootstrap"), what="a function's environment")
    return process, watch, state


LOCAL_ENDINGS = {"SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP, "Ctrl-C": signal.SIGINT, "pipe": None}


@pytest.mark.parametrize("ending", list(LOCAL_ENDINGS))
def test_local_up_stops_everything_it_started(tmp_path, ending):
    process, watch, state = _running_emulator(tmp_path)
    signum = LOCAL_ENDINGS[ending]
    if signum is None:  # `wsctl local up | head`: the reader goes away, then the emulator prints a line
        process.stdout.close()
        from websockets.sync.client import connect

        with connect(state.ws_url, open_timeout=10) as ws:
            ws.send("one more event")
    elif signum == signal.SIGINT:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signum)
    code, survivors, stderr = finish(process, watch)
    assert survivors == [], survivors
    assert code == 0, stderr  # a requested stop is a clean stop
    assert "Traceback" not in stderr
    assert find_state(process.pid, tmp_path) is None  # its state went with it


def test_local_up_failing_at_start_stops_moto(tmp_path):
    """An exception after moto started (here: the DynamoDB it was told to use does not answer)."""
    process, watch = start(["local", "up", "--port", "0", "--dynamodb-endpoint", "http://127.0.0.1:9"], tmp_path)
    code, survivors, stderr = finish(process, watch, timeout=90)
    assert watch.matching("motoserver"), "moto never started: the case tests nothing"
    assert survivors == [], survivors
    assert code == 1 and stderr.count("error:") == 1 and "Traceback" not in stderr, stderr


def test_local_up_killed_outright_leaves_no_process_and_its_state_is_cleared(tmp_path):
    """SIGKILL runs no code of ours: the kernel stops the children (PR_SET_PDEATHSIG), and the
    state file left behind is noticed as stale and cleared."""
    process, watch, state = _running_emulator(tmp_path)
    process.kill()
    code, survivors, _ = finish(process, watch)
    assert code == -signal.SIGKILL and survivors == [], survivors
    assert find_state(process.pid, tmp_path) is not None  # left behind, stale
    alive, stale = states(tmp_path)
    assert alive == [] and [s.pid for s in stale] == [process.pid]
    assert find_state(process.pid, tmp_path) is None  # cleared


# -- the benchmarks' emulator wrapper ------------------------------------------------------------------------------
BENCH_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {bench!r})
    from backends import Emulator

    emulator = Emulator("--auth", "none", home={home!r})
    emulator.start()
    print(emulator.pid, emulator.state.ws_url, flush=True)
    if sys.argv[1] == "exception":
        raise RuntimeError("a benchmark failing halfway")
    time.sleep(600)
""")


@pytest.mark.parametrize("ending", ["exception", "SIGTERM", "SIGHUP", "Ctrl-C", "SIGKILL"])
def test_the_benchmarks_emulator_wrapper_leaves_no_process_behind(tmp_path, ending):
    script = tmp_path / "bench_case.py"
    script.write_text(BENCH_SCRIPT.format(bench=str(ROOT / "bench"), home=str(tmp_path / "home")))
    process = subprocess.Popen([sys.executable, str(script), ending], cwd=ROOT, env=_clean_env(tmp_path),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    watch = Watch(process.pid)
    pid, url = process.stdout.readline().decode().split()
    assert watch.matching("local up") or wait_for(lambda: watch.matching("local up"), what="the emulator") is None
    if ending != "exception":
        from websockets.sync.client import connect

        with connect(url, open_timeout=10) as ws:  # a function's environment runs too
            ws.send("hello")
            ws.recv(timeout=10)
        wait_for(lambda: watch.matching("bootstrap") and watch.matching("motoserver"), what="moto and a function")
        if ending == "Ctrl-C":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal({"SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP,
                                 "SIGKILL": signal.SIGKILL}[ending])
    code, survivors, stderr = finish(process, watch)
    assert int(pid) in watch.seen
    assert survivors == [], survivors
    assert code != 0
