"""Route selection over real sockets (the evaluator on its own is tests/test_routing.py).

Two emulators run the recorder, whose answers name the route they ran on:
- "nested": `$request.body.data.kind`, custom routes alpha, Beta, 42, true, and $default;
- "template": `${request.body.service}/${request.body.action}`, routes chat/join and
  chat/ and no $default, so an unmatched frame gets API Gateway's Forbidden frame.
"""

import json
import re

import pytest

from support.emulator_kit import ID_PATTERN, answer, client, routes, run, start_all, stop_all

FORBIDDEN = re.compile(r'\{"message": "Forbidden", "connectionId":"(%s)", "requestId":"(%s)"\}' % (
    ID_PATTERN[1:-1], ID_PATTERN[1:-1]))


# -- over real sockets ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    emulators = start_all(tmp_path_factory, {
        "nested": (routes("$default", "alpha", "Beta", "42", "true", expression="$request.body.data.kind"), [], False),
        "template": (routes("chat/join", "chat/", expression="${request.body.service}/${request.body.action}"),
                     [], False),
    })
    yield emulators
    stop_all(emulators)


def routes_taken(gw, frames: list[str]) -> list[str]:
    async def main():
        async with client(gw.url) as ws:
            taken = []
            for frame in frames:
                await ws.send(frame)
                taken.append((await answer(ws))["route"])
            return taken

    return run(main())


def test_nested_path_numbers_booleans_and_case(fleet):
    frames = ['{"data": {"kind": "alpha"}}', '{"data": {"kind": 42}}', '{"data": {"kind": true}}',
              '{"data": {"kind": "Beta"}}', '{"data": {"kind": "beta"}}', '{"data": {"kind": "ALPHA"}}']
    assert routes_taken(fleet["nested"], frames) == ["alpha", "42", "true", "Beta", "$default", "$default"]


def test_missing_path_and_non_json_go_to_default(fleet):
    gw = fleet["nested"]
    frames = ['{"data": {}}', '{"kind": "alpha"}', '{"data": {"kind": null}}', "hello, not JSON", "[1, 2]",
              '{"data": {"kind": "alpha"}}\n']
    assert routes_taken(gw, frames) == ["$default"] * 5 + ["alpha"]
    bodies = [e["body"] for e in gw.events.all() if e["requestContext"]["routeKey"] == "$default"]
    assert "hello, not JSON" in bodies  # the frame reaches $default as it was sent


def test_template_with_static_text_and_a_missing_variable(fleet):
    frames = ['{"service": "chat", "action": "join"}', '{"service": "chat"}']
    assert routes_taken(fleet["template"], frames) == ["chat/join", "chat/"]


async def raw_replies(gw, frames: list[str]) -> list[str]:
    async with client(gw.url) as ws:
        replies = []
        for frame in frames:
            await ws.send(frame)
            replies.append(await ws.recv())
        return replies


def test_without_default_an_unmatched_frame_gets_the_forbidden_frame_and_the_socket_stays(fleet):
    gw = fleet["template"]
    leave, text, join = run(raw_replies(gw, ['{"service": "chat", "action": "leave"}', "not JSON at all",
                                             '{"service": "chat", "action": "join"}']))
    connection_id = json.loads(join)["connectionId"]
    assert json.loads(join)["route"] == "chat/join"  # the connection stayed open
    request_ids = set()
    for frame in (leave, text):
        match = FORBIDDEN.fullmatch(frame)  # byte for byte, spacing included
        assert match, frame
        assert match.group(1) == connection_id
        request_ids.add(match.group(2))
    assert len(request_ids) == 2 and connection_id not in request_ids
    # The handler never saw the unmatched frames.
    assert [e["body"] for e in gw.events.of(connection_id, "MESSAGE")] == ['{"service": "chat", "action": "join"}']
