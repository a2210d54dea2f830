"""wsctl/local/events.py on its own: the Lambda proxy events API Gateway builds for a WebSocket
API, without a socket or an emulator (docs/apigw-websocket.md#proxy-events is the contract).

The strongest check comes first: fed the connection of the documented example events, the
builders give those events back key for key and value for value. The rest pins the rules
one at a time (what each event type carries and omits, header maps, ids, times), so a change
to one rule fails a test named after it. tests/test_emulator_events.py checks the same events
as a handler receives them over real sockets.
"""

import copy
import re
import time
from datetime import datetime, timezone

from hypothesis import given
from hypothesis import strategies as st

from support.apigw_events import REFERENCE_CONNECT, REFERENCE_DISCONNECT, REFERENCE_MESSAGE
from wsctl import apigw, names
from wsctl.local import events

ID = re.compile(r"^[A-Za-z0-9_-]{15}=$")  # 11 random bytes in URL-safe base64
CLF = re.compile(r"^\d\d/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d\d:\d\d:\d\d \+0000$")
CONTEXT_KEYS = {"routeKey", "eventType", "extendedRequestId", "requestTime", "messageDirection", "stage",
                "connectedAt", "requestTimeEpoch", "identity", "requestId", "domainName", "connectionId", "apiId"}


def reference_origin(**changes) -> events.Origin:
    """The connection of the documented example events: its headers (plus the two upgrade
    headers that only the authorizer sees), its query string and its authorizer's answer."""
    example = REFERENCE_CONNECT
    context = example["requestContext"]
    headers = list(example["headers"].items())
    headers[1:1] = [("Connection", "Upgrade"), ("Upgrade", "websocket")]
    origin = events.Origin(
        connection_id=context["connectionId"], connected_at=context["connectedAt"],
        source_ip=context["identity"]["sourceIp"], domain_name=context["domainName"], stage=context["stage"],
        api_id=context["apiId"], user_agent=context["identity"]["userAgent"], headers=headers,
        query=list(example["queryStringParameters"].items()), authorizer=dict(context["authorizer"]))
    for name, value in changes.items():
        setattr(origin, name, value)
    return origin


# -- the documented examples, reproduced exactly -------------------------------------------------------
def test_connect_event_is_the_documented_example():
    context = REFERENCE_CONNECT["requestContext"]
    event = events.connect_event(reference_origin(), context["requestTimeEpoch"], context["requestId"])
    assert event == REFERENCE_CONNECT


def test_message_event_is_the_documented_example():
    context = REFERENCE_MESSAGE["requestContext"]
    event = events.message_event(reference_origin(), context["routeKey"], REFERENCE_MESSAGE["body"],
                                 context["requestTimeEpoch"], context["requestId"], context["messageId"])
    assert event == REFERENCE_MESSAGE


def test_disconnect_event_is_the_documented_example():
    context = REFERENCE_DISCONNECT["requestContext"]
    event = events.disconnect_event(reference_origin(), context["disconnectStatusCode"],
                                    context["disconnectReason"], context["requestTimeEpoch"], context["requestId"])
    assert event == REFERENCE_DISCONNECT


# -- what each event type carries ----------------------------------------------------------------------
def test_only_message_events_carry_a_message_id_and_a_body():
    origin = reference_origin()
    connect = events.connect_event(origin, 1, "r1")
    message = events.message_event(origin, "$default", "hi", 2, "r2", "m2")
    disconnect = events.disconnect_event(origin, 1000, "", 3, "r3")
    assert message["requestContext"]["messageId"] == "m2" and message["body"] == "hi"
    for event in (connect, disconnect):
        assert "messageId" not in event["requestContext"] and "body" not in event


def test_only_disconnect_events_carry_the_close_code_and_reason():
    origin = reference_origin()
    disconnect = events.disconnect_event(origin, 1001, "", 3, "r3")
    assert disconnect["requestContext"]["disconnectStatusCode"] == 1001
    assert disconnect["requestContext"]["disconnectReason"] == ""  # an empty reason is kept, not dropped
    for event in (events.connect_event(origin, 1, "r1"), events.message_event(origin, "a", "{}", 2, "r2", "m2")):
        assert not {"disconnectStatusCode", "disconnectReason"} & set(event["requestContext"])


def test_message_events_have_no_headers_and_no_query_maps():
    event = events.message_event(reference_origin(), "sendmessage", "{}", 5, "r", "m")
    assert set(event) == {"requestContext", "body", "isBase64Encoded"}


