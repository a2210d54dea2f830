"""Regression cases for what bench/fuzz_emulator.py found: hostile frames, handshakes and
management requests that crashed, hung or mis-answered (sections of docs/apigw-websocket.md
in brackets).

The raw RFC 6455 client (tests/support/raw_client.py, the fuzzer's too) sends frames no
library would send (unmasked, pipelined with the upgrade, bad close codes).
"""

import asyncio
import json
import struct
import time

import pytest

from lambda_src import app
from support import raw_client as wire
from support.emulator_kit import tls_context

MESSAGE = 128 * 1024
DEEP_ARRAY = "[" * 5000 + "]" * 5000
DEEP_ACTION = '{"action":' + "[" * 990 + "]" * 990 + "}"
DEEP_OBJECT = '{"a":' * 3000 + "1" + "}" * 3000


def run(coroutine, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


# -- JSON nested deeper than Python parses [#route-selection] (routing's side: tests/test_routing.py) ---
@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_the_handler_answers_bad_json_for_json_too_deep_to_parse(body):
    with pytest.raises(app.ClientError) as refused:
        app.parse_frame("$default", body)
    assert refused.value.code == "bad_json"


def test_the_handler_names_an_unknown_action_too_deep_to_show():
    with pytest.raises(app.ClientError) as refused:
        app.parse_frame("$default", '{"action":' + "[" * 50 + "]" * 50 + "}")
    assert refused.value.code == "unknown_action"
    action = []
    for _ in range(5000):
        action = [action]
    assert app._shown(action) == "(a value nested too deeply to show)"


@pytest.mark.parametrize("frame", [
    '{"action":"join","room":"\\ud800"}',
    '{"action":"sendRoom","room":"a\\udc00b","text":"x"}',
    '{"action":"sendMessage","targetUserId":"\\ud83d","text":"x"}',
])
def test_lone_surrogates_in_key_fields_are_bad_fields(frame):
    # Valid JSON, but not Unicode: DynamoDB (moto answered 500) cannot store it as a key.
    with pytest.raises(app.ClientError) as refused:
        app.parse_frame("$default", frame)
    assert refused.value.code == "bad_field"


def test_a_lone_surrogate_in_text_is_relayed_as_sent():
    assert app.parse_frame("$default", '{"action":"sendMessage","targetUserId":"bob","text":"\\ud83d"}')[0] == \
        "sendMessage"


@pytest.mark.parametrize("text, code", [
    (DEEP_ARRAY, "error:bad_json"),
    (DEEP_ACTION, "error:unknown_action"),
    ('{"action":"join","room":"\\ud800"}', "error:bad_field"),
], ids=["deep-array", "deep-action", "surrogate-room"])
def test_hostile_json_is_answered_with_the_handlers_error_frame(emulator, text, code):
    async def main():
        status, ws = await wire.RawSocket.connect("127.0.0.1", emulator.port, "/dev?token=" + emulator.token(
            "hostile-json"))
        assert status == 101
        ws.send(*wire.chunked(text.encode()))
        answer = await ws.reply(10.0)
        ws.send(wire.frame(1, b'{"action":"whoami"}'))  # and the connection is still open
        after = await ws.reply(10.0)
        await ws.close()
        return wire.label(answer), wire.label(after)

    got, after = run(main())
    assert got in (code, "error:bad_json")  # how deep Python parses depends on the stack
    assert after == "whoami"


# -- odd bytes in the upgrade request's headers [#top-level-fields, #connect] ---------------------------------
def _raw_upgrade(port: int, target: str, headers: bytes, host: bytes | None = None) -> bytes:
    host = b"127.0.0.1:%d" % port if host is None else host
    return (b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" % (
                target.encode(), host)) + headers + b"\r\n"


@pytest.mark.parametrize("host, headers", [
    (None, b"User-Agent: fuzz \xc3\xa9 \xff\xfe\r\n"),  # not UTF-8: used to reach the registry as lone surrogates
    (b"\xff\xfe", b""),  # request.url could not be built: 500 with a traceback
    (b"127.0.0.1:99999", b""),
    (b"127.0.0.1:1/../x", b""),
], ids=["user-agent-bytes", "host-bytes", "host-port-too-big", "host-port-junk"])
def test_odd_bytes_in_host_and_user_agent_still_connect(emulator, host, headers):
    async def main():
        raw = _raw_upgrade(emulator.port, "/dev?token=" + emulator.token("odd-headers"), headers, host)
        reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
        writer.write(raw)
        status, _, _ = await wire.read_head(reader, 10.0)
        if status != 101:
            writer.transport.abort()
            return status, None
        ws = wire.RawSocket(reader, writer)
        ws.send(wire.frame(1, b'{"action":"whoami"}'))
        answer = await ws.reply(10.0)
        await ws.close()
        return status, wire.label(answer)

    assert run(main()) == (101, "whoami")


