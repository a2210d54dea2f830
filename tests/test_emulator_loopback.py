"""How a handler in the emulator reaches the management API: in-process by default
(botocore's before-send, same requests and answers), or over real TCP/TLS with
--network-management. Both must relay identically, errors included."""

import asyncio
import json

import pytest
import websockets

from emulator_fixtures import unique


async def _relay(instance, text: str, alice: str, bob: str) -> tuple[dict, dict]:
    async with websockets.connect(instance.url_for(alice)) as a, websockets.connect(instance.url_for(bob)) as b:
        await a.send(json.dumps({"action": "sendMessage", "targetUserId": bob, "text": text}))
        relayed = json.loads(await asyncio.wait_for(b.recv(), 10))
        ack = json.loads(await asyncio.wait_for(a.recv(), 10))
        return relayed, ack


@pytest.mark.parametrize("options", [(), ("--network-management",)], ids=["in-process", "network"])
def test_a_relay_reaches_the_target_either_way(start_emulator, options):
    instance = start_emulator(*options)
    alice, bob = unique("alice"), unique("bob")
    relayed, ack = asyncio.run(_relay(instance, "héllo", alice, bob))
    assert (relayed["from"], relayed["text"]) == (alice, "héllo")
    assert ack == {"type": "sent", "to": bob, "delivered": 1}


@pytest.mark.parametrize("options", [(), ("--network-management",)], ids=["in-process", "network"])
def test_injected_gone_answers_reach_the_handler_either_way(start_emulator, options):
    instance = start_emulator("--fault", "mgmt-410=1", *options)
    alice, bob = unique("alice"), unique("bob")

    async def scenario():
        async with websockets.connect(instance.url_for(alice)) as a, websockets.connect(instance.url_for(bob)):
            await a.send(json.dumps({"action": "sendMessage", "targetUserId": bob, "text": "x"}))
            return json.loads(await asyncio.wait_for(a.recv(), 10))

    answer = asyncio.run(scenario())
    # every post answered 410: the handler pruned bob's entry and told alice he has no connection
    assert answer["type"] == "error" and answer["error"] == "no_connection"
    assert instance.registry().connections_of_user(bob) == []
