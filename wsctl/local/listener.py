"""One port, two schemes: plain ws:// and http:// beside wss:// and https://.

API Gateway serves the socket and the management API on one domain, and most
handlers build their management client as `https://{domainName}/{stage}`. So
the port that `domainName` names must also speak TLS: each accepted socket's
first byte is peeked (a TLS ClientHello starts with 0x16) and the socket is
handed to aiohttp with or without TLS. The certificates come from the emulator's
own CA (certs.py), which handlers trust through AWS_CA_BUNDLE.
"""

import asyncio
import errno
import socket
import ssl

from ..errors import WsctlError

TLS_RECORD_HANDSHAKE = 0x16
PEEK_TIMEOUT = 10.0


def bind(host: str, port: int, option: str = "--port") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise WsctlError("port %d on %s is already in use: pass %s with another port (or 0 for any "
                             "free one), or stop what listens there" % (port, host, option)) from None
        raise WsctlError("cannot listen on %s:%d: %s" % (host, port, error.strerror)) from None
    sock.listen(4096)
    sock.setblocking(False)
    return sock


class SniffingListener:
    """Accept connections and hand each to `protocol_factory`, with TLS when it starts with TLS."""

    def __init__(self, sock: socket.socket, protocol_factory, tls: ssl.SSLContext):
        self.sock, self.factory, self.tls = sock, protocol_factory, tls
        self.loop = asyncio.get_running_loop()
        self.pending: dict = {}  # accepted, first byte not yet here -> when to give up on it
        self._sweeper = None
        self.loop.add_reader(sock.fileno(), self._accept)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _accept(self) -> None:
        # Drain the backlog in one go, as asyncio's own servers do.
        for _ in range(1024):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EMFILE and friends: leave the rest in the backlog
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # A client's request usually follows its handshake at once: look before waiting for it.
            self._first_byte(conn, waiting=False)

    def _first_byte(self, conn: socket.socket, waiting: bool = True) -> None:
        if waiting:
            self.loop.remove_reader(conn.fileno())
            self.pending.pop(conn, None)
        try:
            first = conn.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            self.loop.add_reader(conn.fileno(), self._first_byte, conn)
            self.pending[conn] = self.loop.time() + PEEK_TIMEOUT
            if self._sweeper is None:
                self._sweeper = self.loop.call_later(1.0, self._expire)
            return
        except OSError:
            conn.close()
            return
        if not first:
            conn.close()
            return
        tls = self.tls if first[0] == TLS_RECORD_HANDSHAKE else None
        task = self.loop.create_task(self._serve(conn, tls))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    def _expire(self) -> None:
        """Once a second while any socket is pending: close those connected that never said anything
        (one timer for all of them, not one per connection)."""
        now = self.loop.time()
        for conn, deadline in list(self.pending.items()):
            if deadline <= now:
                del self.pending[conn]
                self.loop.remove_reader(conn.fileno())
                conn.close()
        self._sweeper = self.loop.call_later(1.0, self._expire) if self.pending else None

    async def _serve(self, conn: socket.socket, tls) -> None:
        try:
            if tls is None:
                await self.loop.connect_accepted_socket(self.factory, conn)
            else:
                await self.loop.connect_accepted_socket(self.factory, conn, ssl=tls, ssl_handshake_timeout=10)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError):
            conn.close()

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.pending):
            self.loop.remove_reader(conn.fileno())
            conn.close()
        self.pending.clear()
        self.sock.close()