# -- a client that leaves while $connect runs [#connect, #limits] ---------------------------------------------
def test_a_client_that_leaves_during_connect_gets_a_disconnect_and_leaves_no_registry_item(emulator):
    # $connect stored the connection; the upgrade then failed on a closed socket, and nothing
    # removed the item until its TTL (2 h). Now $disconnect runs with 1006.
    user = "leaves-early"
    before = emulator.output().count("Traceback")

    async def main():
        for delay in (0, 0, 0, 0, 0, 0, 0, 0, 0.001, 0.002, 0.003, 0.005):
            reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
            writer.write(_raw_upgrade(emulator.port, "/dev?token=" + emulator.token(user), b""))
            await writer.drain()
            await asyncio.sleep(delay)
            writer.transport.abort()

    run(main())
    # Twelve $connects at once cold-start up to ten execution environments (each imports boto3)
    # before the $disconnects run: on a loaded two-core machine that took more than 10 s. Waiting
    # for an empty registry was not enough: with the authorizers still running nothing had been
    # stored yet, and a $connect stored its item after the look (seen once in a full run).
    emulator.wait_idle(45)
    assert emulator.registry().connections_of_user(user) == []
    # and aiohttp is not handed the half-prepared socket ("RuntimeError: Call .prepare() first")
    assert emulator.output().count("Traceback") == before


# -- frames sent with the upgrade request, before the 101 [#limits, #binary] ----------------------------------
def _pipelined(emulator, user: str, early: bytes, late: bytes = b"", answers: int = 0):
    """Send `early` with the upgrade request and `late` after the 101; read `answers` answers,
    then (if the connection is still open) close with 1000. Returns the answers and the close code."""
    async def main():
        status, ws = await wire.RawSocket.connect("127.0.0.1", emulator.port, "/dev?token=" + emulator.token(user),
                                                pipelined=early)
        assert status == 101
        ws.send(late)
        got = []
        try:
            for _ in range(answers):
                got.append(wire.label(await ws.reply(10.0)))
            ws.send(wire.frame(8, struct.pack("!H", 1000)))
            got.append(await ws.close_code(10.0))
        except wire.Closed as closed:
            got.append(closed.code)
        ws.abort()
        return got

    return run(main())


def test_a_frame_header_over_32_kb_sent_with_the_upgrade_closes_with_1009(emulator):
    # It used to reach aiohttp's reader past the 32 KB frame gate, which waited for the payload.
    head = wire.frame(1, b"", length=40000)
    assert _pipelined(emulator, "pipelined-big", head) == [1009]


def test_frames_split_across_the_upgrade_are_read_whole(emulator):
    stream = wire.frame(1, b'{"action":"whoami","pad":"' + b"z" * 300 + b'"}') + wire.frame(1, b'{"action":"whoami"}')
    for split in (0, 1, 2, 6, 10, 100, len(stream) - 1, len(stream)):
        got = _pipelined(emulator, "pipelined-split", stream[:split], stream[split:], answers=2)
        assert got == ["whoami", "whoami", 1000]


# -- RFC 6455 protocol errors aiohttp lets through -----------------------------------------------------------
@pytest.mark.parametrize("frames", [
    [wire.frame(1, b'{"action":"whoami"}', mask=False)],
    [wire.frame(9, b"ping", mask=False)],
    [wire.frame(1, b'{"action":', fin=False), wire.frame(0, b'"whoami"}', mask=False)],
], ids=["text", "ping", "continuation"])
def test_an_unmasked_client_frame_closes_with_1002(emulator, frames):
    # RFC 6455 §5.1: "a server MUST close the connection upon receiving a frame that is not masked".
    assert _pipelined(emulator, "unmasked", b"", b"".join(frames)) == [1002]


@pytest.mark.parametrize("code", [1006, 5000, 65535])
def test_a_close_frame_with_a_code_never_sent_on_the_wire_closes_with_1002(emulator, code):
    # aiohttp accepted these and echoed 1000; $disconnect then said 1006 or 5000.
    assert _pipelined(emulator, "close-code", b"", wire.frame(8, struct.pack("!H", code))) == [1002]


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 3000, 4999])
def test_a_valid_close_code_is_echoed_and_given_to_disconnect(emulator, code):
    async def main():
        ws, connection_id = await _identified(emulator, "close-valid")
        ws.send(wire.frame(8, struct.pack("!H", code) + b"bye"))
        echoed = await ws.close_code()
        ws.abort()
        return echoed, connection_id

    echoed, connection_id = run(main())
    assert echoed == 1000
    assert _disconnect_line(emulator, connection_id).split()[3] == str(code)


