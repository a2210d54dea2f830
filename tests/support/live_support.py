"""Helpers for tests that drive the operating commands against a running emulator
with real WebSocket clients (tests/test_ops.py, test_fanout.py, test_connect.py).

`wsctl(emu, ...)` runs the CLI in-process (typer's CliRunner, stdout and stderr
kept apart) with WSCTL_HOME pointing at the emulator's state, which is what
`wsctl --local` reads; `emu.cli(...)` runs the real console script in a
subprocess and is used where the process boundary itself is under test.
"""

import json
import socket
import time

from typer.testing import CliRunner

_runner = CliRunner()


def wsctl(emu, *args: str, input: str | bytes | None = None):
    """`wsctl --local ARGS` in-process against `emu`; a click Result (exit_code, stdout, stderr)."""
    from wsctl.cli import app

    return _runner.invoke(app, ["--local", *args], input=input, catch_exceptions=False,
                          env={"WSCTL_HOME": str(emu.home), "COLUMNS": "200"})  # tables never fold


def whoami(ws) -> str:
    """The connection id of a connected websockets client (asks the handler)."""
    ws.send('{"action": "whoami"}')
    return json.loads(ws.recv(timeout=5))["connectionId"]


def drain(ws, settle: float = 0.0) -> list[bytes]:
    """Every frame the client holds (as bytes, exactly as sent), after `settle` seconds."""
    if settle:
        time.sleep(settle)
    frames = []
    while True:
        try:
            frames.append(ws.recv(timeout=0, decode=False))
        except TimeoutError:
            return frames


def drop(ws) -> None:
    """Lose the socket without a close frame (as a phone losing its network): the
    server sees the TCP connection end with no WebSocket close (1006)."""
    ws.socket.shutdown(socket.SHUT_RDWR)


def one_error_line(result) -> str:
    """The failed command's stderr, which must be exactly one line and no traceback."""
    stderr = result.stderr
    assert result.exit_code != 0 if hasattr(result, "exit_code") else result.returncode != 0
    assert "Traceback" not in stderr and "Traceback" not in (result.stdout or "")
    lines = stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), stderr
    return lines[0]
