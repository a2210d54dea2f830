"""wsctl/local/routing.py on its own: route selection as API Gateway evaluates a route selection
expression (docs/apigw-websocket.md#route-selection), without a socket or an emulator.

Examples first (each documented form of expression, each fallback to $default), then
properties over arbitrary JSON drawn by hypothesis: a frame whose selected value names a
custom route goes there, anything else goes to $default (or nowhere, without $default), and
$connect/$disconnect are never chosen by a frame. tests/test_emulator_routing.py checks the
same rules over real sockets.
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsctl.local import routing

ACTION = "$request.body.action"


# -- the evaluator --------------------------------------------------------------------------------------
@pytest.mark.parametrize("expression, body, value", [
    ("$request.body.action", '{"action": "join"}', "join"),
    ("${request.body.action}", '{"action": "join"}', "join"),  # the wrapped form is the same thing
    ("$request.body.data.kind", '{"data": {"kind": "alpha"}}', "alpha"),
    ("$request.body.items[1]", '{"items": ["a", "b"]}', "b"),
    ("$request.body.items[2]", '{"items": ["a", "b"]}', ""),  # past the end: not found
    ("$request.body.a[0][1]", '{"a": [["x", "y"]]}', "y"),
    ("${request.body.service}/${request.body.action}", '{"service": "chat", "action": "join"}', "chat/join"),
    ("${request.body.action}-${request.body.missing}", '{"action": "join"}', "join-"),
    ("${request.body.a}${request.body.b}", '{"a": "x", "b": "y"}', "xy"),
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
    assert routing.select(ACTION, body, KEYS) == route


def test_select_without_default_is_none():
    keys = {"join"}
    assert routing.select(ACTION, '{"action": "leave"}', keys) is None
    assert routing.select(ACTION, "not JSON", keys) is None
    assert routing.select(ACTION, '{"action": "join"}', keys) == "join"


def test_a_static_default_expression_sends_everything_to_default():
    keys = {"$default", "join"}
    assert routing.select("\\$default", '{"action": "join"}', keys) == "$default"


def test_a_static_expression_naming_a_route_sends_every_frame_there_json_or_not():
    keys = {"$default", "chat"}
    assert [routing.select("chat", body, keys) for body in ('{"action": "x"}', "text", "")] == ["chat"] * 3


# JSON nested deeper than Python parses: the expression "cannot be evaluated" (it used to raise
# RecursionError, and the frame was never answered).
DEEP_ARRAY = "[" * 5000 + "]" * 5000
DEEP_ACTION = '{"action":' + "[" * 990 + "]" * 990 + "}"
DEEP_OBJECT = '{"a":' * 3000 + "1" + "}" * 3000


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_ACTION, DEEP_OBJECT], ids=["array", "action", "object"])
def test_a_body_too_deep_to_evaluate_goes_to_default(body):
    assert routing.select(ACTION, body, {"$default", "whoami"}) == "$default"
    assert routing.select(ACTION, body, {"whoami"}) is None


def test_the_parsed_expression_keeps_literals_and_paths_apart():
    parsed = routing.parse("${request.body.service}/v1/$request.body.items[0].name")
    assert parsed.parts == (("service",), "/v1/", ("items", 0, "name"))
    assert not parsed.static and routing.parse("\\$default").static


# -- properties over arbitrary JSON -------------------------------------------------------------------------
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
# Custom route keys may not start with "$" (reserved for $connect, $disconnect and $default).
ROUTE_KEYS = st.text(min_size=1, max_size=12).filter(lambda key: not key.startswith("$"))


@given(ROUTE_KEYS, st.sets(ROUTE_KEYS, max_size=5), st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3))
def test_a_frame_whose_action_names_a_custom_route_goes_there(action, others, rest):
    keys = others | {action, "$default", "$connect", "$disconnect"}
    body = json.dumps({**rest, "action": action})
    assert routing.select(ACTION, body, keys) == action
    assert routing.select(ACTION, body, keys - {"$default"}) == action


@given(JSON_VALUES, st.sets(ROUTE_KEYS, max_size=5))
def test_any_json_goes_to_the_key_equal_to_its_stringified_value_or_else_to_default(document, keys):
    body = json.dumps(document)
    value = routing.evaluate(ACTION, body)
    assert isinstance(value, str)  # JSON always evaluates; a missing path is ""
    expected = value if value in keys else "$default"
    assert routing.select(ACTION, body, keys | {"$default"}) == expected
    assert routing.select(ACTION, body, keys) == (None if expected == "$default" else expected)


@given(st.sampled_from(["$connect", "$disconnect"]), st.sets(ROUTE_KEYS, max_size=3))
def test_a_frame_never_selects_connect_or_disconnect(special, keys):
    keys = keys | {"$connect", "$disconnect"}
    body = json.dumps({"action": special})
    assert routing.select(ACTION, body, keys | {"$default"}) == "$default"
    assert routing.select(ACTION, body, keys) is None


@given(st.text())
def test_text_that_is_not_json_goes_to_default(text):
    try:
        json.loads(text)
    except ValueError:
        pass
    else:
        return  # some text is JSON ("1", '"a"', "[]"): the property is about the rest
    assert routing.evaluate(ACTION, text) is None
    assert routing.select(ACTION, text, {"$default", text}) == "$default"
    assert routing.select(ACTION, text, {text}) is None


@given(st.text())
def test_a_string_action_is_its_own_value_unchanged(action):
    assert routing.evaluate(ACTION, json.dumps({"action": action})) == action


@given(st.lists(st.text(alphabet="abc", max_size=3), max_size=4))
def test_an_array_action_is_stringified_as_api_gateway_shows_it(items):
    assert routing.evaluate(ACTION, json.dumps({"action": items})) == "[" + ", ".join(items) + "]"
