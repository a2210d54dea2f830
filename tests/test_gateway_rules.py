"""API Gateway's decisions as values (wsctl.local.rules), tested without a socket: each rule as
docs/apigw-websocket.md states it. The end-to-end tests (test_emulator_*) check the gateway carries
them out over real sockets."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsctl import apigw, limits
from wsctl.local import rules
from wsctl.local.faults import Faults
from wsctl.local.rules import Outcome

ARN = "arn:aws:execute-api:us-east-1:123456789012:abc/dev/$connect"


def body(answer: rules.Answer):
    return json.loads(answer.body)


# -- the handshake [#connect] ------------------------------------------------------------------------------
def request(**changes) -> rules.UpgradeRequest:
    return rules.UpgradeRequest(**{"stage": "dev", "url_bytes": 100, "header_bytes": 500, "websocket": True,
                                   **changes})


def test_a_good_upgrade_is_not_refused_and_each_check_has_its_answer():
    assert rules.refuse_request(request(), "dev") is None
    wrong_stage = rules.refuse_request(request(stage="prod"), "dev")
    assert (wrong_stage.status, dict(wrong_stage.headers)["x-amzn-ErrorType"], body(wrong_stage)) == (
        403, "ForbiddenException", {"message": "Forbidden"})
    assert rules.refuse_request(request(url_bytes=limits.MAX_URL_BYTES), "dev") is None  # the limit itself passes
    assert rules.refuse_request(request(url_bytes=limits.MAX_URL_BYTES + 1), "dev").status == 414
    assert rules.refuse_request(request(header_bytes=limits.MAX_HANDSHAKE_HEADER_BYTES + 1), "dev").status == 431
    assert rules.refuse_request(request(websocket=False), "dev").status == 426
    # the order API Gateway checks in: a wrong stage is 403 whatever else is wrong
    assert rules.refuse_request(request(stage="x", url_bytes=10 ** 6, websocket=False), "dev").status == 403


def test_a_missing_identity_source_is_401_before_any_authorizer_runs():
    headers = {"Authorization": "Bearer t"}.get
    query = {"token": "t"}.get
    assert not rules.missing_identity(("route.request.header.Authorization",), headers, query)
    assert rules.missing_identity(("route.request.header.X-Key",), headers, query)
    assert not rules.missing_identity(("route.request.querystring.token",), headers, query)
    assert rules.missing_identity(("route.request.querystring.token", "route.request.header.X"), headers, query)
    assert rules.missing_identity(("route.request.header.Authorization",), {"Authorization": ""}.get, query)
    assert not rules.missing_identity(("context.requestId",), headers, query)  # not a request source


@pytest.mark.parametrize("outcome, verdict", [
    (Outcome.failed("Error", "Unauthorized"), 401),  # raising Unauthorized, in any runtime
    (Outcome.failed("Error", "unauthorized"), 500),  # the message is matched exactly
    (rules.TIMED_OUT, 500),
    (Outcome.result({"principalId": "u", "policyDocument": {"Statement": [
        {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": ARN}]}}), 403),
    (Outcome.result({"principalId": "u"}), 500),
    (Outcome.result({"principalId": "u", "context": {"n": 7, "ok": True}, "policyDocument": {"Statement": [
        {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:*"}]}}),
     {"principalId": "u", "n": "7", "ok": "true"}),
])
def test_the_authorizers_outcome_is_a_context_or_a_refusal(outcome, verdict):
    assert rules.auth_verdict(outcome, ARN) == verdict


def test_an_authorizers_refusal_says_so_as_api_gateway_words_it():
    assert (rules.auth_refusal(401).status, body(rules.auth_refusal(401))) == (401, {"message": "Unauthorized"})
    assert body(rules.auth_refusal(403)) == {"message": "Forbidden"}
    assert body(rules.auth_refusal(500)) == {"message": "Internal server error"}


@pytest.mark.parametrize("outcome, status, protocol", [
    (Outcome.result(None), 200, None),  # a handler that returns nothing admits
    (Outcome.result({"statusCode": 200}), 200, None),
    (Outcome.result({"statusCode": "201"}), 201, None),
    (Outcome.result({"statusCode": 401}), 401, None),
    (Outcome.result({"statusCode": "nope"}), 502, None),
    (Outcome.result({"statusCode": 200, "headers": {"sec-websocket-protocol": "chat.v2"}}), 200, "chat.v2"),
    (Outcome.result({"statusCode": 200, "headers": ["not", "a", "map"]}), 200, None),
    (Outcome.failed("TypeError", "boom"), 502, None),
    (rules.TIMED_OUT, 504, None),
    (rules.not_served("integration type AWS with mapping templates"), 500, None),
])
def test_connect_decides_the_handshakes_status_and_its_one_subprotocol(outcome, status, protocol):
    verdict = rules.connect_verdict(outcome)
    assert (verdict.status, verdict.subprotocol, verdict.admitted) == (status, protocol, 200 <= status < 300)


# -- messages [#route-responses, #error-frames] -----------------------------------------------------------------
def test_a_two_way_route_answers_with_the_body_a_one_way_route_with_nothing():
    result = Outcome.result({"statusCode": 200, "body": "pong"})
    assert rules.reply(result, True, "c", "r") == rules.Reply(("pong",), "200")
    assert rules.reply(result, False, "c", "r") == rules.Reply((), "200")
    assert rules.reply(Outcome.result({"body": {"a": 1}}), True, "c", "r").frames == ('{"a": 1}',)
    assert rules.reply(Outcome.result({"body": "AAH/", "isBase64Encoded": True}), True, "c", "r").frames == (
        b"\x00\x01\xff",)
    assert rules.reply(Outcome.result({"statusCode": 200}), True, "c", "r").frames == ()
    assert rules.reply(Outcome.result("just a string"), True, "c", "r").frames == ()


@pytest.mark.parametrize("outcome, message, shown", [
    (Outcome.failed("ValueError"), "Internal server error", "Internal server error"),
    (rules.TIMED_OUT, "Endpoint request timed out", "Endpoint request timed out"),
    (rules.not_served("integration type AWS"), "Internal server error",
     "Internal server error (not emulated: integration type AWS)"),
])
def test_a_failed_integration_answers_its_error_frame_byte_for_byte(outcome, message, shown):
    reply = rules.reply(outcome, True, "XDmENcnwIE0CFEQ=", "XDmGEE2RoE0FRdQ=")
    assert reply.frames == ('{"message": "%s", "connectionId":"XDmENcnwIE0CFEQ=", "requestId":"XDmGEE2RoE0FRdQ="}'
                            % message,) and reply.shown == shown
    assert apigw.gateway_error(reply.frames[0]) == message


def test_no_route_answers_forbidden_and_keeps_the_socket():
    assert rules.no_route("c", "r") == rules.Reply((apigw.error_frame("Forbidden", "c", "r"),), "Forbidden")


# -- endings [#limits] ---------------------------------------------------------------------------------------------
@given(st.integers(min_value=1000, max_value=4999).filter(lambda c: c not in (1005, 1006, 1015)), st.text(max_size=20))
def test_a_client_close_frame_is_passed_on_as_given(code, reason):
    assert rules.close_frame(code, reason) == (None, (code, reason))


@pytest.mark.parametrize("code", [1006, 5000, 65535])
def test_a_close_code_rfc_6455_does_not_allow_is_a_protocol_error(code):
    assert rules.close_frame(code, "x") == ((apigw.CloseCode.PROTOCOL_ERROR, ""), None)


def test_the_ending_disconnect_gets_is_the_gateways_then_the_clients_then_a_drop():
    assert rules.close_frame(None, "") == (None, (1005, "Client-side close frame status not set"))
    assert rules.ending((1009, ""), (1000, "bye")) == (1009, "")
    assert rules.ending(None, (1000, "bye")) == (1000, "bye")
    assert rules.ending(None, None) == (1006, "")
    assert rules.disconnect_shown(Outcome.result(None), 1001) == "1001"
    assert rules.disconnect_shown(Outcome.failed("KeyError"), 1001) == "error:KeyError"
    assert rules.disconnect_shown(rules.TIMED_OUT, 1001) == "error:timeout"


def test_idle_and_over_age_connections_expire():
    idle, age = limits.IDLE_TIMEOUT_S, limits.MAX_CONNECTION_S
    assert not rules.expired(1000.0, 999.0, 999_000, idle, age)
    assert rules.expired(1000.0 + idle, 1000.0, 999_000, idle, age)  # no data frame for 10 minutes
    assert rules.expired(1000.0 + age, 1000.0 + age - 1, 1_000_000, idle, age)  # two hours, however busy


# -- the management API [#management-api] ------------------------------------------------------------------------------
def verdict(method="POST", stage="dev", rejected=None, token=True, fault=None, known=True, size=10, asked=None):
    asked = [] if asked is None else asked

    def take_token():
        asked.append("token")
        return token

    def draw_fault():
        asked.append("fault")
        return fault

    return rules.management_verdict(method, stage, "dev", rejected, take_token, draw_fault, known, size)


def test_a_known_connection_gets_its_action():
    assert [verdict(method) for method in ("POST", "GET", "DELETE")] == ["post", "get", "delete"]


def test_refusals_come_in_api_gateways_order_and_ask_the_throttle_and_faults_only_when_reached():
    asked = []
    assert verdict(stage="prod", token=False, asked=asked).status == 403 and asked == []
    refused = verdict(rejected=("InvalidSignatureException", "no"), asked=asked)
    assert (refused.status, dict(refused.headers)["x-amzn-ErrorType"]) == (403, "InvalidSignatureException")
    assert verdict(method="PUT", asked=asked).status == 403 and asked == []
    throttled = verdict(token=False, fault=410, asked=asked)
    assert (throttled.status, body(throttled)) == (429, {"message": "Rate exceeded"}) and asked == ["token"]
    asked.clear()
    injected = verdict(fault=500, asked=asked)
    assert (injected.status, dict(injected.headers)["x-amzn-ErrorType"]) == (500, "InternalServerErrorException")
    assert asked == ["token", "fault"]


def test_a_message_over_128_kb_is_413_and_an_unknown_id_is_410():
    too_big = verdict(size=limits.MAX_MESSAGE_BYTES + 1, known=False)
    assert (too_big.status, dict(too_big.headers)["x-amzn-ErrorType"]) == (413, "PayloadTooLargeException")
    assert verdict(size=limits.MAX_MESSAGE_BYTES) == "post"
    gone = verdict(known=False)
    assert (gone.status, dict(gone.headers)["x-amzn-ErrorType"]) == (410, "GoneException")
    assert verdict(method="GET", known=False, size=10 ** 6).status == 410  # only a POST has a body to weigh


def test_a_post_is_200_once_handed_on_429_when_the_client_is_not_reading_410_when_it_is_gone():
    assert rules.posted(backlogged=False, delivered=True).status == 200
    full = rules.posted(backlogged=True, delivered=False)
    assert (full.status, dict(full.headers)["x-amzn-ErrorType"]) == (429, "LimitExceededException")
    assert rules.posted(backlogged=False, delivered=False).status == 410


def test_get_connection_reads_as_botocore_expects_and_omits_a_missing_user_agent():
    info = rules.connection_info(1_700_000_000_123, 1_700_000_005.5, "10.0.0.1", None)
    assert body(info) == {"connectedAt": "2023-11-14T22:13:20.123Z", "identity": {"sourceIp": "10.0.0.1"},
                          "lastActiveAt": "2023-11-14T22:13:25.500Z"}
    assert body(rules.connection_info(0, 0, "::1", "wscat"))["identity"] == {"sourceIp": "::1", "userAgent": "wscat"}
    assert rules.KICKED.status == 204


# -- test faults ------------------------------------------------------------------------------------------------------------
def test_faults_are_parsed_described_and_drawn_in_one_place():
    faults = Faults.parse(["mgmt-410=0.25", "handler-error=1", "disconnect-loss=1"], seed=7)
    assert faults.describe() == "mgmt-410=0.25, handler-error=1, disconnect-loss=1 (seed 7)"
    assert rules.injected(faults.handler()) == Outcome.failed("Injected.Fault", "injected fault")
    assert rules.injected("timeout") == rules.TIMED_OUT and rules.injected(None) is None
    assert faults.loses_disconnect(1006) and not faults.loses_disconnect(1000)
    draws = [faults.management_status() for _ in range(400)]
    assert set(draws) == {410, None} and 60 < draws.count(410) < 140
    assert Faults().describe() == "" and Faults().handler() is None
    for bad, words in (["mgmt-418=0.1"], "KIND one of"), (["handler-error=2"], "SHARE in 0..1"), (
            ["mgmt-410=0.6", "mgmt-500=0.6"], "add up to more than 1"):
        with pytest.raises(ValueError, match=words):
            Faults.parse(bad)


UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
# (changed headers, valid): what aiohttp's own handshake accepts, which the rule must match (a request
# passed as valid and refused by aiohttp later would be refused after $connect had run)
UPGRADE_CASES = [
    ({}, True),
    ({"Upgrade": " WebSocket "}, True),
    ({"Connection": "keep-alive, Upgrade"}, True),
    ({"Sec-WebSocket-Version": "8"}, True),
    ({"Upgrade": "h2c"}, False),
    ({"Upgrade": None}, False),
    ({"Connection": "keep-alive"}, False),
    ({"Connection": None}, False),
    ({"Sec-WebSocket-Version": "12"}, False),
    ({"Sec-WebSocket-Version": None}, False),
    ({"Sec-WebSocket-Key": "c2hvcnQ="}, False),  # 5 bytes, not 16
    ({"Sec-WebSocket-Key": "not base64!"}, False),
    ({"Sec-WebSocket-Key": None}, False),
]


def upgrade_headers(changes: dict) -> dict:
    headers = dict(UPGRADE, **changes)
    return {k: v for k, v in headers.items() if v is not None}


@pytest.mark.parametrize("changes, valid", UPGRADE_CASES)
def test_a_websocket_upgrade_is_checked_as_aiohttp_checks_it(changes, valid):
    headers = {k.lower(): v for k, v in upgrade_headers(changes).items()}
    assert rules.is_websocket_upgrade(lambda name: headers.get(name.lower(), "")) is valid
