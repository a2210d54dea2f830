"""lambda_src.app.handler in-process, against moto's DynamoDB and a strict management API.

moto's @connections double accepts every id and concatenates what is posted;
here each post is recorded on its own, and ids a test marks gone answer 410
as API Gateway does.
"""

import json
import time
from urllib.parse import unquote

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend
from moto.core.exceptions import JsonRESTError

from support import apigw_events as ev
from lambda_src import app, delivery, keys

TABLE = "wsctl-t1-connections"
ALICE, BOB, CAROL = "alice", "bob", "carol"
# Real connection ids: URL-safe base64 ending in "=" (percent-encoded in @connections paths).
A1, B1, B2, C1 = "Alic1AAAAAAAAAA=", "Bob1_AAAAAAAAAA=", "Bob2-AAAAAAAAAA=", "Caro1AAAAAAAAAA="


class GoneException(JsonRESTError):
    code = 410

    def __init__(self):
        super().__init__("GoneException", "")


class Management:
    """What the management API received, one entry per PostToConnection; ids in `gone` answer 410."""

    def __init__(self):
        self.sent: list[tuple[str, bytes]] = []
        self.gone: set[str] = set()

    def to(self, connection_id: str) -> list[bytes]:
        return [data for cid, data in self.sent if cid == connection_id]


@pytest.fixture
def mgmt(monkeypatch):
    record = Management()

    def post_to_connection(backend, data, connection_id):
        connection_id = unquote(connection_id)  # moto leaves the path segment encoded
        if connection_id in record.gone:
            raise GoneException()
        record.sent.append((connection_id, bytes(data)))

    monkeypatch.setattr(ApiGatewayManagementApiBackend, "post_to_connection", post_to_connection)
    return record


@pytest.fixture
def ddb(aws, monkeypatch):
    """The registry table, the handler's environment, and fresh per-container caches."""
    for name, value in {"TABLE_NAME": TABLE, "STACK_NAME": "t1", "AUTH_MODE": "jwt",
                        "SIGNING_KEY_PARAM": "/wsctl/t1/signing-key",
                        "APIGW_MANAGEMENT_ENDPOINT": ev.MANAGEMENT_ENDPOINT}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ALLOW_CLIENT_BROADCAST", raising=False)
    monkeypatch.delenv("CONNECTION_TTL_SECONDS", raising=False)
    monkeypatch.setattr(app, "_ddb", None)
    monkeypatch.setattr(delivery, "_clients", {})
    client = boto3.client("dynamodb", region_name=ev.REGION)
    client.create_table(**keys.table_definition(TABLE))
    return client


# -- helpers ---------------------------------------------------------------------
def items_under(ddb, connection_id: str) -> list[dict]:
    answer = ddb.query(TableName=TABLE, KeyConditionExpression="PK = :pk",
                       ExpressionAttributeValues={":pk": {"S": "CONN#" + connection_id}}, ConsistentRead=True)
    return [{k: TypeDeserializer().deserialize(v) for k, v in item.items()} for item in answer["Items"]]


def all_items(ddb) -> list[dict]:
    return ddb.scan(TableName=TABLE)["Items"]


def put_raw(ddb, item: dict) -> None:
    ddb.put_item(TableName=TABLE, Item={k: TypeSerializer().serialize(v) for k, v in item.items()})


def connected(*pairs: tuple[str, str]) -> None:
    for connection_id, user in pairs:
        assert app.handler(ev.connect(connection_id, user), None) == {"statusCode": 200}


def send(connection_id: str, user: str, frame) -> dict:
    """Send one frame; return the two-way answer's body, checking the envelope."""
    response = app.handler(ev.message(connection_id, frame, user), None)
    assert response["statusCode"] == 200
    return json.loads(response["body"])


def expired_connection(ddb, connection_id: str, user: str) -> None:
    """A connection item whose ttl has passed (DynamoDB has not reaped it yet)."""
    put_raw(ddb, {"PK": "CONN#" + connection_id, "SK": "CONN", "GSI1PK": "USER#" + user,
                  "GSI1SK": "CONN#" + connection_id, "connectionId": connection_id, "userId": user,
                  "connectedAt": 1, "ttl": int(time.time()) - 60, "endpoint": ev.MANAGEMENT_ENDPOINT})


def expired_membership(ddb, connection_id: str, room: str) -> None:
    put_raw(ddb, {"PK": "CONN#" + connection_id, "SK": "ROOM#" + room, "GSI1PK": "ROOM#" + room,
                  "GSI1SK": "CONN#" + connection_id, "connectionId": connection_id, "room": room,
                  "joinedAt": 1, "ttl": int(time.time()) - 60})


def relayed(data: bytes) -> dict:
    """A relayed frame, checked to be compact JSON with the handler's key order."""
    message = json.loads(data)
    assert data == json.dumps(message, separators=(",", ":")).encode()
    return message


