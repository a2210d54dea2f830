"""The frame gate and the aiohttp internals it relies on (wsctl/local/sockets.py).

aiohttp limits whole messages only, so the emulator puts a gate in front of aiohttp's private
WebSocket parser (the request handler's `_payload_parser`) and fails a frame through the
WebSocket's private reader queue: a frame over 32 KB is 1009, a binary frame 1003, an
unmasked frame or reserved bits 1002 (docs/apigw-websocket.md#limits). Private internals
change without notice, so:

- `test_aiohttp_has_the_private_internals_the_frame_gate_relies_on` is the one test that fails
  when an aiohttp release changes them, and its message names what changed. pyproject.toml
  bounds aiohttp to the versions the emulator's tests pass with, and says which were tried.
- `wsctl local up` refuses such an aiohttp in one line instead of running without the gate.
- The gate is exercised in-process, on an aiohttp server of the test's own (no emulator): it is
  installed, and frames past it are judged as API Gateway judges them.
"""

import asyncio
import socket
import struct

import aiohttp
import pytest
from aiohttp import WSMsgType, web, web_protocol, web_ws

from support.raw_client import RawSocket, frame
from wsctl.errors import WsctlError
from wsctl.local import sockets
from wsctl.local.sockets import FrameGate, GatewaySocket, gate_mismatches, require_frame_gate


def test_aiohttp_has_the_private_internals_the_frame_gate_relies_on():
    problems = gate_mismatches()
    assert not problems, "aiohttp %s changed what wsctl's frame gate relies on:\n  - %s\n(bound aiohttp in " \
        "pyproject.toml below this version, or adapt wsctl/local/sockets.py)" % (aiohttp.__version__,
                                                                                 "\n  - ".join(problems))


# -- the check notices each kind of change -----------------------------------------------------------------------
def _other_signature(self, request, protocol, writer, extra=None):
    pass


def _sets_parser_only(self, parser, data_received_cb=None):
    self._payload_parser = parser


def _feeds_nothing(self, data):
    return None


class _NotAQueue:
    pass


MUTATIONS = {
    "post_start signature": (web_ws.WebSocketResponse, "_post_start", _other_signature,
                             "WebSocketResponse._post_start takes (self, request, protocol, writer, extra)"),
    "close_transport gone": (web_ws.WebSocketResponse, "_close_transport", None,
                             "WebSocketResponse._close_transport is gone"),
    "set_parser ignores the tail": (web_protocol.RequestHandler, "set_parser", _sets_parser_only,
                                    "set_parser no longer sets _payload_parser and feeds it _message_tail"),
    "data_received feeds nothing": (web_protocol.RequestHandler, "data_received", _feeds_nothing,
                                    "data_received no longer feeds data to _payload_parser"),
    "parser class renamed": (web_ws, "WebSocketReader", None, "web_ws.WebSocketReader is no parser class"),
    "WebSocketError signature": (sockets, "WebSocketError", lambda code, message, extra: None,
                                 "WebSocketError takes (code, message, extra)"),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=list(MUTATIONS))
def test_the_check_names_a_changed_internal(monkeypatch, mutation):
    owner, name, replacement, named = MUTATIONS[mutation]
    if replacement is None:
        monkeypatch.delattr(owner, name)
    else:
        monkeypatch.setattr(owner, name, replacement)
    assert any(named in problem for problem in gate_mismatches()), gate_mismatches()


def test_the_emulator_refuses_such_an_aiohttp_in_one_line_before_anything_starts(monkeypatch):
    from wsctl.local import emulator

    monkeypatch.delattr(web_ws.WebSocketResponse, "_close_transport")
    monkeypatch.setattr(emulator.Emulator, "serve", lambda self: pytest.fail("the emulator started"))
    with pytest.raises(WsctlError) as refused:
        emulator.run(None)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("the local emulator cannot run on aiohttp %s: " % aiohttp.__version__)
    assert "WebSocketResponse._close_transport is gone" in message
    monkeypatch.undo()
    require_frame_gate()  # the installed aiohttp: no complaint


# -- the gate at work, on an in-process aiohttp server ------------------------------------------------------------
class GateServer:
    """An aiohttp app whose one route prepares a GatewaySocket, echoes text frames, and records
    the parser the request handler holds and how the socket ended."""

    def __init__(self):
        self.parsers, self.errors = [], []

    async def handle(self, request):
        ws = GatewaySocket(autoclose=False, compress=False, max_msg_size=128 * 1024 + 1)
        await ws.prepare(request)
        self.parsers.append(request.protocol._payload_parser)
        while True:
            message = await ws.receive()
            if message.type is WSMsgType.TEXT:
                await ws.send_str(message.data)
                continue
            if message.type is WSMsgType.ERROR:
                self.errors.append(message.data)
            break
        if not ws.closed:
            await ws.close()
        await ws.lingered()
        return ws

    async def __aenter__(self):
        self.runner = web.AppRunner(web.Application(), handle_signals=False)
        self.runner.app.router.add_get("/dev", self.handle)
        await self.runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self.runner, sock).start()
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 20.0))


def test_the_gate_takes_the_parsers_place_and_text_passes_through():
    async def main():
        async with GateServer() as server:
            status, ws = await RawSocket.connect("127.0.0.1", server.port, "/dev")
            ws.send(frame(1, b"hello"), frame(1, b"x" * (32 * 1024)))  # 32 KB exactly: allowed
            replies = [await ws.read_frame(5.0), await ws.read_frame(5.0)]
            await ws.close(1000)
            return status, replies, server

    status, replies, server = run(main())
    assert status == 101
    assert [(opcode, payload[:5], len(payload)) for _, opcode, payload in replies] == [
        (1, b"hello", 5), (1, b"xxxxx", 32 * 1024)]
    (parser,) = server.parsers
    assert isinstance(parser, FrameGate) and isinstance(parser.inner, web_ws.WebSocketReader)


@pytest.mark.parametrize("sent, code", [
    (frame(2, b"\x00\x01"), 1003),  # binary data: unsupported
    (frame(1, b"x" * (32 * 1024 + 1)), 1009),  # one frame over 32 KB
    (frame(1, b"x" * 40000, fin=False), 1009),  # a first fragment over 32 KB
    (frame(1, b"hi", mask=False), 1002),  # clients must mask
    (frame(1, b"hi", rsv=4), 1002),  # reserved bits without an extension
], ids=["binary", "frame-over-32KB", "fragment-over-32KB", "unmasked", "reserved-bits"])
@pytest.mark.parametrize("when", ["after-101", "with-the-upgrade"])
def test_frames_api_gateway_refuses_close_the_socket_with_its_code(sent, code, when):
    async def main():
        async with GateServer() as server:
            pipelined = sent if when == "with-the-upgrade" else b""
            status, ws = await RawSocket.connect("127.0.0.1", server.port, "/dev", pipelined=pipelined)
            if not pipelined:
                ws.send(sent)
            closed_with = await ws.close_code(10.0)
            ws.abort()
            return status, closed_with, server

    status, closed_with, server = run(main())
    assert status == 101 and closed_with == code
    assert [error.code for error in server.errors] == [code]


def test_a_close_frame_is_not_judged_as_data():
    async def main():
        async with GateServer() as server:
            _, ws = await RawSocket.connect("127.0.0.1", server.port, "/dev")
            ws.send(frame(8, struct.pack("!H", 1000) + b"bye"))
            code = await ws.close_code(10.0)
            ws.abort()
            return code, server

    code, server = run(main())
    assert code == 1000 and server.errors == []
