"""Child processes that cannot outlive the emulator.

However the emulator ends (SIGKILL included, where no cleanup code runs), Linux
sends its children SIGTERM through PR_SET_PDEATHSIG, so no worker or moto
server is left running. Elsewhere this is a no-op and the normal shutdown
path stops them.
"""

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A preexec_fn: ask the kernel to SIGTERM this child when its parent dies."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass
