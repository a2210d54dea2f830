"""Output: rich tables and colour on a terminal, plain text otherwise, JSON for scripts.

rich is imported only when something is drawn, so `wsctl --help` stays fast.
rich itself honours NO_COLOR and drops styling when stdout is not a terminal.
"""

import json
import os
import sys
import time
from datetime import datetime, timezone
from functools import lru_cache


@lru_cache(maxsize=None)
def console(stderr: bool = False):
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # rich's own answer is SystemExit(1) on the spot; raising lets the command unwind
            # (stopping what it started) and end quietly with 141, as SIGPIPE would (wsctl.cli).
            self.quiet = True
            raise BrokenPipeError(32, "the reader of wsctl's output went away")

    return _Console(stderr=stderr, highlight=False, soft_wrap=False)


def print_json(document) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def line(text: str = "", style: str | None = None, stderr: bool = False) -> None:
    console(stderr).print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def markup(text: str, stderr: bool = False) -> None:
    console(stderr).print(text, highlight=False)


def error(message: str) -> None:
    """The one line a failed command prints (stderr)."""
    message = " ".join(str(message).split())  # one line, whatever the source said
    console(True).print("error: " + message, style="bold red", markup=False, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    console(True).print("warning: " + message, style="yellow", markup=False, highlight=False, soft_wrap=True)


def table(columns: list[str], rows: list[list], title: str | None = None) -> None:
    from rich.table import Table

    from rich import box

    out = console()
    if title:  # left-aligned above the table: rich's centred titles wrap badly in narrow terminals
        line(title, style="bold")
    grid = Table(show_lines=False, header_style="bold", box=box.SIMPLE_HEAD if out.is_terminal else None,
                 pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    out.print(grid)


def key_values(pairs: list[tuple[str, object]], title: str | None = None) -> None:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in pairs:
        grid.add_row(key, "" if value is None else str(value))
    if title:
        line(title, style="bold")
    console().print(grid)


_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration(seconds: float) -> str:
    """A duration as people say it, in its two largest units, never rounded up: 7199 s is
    '1 h 59 m' (not '1h', and not '2 h' before the two hours are over); under a second, '0 s'."""
    size = int(abs(seconds))
    parts = []
    for unit, length in _UNITS:
        if size >= length or (unit == "s" and not parts):
            parts.append("%d %s" % (size // length, unit))
            size %= length
        elif parts:
            parts.append("0 %s" % unit)
        if len(parts) == 2:
            break
    if len(parts) == 2 and parts[1].startswith("0 "):
        parts.pop()
    return " ".join(parts)


def relative_time(epoch_seconds: float, now: float) -> str:
    """'3 m 12 s ago' / 'in 1 h 59 m' for tables."""
    delta = epoch_seconds - now
    return "in " + duration(delta) if delta > 0 else duration(delta) + " ago"


def iso_time(epoch_seconds: float | None) -> str | None:
    """ISO 8601 in UTC with milliseconds, as API Gateway writes times: 2026-12-02T02:11:57.102Z."""
    if epoch_seconds is None:
        return None
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def epoch(value) -> float | None:
    """Seconds since the epoch from what the registry and API Gateway hold: an ISO 8601 time
    (GetConnection), or epoch milliseconds (connectedAt) or seconds (ttl) as numbers."""
    from decimal import Decimal

    if value is None or value == "":
        return None
    if isinstance(value, (int, float, Decimal)):
        value = float(value)
        return value / 1000 if value > 10 ** 11 else value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def relative(value, now: float) -> str:
    """A registry or API Gateway time (see epoch) as '3 m 12 s ago' / 'in 1 h 59 m'; as given if not a time."""
    moment = epoch(value)
    return relative_time(moment, now) if moment is not None else (value or "-")


def json_times(row: dict | None) -> dict | None:
    """A row or registry item for -o json: times in ISO 8601 (UTC, ms), `ttl` as `expiresAt`."""
    if row is None:
        return None
    out = dict(row)
    for key in ("connectedAt", "lastActiveAt", "joinedAt"):
        if key in out and out[key] is not None:
            out[key] = iso_time(epoch(out[key])) or out[key]
    if "ttl" in out:
        ttl = out.pop("ttl")
        out["expiresAt"] = iso_time(epoch(ttl)) if ttl is not None else None
    return out


def local_time(epoch_seconds: float, now: float | None = None) -> str:
    """A moment as people read it: local date and time with the zone, and how long ago or ahead."""
    now = time.time() if now is None else now
    shown = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch_seconds)).strip()
    return "%s (%s)" % (shown, relative_time(epoch_seconds, now))


class DelayedProgress:
    """A progress bar that appears only on a terminal and only for runs over a second."""

    def __init__(self, label: str, enabled: bool = True, delay: float = 1.0):
        self.label, self.delay, self._time = label, delay, time.monotonic
        self.enabled = enabled and console(True).is_terminal
        self.started = self._time()
        self.progress = None
        self.task = None

    wants_detail = True  # the fan-out engine adds the rate it holds and its retries

    def __call__(self, done: int, total: int, detail: str = "") -> None:
        if not self.enabled:
            return
        if self.progress is None:
            if self._time() - self.started < self.delay:
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     TextColumn("{task.fields[detail]}"), console=console(True), transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=total, detail=detail)
        self.progress.update(self.task, completed=done, total=total, detail=detail)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def detach(stream=None) -> None:
    """Point a stream's file descriptor (stdout by default) at /dev/null, so that nothing more
    (Python's last flush included) writes to a pipe whose reader is gone."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, (stream or sys.stdout).fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
