"""Keep-alive HTTP/1.1 connections to one endpoint, on raw asyncio protocols.

The lean sender's I/O. Each connection is an asyncio.Protocol that writes a request's bytes
and hands the answer (read by wsctl.fanout.http1) to the caller waiting for it. The pool keeps
the connections that may carry another request, opens new ones up to its size, and reaches
the endpoint directly, over TLS (with the target's CA bundle when it has one), or through an
HTTP proxy: absolute-form requests for an http:// endpoint, a CONNECT tunnel for https://.

Nothing is retried here: a request that may have reached the endpoint is the engine's to
retry or not (wsctl.fanout.policy). A timed-out, cancelled or broken exchange ends its
connection, so a late answer can never be taken for the next request's.
"""

import asyncio
import collections
import socket
import ssl
from urllib.parse import urlsplit

from .http1 import (DEFAULT_PORTS, HttpError, Response, ResponseReader, connect_request, proxy_authorization,
                    tunnel_status)

MAX_TUNNEL_HEAD = 16 * 1024  # a proxy's answer to CONNECT, up to its blank line


class Lost(ConnectionError):
    """The connection ended before the answer came (closed, reset, timed out or abandoned)."""


class Connection(asyncio.Protocol):
    """One keep-alive connection. Answers come back in the order of the requests, each to the oldest
    caller still waiting (so requests may be pipelined)."""

    def __init__(self, on_lost=None):
        self.on_lost = on_lost  # called once the connection has ended
        self.transport = None
        self.reader = ResponseReader()
        self.waiting: collections.deque = collections.deque()  # (future, sent at) per request in flight
        self.usable = True  # may carry another request
        self.tunnel: asyncio.Future | None = None  # set while a proxy's answer to CONNECT is awaited
        self.head = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            return self._tunnel_data(data)
        try:
            answers = self.reader.feed(data)
        except HttpError as error:
            return self.fail(error)
        for answer in answers:
            if not self.waiting:
                return self.fail(HttpError("an answer to no request"))
            future, _ = self.waiting.popleft()
            if not answer.keep_alive:
                self.usable = False
            if not future.done():
                future.set_result(answer)

    def eof_received(self):
        self.usable = False
        return None  # close our side too: a half-closed keep-alive connection carries nothing more

    def connection_lost(self, exc) -> None:
        self.usable = False
        if self.tunnel is not None and not self.tunnel.done():
            self.tunnel.set_exception(Lost("the proxy closed the connection during CONNECT"))
        last = self.reader.eof()  # an answer whose body ran to the close
        if last is not None and self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_result(last)
        self._fail_waiting(Lost("the endpoint closed the connection%s" % (" (%s)" % exc if exc else "")))
        if self.on_lost is not None:
            self.on_lost(self)

    def fail(self, error: Exception) -> None:
        """End the connection, and every request in flight on it with `error`."""
        self.usable = False
        if self.transport is not None:
            self.transport.abort()
        self._fail_waiting(error)

    def _fail_waiting(self, error: Exception) -> None:
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def _tunnel_data(self, data: bytes) -> None:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0 and len(self.head) <= MAX_TUNNEL_HEAD:
            return
        tunnel, self.tunnel = self.tunnel, None
        if end < 0:
            tunnel.set_exception(HttpError("the proxy's answer to CONNECT has no end"))
        elif len(self.head) > end + 4:
            tunnel.set_exception(HttpError("the proxy sent data before the tunnel was up"))
        else:
            try:
                tunnel.set_result(tunnel_status(self.head))
            except HttpError as error:
                tunnel.set_exception(error)


def tls_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_bundle)
    context.set_alpn_protocols(["http/1.1"])
    return context


