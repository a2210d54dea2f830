"""Route selection (reference §2): the pure evaluator, then the same rules over real sockets.

Two emulators run the recorder, whose answers name the route they ran on:
- "nested": `$request.body.data.kind`, custom routes alpha, Beta, 42, true, and $default;
- "template": `${request.body.service}/${request.body.action}`, routes chat/join and
  chat/ and no $default, so an unmatched frame gets API Gateway's Forbidden frame.
"""

import json
import re

import pytest

from emulator_kit import ID_PATTERN, answer, client, routes, run, start_all, stop_all
from wsctl.local import routing

FORBIDDEN = re.compile(r'\{"message": "Forbidden", "connectionId":"(%s)", "requestId":"(%s)"\}' % (
    ID_PATTERN[1:-1], ID_PATTERN[1:-1]))


# -- the evaluator (pure) --------------------------------------------------------------
@pytest.mark.parametrize("expression, body, value", [
    ("$request.body.action", '{"action": "join"}', "join"),
    ("${request.body.action}", '{"action": "join"}', "join"),  # the wrapped form is the same thing
    ("$request.body.data.kind", '{"data": {"kind": "alpha"}}', "alpha"),
    ("$request.body.items[1]", '{"items": ["a", "b"]}', "b"),
    ("${request.body.service}/${request.body.action}", '{"service": "chat", "action": "join"}', "chat/join"),
    ("${request.body.action}-${request.body.missing}", '{"action": "join"}', "join-"),
    ("$request.body.missing", '{"action": "join"}', ""),
    ("$request.body.data.kind", '{"data": "not an object"}', ""),
    ("$request.body.action", '{"action": 42}', "42"),
    ("$request.body.action", '{"action": 1.5}', "1.5"),
    ("$request.body.action", '{"action": true}', "true"),
    ("$request.body.action", '{"action": false}', "false"),
    ("$request.body.action", '{"action": ["item1", "item2"]}', "[item1, item2]"),
    ("$request.body.action", '{"action": null}', ""),  # [infer] null is "not found"
    ("$request.body.action", '"just a JSON string"', ""),
    ("action", "not even JSON", "action"),  # a purely static expression
    ("\\$default", '{"action": "join"}', "$default"),  # the escape for the literal
    ("$request.body.action", "not JSON", None),  # cannot be evaluated
])
def test_evaluate(expression, body, value):
    assert routing.evaluate(expression, body) == value


KEYS = {"$connect", "$disconnect", "$default", "join", "42", "true"}


@pytest.mark.parametrize("body, route", [
    ('{"action": "join"}', "join"),
    ('{"action": "Join"}', "$default"),  # exact, case-sensitive
    ('{"action": "join "}', "$default"),
    ('{"action": 42}', "42"),
    ('{"action": true}', "true"),
    ('{"action": "$connect"}', "$default"),  # never a special route by selection
    ('{"action": "$disconnect"}', "$default"),
    ('{"text": "no action"}', "$default"),
    ("plain text", "$default"),
    ('{"action": "join"}\n', "join"),  # trailing whitespace is still JSON
])
def test_select(body, route):
    assert routing.select("$request.body.action", body, KEYS) == route


def test_select_without_default_is_none():
    keys = {"join"}
    assert routing.select("$request.body.action", '{"action": "leave"}', keys) is None
    assert routing.select("$request.body.action", "not JSON", keys) is None
    assert routing.select("$request.body.action", '{"action": "join"}', keys) == "join"


def test_a_static_default_expression_sends_everything_to_default():
    keys = {"$default", "join"}
    assert routing.select("\\$default", '{"action": "join"}', keys) == "$default"


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
