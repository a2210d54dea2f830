"""wsctl/local/authorizer.py on its own: how API Gateway turns a REQUEST authorizer's answer
into the handshake's outcome (docs/apigw-websocket.md#authorizer-output), without an emulator.

An answer that allows the connection's method ARN gives the `requestContext.authorizer` map
(principalId plus the context, every value as a string); a Deny or no matching Allow is 403;
a malformed answer is 500. (An authorizer that raises "Unauthorized" is 401: that is decided
where the function's error arrives, in the gateway; tests/test_emulator_connect.py covers it.)
tests/test_authorizer.py tests the bundled JWT authorizer in lambda_src, not this module.
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsctl.local import events
from wsctl.local.authorizer import RESULT_LIMIT, Refused, decide

ARN = events.method_arn("us-east-1", "abc123defg", "dev")  # .../abc123defg/dev/$connect


def answer(*statements, principal="user-42", context=None, **more) -> dict:
    result = {"principalId": principal, "policyDocument": {"Version": "2012-10-17", "Statement": list(statements)}}
    if context is not None:
        result["context"] = context
    result.update(more)
    return result


def allow(resource=ARN, action="execute-api:Invoke") -> dict:
    return {"Action": action, "Effect": "Allow", "Resource": resource}


def deny(resource=ARN, action="execute-api:Invoke") -> dict:
    return {"Action": action, "Effect": "Deny", "Resource": resource}


def status_of(result) -> int:
    with pytest.raises(Refused) as refused:
        decide(result, ARN)
    return refused.value.status


# -- allowed ------------------------------------------------------------------------------------------------
def test_an_allow_of_the_method_arn_gives_the_principal_and_the_context():
    assert decide(answer(allow(), context={"tenant": "acme"}), ARN) == {"principalId": "user-42", "tenant": "acme"}


def test_without_a_context_the_map_holds_the_principal_only():
    assert decide(answer(allow()), ARN) == {"principalId": "user-42"}
    assert decide(answer(allow(), context={}), ARN) == {"principalId": "user-42"}


def test_context_values_reach_the_handler_as_strings():
    context = {"s": "text", "n": 42, "f": 1.5, "yes": True, "no": False}
    assert decide(answer(allow(), context=context), ARN) == {
        "principalId": "user-42", "s": "text", "n": "42", "f": "1.5", "yes": "true", "no": "false"}


@pytest.mark.parametrize("resource", [
    ARN, [ARN], "*", "arn:aws:execute-api:*", "arn:aws:execute-api:us-east-1:123456789012:abc123defg/*",
    "arn:aws:execute-api:*:*:abc123defg/dev/$connect", "arn:aws:execute-api:us-east-1:123456789012:abc123defg/de?/*",
    ["arn:aws:execute-api:eu-west-1:*", ARN],
])
def test_iam_wildcards_in_the_resource_match(resource):
    assert decide(answer(allow(resource)), ARN)["principalId"] == "user-42"


@pytest.mark.parametrize("action", ["execute-api:Invoke", "execute-api:*", "*", ["s3:GetObject", "execute-api:Invoke"],
                                    "execute-api:Inv?ke"])
def test_the_action_may_be_listed_or_wildcarded(action):
    assert decide(answer(allow(action=action)), ARN)["principalId"] == "user-42"


def test_a_single_statement_object_is_accepted_as_well_as_a_list():
    result = {"principalId": "p", "policyDocument": {"Version": "2012-10-17", "Statement": allow()}}
    assert decide(result, ARN) == {"principalId": "p"}


# -- 403: not allowed -------------------------------------------------------------------------------------------
def test_a_deny_is_403_even_beside_an_allow_in_either_order():
    assert status_of(answer(allow(), deny())) == 403
    assert status_of(answer(deny(), allow())) == 403
    assert status_of(answer(allow("*"), deny("arn:aws:execute-api:*:*:abc123defg/*"))) == 403


@pytest.mark.parametrize("statement", [
    allow("arn:aws:execute-api:us-east-1:123456789012:abc123defg/prod/$connect"),  # another stage
    allow("arn:aws:execute-api:us-east-1:123456789012:otherapiid/*"),  # another API
    allow(ARN.replace("$connect", "$default")),  # another route
    allow(ARN.replace("abc123defg", "ABC123DEFG")),  # ARNs match case-sensitively
    allow(action="execute-api:ManageConnections"),  # another action
    allow(action="s3:*"),
    {"Action": "execute-api:Invoke", "Effect": "allow", "Resource": ARN},  # the effect is case-sensitive
    {"Action": "execute-api:Invoke", "Resource": ARN},  # no effect
    "not a statement",
])
def test_no_statement_that_allows_the_method_arn_is_403(statement):
    assert status_of(answer(statement)) == 403


def test_an_empty_statement_list_is_403():
    assert status_of(answer()) == 403


def test_square_brackets_in_a_resource_are_literal_not_a_glob():
    arn = "arn:aws:execute-api:us-east-1:123456789012:abc123defg/dev/$connect"
    assert status_of(answer(allow(arn.replace("dev", "[d]ev")))) == 403


# -- 500: a malformed answer --------------------------------------------------------------------------------------
@pytest.mark.parametrize("result", [
    None, "Allow", [], {},
    {"policyDocument": {"Statement": [allow()]}},  # no principalId
    answer(allow(), principal=""),
    answer(allow(), principal=42),
    {"principalId": "p"},  # no policy
    {"principalId": "p", "policyDocument": "Allow"},
    {"principalId": "p", "policyDocument": {"Version": "2012-10-17"}},
    {"principalId": "p", "policyDocument": {"Statement": "Allow"}},
])
def test_an_answer_without_a_principal_or_a_policy_is_500(result):
    assert status_of(result) == 500


@pytest.mark.parametrize("context", [{"nested": {"a": 1}}, {"list": [1, 2]}, {"none": None}, "a string", ["x"]])
def test_context_values_that_are_objects_arrays_or_null_are_500(context):
    assert status_of(answer(allow(), context=context)) == 500


def test_an_answer_that_is_not_json_is_500():
    assert status_of(answer(allow(), context={"s": "x"}, extra={1, 2})) == 500


def test_a_deny_with_a_bad_context_is_still_403():
    # The policy is read first: a refused connection never gets as far as its context.
    assert status_of(answer(deny(), context={"bad": {"nested": True}})) == 403


@given(st.integers(min_value=-200, max_value=200))
def test_the_answer_may_be_up_to_8_kb(delta):
    base = answer(allow(), context={"pad": ""})
    padding = RESULT_LIMIT - len(json.dumps(base)) + delta
    result = answer(allow(), context={"pad": "x" * max(padding, 0)})
    if len(json.dumps(result)) <= 8 * 1024:
        assert decide(result, ARN)["pad"] == "x" * max(padding, 0)
    else:
        assert status_of(result) == 500


@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k != "principalId"),
                       st.text(max_size=8) | st.integers() | st.booleans(), max_size=6))
def test_every_scalar_context_passes_through_as_text(context):
    decided = decide(answer(allow(), context=context), ARN)
    assert decided.pop("principalId") == "user-42"
    assert decided == {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in context.items()}
