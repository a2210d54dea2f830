"""The emulator's terminal output: each function's log lines (its sink), and a stdout that stops the
emulator, as Ctrl-C would, when its reader goes away."""

import json
import sys
import time

from .. import render


def access_line(line: str) -> bool:
    """wsctl's bundled handler logs one JSON line per invocation (route, connection, outcome, ms):
    an access log, like the gateway's own line per event. Its exceptions are not."""
    if not line.startswith('{"route": '):
        return False
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and {"route", "outcome", "ms"} <= set(entry) \
        and not str(entry["outcome"]).startswith("exception:")


def sink(quiet: bool, bundled: bool = False, terminal: bool = False):
    """Each function's log line, prefixed with the function's name. -q prints nothing per event:
    it drops the per-invocation START/END/REPORT lines (and the bundled handler's access line),
    but never what a function itself prints. In a terminal, a record the runtime joined with
    carriage returns (a traceback, a multi-line message: one CloudWatch event) prints one line per
    part, as CloudWatch's console shows it; elsewhere (a pipe, a file) it stays Lambda's record."""
    def sink(function: str, line: str, invocation) -> None:
        if quiet and (line.startswith(("START RequestId:", "END RequestId:", "REPORT RequestId:"))
                      or (bundled and access_line(line))):
            return
        parts = line.split("\r") if terminal else (line,)
        sys.stdout.write("".join("[%s] %s\n" % (function, part) for part in parts))
        sys.stdout.flush()
    return sink


def log_line(text: str) -> None:
    """One line in the emulator's log, whatever -q says (the page's refusals)."""
    sys.stdout.write("%s  %s\n" % (time.strftime("%H:%M:%S"), text))
    sys.stdout.flush()


class GuardedStdout:
    """The emulator's stdout: when the reader goes away (`wsctl local up | head`), the next write
    stops the emulator as Ctrl-C would (sockets closed, functions and moto stopped) instead of
    raising BrokenPipeError in whichever callback was printing."""

    def __init__(self, stream, on_broken):
        self.stream = stream
        self.on_broken = on_broken
        self.broken = False

    def _guard(self, method, *args):
        if self.broken:
            return None
        try:
            return getattr(self.stream, method)(*args)
        except BrokenPipeError:
            self.broken = True
            render.detach(self.stream)
            self.on_broken()
            return None

    def write(self, text):
        self._guard("write", text)
        return len(text)

    def flush(self):
        self._guard("flush")

    def __getattr__(self, name):
        return getattr(self.stream, name)
