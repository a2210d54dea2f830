"""Frame and message size limits, binary frames, idle timeout and the connection age cap (docs/apigw-websocket.md#limits, #binary).

Sizes are counted in bytes of the UTF-8 payload: a frame may carry 32768
bytes (32 KB) and a message 131072 (128 KB), the same number PostToConnection
allows [infer: the exact byte boundaries; AWS says "32 KB" and "128 KB"].
Every server-side close is followed by $disconnect with the same status code,
which the recorder handler shows.

"limits" runs with AWS's timeouts; "timers" with `--idle-timeout 1
--max-duration 2`. The idle and age closes use 1001 "Going away" [infer: AWS
documents neither code nor reason; serverless-offline uses the same].
"""

import asyncio
import base64
import json
import os
import random
import socket
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from support.emulator_kit import answer, ask, client, closed, routes, run, start_all, stop_all

FRAME = 32 * 1024
MESSAGE = 128 * 1024
GOING_AWAY = (1001, "Going away")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    document = routes("$connect", "$disconnect", "$default")
    emulators = start_all(tmp_path_factory, {
        "limits": (document, [], False),
        "timers": (document, ["--idle-timeout", "1", "--max-duration", "2"], False),
    })
    yield emulators
    stop_all(emulators)


def frame_of(size: int, fill: str = "x") -> str:
    """A JSON frame of exactly `size` bytes in UTF-8 (`fill` may be a multi-byte character)."""
    head, tail = '{"do": "echo", "pad": "', '"}'
    room = size - len(head) - len(tail)
    width = len(fill.encode())
    assert room % width == 0
    text = head + fill * (room // width) + tail
    assert len(text.encode()) == size
    return text


def chunks(text: str, size: int):
    return (text[i:i + size] for i in range(0, len(text), size))


async def identified(gw):
    ws = await client(gw.url)
    return ws, (await ask(ws, {"do": "echo"}))["connectionId"]


async def send_then_close_code(ws, data):
    """Send `data` (str, bytes or an iterator of fragments) and return how the server closed."""
    try:
        await ws.send(data)
    except ConnectionClosed:
        pass  # closed while we were still sending fragments
    return await closed(ws)


def disconnect_code(gw, connection_id: str) -> tuple[int, str]:
    context = gw.events.disconnect_of(connection_id)["requestContext"]
    return context["disconnectStatusCode"], context["disconnectReason"]


# -- sizes ------------------------------------------------------------------------------
def test_a_32_kb_single_frame_is_delivered(fleet):
    async def main():
        async with client(fleet["limits"].url) as ws:
            await ws.send(frame_of(FRAME))
            return await answer(ws)

    assert run(main())["length"] == FRAME


@pytest.mark.parametrize("text", [frame_of(33 * 1024), frame_of(FRAME + 1), frame_of(32998, "€")],
                         ids=["33KB", "32KB+1", "11k-chars-32998-bytes"])
def test_a_single_frame_over_32_kb_closes_with_1009(fleet, text):
    gw = fleet["limits"]

    async def main():
        ws, connection_id = await identified(gw)
        return connection_id, await send_then_close_code(ws, text)

    connection_id, (code, _) = run(main())
    assert code == 1009
    assert disconnect_code(gw, connection_id)[0] == 1009


@pytest.mark.parametrize("size", [100 * 1024, MESSAGE], ids=["100KB", "128KB-exactly"])
def test_a_fragmented_message_up_to_128_kb_is_delivered(fleet, size):
    gw = fleet["limits"]
    text = frame_of(size)

    async def main():
        async with client(gw.url) as ws:
            await ws.send(chunks(text, FRAME))  # an iterator: one message in 32 KB fragments
            reply = await answer(ws)
            again = await ask(ws, {"do": "echo"})
            return reply, again

    reply, again = run(main())
    assert reply["length"] == size
    assert again["route"] == "$default"
    (message,) = [e for e in gw.events.of(reply["connectionId"], "MESSAGE") if e["requestContext"]["requestId"]
                  == reply["requestId"]]
    assert message["body"] == text  # reassembled in order


@pytest.mark.parametrize("size", [MESSAGE + 1, 140 * 1024], ids=["128KB+1", "140KB"])
def test_a_fragmented_message_over_128_kb_closes_with_1009(fleet, size):
    gw = fleet["limits"]

    async def main():
        ws, connection_id = await identified(gw)
        return connection_id, await send_then_close_code(ws, chunks(frame_of(size), 16 * 1024))

    connection_id, (code, _) = run(main())
    assert code == 1009
    assert disconnect_code(gw, connection_id)[0] == 1009


def test_one_fragment_over_32_kb_closes_with_1009(fleet):
    gw = fleet["limits"]
    text = frame_of(64 * 1024)

    async def main():
        ws, connection_id = await identified(gw)
        return connection_id, await send_then_close_code(ws, iter([text[:1000], text[1000:]]))

    connection_id, (code, _) = run(main())
    assert code == 1009
    assert disconnect_code(gw, connection_id)[0] == 1009


def test_a_binary_frame_closes_with_1003(fleet):
    gw = fleet["limits"]

    async def main():
        ws, connection_id = await identified(gw)
        return connection_id, await send_then_close_code(ws, json.dumps({"do": "echo"}).encode())

    connection_id, (code, _) = run(main())
    assert code == 1003
    assert disconnect_code(gw, connection_id)[0] == 1003
    assert len(gw.events.of(connection_id, "MESSAGE")) == 1  # the binary frame never reached the handler


def test_many_frames_of_every_header_size_back_to_back_are_all_delivered(fleet):
    """Frame headers of 2, 4 and 10 bytes, split across TCP reads anywhere: the frame-size gate
    must follow the stream exactly (no false 1009, no frame missed)."""
    rng = random.Random(7)
    sizes = [rng.choice([25, 125, 126, 127, 128, FRAME - 1, FRAME, rng.randrange(25, FRAME)]) for _ in range(150)]

    async def main():
        async with client(fleet["limits"].url) as ws:
            for size in sizes:
                await ws.send(frame_of(size))
            return [(await answer(ws, 10))["length"] for _ in sizes]

    assert sorted(run(main(), 60)) == sorted(sizes)


def raw_upgrade(port: int, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then reads nothing (tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, port, key)).encode())
    sock.settimeout(5)
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


