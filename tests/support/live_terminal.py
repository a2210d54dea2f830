"""A real terminal for the live client's tests: a pty (pexpect) whose output is rendered by a
terminal emulator (pyte), so a test checks the screen a person would see, not escape sequences.

The emulator answers the cursor position requests prompt_toolkit sends (as xterm, tmux and every
real terminal do), and keeps the lines that scrolled off the top (`lines()` has them all).
"""

import sys
import time

import pexpect
import pyte

from support.emulator_fixtures import ROOT, _clean_env


class Terminal:
    def __init__(self, args: list[str], env: dict, rows: int = 24, columns: int = 80, cwd=ROOT):
        terminal = self

        class Screen(pyte.HistoryScreen):
            def write_process_input(self, data):  # e.g. the answer to ESC [6n (where is the cursor?)
                terminal.child.send(data)

        self.screen = Screen(columns, rows, history=5000, ratio=0.5)
        self.stream = pyte.Stream(self.screen)
        self.raw = []
        env = dict(env, TERM="xterm-256color", COLUMNS=str(columns), LINES=str(rows))
        env.pop("NO_COLOR", None)
        self.child = pexpect.spawn(sys.executable, ["-m", "wsctl", *args], cwd=str(cwd), env=env,
                                   encoding="utf-8", dimensions=(rows, columns), timeout=10)

    # -- reading ------------------------------------------------------------------------------
    def pump(self, seconds: float = 0.2) -> None:
        """Feed what the program wrote during `seconds` to the terminal emulator."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                data = self.child.read_nonblocking(65536, timeout=max(0.0, min(0.05, deadline - time.monotonic())))
            except pexpect.TIMEOUT:
                data = ""
            except pexpect.EOF:
                return
            if data:
                self.raw.append(data)
                self.stream.feed(data)
            if time.monotonic() >= deadline:
                return

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "") -> None:
        """Pump until predicate(self) holds; fail with the screen otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            if not self.child.isalive():
                self.pump(0.1)
                if predicate(self):
                    return
                raise AssertionError("wsctl ended while waiting for %s:\n%s" % (what, self.text()))
            self.pump(0.05)
        raise AssertionError("timed out waiting for %s:\n%s" % (what or predicate, self.text()))

    def wait_text(self, text: str, timeout: float = 10.0) -> None:
        self.wait_for(lambda t: text in t.text(), timeout, repr(text))

    def wait_prompt(self, timeout: float = 10.0) -> None:
        """Until the cursor stands on the prompt's row."""
        self.wait_for(lambda t: t.display()[t.cursor()[0]].startswith(">"), timeout, "the prompt")

    def wait_exit(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while self.child.isalive() and time.monotonic() < deadline:
            self.pump(0.05)
        self.pump(0.1)
        assert not self.child.isalive(), "wsctl did not exit:\n" + self.text()
        self.child.close()
        return self.child.exitstatus

    # -- the screen ----------------------------------------------------------------------------
    def lines(self) -> list[str]:
        """Every row, those scrolled off the top first, right-trimmed."""
        columns = self.screen.columns
        history = ["".join(row[x].data for x in range(columns)).rstrip() for row in self.screen.history.top]
        return history + [line.rstrip() for line in self.screen.display]

    def text(self) -> str:
        return "\n".join(self.lines())

    def display(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def cursor(self) -> tuple[int, int]:
        return self.screen.cursor.y, self.screen.cursor.x

    # -- typing --------------------------------------------------------------------------------
    def type(self, text: str) -> None:
        self.child.send(text)
        self.pump(0.1)

    def enter(self, text: str = "") -> None:
        self.child.send(text + "\r")
        self.pump(0.1)

    def key(self, name: str) -> None:
        self.child.send({"tab": "\t", "up": "\x1b[A", "ctrl-c": "\x03", "ctrl-d": "\x04"}[name])
        self.pump(0.1)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()


def live_env(home) -> dict:
    """The emulator tests' environment, with colours: the live client is what is under test."""
    env = _clean_env(home)
    del env["NO_COLOR"]
    return env
