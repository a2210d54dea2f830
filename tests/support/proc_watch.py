"""Every process a command starts, seen from /proc while it runs, so a test can check that none
outlives it (moto's server, the functions' execution environments, an emulator of the demo's).

A process is known by (pid, start time): a pid the kernel hands out again later is not mistaken
for a survivor.
"""

import os
import threading
import time


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a process, or None when it is gone (or a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), fields[19]


def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat:
                tree.setdefault(stat[0], []).append(int(name))
    return tree


def descendants(root: int) -> dict[int, str]:
    tree = children_map()
    found, todo = {}, list(tree.get(root, []))
    while todo:
        pid = todo.pop()
        stat = _stat(pid)
        if stat and pid not in found:
            found[pid] = stat[1]
            todo += tree.get(pid, [])
    return found


def cmdline(pid: int) -> str:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class Watch:
    """Collect the descendants of `root` every few milliseconds until stopped."""

    def __init__(self, root: int, interval: float = 0.02):
        self.root = root
        self.seen: dict[int, str] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            for pid, started in descendants(self.root).items():
                self.seen.setdefault(pid, started)
                if self.seen[pid] == started:  # read again: a child forked but not yet exec'ed shows its parent's
                    self.names[pid] = cmdline(pid) or self.names.get(pid, "")
            time.sleep(interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def matching(self, text: str) -> list[int]:
        return [pid for pid, name in self.names.items() if text in name]

    def survivors(self, timeout: float = 10.0) -> list[str]:
        """The processes seen that are still running after `timeout` seconds (none, we hope)."""
        deadline = time.monotonic() + timeout
        while True:
            alive = [pid for pid, started in self.seen.items() if (_stat(pid) or (0, None))[1] == started]
            if not alive or time.monotonic() > deadline:
                return ["%d %s" % (pid, self.names.get(pid, "")) for pid in alive]
            time.sleep(0.05)

    def kill_survivors(self) -> None:
        """Clean up after a failed test: SIGKILL whatever it left (by pid, only ours)."""
        import signal

        for pid, started in self.seen.items():
            if (_stat(pid) or (0, None))[1] == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
