"""However wsctl ends, every process it started is gone: `wsctl demo`, `wsctl local up` and the
benchmarks' emulator wrapper, each ended by a closed pipe (SIGPIPE), SIGTERM, SIGHUP, Ctrl-C (SIGINT
to the terminal's process group), an exception, and SIGKILL where the kernel can help.

Each case runs the real command in a session of its own, watches its process tree from /proc while
it runs (tests/support/proc_watch.py), ends it, and checks that nothing it started is left.
"""

import json
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


# -- a stop right behind a burst of dropped clients ------------------------------------------------------------
# Each dropped client's $disconnect queues for one of its function's environments. The bundled handler's
# takes ~50 ms, so 2,000 clients killed at once held a stop for ~20 s behind 10 environments (the more,
# the longer): the stop waited for every one of them, on environments it started again after stopping
# them. Here a 2 s $disconnect and 2 environments make 300 clients queue 300 s of them, so a stop that
# waits for its queue shows without thousands of sockets.
SLOW_DISCONNECT = textwrap.dedent('''
    import time


    def handler(event, context):
        if event["requestContext"]["routeKey"] == "$disconnect":
            time.sleep(2)  # it writes somewhere slow
        return {"statusCode": 200}
''')

CLIENTS = textwrap.dedent('''
    import asyncio, sys
    from websockets.asyncio.client import connect


    async def main(url, count):
        sockets = await asyncio.gather(*(connect(url, open_timeout=60, ping_interval=None) for _ in range(count)))
        print(len(sockets), flush=True)
        await asyncio.sleep(3600)


    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
''')
DROPPED = 300
STOP_DEADLINE = 60  # the stop's own bound is 20 s; on a loaded 2-core machine, generous


def _slow_emulator(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "slow.py").write_text(SLOW_DISCONNECT)
    (source / "routes.json").write_text(json.dumps({"routes": [{"key": "$disconnect"}, {"key": "$default"}]}))
    with open(tmp_path / "emulator.log", "wb") as log:
        process, watch = start(["local", "up", "--port", "0", "--auth", "none", "--source", str(source), "--handler",
                                "slow.handler", "--routes", str(source / "routes.json"), "--max-environments", "2"],
                               tmp_path, stdout=log)
    wait_for(lambda: process.poll() is not None or find_state(process.pid, tmp_path), what="the emulator")
    assert process.poll() is None, process.stderr.read().decode()
    return process, watch, find_state(process.pid, tmp_path)


def _clients(tmp_path, url: str) -> subprocess.Popen:
    """DROPPED connections held by a process of their own (a benchmark's client fleet, say)."""
    clients = subprocess.Popen([sys.executable, "-c", CLIENTS, url, str(DROPPED)], cwd=ROOT, env=_clean_env(tmp_path),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
    assert clients.stdout.readline().strip() == str(DROPPED).encode()
    return clients


def _stopped_cleanly(tmp_path, process, watch, state) -> str:
    code, survivors, stderr = finish(process, watch, timeout=STOP_DEADLINE)
    output = (tmp_path / "emulator.log").read_text(errors="replace")
    assert code == 0, "no clean stop within %d s:\n%s\n%s" % (STOP_DEADLINE, output[-3000:], stderr)
    assert survivors == [], survivors
    assert watch.matching("bootstrap") and watch.matching("motoserver")
    assert "Traceback" not in stderr + output
    assert find_state(process.pid, tmp_path) is None
    return output


@pytest.mark.parametrize("ending", ["Ctrl-C", "SIGTERM", "local down"])
def test_a_stop_right_after_hundreds_of_clients_drop_at_once_ends_in_bounded_time(tmp_path, ending):
    process, watch, state = _slow_emulator(tmp_path)
    clients = _clients(tmp_path, state.ws_url)
    clients.kill()  # every connection drops at once, and the stop is asked for right behind
    clients.wait()
    down = None
    if ending == "Ctrl-C":
        os.killpg(process.pid, signal.SIGINT)
    elif ending == "SIGTERM":
        process.send_signal(signal.SIGTERM)
    else:
        down = subprocess.run([sys.executable, "-m", "wsctl", "local", "down"], cwd=ROOT, env=_clean_env(tmp_path),
                              capture_output=True, text=True, timeout=STOP_DEADLINE)
    output = _stopped_cleanly(tmp_path, process, watch, state)
    if down is not None:
        assert down.returncode == 0 and "stopped the local emulator" in down.stdout, down.stdout + down.stderr
    assert "$disconnect invocations not waited for" in output  # what the stop did not wait for, said once


def test_ctrl_c_with_hundreds_connected_closes_them_and_ends_in_bounded_time(tmp_path):
    process, watch, state = _slow_emulator(tmp_path)
    clients = _clients(tmp_path, state.ws_url)
    try:
        os.killpg(process.pid, signal.SIGINT)
        output = _stopped_cleanly(tmp_path, process, watch, state)
    finally:
        clients.kill()
        clients.wait()
    assert "closing %d connections with 1001" % DROPPED in output


def test_ctrl_c_twice_stops_at_once_without_waiting_for_disconnects(tmp_path):
    process, watch, state = _slow_emulator(tmp_path)
    clients = _clients(tmp_path, state.ws_url)
    clients.kill()
    clients.wait()
    wait_for(lambda: watch.matching("bootstrap"), what="the $disconnects' environments")
    log = tmp_path / "emulator.log"
    os.killpg(process.pid, signal.SIGINT)
    wait_for(lambda: "shutting down" in log.read_text(), what="the stop to begin")
    os.killpg(process.pid, signal.SIGINT)
    output = _stopped_cleanly(tmp_path, process, watch, state)
    assert "stopping now (a second signal)" in output
    assert "$disconnect invocations not waited for" in output
