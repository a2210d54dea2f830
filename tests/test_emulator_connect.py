"""$connect and the REQUEST authorizer decide the handshake (docs/apigw-websocket.md#connect, #authorizers).

Two emulators: the session one (the bundled handler and its JWT authorizer)
and one running the recorder with its own authorizer, whose identity source
is `route.request.querystring.token`; the token's value tells the recorder's
authorizer what to answer and the `connect` query parameter tells its
$connect handler what to return.
"""

import asyncio
import time
import urllib.error
import urllib.request
import uuid

import pytest

import test_gateway_rules
from support import raw_client as wire
from support.emulator_fixtures import unique
from support.emulator_kit import ask, client, refused, routes, run, silent, start_all, stop_all
from lambda_src import jwts


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    emulators = start_all(tmp_path_factory, {"connect": (
        routes("$connect", "$disconnect", "$default"),
        ["--identity-source", "route.request.querystring.token"], True)})
    yield emulators["connect"]
    stop_all(emulators)


def tag() -> str:
    return uuid.uuid4().hex[:10]


def url(gw, mark: str, token: str | None = "allow", **query) -> str:
    params = ["tag=" + mark] + (["token=" + token] if token is not None else [])
    params += ["%s=%s" % item for item in query.items()]
    return gw.url + "?" + "&".join(params)


def assert_no_connection_left(gw, mark: str) -> None:
    """A refused handshake: no $disconnect for whatever id the attempt had."""
    time.sleep(0.3)  # a $disconnect, if one were (wrongly) sent, runs right after the refusal
    ids = {e["requestContext"]["connectionId"] for e in gw.events.tagged(mark) + gw.auth_events.tagged(mark)}
    assert ids, "the attempt left no trace at all"
    for connection_id in ids:
        assert gw.events.of(connection_id, "DISCONNECT") == []
        assert gw.events.of(connection_id, "MESSAGE") == []


# -- the $connect integration --------------------------------------------------------
@pytest.mark.parametrize("status", ["200", "201", "204"])
def test_a_2xx_from_connect_accepts_the_connection(gw, status):
    mark = tag()

    async def main():
        async with client(url(gw, mark, connect=status)) as ws:
            reply = await ask(ws, {"action": "hello"})
            return ws.response.status_code, reply

    http_status, reply = run(main())
    assert http_status == 101
    assert reply["route"] == "$default"
    (connect,) = gw.events.tagged(mark)
    assert connect["requestContext"]["connectionId"] == reply["connectionId"]


@pytest.mark.parametrize("status", [400, 403, 409, 500])
def test_a_non_2xx_from_connect_is_the_handshakes_status(gw, status):
    mark = tag()
    assert run(refused(url(gw, mark, connect=str(status)))) == status
    assert len(gw.events.tagged(mark)) == 1  # $connect ran once
    assert_no_connection_left(gw, mark)


def test_an_exception_in_connect_is_502(gw):
    mark = tag()
    assert run(refused(url(gw, mark, connect="raise"))) == 502
    assert_no_connection_left(gw, mark)


def test_only_the_subprotocol_header_of_the_connect_response_is_forwarded(gw):
    async def main():
        async with client(url(gw, tag(), proto="chat.v2"), subprotocols=["chat.v1", "chat.v2"]) as ws:
            return ws.subprotocol, ws.response.headers

    subprotocol, headers = run(main())
    assert subprotocol == "chat.v2"
    assert headers["Sec-WebSocket-Protocol"] == "chat.v2"
    assert "X-Not-Forwarded" not in headers  # the handler's other headers stay behind


def test_no_subprotocol_is_selected_unless_the_handler_returns_one(gw):
    async def main():
        async with client(url(gw, tag()), subprotocols=["chat.v1", "chat.v2"]) as offered:
            first = offered.subprotocol, offered.response.headers.get("Sec-WebSocket-Protocol")
        async with client(url(gw, tag())) as plain:
            second = plain.subprotocol, plain.response.headers.get("Sec-WebSocket-Protocol")
        return first, second

    offered, plain = run(main())
    assert offered == (None, None)  # API Gateway never echoes or negotiates by itself
    assert plain == (None, None)