async def _identified(emulator, user: str):
    status, ws = await wire.RawSocket.connect("127.0.0.1", emulator.port, "/dev?token=" + emulator.token(user))
    assert status == 101
    ws.send(wire.frame(1, b'{"action":"whoami"}'))
    answer = await ws.reply(10.0)
    return ws, answer["connectionId"]


def _disconnect_line(emulator, connection_id: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in emulator.output().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "$disconnect" and parts[2] == connection_id:
                return line
        time.sleep(0.05)
    raise AssertionError("no $disconnect for %s" % connection_id)


# -- sizes of the upgrade request, and malformed requests [#limits] -------------------------------------------
async def _status(port: int, raw: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        writer.write(raw)
        status, _, _ = await wire.read_head(reader, 10.0)
        return status
    finally:
        writer.transport.abort()


@pytest.mark.parametrize("pad, headers, status", [
    (9000, b"", 414),  # past aiohttp's 8 KB request line: used to be its 400
    (50000, b"", 414),
    (0, b"X-Long: " + b"L" * 17000 + b"\r\n", 431),  # past its 16 KB header field: used to be 400
    (0, b"".join(b"X-Many-%d: v\r\n" % i for i in range(200)), 101),  # past its 128 headers: used to be 400
    (0, b"".join(b"X-Many-%d: v\r\n" % i for i in range(3000)), 431),
], ids=["url-9k", "url-50k", "header-17k", "200-headers", "3000-headers"])
def test_oversize_upgrade_requests_get_api_gateways_status_not_the_parsers_400(emulator, pad, headers, status):
    target = "/dev?token=%s%s" % (emulator.token("sizes"), "&pad=" + "p" * pad if pad else "")
    assert run(_status(emulator.port, _raw_upgrade(emulator.port, target, headers))) == status


def test_a_long_connection_id_on_the_management_api_is_gone_not_400(emulator):
    raw = (b"GET /dev/@connections/" + b"A" * 20000 + b" HTTP/1.1\r\nHost: x\r\n" + wire.sigv4_headers()
           + b"Connection: close\r\n\r\n")
    assert run(_status(emulator.port, raw)) == 410


@pytest.mark.parametrize("raw", [
    b"GET /dev?x=\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /dev HTTP/1.1\r\nHost: x\r\nX-Ctl: a\x01b\r\n\r\n",
    b"GET /dev HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
], ids=["raw-byte-in-query", "control-char", "two-hosts"])
def test_a_request_the_http_parser_refuses_is_400_and_one_log_line(emulator, raw):
    before = emulator.output().count("Traceback")
    assert run(_status(emulator.port, raw)) == 400
    time.sleep(0.2)
    output = emulator.output()
    assert output.count("Traceback") == before
    assert "Error handling request from 127.0.0.1: 400 " in output


# -- the close code survives a client that is still sending [#limits] -----------------------------------------
@pytest.mark.parametrize("size", [MESSAGE + 1000, 3 * MESSAGE])
def test_an_oversize_message_sent_in_one_go_still_reads_1009(emulator, size):
    # The emulator closed the socket with the rest of the message unread: the kernel sent RST
    # and the client lost the close frame (1006). It now reads and drops the rest first.
    data = b"x" * size
    for _ in range(5):
        assert _pipelined(emulator, "oversize-in-one-go", b"", b"".join(wire.chunked(data))) == [1009]


# -- odd paths: only 403 / 410, never aiohttp's 404 [#management-api] -----------------------------------------
@pytest.mark.parametrize("path, status", [
    ("/dev/@connections/%7Bx%7D", 410),  # braces in an id: the route did not match (403)
    ("/dev/@connections/a%0Ab", 410),
    ("/dev/@connections/a%0A%7B", 410),  # a newline and a brace: nothing matched, 404
    ("/dev/%0A", 403),
    ("/%0A/@connections/x", 403),
    ("/dev%0A", 403),
])
def test_odd_characters_in_paths_are_gone_or_forbidden(emulator, path, status):
    raw = (b"POST %s HTTP/1.1\r\nHost: x\r\n" % path.encode()) + wire.sigv4_headers() + \
        b"Content-Length: 2\r\nConnection: close\r\n\r\nhi"
    assert run(_status(emulator.port, raw)) == status


def test_a_refused_upgrade_ends_the_connection_and_frames_behind_it_are_not_read_as_http(emulator):
    async def main():
        reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
        writer.write(_raw_upgrade(emulator.port, "/dev?token=not.a.token", b"") + wire.frame(1, b'{"action":"whoami"}'))
        status, headers, _ = await wire.read_head(reader, 10.0)
        await reader.readexactly(int(headers["content-length"]))
        rest = await asyncio.wait_for(reader.read(), 10.0)  # EOF: no second answer (it was a 400)
        writer.transport.abort()
        return status, headers.get("connection"), rest

    assert run(main()) == (401, "close", b"")


def test_a_socket_that_says_nothing_is_closed_and_one_that_speaks_late_is_served(emulator):
    """The listener peeks at each socket's first byte to tell TLS from plain: a request that comes
    a while after the TCP handshake is still upgraded (plain and TLS), and a socket that never
    sends anything is closed after 10 s without holding anyone else up."""
    async def main():
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", emulator.port)
        opened = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
        await asyncio.sleep(0.5)
        writer.write(_raw_upgrade(emulator.port, "/dev?token=" + emulator.token("speaks-late"), b""))
        late, _, _ = await wire.read_head(reader, 10.0)
        writer.transport.abort()
        tls = tls_context(emulator.state.ca_bundle)
        raw = await asyncio.open_connection("127.0.0.1", emulator.port)  # then TLS, 0.5 s later
        await asyncio.sleep(0.5)
        tls_reader, tls_writer = raw
        await tls_writer.start_tls(tls, server_hostname="127.0.0.1")
        tls_writer.write(_raw_upgrade(emulator.port, "/dev?token=" + emulator.token("speaks-late"), b""))
        late_tls, _, _ = await wire.read_head(tls_reader, 10.0)
        tls_writer.transport.abort()
        ended = await asyncio.wait_for(silent_reader.read(), 30.0)  # EOF: the emulator closed it
        silent_writer.transport.abort()
        return late, late_tls, ended, time.monotonic() - opened

    late, late_tls, ended, after = run(main(), timeout=60)
    assert (late, late_tls, ended) == (101, 101, b"")
    assert after >= 9  # not before its 10 s (the loop's clock and ours may differ a little)


@pytest.mark.parametrize("opcode", [1, 2, 9, 10, 8], ids=["text", "binary", "ping", "pong", "close"])
@pytest.mark.parametrize("rsv", [1, 4, 6])
def test_reserved_bits_are_a_protocol_error_on_any_frame(emulator, opcode, rsv):
    # Autobahn 3.5/3.6: a binary frame with RSV set was closed with 1003 (binary) instead of 1002.
    payload = struct.pack("!H", 1000) if opcode == 8 else b"Hello, world!"
    assert _pipelined(emulator, "reserved-bits", b"", wire.frame(opcode, payload, rsv=rsv)) == [1002]


# -- what the management API sends out [#management-api] ------------------------------------------------------
def test_a_message_over_32_kb_posted_to_a_connection_arrives_in_32_kb_fragments(emulator):
    """API Gateway's frame limit applies to @connections output too: a 70 KB message is one text
    message in frames of at most 32 KB (the first TEXT, the rest CONTINUATION, FIN on the last)."""
    message = json.dumps({"padding": "é" * 35000}, ensure_ascii=False)  # 70,000+ bytes of UTF-8, split inside characters

    async def main():
        status, raw = await wire.RawSocket.connect("127.0.0.1", emulator.port, "/dev?token=" + emulator.token("frag"))
        assert status == 101
        whoami = json.dumps({"action": "whoami"}).encode()
        raw.send(wire.frame(1, whoami))
        _, _, answer = await raw.read_frame(5)
        connection_id = json.loads(answer)["connectionId"]
        await asyncio.to_thread(emulator.management().post_to_connection, ConnectionId=connection_id,
                                Data=message.encode())
        frames = []
        while not frames or not frames[-1][0]:
            frames.append(await raw.read_frame(5))
        raw.abort()
        return frames

    frames = run(main())
    assert len(frames) == 3
    assert [(fin, opcode) for fin, opcode, _ in frames] == [(0, 1), (0, 0), (1, 0)]
    assert all(len(payload) <= 32 * 1024 for _, _, payload in frames)
    assert b"".join(payload for _, _, payload in frames).decode() == message
