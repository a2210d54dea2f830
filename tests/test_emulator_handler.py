"""What the handler's result and failures do to the socket (docs/apigw-websocket.md#route-responses, #integration-failures).

The recorder runs behind routes `echo` (two-way), `oneway` (one-way) and a
two-way `$default`, with `--integration-timeout 1`; the frame's "do" field
makes it raise, sleep or return a bare statusCode.
"""

import asyncio
import json
import re
import time

import pytest

from support.emulator_kit import ID_PATTERN, answer, ask, client, refused, routes, run, silent, start_all, stop_all

ID = ID_PATTERN[1:-1]


def error_frame_pattern(message: str) -> re.Pattern:
    return re.compile(r'\{"message": "%s", "connectionId":"(%s)", "requestId":"(%s)"\}' % (message, ID, ID))


INTERNAL = error_frame_pattern("Internal server error")
TIMED_OUT = error_frame_pattern("Endpoint request timed out")


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    emulators = start_all(tmp_path_factory, {"handler": (
        routes("$connect", "$disconnect", "$default", "echo", "oneway", one_way=("oneway",)),
        ["--integration-timeout", "1"], False)})
    yield emulators["handler"]
    stop_all(emulators)


async def identified(gw):
    ws = await client(gw.url)
    return ws, (await ask(ws, {"action": "echo"}))["connectionId"]


# -- two-way and one-way routes ------------------------------------------------------------
def test_two_way_routes_answer_with_the_handlers_body(gw):
    async def main():
        async with client(gw.url) as ws:
            return await ask(ws, {"action": "echo"}), await ask(ws, {"action": "no-such-route"})

    echo, default = run(main())
    assert echo["route"] == "echo" and echo["do"] == "echo"
    assert default["route"] == "$default"


def test_a_one_way_route_sends_nothing_back(gw):
    async def main():
        ws, connection_id = await identified(gw)
        async with ws:
            await ws.send(json.dumps({"action": "oneway", "note": "first"}))
            await ws.send(json.dumps({"action": "echo", "note": "second"}))
            first = await answer(ws)
            nothing = await silent(ws, 0.5)
            return connection_id, first, nothing

    connection_id, first, nothing = run(main())
    assert first["route"] == "echo"  # the second frame's answer is the only one
    assert nothing
    routes_run = [e["requestContext"]["routeKey"] for e in gw.events.of(connection_id, "MESSAGE")]
    assert "oneway" in routes_run  # the handler did run (and returned a body nobody got)


def test_a_bare_status_code_sends_nothing_and_keeps_the_socket(gw):
    async def main():
        async with client(gw.url) as ws:
            await ws.send(json.dumps({"action": "echo", "do": "status", "status": 500}))
            await ws.send(json.dumps({"action": "echo", "do": "status", "status": 401}))
            after = await ask(ws, {"action": "echo"})
            return after, await silent(ws, 0.3)

    after, nothing = run(main())
    assert after["do"] == "echo" and nothing


# -- failures ---------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["echo", "oneway"])
def test_a_handler_exception_answers_internal_server_error_and_keeps_the_socket(gw, route):
    async def main():
        ws, connection_id = await identified(gw)
        async with ws:
            await ws.send(json.dumps({"action": route, "do": "raise"}))
            frame = await asyncio.wait_for(ws.recv(), 5)
            after = await ask(ws, {"action": "echo"})
            return connection_id, frame, after

    connection_id, frame, after = run(main())
    match = INTERNAL.fullmatch(frame)  # byte for byte
    assert match, frame
    assert match.group(1) == connection_id
    failed = [e for e in gw.events.of(connection_id, "MESSAGE") if '"raise"' in e["body"]]
    assert match.group(2) == failed[0]["requestContext"]["requestId"]
    assert after["route"] == "echo" and after["connectionId"] == connection_id


@pytest.mark.parametrize("route", ["echo", "oneway"])
def test_a_handler_past_the_integration_timeout_answers_endpoint_request_timed_out(gw, route):
    async def main():
        ws, connection_id = await identified(gw)
        async with ws:
            started = time.monotonic()
            await ws.send(json.dumps({"action": route, "do": "sleep", "seconds": 2.5}))
            frame = await asyncio.wait_for(ws.recv(), 5)
            waited = time.monotonic() - started
            after = await ask(ws, {"action": "echo"})
            late = await silent(ws, 0.3)  # the late result of the timed-out call is dropped
            return connection_id, frame, waited, after, late

    connection_id, frame, waited, after, late = run(main())
    match = TIMED_OUT.fullmatch(frame)
    assert match, frame
    assert match.group(1) == connection_id
    assert 0.9 <= waited < 2.0  # at the 1 s timeout, not when the handler finished
    assert after.get("route") == "echo" and late, (after, gw.output()[-3000:])


def test_messages_of_one_connection_are_handled_concurrently(gw):
    """[infer] API Gateway does not serialise a connection's messages: a slow one does not hold up the next."""
    async def main():
        async with client(gw.url) as ws:
            await ws.send(json.dumps({"action": "echo", "do": "sleep", "seconds": 0.6}))
            await ws.send(json.dumps({"action": "echo", "do": "echo"}))
            return [(await answer(ws))["do"] for _ in range(2)]

    assert run(main()) == ["echo", "sleep"]


def test_connect_past_the_integration_timeout_is_504(gw):
    """[infer] docs/apigw-websocket.md#connect: a $connect timeout is unverified on AWS; 504 is the likely answer."""
    assert run(refused(gw.url + "?connect=sleep&seconds=2.5&tag=slow")) == 504
    time.sleep(0.2)
    (connect,) = gw.events.tagged("slow")
    assert gw.events.of(connect["requestContext"]["connectionId"], "DISCONNECT") == []


def test_status_shows_what_is_in_flight(gw):
    """The emulator's views count the frames whose integrations have not returned and the
    environments running them (`wsctl --local status` shows both); a handler past the integration
    timeout keeps its environment busy after the gateway has answered, as on Lambda."""
    gw.wait_idle(15)  # earlier tests' sleeping handlers

    async def main():
        async with client(gw.url) as ws:
            await ws.send(json.dumps({"action": "echo", "do": "sleep", "seconds": 2.5}))
            await asyncio.sleep(0.1)
            frame = await asyncio.to_thread(gw.view, "gateway")  # before the 1 s integration timeout
            timed_out = await answer(ws)
            document = await asyncio.to_thread(gw.cli, "status", "-o", "json")  # the handler still sleeps
            return frame, timed_out, json.loads(document.stdout)

    frame, timed_out, document = run(main())
    assert frame["messages"] == 1 and frame["connections"] >= 1
    assert timed_out["message"] == "Endpoint request timed out"
    assert document["inFlight"]["messages"] == 0 and sum(f["busy"] for f in document["functions"]) == 1
    gw.wait_idle(15)
    after = json.loads(gw.cli("status", "-o", "json").stdout)
    assert all(f["busy"] == 0 and f["queued"] == 0 for f in after["functions"])
