"""The browser view of a running emulator: a live page of connections, frames, invocations and
function logs, with the CLI's actions (send, broadcast, disconnect, invoke).

server.py serves it on a port of its own (guard.py decides who may use it), snapshot.py reads
the emulator's rows, actions.py runs wsctl.ops on this emulator, static/ holds the page
(plain HTML, CSS and JavaScript: no build step, nothing fetched at run time). What happened
comes from the journal in wsctl/local/observe.py.
"""

from .server import ViewServer

__all__ = ["ViewServer"]
