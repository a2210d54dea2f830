"""`wsctl local up` as a process: Ctrl-C, a taken port, the source watcher, the handler's environment."""

import asyncio
import signal
import socket
import subprocess
import sys
import time

import pytest

from support.emulator_fixtures import ROOT, _clean_env
from support.emulator_kit import ask, client, closed, routes, run, start_all, stop_all
from wsctl.targets.emulator import find_state, state_path

ENV_FILE = """\
# the handler's settings
export BAR=from-env-file
QUOTED="two words"
FOO=overridden-by-the-flag
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    env_file = tmp_path_factory.mktemp("envfile") / "handler.env"
    env_file.write_text(ENV_FILE)
    document = routes("$connect", "$disconnect", "$default")
    emulators = start_all(tmp_path_factory, {
        "dev": (document, ["--env", "FOO=bar", "--env-file", str(env_file)], False),
        "ctrlc": (document, [], False),
    })
    yield emulators
    stop_all(emulators)


def test_ctrl_c_closes_every_client_with_1001_runs_disconnect_and_exits_0(fleet):
    gw = fleet["ctrlc"]
    state_file = gw.state_file
    assert state_file.exists()

    async def main():
        sockets = [await client(gw.url) for _ in range(3)]
        ids = [(await ask(ws, {"action": "who"}))["connectionId"] for ws in sockets]
        gw.process.send_signal(signal.SIGINT)
        codes = await asyncio.gather(*(closed(ws, timeout=10) for ws in sockets))
        return ids, codes

    ids, codes = run(main())
    assert codes == [(1001, "Going away")] * 3
    assert gw.process.wait(20) == 0
    assert not state_file.exists()
    for connection_id in ids:  # the recorder wrote them before the process ended
        (disconnect,) = gw.events.of(connection_id, "DISCONNECT")
        assert disconnect["requestContext"]["disconnectStatusCode"] == 1001
    output = gw.output()
    assert "Traceback" not in output and "error: interrupted" not in output


def test_ctrl_c_right_after_start_up_is_a_clean_stop(tmp_path):
    """The state file announces readiness; Ctrl-C must already be handled by then (exit 0, not 130)."""
    home = tmp_path / "home"
    process = subprocess.Popen([sys.executable, "-m", "wsctl", "local", "up", "--port", "0", "--auth", "none"],
                               cwd=ROOT, env=_clean_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        while not find_state(process.pid, home):  # as a script waiting would, but without delay
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            time.sleep(0.001)
        state_file = state_path(find_state(process.pid, home).name, home)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "Traceback" not in output and "error: interrupted" not in output
    assert not state_file.exists()


def test_a_taken_port_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "wsctl", "local", "up", "--port", str(port)], cwd=ROOT,
                                env=_clean_env(tmp_path / "home"), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "already in use" in lines[0] and str(port) in lines[0]
    assert not list((tmp_path / "home").glob("local/*/state.json"))


def test_an_edited_handler_is_used_by_the_next_invocation_without_restart(fleet):
    gw = fleet["dev"]

    async def main():
        async with client(gw.url) as ws:
            before = (await ask(ws, {"do": "watched"}))["watched"]
            (gw.folder / "watched.py").write_text("VALUE = 'edited'\n")
            deadline = time.monotonic() + 6
            after = before
            while after == before and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                after = (await ask(ws, {"do": "watched"}))["watched"]
            return before, after

    try:
        before, after = run(main())
    finally:
        (gw.folder / "watched.py").write_text("VALUE = 'original'\n")
    assert (before, after) == ("original", "edited")
    assert gw.process.poll() is None


def test_env_and_env_file_and_local_endpoints_reach_the_handler(fleet):
    gw = fleet["dev"]
    names = ["FOO", "BAR", "QUOTED", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI",
             "AWS_CA_BUNDLE", "AWS_REGION", "TABLE_NAME"]

    async def main():
        async with client(gw.url) as ws:
            return (await ask(ws, {"do": "env", "names": names}))["env"]

    env = run(main())
    assert env["FOO"] == "bar"  # --env wins over --env-file
    assert env["BAR"] == "from-env-file"
    assert env["QUOTED"] == "two words"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == gw.state.dynamodb_endpoint
    assert env["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] == gw.state.management_endpoint
    # Sealed, a function's botocore only reaches the emulator: it trusts the emulator's one
    # certificate (the CLI's bundle adds the system's roots to it).
    own = open(env["AWS_CA_BUNDLE"]).read()
    assert own.count("BEGIN CERTIFICATE") == 1 and own.strip() in open(gw.state.ca_bundle).read()
    assert env["AWS_REGION"] == "us-east-1"
    assert env["TABLE_NAME"] is None  # a function has its own variables only, not wsctl's app's
