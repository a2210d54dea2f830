"""The gateway's WebSocket at the wire: what aiohttp does not do as API Gateway does.

aiohttp limits whole messages; API Gateway also limits single frames (32 KB) and
refuses binary data, so a gate reads each frame header as it arrives. A closed
socket lingers so the client sees our close frame rather than a reset. aiohttp's
log of requests its parser refused becomes one line. Pure socket mechanics: no
routes, events or handler calls here (those are in gateway.py).

The gate lives in aiohttp's private internals (see `gate_mismatches`): the emulator
refuses to start on an aiohttp whose internals differ (`require_frame_gate`), and
tests/test_frame_gate.py fails naming what changed.
"""

import asyncio
import inspect
import logging
import time

import aiohttp
from aiohttp import WSCloseCode, web
from aiohttp import web_protocol as _web_protocol
from aiohttp import web_ws as _web_ws
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_websocket import WebSocketError

from ..apigw import Opcode
from ..errors import WsctlError
from ..limits import MAX_FRAME_BYTES

# The opcodes the gate checks on every frame, as plain ints (an IntEnum compare costs ten times more).
_BINARY = int(Opcode.BINARY)
_DATA = (int(Opcode.CONT), int(Opcode.TEXT))

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
            if opcode == _BINARY:
                return WSCloseCode.UNSUPPORTED_DATA, "binary frames are not supported"
            if opcode in _DATA and length > self.max_frame:
                return WSCloseCode.MESSAGE_TOO_BIG, "frame of %d bytes is over the %d-byte limit" % (length, self.max_frame)
            self.skip = length
        return None


# -- what the gate relies on in aiohttp -----------------------------------------------------------
# Private internals, checked by name: a WebSocket's `_post_start(request, protocol, writer)` hands
# a `WebSocketReader` to the request handler's `set_parser`, which keeps it as `_payload_parser`
# (and first feeds it `_message_tail`, the frames that came with the upgrade request); the
# handler's `data_received` then calls `_payload_parser.feed_data`. The gate takes the parser's
# place and fails a frame through `WebSocketError` set on the reader queue (`_reader`).
# `_handshake` (the subprotocol) and `_close_transport` (the lingering close) are overridden,
# and `_req` gives the transport.


def _code_names(function) -> set:
    """The attribute and global names a function's code uses (empty if it is not Python code)."""
    code = getattr(function, "__code__", None)
    return set(code.co_names) if code is not None else set()


def _parameters(function) -> list | None:
    try:
        return list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return None


def gate_mismatches() -> list[str]:
    """Each private aiohttp internal the frame gate relies on that is not as expected (empty: all
    as expected), named so that a person can see what changed."""
    problems = []
    ws_class, handler = _web_ws.WebSocketResponse, _web_protocol.RequestHandler
    for owner, method, wanted in ((ws_class, "_handshake", ["self", "request"]),
                                  (ws_class, "_post_start", ["self", "request", "protocol", "writer"]),
                                  (ws_class, "_close_transport", ["self"]),
                                  (handler, "set_parser", None), (handler, "data_received", ["self", "data"])):
        function = getattr(owner, method, None)
        if not callable(function):
            problems.append("%s.%s is gone" % (owner.__name__, method))
        elif wanted is not None and _parameters(function) != wanted:
            problems.append("%s.%s takes (%s), not (%s)" % (owner.__name__, method,
                                                             ", ".join(_parameters(function) or ["?"]), ", ".join(wanted)))
    for owner, caller, callee in ((ws_class, "_pre_start", "_handshake"), (ws_class, "prepare", "_post_start"),
                                  (ws_class, "close", "_close_transport")):
        if callee not in _code_names(getattr(owner, caller, None)):
            problems.append("%s.%s no longer calls %s" % (owner.__name__, caller, callee))
    post_start = _code_names(getattr(ws_class, "_post_start", None))
    for name, why in (("WebSocketReader", "build its parser from WebSocketReader"),
                      ("set_parser", "hand the parser to the request handler's set_parser"),
                      ("_reader", "keep the reader queue as _reader")):
        if name not in post_start:
            problems.append("WebSocketResponse._post_start does not %s" % why)
    reader = getattr(_web_ws, "WebSocketReader", None)
    if not isinstance(reader, type) or not all(callable(getattr(reader, m, None)) for m in ("feed_data", "feed_eof")):
        problems.append("aiohttp.web_ws.WebSocketReader is no parser class with feed_data and feed_eof")
    queues = [getattr(_web_ws, n) for n in post_start if n.endswith("DataQueue") and hasattr(_web_ws, n)]
    if not any(callable(getattr(queue, "set_exception", None)) for queue in queues):
        problems.append("the reader queue _post_start builds has no set_exception")
    slots = set(getattr(handler, "__slots__", ())) | _code_names(handler.__init__)
    for name in ("_payload_parser", "_message_tail"):
        if name not in slots:
            problems.append("RequestHandler has no %s" % name)
    if not {"_payload_parser", "_message_tail"} <= _code_names(getattr(handler, "set_parser", None)):
        problems.append("RequestHandler.set_parser no longer sets _payload_parser and feeds it _message_tail")
    if not {"_payload_parser", "feed_data"} <= _code_names(getattr(handler, "data_received", None)):
        problems.append("RequestHandler.data_received no longer feeds data to _payload_parser")
    if _parameters(WebSocketError) != ["code", "message"]:
        problems.append("WebSocketError takes (%s), not (code, message)" % ", ".join(_parameters(WebSocketError) or ["?"]))
    probe = ws_class()
    for name in ("_req", "_reader"):
        if not hasattr(probe, name):
            problems.append("WebSocketResponse has no %s" % name)
    return problems


def require_frame_gate() -> None:
    """Refuse, in one line, an aiohttp whose internals the frame gate does not match: without the
    gate the emulator would quietly pass frames API Gateway refuses."""
    problems = gate_mismatches()
    if problems:
        raise WsctlError("the local emulator cannot run on aiohttp %s: %s (its frame gate relies on aiohttp's "
                         "private WebSocket internals; install the aiohttp that wsctl's requirements name: %s)"
                         % (aiohttp.__version__, "; ".join(problems), _required_aiohttp()))


def _required_aiohttp() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, requires

        wanted = [r.split(";")[0].strip() for r in requires("wsctl") or () if r.lower().startswith("aiohttp")]
    except PackageNotFoundError:
        wanted = []
    return wanted[0] if wanted else "see pyproject.toml"


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
        parser = getattr(handler, "_payload_parser", None)
        if isinstance(parser, _web_ws.WebSocketReader):  # the parser _post_start just handed over
            handler._payload_parser = FrameGate(parser, self._reader, self.max_frame)
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
    opcode = Opcode.TEXT if isinstance(data, str) else Opcode.BINARY
    payload = data.encode() if isinstance(data, str) else data
    transport = ws._req.transport if ws._req is not None else None
    if transport is None or transport.is_closing():
        raise ConnectionResetError("Connection lost")
    transport.write(b"".join(fragments(payload, opcode)))
