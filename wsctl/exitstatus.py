"""Every exit status wsctl uses, each meaning one thing.

`wsctl --help` and README.md ("Exit codes") list this table; a test checks that both list
exactly these members and values. A command that ends with one of them raises
`typer.Exit(status)` or a `WsctlError(message, status)` (the error line first).
"""

from enum import IntEnum


class ExitStatus(IntEnum):
    """An exit status and what it means (`status.meaning`)."""

    def __new__(cls, value: int, meaning: str):
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    OK = 0, "success"
    ERROR = 1, "failed; the one error line says why (AWS or the emulator refused, no credentials, could not connect)"
    USAGE = 2, "bad options or arguments, with one line saying why (as click says it)"
    NOT_FOUND = 3, ("nothing to act on: the connection is unknown or gone, the user or room has no live "
                    "connection, the function does not exist")
    FORBIDDEN = 4, ("your AWS identity lacks a permission (execute-api:ManageConnections, or "
                    "lambda:InvokeFunction with --server-side)")
    INCOMPLETE = 5, ("some live connections were not reached: throttled or failed after retries, a "
                     "server-side segment did not finish, or (prune) could not be checked")
    NOT_DEPLOYED = 6, "status: the stack is not deployed, or only in part"
    REFUSED = 7, "connect: the handshake was refused with an HTTP status, such as 401 or 403"
    CLOSED_ABNORMALLY = 8, "connect: the connection dropped, or closed with a code other than 1000 or 1001"
    FUNCTION_ERROR = 9, "invoke: the function ran and returned an error"
    HANGUP = 129, "ended by SIGHUP (a closed terminal), after stopping what it started"
    INTERRUPTED = 130, "interrupted (Ctrl-C), after the partial report"
    BROKEN_PIPE = 141, "the reader of the output went away (a pipe into head closed), after stopping what it started"
    TERMINATED = 143, "ended by SIGTERM, after stopping what it started"


def table(width: int = 76) -> str:
    """The table for `wsctl --help`: one status a line, its meaning wrapped under itself."""
    import textwrap

    name_width = max(len(status.name) for status in ExitStatus)
    indent = " " * (3 + 2 + name_width + 2)
    lines = []
    for status in ExitStatus:
        head = "%3d  %-*s  " % (status.value, name_width, status.name)
        lines += textwrap.wrap(status.meaning, width=width, initial_indent=head, subsequent_indent=indent,
                               break_on_hyphens=False)
    return "\n".join(lines)


__all__ = ["ExitStatus", "table"]