# -- $connect ----------------------------------------------------------------------
def test_connect_writes_the_data_model_item(ddb):
    assert app.handler(ev.connect(A1, ALICE), None) == {"statusCode": 200}

    assert items_under(ddb, A1) == [{
        "PK": "CONN#" + A1, "SK": "CONN", "GSI1PK": "USER#alice", "GSI1SK": "CONN#" + A1,
        "connectionId": A1, "userId": ALICE, "connectedAt": ev.CONNECTED_AT,
        "ttl": ev.CONNECTED_AT // 1000 + 7500, "endpoint": ev.MANAGEMENT_ENDPOINT,
        "sourceIp": ev.SOURCE_IP, "userAgent": ev.USER_AGENT}]


def test_connect_ttl_follows_connection_ttl_seconds(ddb, monkeypatch):
    monkeypatch.setenv("CONNECTION_TTL_SECONDS", "600")
    connected((A1, ALICE))
    assert items_under(ddb, A1)[0]["ttl"] == ev.CONNECTED_AT // 1000 + 600


def test_connect_without_endpoint_override_uses_the_events_domain_and_stage(ddb, monkeypatch):
    monkeypatch.delenv("APIGW_MANAGEMENT_ENDPOINT")
    connected((A1, ALICE))
    assert items_under(ddb, A1)[0]["endpoint"] == "https://%s/%s" % (ev.DOMAIN, ev.STAGE)


def test_connect_echoes_one_offered_subprotocol(ddb):
    response = app.handler(ev.connect(A1, ALICE, headers={"Sec-WebSocket-Protocol": "chat.v1, chat.v2"}), None)
    assert response == {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "chat.v1"}}


def test_second_connect_with_the_same_id_is_refused_without_overwriting(ddb):
    connected((A1, ALICE))
    before = items_under(ddb, A1)

    assert app.handler(ev.connect(A1, "mallory", connected_at=ev.CONNECTED_AT + 5000), None) == {"statusCode": 409}
    assert items_under(ddb, A1) == before


def test_connect_answers_500_when_the_registry_write_fails(ddb, monkeypatch):
    monkeypatch.setenv("TABLE_NAME", "no-such-table")
    assert app.handler(ev.connect(A1, ALICE), None) == {"statusCode": 500}
    assert all_items(ddb) == []


def test_auth_none_names_the_user_after_the_connection(ddb, monkeypatch):
    monkeypatch.setenv("AUTH_MODE", "none")
    connected((A1, None))
    item = items_under(ddb, A1)[0]
    assert (item["userId"], item["GSI1PK"]) == ("anon-" + A1, "USER#anon-" + A1)


def test_jwt_stack_without_authorizer_context_refuses_and_writes_nothing(ddb):
    assert app.handler(ev.connect(A1, user=None), None) == {"statusCode": 403}
    assert all_items(ddb) == []


@pytest.mark.parametrize("mode", ["switching", "none"])
def test_a_connection_the_authorizer_verified_keeps_its_user_and_one_without_is_anonymous(ddb, monkeypatch, mode):
    """During an auth switch (and with --auth none) $connect admits both kinds: a user the
    authorizer verified, and a connection with no authorizer, or one it let in anonymously."""
    monkeypatch.setenv("AUTH_MODE", mode)
    anonymous = ev.connect(C1, user=None)
    anonymous["requestContext"]["authorizer"] = {"principalId": "anonymous", "anonymous": "true"}
    for event in (ev.connect(A1, ALICE), ev.connect(B1, user=None), anonymous):
        assert app.handler(event, None) == {"statusCode": 200}
    users = {cid: items_under(ddb, cid)[0]["userId"] for cid in (A1, B1, C1)}
    assert users == {A1: ALICE, B1: "anon-" + B1, C1: "anon-" + C1}


# -- sendMessage ---------------------------------------------------------------------
def test_send_message_delivers_one_message_to_each_connection_of_the_user(ddb, mgmt):
    connected((A1, ALICE), (B1, BOB), (B2, BOB))
    before = int(time.time() * 1000)

    ack = send(A1, ALICE, {"action": "sendMessage", "targetUserId": BOB, "text": "hi bob"})

    assert ack == {"type": "sent", "to": BOB, "delivered": 2}
    assert sorted(cid for cid, _ in mgmt.sent) == [B1, B2]
    for connection_id in (B1, B2):
        (data,) = mgmt.to(connection_id)
        message = relayed(data)
        assert before <= message["ts"] <= int(time.time() * 1000)
        assert data == b'{"type":"message","from":"alice","text":"hi bob","ts":%d}' % message["ts"]