def test_posts_to_a_client_that_stops_reading_get_429_instead_of_hanging(fleet):
    """docs/apigw-websocket.md#management-api: LimitExceededException (429) also means "the WebSocket client-side buffer is full"."""
    gw = fleet["limits"]
    mark = uuid.uuid4().hex
    sock = raw_upgrade(gw.port, "/%s?tag=%s" % (gw.state.stage, mark))
    try:
        (connect,) = gw.events.wait(lambda r: r.tagged(mark))
        connection_id = connect["requestContext"]["connectionId"]
        management = gw.management(read_timeout=10)
        outcome, posted = None, 0
        while outcome is None and posted < 400:  # the kernel's buffers take a few MB first
            started = time.monotonic()
            try:
                management.post_to_connection(ConnectionId=connection_id, Data=b"x" * MESSAGE)
                posted += 1
            except management.exceptions.LimitExceededException as error:
                outcome = error.response
            assert time.monotonic() - started < 3, "a post to a stuck client hung"
        assert outcome is not None, "no 429 after %d posts of 128 KB" % posted
        assert outcome["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert outcome["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "LimitExceededException"
        # Once the client reads again, posts are accepted again.
        sock.settimeout(0.5)
        try:
            while sock.recv(1 << 20):
                pass
        except socket.timeout:
            pass
        management.post_to_connection(ConnectionId=connection_id, Data=b"after the backlog")
    finally:
        sock.close()


# -- timers ------------------------------------------------------------------------------
def test_an_idle_connection_is_closed_with_1001_and_disconnect_says_so(fleet):
    gw = fleet["timers"]

    async def main():
        ws, connection_id = await identified(gw)
        started = time.monotonic()
        code = await closed(ws, timeout=5)
        return connection_id, code, time.monotonic() - started

    connection_id, code, waited = run(main())
    assert code == GOING_AWAY
    assert 0.8 <= waited <= 2.5
    assert disconnect_code(gw, connection_id) == GOING_AWAY


def test_pings_alone_do_not_keep_a_connection_alive(fleet):
    gw = fleet["timers"]

    async def main():
        ws, connection_id = await identified(gw)
        started = time.monotonic()
        pongs = 0
        try:
            while time.monotonic() - started < 5:
                await asyncio.wait_for(await ws.ping(), 1)  # answered with a pong (RFC 6455)
                pongs += 1
                await asyncio.sleep(0.2)
        except ConnectionClosed:
            pass
        return connection_id, pongs, await closed(ws), time.monotonic() - started

    connection_id, pongs, code, waited = run(main())
    assert pongs >= 2
    assert code == GOING_AWAY
    assert waited <= 2.5
    assert disconnect_code(gw, connection_id) == GOING_AWAY


def test_data_frames_keep_a_connection_alive_past_the_idle_timeout(fleet):
    gw = fleet["timers"]

    async def main():
        async with client(gw.url) as ws:
            started = time.monotonic()
            answers = 0
            while time.monotonic() - started < 1.6:  # past the 1 s idle timeout, short of the 2 s cap
                await ask(ws, {"do": "echo"})
                answers += 1
                await asyncio.sleep(0.3)
            return answers

    assert run(main()) >= 5


def test_posts_from_the_management_api_count_as_activity(fleet):
    gw = fleet["timers"]
    management = gw.management()

    async def main():
        ws, connection_id = await identified(gw)
        started = time.monotonic()
        received = 0
        while time.monotonic() - started < 1.6:
            await asyncio.to_thread(management.post_to_connection, ConnectionId=connection_id, Data=b"tick")
            assert await answer(ws) == "tick"
            received += 1
            await asyncio.sleep(0.3)
        await ws.close()
        return received

    assert run(main()) >= 5


def test_max_duration_closes_an_active_connection_with_1001(fleet):
    gw = fleet["timers"]

    async def main():
        ws, connection_id = await identified(gw)
        started = time.monotonic()
        try:
            while time.monotonic() - started < 6:
                await ws.send(json.dumps({"do": "echo"}))
                await asyncio.sleep(0.2)
        except ConnectionClosed:
            pass
        return connection_id, await closed(ws), time.monotonic() - started

    connection_id, code, lasted = run(main())
    assert code == GOING_AWAY
    assert 1.7 <= lasted <= 3.5  # the 2 s cap, not the 1 s idle timeout
    assert disconnect_code(gw, connection_id) == GOING_AWAY
