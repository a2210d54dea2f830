"""A scripted management endpoint on loopback, for the lean sender's tests (tests/test_lean_sender.py).

Real sockets, a real HTTP/1.1 parser (httptools) and real SigV4 checks: every request's signature
is recomputed with sigv4.verify (the secret is known here) and recorded. What each request gets is
the test's script, called with the connection id and how many times it was asked for it: exact
answer bytes (any status, chunked, close-delimited), an answer then a close, a close or a reset
before any answer, or no answer at all. `reset_all` resets every open connection at once.
"""

import asyncio
import socket
import struct
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httptools
from multidict import CIMultiDict, MultiDict

from support.loop_thread import LoopThread
from wsctl import sigv4

CLOSE, RESET, HANG = "close", "reset", "hang"  # actions besides answer bytes


def answer(status: int, reason: str = "X", headers: dict | None = None, body: bytes = b"",
           length: bool = True) -> bytes:
    """An HTTP/1.1 answer's bytes. length=False: no Content-Length (a close-delimited body)."""
    lines = ["HTTP/1.1 %d %s" % (status, reason)] + ["%s: %s" % kv for kv in (headers or {}).items()]
    if length:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(status: int, headers: dict, body: bytes) -> bytes:
    lines = ["HTTP/1.1 %d X" % status, "Transfer-Encoding: chunked"] + ["%s: %s" % kv for kv in headers.items()]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:3], body[3:]) if part)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + chunks + b"0\r\n\r\n"


OK = answer(200, "OK")


@dataclass
class Seen:
    method: str
    path: str  # as sent (percent-encoded)
    connection_id: str  # decoded
    body: bytes
    signed: str  # the access key id the signature verified for, or why it did not
    connection: int  # which of the server's connections carried it
    host: str


class _Peer(asyncio.Protocol):
    def __init__(self, server: "ScriptedServer"):
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.number = next(server.numbers)

    def connection_made(self, transport):
        self.transport = transport
        self.server.open.add(self)

    def connection_lost(self, exc):
        self.server.open.discard(self)

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self):
        self.url, self.headers, self.body = b"", CIMultiDict(), b""

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        self.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_body(self, body):
        self.body += body

    def on_message_complete(self):
        self.server.arrived(self, self.parser.get_method().decode(), self.url.decode("latin-1"), self.headers,
                            self.body)

    def reset(self):
        self.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class ScriptedServer(LoopThread):
    def __init__(self, script, secret: str = "secret", stage: str = "dev"):
        super().__init__()
        self.script, self.secret, self.stage = script, secret, stage
        self.seen: list[Seen] = []
        self.asked: dict[str, int] = {}
        self.open: set[_Peer] = set()
        self.numbers = iter(range(1, 1 << 30))

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/%s" % (self.port, self.stage)

    async def serve(self):
        return await self.loop.create_server(lambda: _Peer(self), "127.0.0.1", 0)

    def end(self) -> None:
        for peer in list(self.open):
            peer.transport.abort()

    def arrived(self, peer: _Peer, method: str, target: str, headers, body: bytes) -> None:
        path = urlsplit(target).path if target.startswith("http") else target
        connection_id = unquote(path.rsplit("/", 1)[-1])
        try:
            signed = sigv4.verify(method, path, MultiDict(), headers, body, self.secret)
        except sigv4.Rejected as rejected:
            signed = "rejected: %s" % rejected
        self.seen.append(Seen(method, path, connection_id, body, signed, peer.number, headers.get("Host", "")))
        self.asked[connection_id] = self.asked.get(connection_id, 0) + 1
        action = self.script(connection_id, self.asked[connection_id])
        then = None
        if isinstance(action, tuple):
            action, then = action
        if action == HANG:
            return
        if action == CLOSE:
            return peer.transport.close()
        if action == RESET:
            return peer.reset()
        peer.transport.write(action)
        if then == CLOSE:
            peer.transport.close()

    def reset_all(self) -> None:
        """Reset every open connection, from any thread."""
        done = threading.Event()

        def reset():
            for peer in list(self.open):
                peer.reset()
            done.set()

        self.loop.call_soon_threadsafe(reset)
        done.wait(10)
