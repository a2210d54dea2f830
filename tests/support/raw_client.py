"""A minimal RFC 6455 client over raw sockets, for frames no WebSocket library would send:
unmasked, fragmented anyhow, with reserved bits or bad close codes, any length field, or
pipelined with the upgrade request. Also one raw HTTP request, a SigV4 header of the right
shape, and a short label for what the bundled handler answered.

Used by tests/test_emulator_hostile.py and tests/test_frame_gate.py, and by the hostile-input
fuzzer bench/fuzz_emulator.py (which runs at CI size as tests/test_fuzz.py).
"""

import asyncio
import base64
import json
import os
import struct
import time

from wsctl.limits import MAX_FRAME_BYTES as MAX_FRAME  # a longer message is sent as fragments of this size

PUSH_TYPES = {"message", "room", "broadcast"}  # relayed to a connection, not an answer to its frame
REPLY_TIMEOUT = 15.0


# -- a minimal RFC 6455 client -----------------------------------------------------------------
class Closed(Exception):
    """The server closed the connection: `code` from its close frame (1006 without one)."""

    def __init__(self, code: int, reason: bytes = b""):
        super().__init__("closed with %s" % code)
        self.code, self.reason = code, reason


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, mask: bool = True,
          length: int | None = None) -> bytes:
    """One frame as a client sends it; `length` overrides the declared payload length."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    bit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", first, bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, bit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    if payload:
        stream = (key * (len(payload) // 4 + 1))[:len(payload)]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(payload), "big")
    return head + key + payload


def pieces(data: bytes, sizes: list[int], limit: int = MAX_FRAME) -> list[bytes]:
    """`data` cut into pieces of `sizes` (empty pieces allowed), then of `limit` for the rest."""
    out, position = [], 0
    for size in sizes:
        if position + size >= len(data):
            break
        out.append(data[position:position + size])
        position += size
    while len(data) - position > limit:
        out.append(data[position:position + limit])
        position += limit
    out.append(data[position:])
    return out


def fragments(data: bytes, sizes: list[int], opcode: int = 1, limit: int = MAX_FRAME) -> list[bytes]:
    """`data` as one message in frames: a first frame, continuations, FIN on the last."""
    parts = pieces(data, sizes, limit)
    return [frame(opcode if i == 0 else 0, part, fin=i == len(parts) - 1) for i, part in enumerate(parts)]


def chunked(data: bytes, opcode: int = 1) -> list[bytes]:
    """A message in frames of at most 32 KB, as API Gateway requires."""
    return fragments(data, [], opcode)


def upgrade_request(host: str, port: int, target: str, extra: bytes = b"") -> bytes:
    return (("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (
                 target, host, port, base64.b64encode(os.urandom(16)).decode())).encode() + extra + b"\r\n")


async def read_head(reader, timeout: float) -> tuple[int, dict, bytes]:
    """(status, lower-cased headers, raw head) of an HTTP response."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return status, headers, head


class RawSocket:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.pongs: list[bytes] = []
        self.pushes: list[dict] = []
        self.closed: Closed | None = None

    @classmethod
    async def connect(cls, host: str, port: int, target: str, extra: bytes = b"", pipelined: bytes = b"",
                      timeout: float = 10.0) -> tuple[int, "RawSocket"]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 20), timeout)
        writer.write(upgrade_request(host, port, target, extra) + pipelined)
        try:
            status, _, _ = await read_head(reader, timeout)
        except BaseException:
            writer.transport.abort()
            raise
        return status, cls(reader, writer)

    def send(self, *frames: bytes) -> None:
        for data in frames:
            self.writer.write(data)

    async def read_frame(self, timeout: float) -> tuple[int, int, bytes]:
        try:
            head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
            n = head[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            payload = await asyncio.wait_for(self.reader.readexactly(n), timeout)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed = Closed(1006)
            raise self.closed from None
        fin, opcode = head[0] >> 7, head[0] & 0x0F
        if opcode == 8:
            self.closed = Closed(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005, payload[2:])
            raise self.closed
        return fin, opcode, payload

    async def reply(self, timeout: float = REPLY_TIMEOUT):
        """The next frame that answers what we sent (pushes and pongs are set aside)."""
        while True:
            fin, opcode, payload = await self.read_frame(timeout)
            if opcode == 0xA:
                self.pongs.append(payload)
                continue
            while not fin:  # a message over 32 KB arrives in fragments, as API Gateway sends it
                fin, more, rest = await self.read_frame(timeout)
                if more == 0xA:
                    self.pongs.append(rest)
                    fin = 0
                    continue
                payload += rest
            if opcode != 1:
                return payload  # binary data: never an answer of the bundled handler
            try:
                document = json.loads(payload)
            except ValueError:
                return payload.decode("utf-8", "replace")
            if isinstance(document, dict) and document.get("type") in PUSH_TYPES:
                self.pushes.append(document)
                continue
            return document

    async def close_code(self, timeout: float = REPLY_TIMEOUT) -> int:
        """Read on until the server closes; the code it closed with."""
        while True:
            try:
                _, opcode, payload = await self.read_frame(timeout)
                if opcode == 0xA:
                    self.pongs.append(payload)
            except Closed as closed:
                return closed.code

    async def close(self, code: int = 1000) -> None:
        if self.closed is None:
            try:
                self.send(frame(8, struct.pack("!H", code)))
                await self.close_code(5.0)
            except (asyncio.TimeoutError, ConnectionError):
                pass
        self.abort()

    def abort(self) -> None:
        try:
            self.writer.transport.abort()
        except Exception:  # noqa: BLE001 - already gone
            pass


async def http_request(host: str, port: int, raw: bytes, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """Send one raw HTTP request; (status, headers, body). Raises if no status line comes back."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 20), timeout)
    try:
        writer.write(raw)
        status, headers, _ = await read_head(reader, timeout)
        length = 0 if raw.startswith(b"HEAD ") else int(headers.get("content-length", "0") or 0)
        body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
        return status, headers, body
    finally:
        writer.transport.abort()


def sigv4_headers(service: str = "execute-api", when: float | None = None) -> bytes:
    """A SigV4 Authorization header of the right shape (the emulator cannot check the key)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if when is None else when))
    return ("X-Amz-Date: %s\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDFUZZ/%s/us-east-1/%s/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=%s\r\n" % (stamp, stamp[:8], service, "0" * 64)).encode()


def label(answer) -> str:
    if not isinstance(answer, dict):
        return "not-json:%r" % (answer if isinstance(answer, bytes) else str(answer))[:80]
    if "type" not in answer:  # API Gateway's own frame: {"message": "...", "connectionId", "requestId"}
        return "apigw:%s" % answer.get("message")
    return "error:%s" % answer.get("error") if answer["type"] == "error" else str(answer["type"])