def test_a_subprotocol_the_client_did_not_offer_is_passed_on_and_the_client_fails(gw):
    """API Gateway forwards $connect's Sec-WebSocket-Protocol as it is; RFC 6455 makes a client
    fail a handshake that selects a protocol it never offered (aiohttp used to drop it silently)."""
    import websockets

    async def main():
        try:
            async with client(url(gw, tag(), proto="chat.v9"), subprotocols=["chat.v1"]):
                return None
        except websockets.exceptions.InvalidHandshake as error:
            return error

    error = run(main())
    assert error is not None and "chat.v9" in str(error)


def test_authorizer_context_values_reach_later_events_as_strings(gw):
    async def main():
        async with client(url(gw, tag(), token="typed")) as ws:
            return await ask(ws, {"action": "x", "do": "authorizer"})

    authorizer = run(main())["authorizer"]
    assert authorizer["count"] == "3" and authorizer["admin"] == "true" and authorizer["off"] == "false"
    assert authorizer["ratio"] == "1.5" and authorizer["tenant"] == "acme"
    assert isinstance(authorizer["integrationLatency"], int)


def test_identity_has_no_user_agent_when_the_client_sent_none(gw):
    async def main():
        async with client(url(gw, tag()), user_agent_header=None) as bare:
            without = await ask(bare, {"action": "x", "do": "authorizer"})
        async with client(url(gw, tag()), user_agent_header="probe/1.0") as named:
            with_agent = await ask(named, {"action": "x", "do": "authorizer"})
        return without["identity"], with_agent["identity"]

    without, with_agent = run(main())
    assert "userAgent" not in without and without["sourceIp"] == "127.0.0.1"
    assert with_agent["userAgent"] == "probe/1.0"


def test_posting_to_the_connection_from_inside_connect_is_gone(gw):
    """docs/apigw-websocket.md#connect: the connection is not established until $connect returns."""
    mark = tag()

    async def main():
        async with client(url(gw, mark, connect="selfpost")) as ws:
            return (await ask(ws, {"action": "x"}))["connectionId"], await silent(ws, 0.3)

    connection_id, nothing_arrived = run(main())
    (attempt,) = gw.events.of(connection_id, "SELFPOST")
    assert attempt["selfpost"] == 410
    assert nothing_arrived


def test_an_upgrade_on_another_stage_is_403(gw):
    assert run(refused(gw.url.rsplit("/", 1)[0] + "/prod?token=allow")) == 403


def test_plain_http_without_upgrade_is_426(gw):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(gw.endpoint, timeout=5)
    assert info.value.code == 426


@pytest.mark.parametrize("changes, valid", test_gateway_rules.UPGRADE_CASES)
def test_an_upgrade_is_answered_101_or_426_before_connect_runs(gw, changes, valid):
    """Every request the handshake's first check passes is one aiohttp upgrades: none is refused
    (400) after $connect ran; an invalid one never reaches $connect."""
    mark = tag()
    target = url(gw, mark).split(str(gw.port), 1)[1]
    headers = "".join("%s: %s\r\n" % item for item in test_gateway_rules.upgrade_headers(changes).items())

    async def main():
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n" % (target, gw.port, headers)).encode())
        try:
            status, _, _ = await wire.read_head(reader, 10.0)
        finally:
            writer.transport.abort()
        return status

    assert run(main()) == (101 if valid else 426)
    if not valid:  # neither the authorizer nor $connect ran (they would have before any answer)
        assert gw.events.tagged(mark) == [] and gw.auth_events.tagged(mark) == []


# -- the REQUEST authorizer ---------------------------------------------------------------
@pytest.mark.parametrize("token", [None, ""], ids=["absent", "empty"])
def test_a_missing_identity_source_is_401_without_invoking_the_authorizer(gw, token):
    mark = tag()
    assert run(refused(url(gw, mark, token=token))) == 401
    time.sleep(0.3)
    assert gw.auth_events.tagged(mark) == []
    assert gw.events.tagged(mark) == []