def test_send_message_deletes_a_gone_connection_with_all_its_items(ddb, mgmt):
    connected((A1, ALICE), (B1, BOB), (B2, BOB))
    assert send(B2, BOB, {"action": "join", "room": "lobby"})["type"] == "joined"
    mgmt.gone.add(B2)

    ack = send(A1, ALICE, {"action": "sendMessage", "targetUserId": BOB, "text": "hi"})

    assert (ack["delivered"], ack["gone"]) == (1, 1)
    assert len(mgmt.to(B1)) == 1
    assert items_under(ddb, B2) == []
    assert len(items_under(ddb, B1)) == 1


def test_send_message_to_user_whose_only_connection_is_gone_says_no_connection(ddb, mgmt):
    connected((A1, ALICE), (B1, BOB))
    mgmt.gone.add(B1)
    answer = send(A1, ALICE, {"action": "sendMessage", "targetUserId": BOB, "text": "hi"})
    assert answer["error"] == "no_connection"
    assert items_under(ddb, B1) == []


def test_send_message_to_user_without_connection_answers_no_connection(ddb, mgmt):
    connected((A1, ALICE))
    answer = send(A1, ALICE, {"action": "sendMessage", "targetUserId": "nobody", "text": "hi"})
    assert (answer["type"], answer["error"]) == ("error", "no_connection")
    assert mgmt.sent == []


@pytest.mark.parametrize("claim", [{"from": "mallory"}, {"userId": "mallory"}, {"principalId": "mallory"}])
def test_a_frame_cannot_claim_another_sender(ddb, mgmt, claim):
    connected((A1, ALICE), (B1, BOB))
    send(A1, ALICE, dict({"action": "sendMessage", "targetUserId": BOB, "text": "hi"}, **claim))
    (data,) = mgmt.to(B1)
    assert relayed(data)["from"] == ALICE
    assert send(A1, ALICE, dict({"action": "whoami"}, **claim))["userId"] == ALICE


def test_send_message_skips_expired_connections(ddb, mgmt):
    connected((A1, ALICE), (B1, BOB))
    expired_connection(ddb, B2, BOB)
    ack = send(A1, ALICE, {"action": "sendMessage", "targetUserId": BOB, "text": "hi"})
    assert ack["delivered"] == 1
    assert [cid for cid, _ in mgmt.sent] == [B1]

    expired_connection(ddb, C1, CAROL)
    assert send(A1, ALICE, {"action": "sendMessage", "targetUserId": CAROL, "text": "hi"})["error"] == "no_connection"


# -- rooms -------------------------------------------------------------------------
def test_join_whoami_send_room_leave(ddb, mgmt):
    connected((A1, ALICE), (B1, BOB), (C1, CAROL))
    for connection_id, user in ((A1, ALICE), (B1, BOB)):
        assert send(connection_id, user, {"action": "join", "room": "lobby"}) == {"type": "joined", "room": "lobby"}
    assert send(A1, ALICE, {"action": "join", "room": "den"})["type"] == "joined"

    assert send(A1, ALICE, {"action": "whoami"}) == {"type": "whoami", "connectionId": A1, "userId": ALICE,
                                                    "rooms": ["den", "lobby"]}

    ack = send(A1, ALICE, {"action": "sendRoom", "room": "lobby", "text": "hello room"})
    assert (ack["type"], ack["room"], ack["delivered"]) == ("sent", "lobby", 1)
    (data,) = mgmt.to(B1)  # the sender and non-members get nothing
    assert [cid for cid, _ in mgmt.sent] == [B1]
    message = relayed(data)
    assert data == b'{"type":"room","room":"lobby","from":"alice","text":"hello room","ts":%d}' % message["ts"]

    assert send(A1, ALICE, {"action": "leave", "room": "lobby"}) == {"type": "left", "room": "lobby"}
    assert send(A1, ALICE, {"action": "whoami"})["rooms"] == ["den"]
    assert send(A1, ALICE, {"action": "leave", "room": "lobby"})["error"] == "not_member"


def test_send_room_requires_membership(ddb, mgmt):
    connected((A1, ALICE), (B1, BOB))
    send(B1, BOB, {"action": "join", "room": "lobby"})
    answer = send(A1, ALICE, {"action": "sendRoom", "room": "lobby", "text": "let me in"})
    assert (answer["type"], answer["error"]) == ("error", "not_member")
    assert mgmt.sent == []


def test_expired_memberships_are_skipped_by_send_room_and_whoami(ddb, mgmt):
    connected((A1, ALICE), (B1, BOB), (C1, CAROL))
    send(A1, ALICE, {"action": "join", "room": "lobby"})
    send(B1, BOB, {"action": "join", "room": "lobby"})
    expired_membership(ddb, C1, "lobby")
    expired_membership(ddb, A1, "old")

    send(A1, ALICE, {"action": "sendRoom", "room": "lobby", "text": "hi"})
    assert [cid for cid, _ in mgmt.sent] == [B1]
    assert send(A1, ALICE, {"action": "whoami"})["rooms"] == ["lobby"]

    expired_membership(ddb, B1, "stale")
    assert send(B1, BOB, {"action": "sendRoom", "room": "stale", "text": "hi"})["error"] == "not_member"