def test_disconnect_headers_are_the_fixed_four_whatever_the_client_sent():
    origin = reference_origin(headers=[("Host", "ignored.example"), ("X-Custom", "1")], query=[("a", "b")])
    event = events.disconnect_event(origin, 1005, "Client-side close frame status not set", 5, "r")
    assert event["headers"] == {"Host": origin.domain_name, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
    assert event["multiValueHeaders"] == {k: [v] for k, v in event["headers"].items()}
    assert "queryStringParameters" not in event


def test_every_event_type_has_the_same_request_context_keys_and_the_in_direction():
    origin = reference_origin(authorizer=None)
    built = [events.connect_event(origin, 10, "r1"), events.message_event(origin, "k", "{}", 11, "r2", "m"),
             events.disconnect_event(origin, 1000, "", 12, "r3")]
    extra = [set(), {"messageId"}, {"disconnectStatusCode", "disconnectReason"}]
    for event, more, kind in zip(built, extra, ["CONNECT", "MESSAGE", "DISCONNECT"]):
        context = event["requestContext"]
        assert set(context) == CONTEXT_KEYS | more
        assert context["eventType"] == kind and context["messageDirection"] == "IN"
        assert context["requestId"] == context["extendedRequestId"]
        assert event["isBase64Encoded"] is False  # binary frames never reach a function


def test_connect_event_drops_the_upgrade_headers_in_any_casing():
    origin = reference_origin(headers=[("Host", "h"), ("connection", "upgrade"), ("UPGRADE", "websocket"),
                                       ("Sec-WebSocket-Version", "13")])
    event = events.connect_event(origin, 1, "r")
    assert event["headers"] == {"Host": "h", "Sec-WebSocket-Version": "13"}


def test_header_names_keep_the_clients_casing_and_every_value_is_a_list():
    origin = reference_origin(headers=[("x-lower", "1"), ("X-UPPER", "2"), ("X-Mixed-Case", "3")])
    event = events.connect_event(origin, 1, "r")
    assert list(event["headers"]) == ["x-lower", "X-UPPER", "X-Mixed-Case"]
    assert event["multiValueHeaders"] == {"x-lower": ["1"], "X-UPPER": ["2"], "X-Mixed-Case": ["3"]}


@given(st.lists(st.tuples(st.sampled_from(["token", "room", "a b", "ü"]), st.text(max_size=5)), max_size=8))
def test_a_repeated_query_parameter_keeps_its_last_value_and_all_its_values(pairs):
    # The proxy-integration rule: the single-value map has the last value, the multi-value map all.
    event = events.connect_event(reference_origin(query=pairs), 1, "r")
    if not pairs:
        assert "queryStringParameters" not in event and "multiValueQueryStringParameters" not in event
        return
    names = {name for name, _ in pairs}
    assert event["queryStringParameters"] == {n: [v for k, v in pairs if k == n][-1] for n in names}
    assert event["multiValueQueryStringParameters"] == {n: [v for k, v in pairs if k == n] for n in names}


def test_the_query_maps_are_absent_without_a_query_string():
    event = events.connect_event(reference_origin(query=[]), 1, "r")
    assert "queryStringParameters" not in event and "multiValueQueryStringParameters" not in event


def test_identity_has_a_user_agent_only_when_the_client_sent_one():
    with_agent = events.connect_event(reference_origin(), 1, "r")["requestContext"]["identity"]
    without = events.connect_event(reference_origin(user_agent=None), 1, "r")["requestContext"]["identity"]
    assert with_agent == {"userAgent": "wsctl/0.3", "sourceIp": "203.0.113.7"}
    assert without == {"sourceIp": "203.0.113.7"}


def test_the_authorizer_map_reaches_every_later_event_and_is_a_copy():
    origin = reference_origin()
    answer = dict(origin.authorizer)
    for event in (events.connect_event(origin, 1, "r"), events.message_event(origin, "k", "{}", 2, "r", "m"),
                  events.disconnect_event(origin, 1000, "", 3, "r")):
        assert event["requestContext"]["authorizer"] == answer
        event["requestContext"]["authorizer"]["principalId"] = "changed by a handler"
    assert origin.authorizer == answer
    assert "authorizer" not in events.connect_event(reference_origin(authorizer=None), 1, "r")["requestContext"]


def test_connected_at_is_the_same_in_every_event_and_request_time_is_each_events_own():
    origin = reference_origin()
    times = [events.connect_event(origin, 1741183331211, "r")["requestContext"],
             events.message_event(origin, "k", "{}", 1741183339520, "r", "m")["requestContext"]]
    assert [c["connectedAt"] for c in times] == [origin.connected_at] * 2
    assert [c["requestTimeEpoch"] for c in times] == [1741183331211, 1741183339520]
    assert [c["requestTime"] for c in times] == ["05/Mar/2025:14:02:11 +0000", "05/Mar/2025:14:02:19 +0000"]


# -- the authorizer's event -----------------------------------------------------------------------------
def test_authorizer_event_is_a_request_event_with_the_upgrade_headers_and_empty_query_maps():
    origin = reference_origin(query=[])
    arn = events.method_arn("us-east-1", origin.api_id, origin.stage)
    event = events.authorizer_event(origin, arn, 1741183331209, "r")
    assert event["type"] == "REQUEST" and event["methodArn"] == arn
    assert event["headers"]["Connection"] == "Upgrade" and event["headers"]["Upgrade"] == "websocket"
    assert event["queryStringParameters"] == {} and event["multiValueQueryStringParameters"] == {}
    assert event["stageVariables"] == {}
    assert "authorizer" not in event["requestContext"]  # it is the authorizer that decides that
    assert event["requestContext"]["routeKey"] == "$connect" and event["requestContext"]["eventType"] == "CONNECT"


def test_authorizer_event_has_the_query_maps_of_the_url_and_empty_header_maps_without_headers():
    event = events.authorizer_event(reference_origin(headers=[], query=[("token", "t")]), "arn", 1, "r")
    assert event["queryStringParameters"] == {"token": "t"}
    assert event["multiValueQueryStringParameters"] == {"token": ["t"]}
    assert event["headers"] == {} and event["multiValueHeaders"] == {}


def test_method_arn_is_the_route_key_form_without_an_http_verb():
    assert events.method_arn("eu-west-1", "abc123defg", "dev") == \
        "arn:aws:execute-api:eu-west-1:123456789012:abc123defg/dev/$connect"


# -- ids, times, error frames -----------------------------------------------------------------------------
def test_ids_are_16_characters_of_url_safe_base64_ending_in_one_equals_sign():
    made = [events.connection_id() for _ in range(200)] + [events.request_id() for _ in range(200)]
    assert all(ID.match(i) for i in made)
    assert len(set(made)) == len(made)


def test_connection_and_message_ids_carry_c_request_ids_f_and_a_message_id_shares_the_connection_tail():
    connection = events.connection_id()
    message = events.message_id(connection)
    assert connection[11] == "C" and message[11] == "C" and events.request_id()[11] == "F"
    assert ID.match(message) and message[-4:] == connection[-4:] and message != connection


def test_api_ids_are_ten_lowercase_alphanumerics_stable_per_stack():
    ids = {stack: names.local_api_id(stack) for stack in ("wsctl", "chat", "chat-2")}
    assert all(re.fullmatch(r"[a-z0-9]{10}", i) for i in ids.values())
    assert len(set(ids.values())) == 3 and names.local_api_id("chat") == ids["chat"]


@given(st.integers(min_value=0, max_value=253402300799999))  # up to 9999-12-31T23:59:59.999Z
def test_request_time_is_the_common_log_format_in_utc(epoch_ms):
    text = events.request_time(epoch_ms)
    assert CLF.match(text)
    moment = datetime.fromtimestamp(epoch_ms // 1000, tz=timezone.utc)
    assert text == "%02d/%s/%04d:%02d:%02d:%02d +0000" % (
        moment.day, "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()[moment.month - 1], moment.year,
        moment.hour, moment.minute, moment.second)


def test_trace_id_is_an_x_ray_root_stamped_with_the_second():
    now_ms = int(time.time() * 1000)
    match = re.fullmatch(r"Root=1-([0-9a-f]{8})-([0-9a-f]{24})", events.trace_id(now_ms))
    assert match and int(match.group(1), 16) == now_ms // 1000


def test_the_error_frame_is_api_gateways_byte_for_byte():
    # A space after the first colon only, as in every captured frame.
    assert apigw.error_frame("Forbidden", "XDmENcnwIE0CFEQ=", "XDmGEE2RoE0FRdQ=") == \
        '{"message": "Forbidden", "connectionId":"XDmENcnwIE0CFEQ=", "requestId":"XDmGEE2RoE0FRdQ="}'


def test_builders_change_nothing_they_are_given():
    origin = reference_origin()
    before = copy.deepcopy(origin)
    events.connect_event(origin, 1, "r")
    events.authorizer_event(origin, "arn", 1, "r")
    events.message_event(origin, "k", "{}", 2, "r", "m")
    events.disconnect_event(origin, 1000, "", 3, "r")
    assert origin == before
