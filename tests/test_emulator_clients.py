"""One origin for sockets and @connections, over ws:// and wss://, and clients that are not fussy.

Against the session emulator: the bundled handler relays sendMessage through
its own management client, built from the event as `https://{domainName}/{stage}`
exactly as on AWS, so a relay between two users proves the handler reaches the
emulator's TLS management endpoint on the port the client dialled.
"""

import asyncio
import json

import pytest

from support.emulator_fixtures import unique
from support.emulator_kit import answer, ask, client, run, tls_context


def test_a_relay_between_two_users_goes_through_the_handlers_own_management_client(emulator):
    alice, bob = unique("alice"), unique("bob")

    async def main():
        async with client(emulator.url_for(alice)) as a, client(emulator.url_for(bob)) as b:
            await ask(b, {"action": "whoami"})  # registered before alice sends
            ack = await ask(a, {"action": "sendMessage", "targetUserId": bob, "text": "hi bob"})
            relayed = await answer(b)
            who = await ask(a, {"action": "whoami"})
            registered = await asyncio.to_thread(emulator.registry().get_connection, who["connectionId"])
            return ack, relayed, registered

    ack, relayed, registered = run(main())
    assert ack == {"type": "sent", "to": bob, "delivered": 1}
    assert relayed["type"] == "message" and relayed["from"] == alice and relayed["text"] == "hi bob"
    host = emulator.url.split("/")[2]
    # The endpoint the handler derived from the event (and stored): the https:// origin of the socket.
    stored = emulator.state.tls_management_endpoint
    assert stored == "https://%s/%s" % (host, emulator.state.stage)
    assert registered["endpoint"] == stored


def test_a_wss_client_connects_and_relays(emulator):
    alice, bob = unique("alice"), unique("bob")
    context = tls_context(emulator.state.ca_bundle)

    async def main():
        async with client("%s?token=%s" % (emulator.wss_url, emulator.token(alice)), ssl=context) as a, \
                client(emulator.url_for(bob)) as b:
            await ask(b, {"action": "whoami"})
            who = await ask(a, {"action": "whoami"})
            ack = await ask(a, {"action": "sendMessage", "targetUserId": bob, "text": "over tls"})
            return who, ack, await answer(b)

    who, ack, relayed = run(main())
    assert emulator.wss_url.startswith("wss://")
    assert who["userId"] == alice
    assert ack["delivered"] == 1 and relayed["text"] == "over tls"


def test_a_wss_client_that_does_not_trust_the_certificate_is_refused(emulator):
    import ssl

    async def main():
        with pytest.raises(ssl.SSLCertVerificationError):
            await client("%s?token=%s" % (emulator.wss_url, emulator.token(unique("x"))),
                         ssl=ssl.create_default_context())

    run(main())


def test_an_origin_null_header_is_accepted(emulator):
    async def main():
        async with client(emulator.url_for(unique("o")), additional_headers={"Origin": "null"}) as ws:
            return await ask(ws, {"action": "whoami"})

    assert run(main())["type"] == "whoami"


@pytest.mark.parametrize("ending", ["\n", "\r\n", "  "])
def test_a_frame_with_trailing_whitespace_routes_as_on_aws(emulator, ending):
    async def main():
        async with client(emulator.url_for(unique("n"))) as ws:
            await ws.send(json.dumps({"action": "whoami"}) + ending)
            return await answer(ws)

    assert run(main())["type"] == "whoami"


def test_a_client_offering_compression_gets_none_and_still_works(emulator):
    """[infer] API Gateway does not negotiate permessage-deflate; a default client must not care."""
    async def main():
        async with client(emulator.url_for(unique("z")), compression="deflate") as ws:
            reply = await ask(ws, {"action": "whoami"})
            return ws.response.headers.get("Sec-WebSocket-Extensions"), reply

    extensions, reply = run(main())
    assert extensions is None
    assert reply["type"] == "whoami"


def test_many_clients_at_once(emulator):
    async def main():
        users = [unique("c") for _ in range(20)]
        sockets = await asyncio.gather(*(client(emulator.url_for(user)) for user in users))
        replies = await asyncio.gather(*(ask(ws, {"action": "whoami"}) for ws in sockets))
        await asyncio.gather(*(ws.close() for ws in sockets))
        return users, replies

    users, replies = run(main())
    assert [reply["userId"] for reply in replies] == users
    assert len({reply["connectionId"] for reply in replies}) == len(users)
