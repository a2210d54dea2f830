"""The Lambda proxy events the emulator sends (docs/apigw-websocket.md#proxy-events), checked over real sockets.

A recorder handler writes every event it gets to a file; each test compares
what it recorded with the example events (docs/apigw-websocket.md#example-events): the same keys at
the top level, in requestContext and in identity, and the formats of the ids
and times. The emulator runs a REQUEST authorizer (the recorder's own) whose
identity source is the Authorization header, so connections with and without
a query string both carry `requestContext.authorizer`.
"""

import asyncio
import re
import time
import uuid

import pytest

from support.apigw_events import REFERENCE_CONNECT, REFERENCE_DISCONNECT, REFERENCE_MESSAGE
from support.emulator_kit import (ID_PATTERN, REQUEST_TIME_PATTERN, ask, client, run, routes, start_all,
                                  stop_all)

QUERY_KEYS = {"queryStringParameters", "multiValueQueryStringParameters"}
# The recorder's authorizer answers principalId "user-<token>" and context {tenant, plan}.
AUTHORIZER_KEYS = (set(REFERENCE_CONNECT["requestContext"]["authorizer"]) - {"tenant"}) | {"tenant", "plan"}
BEARER = {"Authorization": "Bearer allow"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    emulators = start_all(tmp_path_factory, {"events": (
        routes("$connect", "$disconnect", "$default", "echo"),
        ["--identity-source", "route.request.header.Authorization"], True)})
    yield emulators["events"]
    stop_all(emulators)


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def open_and_identify(url: str, **options):
    ws = await client(url, **options)
    reply = await ask(ws, {"action": "echo"})
    return ws, reply["connectionId"]


def lifecycle(gw, url: str, close=lambda ws: ws.close(), **options) -> tuple[str, list[dict]]:
    """Connect, send one frame, close; return the connection id and its events in order."""
    async def main():
        ws, connection_id = await open_and_identify(url, additional_headers=BEARER, **options)
        await close(ws)
        return connection_id

    connection_id = run(main())
    gw.events.disconnect_of(connection_id)
    return connection_id, gw.events.of(connection_id)


# -- key sets ------------------------------------------------------------------------
def test_connect_event_has_the_reference_keys_with_a_query_string(gw):
    mark, other = tag(), tag()
    connection_id, events = lifecycle(gw, "%s?tag=%s&tag=%s" % (gw.url, mark, other))
    connect = events[0]
    assert connect["requestContext"]["eventType"] == "CONNECT"
    assert set(connect) == set(REFERENCE_CONNECT)
    assert set(connect["requestContext"]) == set(REFERENCE_CONNECT["requestContext"])
    assert set(connect["requestContext"]["identity"]) == {"userAgent", "sourceIp"}
    assert set(connect["requestContext"]["authorizer"]) == AUTHORIZER_KEYS
    assert connect["isBase64Encoded"] is False
    # A repeated key: every value in the multi-value map, the last in the single-value map.
    assert connect["multiValueQueryStringParameters"] == {"tag": [mark, other]}
    assert connect["queryStringParameters"] == {"tag": other}


def test_connect_event_without_query_string_or_user_agent(gw):
    connection_id, events = lifecycle(gw, gw.url, user_agent_header=None)
    connect = events[0]
    assert set(connect) == set(REFERENCE_CONNECT) - QUERY_KEYS
    assert set(connect["requestContext"]) == set(REFERENCE_CONNECT["requestContext"])
    assert connect["requestContext"]["identity"] == {"sourceIp": "127.0.0.1"}
    assert not any(name.lower() == "user-agent" for name in connect["headers"])
    for later in events[1:]:
        assert later["requestContext"]["identity"] == {"sourceIp": "127.0.0.1"}
    # The authorizer's event always has the query maps, empty here (docs/apigw-websocket.md#authorizer-input).
    (auth_event,) = gw.auth_events.of(connection_id)
    assert auth_event["queryStringParameters"] == {} and auth_event["multiValueQueryStringParameters"] == {}


def test_connect_headers_are_the_upgrade_headers_in_the_clients_casing(gw):
    mark = tag()
    connection_id, events = lifecycle(gw, "%s?tag=%s" % (gw.url, mark), user_agent_header="wsctl-test/1.0",
                                      subprotocols=["chat.v1", "chat.v2"])
    connect = events[0]
    headers = connect["headers"]
    for name in ("Host", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol", "User-Agent",
                 "X-Amzn-Trace-Id", "X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto", "Authorization"):
        assert name in headers, name
    assert headers["User-Agent"] == "wsctl-test/1.0"
    assert headers["Sec-WebSocket-Protocol"] == "chat.v1, chat.v2"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", headers["X-Amzn-Trace-Id"])
    # Connection and Upgrade reach the authorizer but not the $connect integration (docs/apigw-websocket.md#top-level-fields).
    assert not {"connection", "upgrade"} & {name.lower() for name in headers}
    assert connect["multiValueHeaders"] == {name: [value] for name, value in headers.items()}
    (auth_event,) = gw.auth_events.tagged(mark)
    assert {"connection", "upgrade"} <= {name.lower() for name in auth_event["headers"]}


def test_message_event_has_the_reference_keys_and_no_headers(gw):
    async def main():
        async with client(gw.url, additional_headers=BEARER) as ws:
            reply = await ask(ws, {"action": "echo", "text": "hi"})
            return reply["connectionId"]

    connection_id = run(main())
    (message,) = gw.events.wait(lambda r: r.of(connection_id, "MESSAGE"))
    assert set(message) == set(REFERENCE_MESSAGE)
    assert set(message["requestContext"]) == set(REFERENCE_MESSAGE["requestContext"])
    assert "headers" not in message and "multiValueHeaders" not in message
    assert message["body"] == '{"action": "echo", "text": "hi"}'
    assert message["isBase64Encoded"] is False
    context = message["requestContext"]
    assert context["routeKey"] == "echo" and context["eventType"] == "MESSAGE"
    assert re.fullmatch(ID_PATTERN, context["messageId"])
    assert context["messageId"] != context["requestId"]


def test_disconnect_event_has_the_reference_keys_and_its_fixed_headers(gw):
    connection_id, events = lifecycle(gw, gw.url)
    disconnect = events[-1]
    assert disconnect["requestContext"]["eventType"] == "DISCONNECT"
    assert set(disconnect) == set(REFERENCE_DISCONNECT)
    assert set(disconnect["requestContext"]) == set(REFERENCE_DISCONNECT["requestContext"])
    assert set(disconnect["headers"]) == set(REFERENCE_DISCONNECT["headers"])
    host = gw.url.split("/")[2]
    assert disconnect["headers"] == {"Host": host, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
    assert disconnect["multiValueHeaders"] == {k: [v] for k, v in disconnect["headers"].items()}
    assert isinstance(disconnect["requestContext"]["disconnectStatusCode"], int)


def test_only_message_events_carry_message_id_and_only_disconnect_the_status(gw):
    connection_id, events = lifecycle(gw, gw.url)
    assert [e["requestContext"]["eventType"] for e in events] == ["CONNECT", "MESSAGE", "DISCONNECT"]
    for event in events:
        context = event["requestContext"]
        assert ("messageId" in context) == (context["eventType"] == "MESSAGE")
        assert ("disconnectStatusCode" in context) == (context["eventType"] == "DISCONNECT")
        assert ("disconnectReason" in context) == (context["eventType"] == "DISCONNECT")
        assert ("body" in event) == (context["eventType"] == "MESSAGE")


# -- values common to every event of a connection --------------------------------------
def test_ids_times_and_authorizer_are_consistent_across_a_connection(gw):
    before = int(time.time() * 1000)

    async def main():
        ws, connection_id = await open_and_identify(gw.url, additional_headers=BEARER)
        await asyncio.sleep(0.02)
        await ask(ws, {"action": "nothing-matches"})  # -> $default
        await ws.close()
        return connection_id

    connection_id = run(main())
    gw.events.disconnect_of(connection_id)
    after = int(time.time() * 1000)
    events = gw.events.of(connection_id)
    contexts = [e["requestContext"] for e in events]
    assert [c["routeKey"] for c in contexts] == ["$connect", "echo", "$default", "$disconnect"]
    assert [c["eventType"] for c in contexts] == ["CONNECT", "MESSAGE", "MESSAGE", "DISCONNECT"]

    connected_at = contexts[0]["connectedAt"]
    assert before <= connected_at <= after  # epoch milliseconds
    epochs = [c["requestTimeEpoch"] for c in contexts]
    assert epochs == sorted(epochs) and before <= epochs[0] and epochs[-1] <= after
    assert connected_at <= epochs[0] < connected_at + 1000  # C: a few ms after the handshake began
    request_ids = set()
    for context in contexts:
        assert context["connectedAt"] == connected_at
        assert context["connectionId"] == connection_id
        assert context["messageDirection"] == "IN"
        assert context["stage"] == gw.state.stage and context["apiId"] == gw.state.api_id
        assert context["domainName"] == gw.url.split("/")[2]
        assert context["identity"]["sourceIp"] == "127.0.0.1"
        assert re.fullmatch(REQUEST_TIME_PATTERN, context["requestTime"])
        assert context["requestTime"] == time.strftime("%d/%b/%Y:%H:%M:%S +0000",
                                                       time.gmtime(context["requestTimeEpoch"] / 1000))
        for name in ("connectionId", "requestId", "extendedRequestId"):
            assert re.fullmatch(ID_PATTERN, context[name]), (name, context[name])
        assert context["requestId"] == context["extendedRequestId"]
        request_ids.add(context["requestId"])
    assert len(request_ids) == len(contexts)  # a new request id for every event
    assert len({c["messageId"] for c in contexts[1:3]}) == 2

    # The authorizer's answer rides on every event of the connection, unchanged.
    authorizer = contexts[0]["authorizer"]
    assert authorizer["principalId"] == "user-allow"
    assert authorizer["tenant"] == "acme" and authorizer["plan"] == "gold"
    assert isinstance(authorizer["integrationLatency"], int) and authorizer["integrationLatency"] >= 0
    assert all(c["authorizer"] == authorizer for c in contexts)


def test_authorizer_event_is_a_request_event_for_the_connect_method_arn(gw):
    mark = tag()
    connection_id, events = lifecycle(gw, "%s?tag=%s" % (gw.url, mark))
    (auth_event,) = gw.auth_events.tagged(mark)
    assert auth_event["type"] == "REQUEST"
    assert auth_event["methodArn"] == "arn:aws:execute-api:us-east-1:123456789012:%s/%s/$connect" % (
        gw.state.api_id, gw.state.stage)
    assert auth_event["stageVariables"] == {}
    assert auth_event["requestContext"]["connectionId"] == connection_id
    assert auth_event["requestContext"]["eventType"] == "CONNECT"
    assert "authorizer" not in auth_event["requestContext"]


# -- disconnectStatusCode / disconnectReason ------------------------------------------
async def drop(ws):
    """The TCP connection ends without a close frame (a dead peer)."""
    ws.transport.abort()
    await asyncio.sleep(0.05)


async def invalid_utf8(ws):
    await ws.send(b"\xff\xfe", text=True)  # a text frame that is not UTF-8
    await ws.wait_closed()


@pytest.mark.parametrize("close, expected", [
    # [infer] a dropped TCP connection: 1006 with an empty reason, as clients see it (docs/apigw-websocket.md#disconnect-codes).
    pytest.param(drop, (1006, ""), id="dropped"),
    # [infer] RFC 6455 §8.1: invalid UTF-8 in a text frame fails the connection with 1007.
    pytest.param(invalid_utf8, (1007, ""), id="invalid-utf8"),
    pytest.param(lambda ws: ws.close(code=None), (1005, "Client-side close frame status not set"), id="no-code"),
    pytest.param(lambda ws: ws.close(1000), (1000, ""), id="normal-1000"),
    pytest.param(lambda ws: ws.close(1000, "done"), (1000, "done"), id="normal-with-reason"),
    pytest.param(lambda ws: ws.close(4001, "bye now"), (4001, "bye now"), id="own-code"),
    pytest.param(lambda ws: ws.close(1001), (1001, ""), id="going-away"),
])
def test_disconnect_reports_how_the_client_closed(gw, close, expected):
    connection_id, events = lifecycle(gw, gw.url, close=close)
    context = events[-1]["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == expected


def test_disconnect_after_delete_connection_is_1000_closed_normally(gw):
    async def main():
        ws, connection_id = await open_and_identify(gw.url, additional_headers=BEARER)
        await asyncio.to_thread(gw.management().delete_connection, ConnectionId=connection_id)
        await ws.wait_closed()
        return connection_id, ws.close_code

    connection_id, client_code = run(main())
    assert client_code == 1000
    context = gw.events.disconnect_of(connection_id)["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (1000, "Connection Closed Normally")