@pytest.mark.parametrize("token, status", [
    ("unauthorized", 401),  # raises Exception("Unauthorized")
    ("deny", 403),  # an explicit Deny
    ("otherresource", 403),  # an Allow for another resource only
    ("crash", 500),  # any other exception
    ("malformed", 500),  # no principalId, policyDocument not a policy
    ("noprincipal", 500),  # a good policy but no principalId
    ("objectcontext", 500),  # context values must be strings, numbers or booleans
    ("huge", 500),  # an answer over 8 KB
])
def test_authorizer_outcomes(gw, token, status):
    mark = tag()
    assert run(refused(url(gw, mark, token=token))) == status
    assert len(gw.auth_events.tagged(mark)) == 1
    assert gw.events.tagged(mark) == []  # the $connect integration never ran
    assert_no_connection_left(gw, mark)


def test_an_allow_with_a_wildcard_resource_connects(gw):
    async def main():
        async with client(url(gw, tag(), token="wildcard")) as ws:
            return await ask(ws, {"action": "x"})

    assert run(main())["route"] == "$default"


def test_an_allowing_authorizer_runs_before_connect_and_fills_its_authorizer(gw):
    mark = tag()

    async def main():
        async with client(url(gw, mark, token="allow")) as ws:
            return await ask(ws, {"action": "x"})

    reply = run(main())
    (auth_event,) = gw.auth_events.tagged(mark)
    (connect,) = gw.events.tagged(mark)
    assert auth_event["requestContext"]["connectionId"] == connect["requestContext"]["connectionId"] \
        == reply["connectionId"]
    assert auth_event["requestContext"]["requestTimeEpoch"] <= connect["requestContext"]["requestTimeEpoch"]
    authorizer = connect["requestContext"]["authorizer"]
    assert authorizer["principalId"] == "user-allow" and authorizer["tenant"] == "acme"


# -- the bundled JWT authorizer (session emulator) -------------------------------------------
def test_bundled_authorizer_accepts_a_query_token(emulator):
    user = unique("q")

    async def main():
        async with client(emulator.url_for(user)) as ws:
            return await ask(ws, {"action": "whoami"})

    reply = run(main())
    assert reply["type"] == "whoami" and reply["userId"] == user


def test_bundled_authorizer_accepts_an_authorization_bearer_header(emulator):
    user = unique("h")

    async def main():
        async with client(emulator.url, additional_headers={"Authorization": "Bearer " + emulator.token(user)}) as ws:
            return await ask(ws, {"action": "whoami"})

    reply = run(main())
    assert reply["type"] == "whoami" and reply["userId"] == user


def expired_token(emulator, user: str) -> str:
    return jwts.mint(emulator.state.keyset, emulator.stack, user, ttl_seconds=60, now=time.time() - 3600)


@pytest.mark.parametrize("how", ["none", "garbage", "other-stack", "expired", "bad-scheme"])
def test_bundled_authorizer_refuses_with_401_and_registers_nothing(emulator, how):
    user = unique("r")
    headers = {}
    target = emulator.url
    if how == "garbage":
        target += "?token=not.a.jwt"
    elif how == "other-stack":
        target += "?token=" + jwts.mint(emulator.state.keyset, "otherstack", user)
    elif how == "expired":
        target += "?token=" + expired_token(emulator, user)
    elif how == "bad-scheme":
        headers["Authorization"] = "Basic " + emulator.token(user)
    assert run(refused(target, additional_headers=headers)) == 401
    time.sleep(0.2)
    assert emulator.registry().connections_of_user(user) == []


def test_bundled_handler_registers_an_accepted_connection_and_disconnect_removes_it(emulator):
    user = unique("reg")

    async def main():
        async with client(emulator.url_for(user)) as ws:
            reply = await ask(ws, {"action": "whoami"})
            registered = emulator.registry().connections_of_user(user)
            return reply, registered

    reply, registered = run(main())
    assert [item["connectionId"] for item in registered] == [reply["connectionId"]]
    deadline = time.monotonic() + 5
    while emulator.registry().get_connection(reply["connectionId"]) is not None:
        assert time.monotonic() < deadline, "$disconnect did not remove the connection"
        time.sleep(0.05)


def test_bundled_connect_answers_the_first_offered_subprotocol(emulator):
    async def main():
        async with client(emulator.url_for(unique("p")), subprotocols=["graphql-ws", "chat"]) as ws:
            return ws.subprotocol, await ask(ws, {"action": "whoami"})

    subprotocol, reply = run(main())
    assert subprotocol == "graphql-ws"
    assert reply["type"] == "whoami"
