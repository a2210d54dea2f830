"""The one exception type that commands raise for problems a person can fix.

The CLI prints its message as one line (no traceback unless --debug) and exits
with its status (wsctl.exitstatus).
"""

from .exitstatus import ExitStatus


class WsctlError(Exception):
    def __init__(self, message: str, exit_code: ExitStatus = ExitStatus.ERROR):
        super().__init__(message)
        self.exit_code = ExitStatus(exit_code)


class UsageError(WsctlError):
    """Bad options or arguments (exit 2, like click's own usage errors)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=ExitStatus.USAGE)