# -- broadcastAll --------------------------------------------------------------------
def test_broadcast_all_is_refused_unless_the_stack_allows_it(ddb, mgmt, monkeypatch):
    connected((A1, ALICE), (B1, BOB), (C1, CAROL))
    frame = {"action": "broadcastAll", "text": "everyone"}
    assert send(A1, ALICE, frame)["error"] == "forbidden"
    assert mgmt.sent == []

    monkeypatch.setenv("ALLOW_CLIENT_BROADCAST", "1")
    assert send(A1, ALICE, frame)["delivered"] == 2
    assert sorted(cid for cid, _ in mgmt.sent) == [B1, C1]
    assert relayed(mgmt.to(C1)[0])["from"] == ALICE


# -- bad frames --------------------------------------------------------------------------
@pytest.mark.parametrize("body, error", [
    ("hello", "bad_json"),
    ("[1, 2]", "bad_json"),
    ('"action"', "bad_json"),
    (None, "bad_json"),
    ('{"text": "hi"}', "missing_action"),
    ('{"action": "dance"}', "unknown_action"),
    ('{"action": ["sendMessage"]}', "unknown_action"),
    ('{"action": {"name": "join"}}', "unknown_action"),
    ('{"action": 7}', "unknown_action"),
    ('{"action": "sendMessage", "targetUserId": "bob"}', "missing_field"),
    ('{"action": "sendMessage", "targetUserId": "bob", "text": ""}', "missing_field"),
    ('{"action": "sendMessage", "targetUserId": 5, "text": "hi"}', "missing_field"),
    ('{"action": "join", "room": ["a"]}', "missing_field"),
    ('{"action": "join", "room": "%s"}' % ("r" * 129), "bad_field"),
    ('{"action": "whoami", "room": 5}', None),  # a field the action does not take is ignored
])
def test_bad_frames_on_default_get_an_error_frame_naming_every_action(ddb, mgmt, body, error):
    connected((A1, ALICE))
    response = app.handler(ev.message(A1, body, ALICE, route_key="$default"), None)

    assert response["statusCode"] == 200
    answer = json.loads(response["body"])
    if error is None:
        assert answer["type"] == "whoami"
        return
    assert (answer["type"], answer["error"]) == ("error", error)
    assert answer["accepted"] == {action: list(fields) for action, fields in app.ACTIONS.items()}
    assert set(answer["accepted"]) == {"sendMessage", "join", "leave", "sendRoom", "whoami", "broadcastAll"}
    assert mgmt.sent == []


def test_a_custom_route_refuses_a_frame_for_another_action(ddb, mgmt):
    connected((A1, ALICE))
    event = ev.message(A1, {"action": "join", "room": "lobby"}, ALICE, route_key="sendRoom")
    assert json.loads(app.handler(event, None)["body"])["error"] == "unknown_action"
    assert len(items_under(ddb, A1)) == 1  # joined nothing


# -- $disconnect ------------------------------------------------------------------------
def test_disconnect_deletes_the_connection_and_its_memberships(ddb, mgmt):
    connected((A1, ALICE), (B1, BOB))
    for room in ("lobby", "den"):
        send(A1, ALICE, {"action": "join", "room": room})
    assert len(items_under(ddb, A1)) == 3

    assert app.handler(ev.disconnect(A1, ALICE), None) == {"statusCode": 200}
    assert items_under(ddb, A1) == []
    assert len(items_under(ddb, B1)) == 1

    assert app.handler(ev.disconnect(A1, ALICE), None) == {"statusCode": 200}


# -- logging ------------------------------------------------------------------------------
def test_each_invocation_logs_exactly_one_json_line(ddb, mgmt, capsys):
    capsys.readouterr()
    invocations = [
        (ev.connect(A1, ALICE), "$connect", "connected"),
        (ev.message(A1, {"action": "join", "room": "lobby"}, ALICE), "join", "joined"),
        (ev.message(A1, "not json", ALICE), "$default", "error:bad_json"),
        (ev.connect(A1, ALICE), "$connect", "refused:duplicate-id"),
        (ev.disconnect(A1, ALICE), "$disconnect", "deleted=2"),
    ]
    for event, route, outcome in invocations:
        app.handler(event, None)
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1, lines
        line = json.loads(lines[0])
        assert (line["route"], line["connectionId"], line["outcome"]) == (route, A1, outcome)
        assert isinstance(line["ms"], (int, float)) and line["ms"] >= 0
