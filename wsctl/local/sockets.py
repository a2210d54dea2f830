"""The gateway's WebSocket at the wire: what aiohttp does not do as API Gateway does.

aiohttp limits whole messages; API Gateway also limits single frames (32 KB) and
refuses binary data, so a gate reads each frame header as it arrives. A closed
socket lingers so the client sees our close frame rather than a reset. aiohttp's
log of requests its parser refused becomes one line. Pure socket mechanics: no
routes, events or handler calls here (those are in gateway.py).
"""

import asyncio
import logging
import time

from aiohttp import WSCloseCode, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_websocket import WebSocketError

from ..limits import MAX_FRAME_BYTES

LINGER = 2.0  # seconds a closed socket goes on reading (and dropping) what the client still sends


class FrameGate:
    """Sits in front of aiohttp's WebSocket reader and looks at frame headers only:
    aiohttp limits whole messages, API Gateway also limits single frames (32 KB) and
    refuses binary data (1003), so each data frame's header is checked as it arrives.
    aiohttp also accepts unmasked client frames, which RFC 6455 makes a protocol error (1002)."""

    def __init__(self, inner, queue, max_frame: int):
        self.inner, self.queue, self.max_frame = inner, queue, max_frame
        self.header = b""
        self.skip = 0
        self.failed = False

    def feed_eof(self):
        self.inner.feed_eof()

    def feed_data(self, data):
        if not self.failed:
            problem = self._scan(bytes(data))
            if problem:
                self.failed = True
                self.queue.set_exception(WebSocketError(*problem))
                return True, b""
        return self.inner.feed_data(data)

    def _scan(self, data: bytes):
        position, size = 0, len(data)
        while position < size:
            if self.skip:
                step = min(self.skip, size - position)
                self.skip -= step
                position += step
                continue
            buffer = self.header + data[position:position + 14]
            if len(buffer) < 2:
                self.header = buffer
                return None
            length_flag = buffer[1] & 0x7F
            needed = 2 + (2 if length_flag == 126 else 8 if length_flag == 127 else 0) + (4 if buffer[1] & 0x80 else 0)
            if len(buffer) < needed:
                self.header = buffer
                return None
            position += needed - len(self.header)
            self.header = b""
            opcode = buffer[0] & 0x0F
            if not buffer[1] & 0x80:  # RFC 6455 §5.1: a server fails a client frame that is not masked
                return WSCloseCode.PROTOCOL_ERROR, "client frames must be masked"
            if buffer[0] & 0x70:  # no extension is negotiated: reserved bits fail any frame, binary too
                return WSCloseCode.PROTOCOL_ERROR, "reserved bits set"
            if length_flag == 126:
                length = int.from_bytes(buffer[2:4], "big")
            elif length_flag == 127:
                length = int.from_bytes(buffer[2:10], "big")
            else:
                length = length_flag
            if opcode == 0x2:
                return WSCloseCode.UNSUPPORTED_DATA, "binary frames are not supported"
            if opcode in (0x0, 0x1) and length > self.max_frame:
                return WSCloseCode.MESSAGE_TOO_BIG, "frame of %d bytes is over the %d-byte limit" % (length, self.max_frame)
            self.skip = length
        return None


class BadRequestLog(logging.Filter):
    """aiohttp logs each request its HTTP parser refuses (and answers 400) with a traceback.
    A client's malformed request is no fault of the emulator: one line says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            reason = (str(error.message or "") or type(error).__name__).strip().splitlines()[0]
            record.msg, record.args = "%s: 400 %s", (record.getMessage(), reason)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class GatewaySocket(web.WebSocketResponse):
    max_frame = MAX_FRAME_BYTES
    chosen_protocol = None  # the subprotocol $connect returned, sent whether or not it was offered

    def _handshake(self, request):
        headers, protocol, compress, notakeover = super()._handshake(request)
        if self.chosen_protocol:
            headers["Sec-WebSocket-Protocol"] = protocol = self.chosen_protocol
        return headers, protocol, compress, notakeover

    def _post_start(self, request, protocol, writer):
        handler = request.protocol
        # Frames a client sent before it saw the 101 wait in the handler's tail, and aiohttp
        # feeds them straight to its reader: past the gate, which then started mid-frame.
        tail = getattr(handler, "_message_tail", b"")
        if tail:
            handler._message_tail = b""
        super()._post_start(request, protocol, writer)
        if getattr(handler, "_payload_parser", None) is self._parser:
            handler._payload_parser = FrameGate(self._parser, self._reader, self.max_frame)
        if tail:
            handler._payload_parser.feed_data(tail)

    def _close_transport(self):
        """A lingering close. Closing a socket that still has unread data makes the kernel send
        RST, and a client still sending (the rest of an oversize message, say) then loses our
        close frame and sees 1006 instead of 1009. So: FIN after the close frame, go on reading
        and dropping, and close when the client does (or after LINGER; see `lingered`)."""
        transport = self._req.transport if self._req is not None else None
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():  # TLS: no half-close, and a client waits for our close
            transport.close()
            return
        self._req.protocol._payload_parser = _Dropped()
        try:
            transport.resume_reading()
            transport.write_eof()
        except OSError:
            transport.close()

    async def lingered(self) -> None:
        """Wait for the client to close after a lingering close, LINGER at most; then close."""
        transport = self._req.transport if self._req is not None else None
        deadline = time.monotonic() + LINGER
        while transport is not None and not transport.is_closing() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if transport is not None:
            transport.close()


class _Dropped:
    """The payload parser of a closed WebSocket: what still arrives is dropped."""

    def feed_data(self, data):
        return False, b""

    def feed_eof(self):
        pass


class Connection:
    __slots__ = ("id", "ws", "origin", "last_active", "close", "transport")

    def __init__(self, ws, origin, transport=None):
        self.id, self.ws, self.origin = origin.connection_id, ws, origin
        self.last_active = time.time()
        self.close = None  # (code, reason) once the server decided to close it
        self.transport = transport

    def roomy(self, size: int) -> bool:
        """Writing `size` more bytes leaves the transport well below its high-water mark."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        return transport.get_write_buffer_size() + size < transport.get_write_buffer_limits()[1] // 2

    def backlogged(self) -> bool:
        """The client is not reading: what we queued for it is past the transport's high-water mark."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        return transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]


def _frame_header(first: bool, last: bool, opcode: int, length: int) -> bytes:
    head = (0x80 if last else 0) | (opcode if first else 0)  # continuation frames carry opcode 0
    if length < 126:
        return bytes((head, length))
    if length < 1 << 16:
        return bytes((head, 126)) + length.to_bytes(2, "big")
    return bytes((head, 127)) + length.to_bytes(8, "big")


def fragments(data: bytes, opcode: int, size: int = MAX_FRAME_BYTES) -> list[bytes]:
    """A message over `size` as API Gateway sends it: frames of at most 32 KB (pure)."""
    chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    return [_frame_header(i == 0, i == len(chunks) - 1, opcode, len(chunk)) + chunk
            for i, chunk in enumerate(chunks)]


def send_fragmented(ws: web.WebSocketResponse, data: str | bytes) -> None:
    """Write one message as 32 KB fragments straight to the transport (aiohttp's writer always
    sets FIN). The socket is uncompressed, so its writer keeps no state these frames would break."""
    opcode = 0x1 if isinstance(data, str) else 0x2
    payload = data.encode() if isinstance(data, str) else data
    transport = ws._req.transport if ws._req is not None else None
    if transport is None or transport.is_closing():
        raise ConnectionResetError("Connection lost")
    transport.write(b"".join(fragments(payload, opcode)))