class Pool:
    """Up to `size` connections to the endpoint of `url`, each carrying one request at a time;
    `timeout` bounds each connect and each answer."""

    def __init__(self, url: str, size: int, timeout: float = 10.0, ca_bundle: str | None = None,
                 proxy: str | None = None):
        parts = urlsplit(url)
        self.secure = parts.scheme == "https"
        self.hostname, self.port = parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]
        self.context = tls_context(ca_bundle) if self.secure else None
        self.proxy = urlsplit(proxy) if proxy else None
        self.size, self.timeout = max(1, size), timeout
        self.idle: list[Connection] = []  # last in, first out: the warmest connection goes first
        self.connections: set[Connection] = set()
        self.opening = 0
        self.waiters: collections.deque = collections.deque()  # callers waiting for a free slot
        self.loop = None
        self.addresses: list | None = None
        self.sweeper = None

    async def __aenter__(self):
        self.loop = asyncio.get_running_loop()
        self.sweeper = self.loop.create_task(self._sweep())
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()
        await asyncio.sleep(0)  # let the transports' connection_lost run

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
        for connection in list(self.connections):
            connection.on_lost = None
            connection.fail(Lost("the sender closed"))
        self.connections.clear()
        self.idle.clear()

    async def exchange(self, request: bytes) -> Response:
        """Send one request's bytes; its answer. Raises OSError (Lost among them), HttpError or
        asyncio.TimeoutError when no answer came."""
        connection = None
        while self.idle and connection is None:
            connection = self.idle.pop()
            if not connection.usable:  # closed by the endpoint while idle (it is forgotten already)
                connection = None
        if connection is None:
            connection = await self._connection()
        future = self.loop.create_future()
        connection.waiting.append((future, self.loop.time()))
        connection.transport.write(request)
        try:
            answer = await future
        except BaseException as error:  # cancelled included: its answer must not go to the next caller
            connection.fail(error if isinstance(error, Exception) else Lost("abandoned"))
            raise
        if connection.usable:
            self._release(connection)
        else:
            connection.transport.close()  # the pool forgets it once it has closed
        return answer

    # -- slots ---------------------------------------------------------------------------------
    async def _connection(self) -> Connection:
        while len(self.connections) + self.opening >= self.size:
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                given = await waiter  # a released connection, or None: a slot came free
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self._release(waiter.result())  # handed over just as this caller went
                raise
            if given is not None and given.usable:
                return given
        self.opening += 1
        try:
            connection = await asyncio.wait_for(self._open(), self.timeout)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError("no connection to %s in %g s" % (self.hostname, self.timeout)) from None
        finally:
            self.opening -= 1
        self.connections.add(connection)
        return connection

    def _release(self, connection: Connection) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self.idle.append(connection)

    def _forget(self, connection: Connection) -> None:
        """A connection ended (Connection.on_lost)."""
        self.connections.discard(connection)
        while self.waiters:  # a slot came free: one waiter may open a connection
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _sweep(self) -> None:
        """End the connections whose oldest request has waited longer than the timeout: one timer
        for the pool rather than one per request."""
        every = max(0.05, min(1.0, self.timeout / 4))
        while True:
            await asyncio.sleep(every)
            now = self.loop.time()
            for connection in list(self.connections):
                if connection.waiting and now - connection.waiting[0][1] > self.timeout:
                    connection.fail(asyncio.TimeoutError("no answer in %g s" % self.timeout))

    # -- opening -------------------------------------------------------------------------------
    async def _open(self) -> Connection:
        if self.proxy is None:
            _, connection = await self._dial(self.hostname, self.port, self.context, self.hostname)
            return connection
        proxy_context = tls_context() if self.proxy.scheme == "https" else None
        proxy_port = self.proxy.port or DEFAULT_PORTS.get(self.proxy.scheme, 80)
        transport, connection = await self._dial(self.proxy.hostname, proxy_port, proxy_context,
                                                 self.proxy.hostname)
        if not self.secure:
            return connection  # requests in absolute form, to the proxy
        connection.tunnel = self.loop.create_future()
        authority = "%s:%d" % ("[%s]" % self.hostname if ":" in self.hostname else self.hostname, self.port)
        transport.write(connect_request(authority, proxy_authorization(self.proxy.geturl())))
        try:
            status = await connection.tunnel
        except BaseException:
            transport.abort()
            raise
        if status != 200:
            transport.abort()
            raise HttpError("the proxy %s refused a tunnel to %s: HTTP %d" % (self.proxy.hostname, authority, status))
        connection.transport = await self.loop.start_tls(transport, connection, self.context,
                                                         server_hostname=self.hostname)
        return connection

    async def _dial(self, host: str, port: int, context, server_hostname: str):
        """A TCP (and TLS) connection to host:port, its addresses looked up once for the pool."""
        if self.addresses is None or self.addresses[0] != (host, port):
            infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            self.addresses = ((host, port), [info[4][:2] for info in infos])
        error = None
        for address in self.addresses[1]:
            try:
                return await self.loop.create_connection(lambda: Connection(self._forget), *address, ssl=context,
                                                         server_hostname=server_hostname if context else None)
            except OSError as failure:
                error = failure
        raise error or OSError("no address for %s" % host)
