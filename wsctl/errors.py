"""The one exception type that commands raise for problems a person can fix.

The CLI prints its message as one line (no traceback unless --debug) and exits
with its code.
"""


class WsctlError(Exception):
    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(WsctlError):
    """Bad options or arguments (exit 2, like click's own usage errors)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)
