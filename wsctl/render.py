"""Output: rich tables and colour on a terminal, plain text otherwise, JSON for scripts.

rich is imported only when something is drawn, so `wsctl --help` stays fast.
rich itself honours NO_COLOR and drops styling when stdout is not a terminal.
"""

import json
import sys
from functools import lru_cache


@lru_cache(maxsize=None)
def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


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


def relative_time(epoch_seconds: float, now: float) -> str:
    """'3m ago' / 'in 2h' for tables."""
    delta = epoch_seconds - now
    size = abs(delta)
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if size >= seconds or unit == "s":
            amount = "%d%s" % (size // seconds, unit)
            break
    return "in " + amount if delta > 0 else amount + " ago"


class DelayedProgress:
    """A progress bar that appears only on a terminal and only for runs over a second."""

    def __init__(self, label: str, enabled: bool = True, delay: float = 1.0):
        import time

        self.label, self.delay, self._time = label, delay, time.monotonic
        self.enabled = enabled and console(True).is_terminal
        self.started = self._time()
        self.progress = None
        self.task = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.progress is None:
            if self._time() - self.started < self.delay:
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     console=console(True), transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=total)
        self.progress.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
