"""Child processes that cannot outlive the emulator.

However the emulator ends (SIGKILL included, where no cleanup code runs), Linux
sends its children SIGTERM through PR_SET_PDEATHSIG, so no worker or moto
server is left running. Elsewhere this is a no-op and the normal shutdown
path stops them.
"""

import ctypes
import errno
import os
import shutil
import signal
import sys

PR_SET_PDEATHSIG = 1
LINUX = sys.platform.startswith("linux")
# util-linux's setpriv makes the same prctl call and then execs the command. With it no
# preexec_fn is needed, so CPython can spawn with vfork: a preexec_fn forces a full fork of
# the emulator (15 ms from a 157 MB process, 0.15 ms without, bench/README.md "Execution
# environments"), and the event loop waits through it for every execution environment started.
SETPRIV = shutil.which("setpriv") if LINUX else None


def die_with_parent() -> None:
    """A preexec_fn: ask the kernel to SIGTERM this child when its parent dies."""
    if LINUX:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass


def tied_to_parent(argv: list[str], path: str | None = None) -> tuple[list[str], object]:
    """`(argv, preexec_fn)` to spawn `argv` so that it dies with this process: through setpriv
    where there is one (fast spawn), else through a preexec_fn (a full fork).

    Raises OSError as spawning would when the program cannot be run, since behind setpriv
    that would only show as its exit status 127. `path` is the PATH the child gets."""
    if SETPRIV:
        _check_runnable(argv[0], path)
        return [SETPRIV, "--pdeathsig", "TERM", "--", *argv], None
    return list(argv), die_with_parent if LINUX else None


def _check_runnable(program: str, path: str | None) -> None:
    if os.sep in program:
        if not os.path.exists(program):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(program) or not os.access(program, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    elif shutil.which(program, path=path) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
